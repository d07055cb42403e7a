//! MFA administration: company policies, reseller enforcement, per-user status, reset and
//! opt-out, reset requests, and the audit log.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::auth::{Caller, Reach};
use super::error::{ApiError, ApiQuery, ApiResult, ErrorBody, JsonBody};
use super::tenancy::{Listing, company_in_reach, listing, rfc3339, user_in_reach};
use crate::mfa::otp::mask;
use crate::mfa::resets::{self, Verdict};
use crate::policy::admin::{Admin, PolicyView};
use crate::policy::{CompanyPolicy, Method, Methods, Mode, OptOut};
use crate::state::AppState;
use crate::storage::{AuditEvent, AuditFilter, PageRequest, ResetRequest};

fn admin(state: &AppState) -> Admin<'_> {
    Admin {
        store: &state.store,
        templates: &state.templates,
        issuer: &state.issuer,
    }
}

fn parse_time(value: &str, field: &str) -> ApiResult<i64> {
    crate::clock::parse_rfc3339(value).map_err(|_| {
        ApiError::invalid(format!(
            "{field} must be an RFC 3339 time, like 2027-01-31T00:00:00Z"
        ))
    })
}

fn parse_methods(methods: &[String]) -> ApiResult<Methods> {
    methods
        .iter()
        .map(|m| m.parse::<Method>().map_err(|e| ApiError::invalid(e.to_string())))
        .collect()
}

fn method_names(methods: &Methods) -> Vec<String> {
    methods.iter().map(|m| m.as_str().to_owned()).collect()
}

// ----- policy -----

/// A company's own MFA settings (DESIGN.md, "MFA policy").
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyBody {
    /// `off`, `optional` or `required`.
    pub mode: String,
    /// Any of `totp`, `email`, `sms`.
    pub methods: Vec<String>,
    #[serde(default)]
    pub allow_skip: bool,
    pub skip_limit: Option<u32>,
    /// RFC 3339.
    pub skip_deadline: Option<String>,
    #[serde(default)]
    pub allow_self_reset: bool,
    /// User ids of the company's (or its reseller's) administrators.
    #[serde(default)]
    pub reset_approvers: Vec<String>,
    #[serde(default = "yes")]
    pub keep_enrollments_when_off: bool,
}

fn yes() -> bool {
    true
}

impl PolicyBody {
    fn from_policy(p: &CompanyPolicy) -> Self {
        Self {
            mode: p.mode.as_str().into(),
            methods: method_names(&p.methods),
            allow_skip: p.allow_skip,
            skip_limit: p.skip_limit,
            skip_deadline: p.skip_deadline.map(rfc3339),
            allow_self_reset: p.allow_self_reset,
            reset_approvers: p.reset_approvers.clone(),
            keep_enrollments_when_off: p.keep_enrollments_when_off,
        }
    }

    fn into_policy(self) -> ApiResult<CompanyPolicy> {
        Ok(CompanyPolicy {
            mode: self
                .mode
                .parse::<Mode>()
                .map_err(|e| ApiError::invalid(e.to_string()))?,
            methods: parse_methods(&self.methods)?,
            allow_skip: self.allow_skip,
            skip_limit: self.skip_limit,
            skip_deadline: self
                .skip_deadline
                .as_deref()
                .map(|d| parse_time(d, "skipDeadline"))
                .transpose()?,
            allow_self_reset: self.allow_self_reset,
            reset_approvers: self.reset_approvers,
            keep_enrollments_when_off: self.keep_enrollments_when_off,
        })
    }
}

/// What applies to the company's users: its settings within the reseller's floor.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveView {
    pub mode: String,
    pub methods: Vec<String>,
    pub allow_skip: bool,
    pub opt_out_allowed: bool,
    pub enforced: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyView2 {
    pub company_id: String,
    pub policy: PolicyBody,
    /// The reseller enforcing MFA on the company, if one does.
    pub enforced_by: Option<String>,
    /// The reseller's floor: its minimum mode, and the methods it allows (null: any).
    pub floor_mode: String,
    pub floor_methods: Option<Vec<String>>,
    pub effective: EffectiveView,
}

impl From<PolicyView> for PolicyView2 {
    fn from(v: PolicyView) -> Self {
        Self {
            company_id: v.company_id,
            policy: PolicyBody::from_policy(&v.policy),
            enforced_by: v.enforced_by,
            floor_mode: v.floor.mode.as_str().into(),
            floor_methods: v.floor.methods.as_ref().map(method_names),
            effective: EffectiveView {
                mode: v.effective.mode.as_str().into(),
                methods: method_names(&v.effective.methods),
                allow_skip: v.effective.allow_skip,
                opt_out_allowed: v.effective.opt_out_allowed,
                enforced: v.effective.enforced,
            },
        }
    }
}

#[utoipa::path(get, path = "/companies/{id}/mfa-policy", tag = "mfa", params(("id" = String, Path)),
    responses((status = 200, body = PolicyView2), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<PolicyView2>> {
    let company = company_in_reach(&state, &caller, &id).await?;
    Ok(Json(admin(&state).view(&company.id).await?.into()))
}

/// Replaces a company's MFA policy; refused (403) where it would weaken what the reseller
/// enforces, and (422) without a method or a reset approver.
#[utoipa::path(put, path = "/companies/{id}/mfa-policy", tag = "mfa", params(("id" = String, Path)), request_body = PolicyBody,
    responses((status = 200, body = PolicyView2), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PolicyBody>,
) -> ApiResult<Json<PolicyView2>> {
    let company = company_in_reach(&state, &caller, &id).await?;
    let policy = body.into_policy()?;
    let now = state.now();
    let result = admin(&state).save_policy(&company.id, policy.clone(), now).await;
    let event = caller
        .audit("policy.changed")
        .subject(&company.id)
        .tenant(Some(&company.id), Some(&company.reseller_id));
    match result {
        Ok(view) => {
            crate::mfa::service::emails_queued(&state);
            event
                .detail(json!({ "mode": policy.mode, "methods": policy.methods }))
                .record(&state.store, now)
                .await;
            Ok(Json(view.into()))
        }
        Err(e) => {
            let error = ApiError::from(e);
            if error.status == StatusCode::FORBIDDEN {
                event
                    .failed()
                    .detail(json!({ "reason": error.message }))
                    .record(&state.store, now)
                    .await;
            }
            Err(error)
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnforcementBody {
    /// Narrow the company's methods to these (null: keep the company's choice).
    pub methods: Option<Vec<String>>,
}

/// The reseller enforces MFA on one of its companies: required, no skip, no opt-out.
#[utoipa::path(put, path = "/companies/{id}/enforcement", tag = "mfa", params(("id" = String, Path)), request_body = EnforcementBody,
    responses((status = 200, body = PolicyView2), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_enforcement(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<EnforcementBody>,
) -> ApiResult<Json<PolicyView2>> {
    let company = company_in_reach(&state, &caller, &id).await?;
    caller.require_reseller_level()?;
    let methods = body.methods.as_deref().map(parse_methods).transpose()?;
    let now = state.now();
    let view = admin(&state)
        .enforce(&company.reseller_id, &company.id, methods.clone(), now)
        .await?;
    caller
        .audit("enforcement.set")
        .subject(&company.id)
        .tenant(Some(&company.id), Some(&company.reseller_id))
        .detail(json!({ "methods": methods }))
        .record(&state.store, now)
        .await;
    Ok(Json(view.into()))
}

/// The reseller stops enforcing MFA on the company; its own settings apply again.
#[utoipa::path(delete, path = "/companies/{id}/enforcement", tag = "mfa", params(("id" = String, Path)),
    responses((status = 200, body = PolicyView2), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_enforcement(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<PolicyView2>> {
    let company = company_in_reach(&state, &caller, &id).await?;
    caller.require_reseller_level()?;
    let view = admin(&state).release(&company.reseller_id, &company.id).await?;
    caller
        .audit("enforcement.released")
        .subject(&company.id)
        .tenant(Some(&company.id), Some(&company.reseller_id))
        .record(&state.store, state.now())
        .await;
    Ok(Json(view.into()))
}

// ----- per user -----

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FactorView {
    /// `totp`, `email` or `sms`.
    #[serde(rename = "type")]
    pub kind: String,
    pub enrolled_at: String,
    /// For email and SMS factors, masked.
    pub destination: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OptOutView {
    pub reason: String,
    pub expires_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetRequestView {
    pub id: String,
    pub user_id: String,
    pub username: String,
    pub name: Option<String>,
    pub company_id: String,
    /// `pending`, `approved` or `declined`.
    pub status: String,
    /// Where the user asked: `challenge` (sign-in) or `account` (security page).
    pub source: String,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserMfaView {
    pub user_id: String,
    pub factors: Vec<FactorView>,
    pub recovery_codes_left: i64,
    pub opt_out: Option<OptOutView>,
    /// The user chose "Skip for now" (remembered until enrolment or a reset).
    pub skipped: bool,
    pub skip_count: i64,
    pub pending_reset_request: Option<ResetRequestView>,
}

fn request_view(request: ResetRequest, user: &crate::model::User) -> ResetRequestView {
    ResetRequestView {
        id: request.id,
        user_id: request.user_id,
        username: user.username.clone(),
        name: user.name.clone(),
        company_id: request.company_id,
        status: request.status,
        source: request.source,
        created_at: rfc3339(request.created_at),
    }
}

/// A user's MFA status: factors by type and date (never secrets), recovery codes left,
/// opt-out, skip and a pending reset request.
#[utoipa::path(get, path = "/users/{id}/mfa", tag = "mfa", params(("id" = String, Path)),
    responses((status = 200, body = UserMfaView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_user_mfa(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<UserMfaView>> {
    let (user, _) = user_in_reach(&state, &caller, &id).await?;
    let factors = state
        .store
        .factors_of(&user.id)
        .await?
        .into_iter()
        .filter_map(|f| {
            Some(FactorView {
                enrolled_at: rfc3339(f.confirmed_at?),
                destination: f.destination.as_deref().map(mask),
                kind: f.kind,
            })
        })
        .collect();
    let mfa = state.store.get_user_mfa(&user.id).await?;
    let pending = state.store.pending_reset_request(&user.id).await?;
    Ok(Json(UserMfaView {
        user_id: user.id.clone(),
        factors,
        recovery_codes_left: state.store.recovery_codes_left(&user.id).await?,
        opt_out: mfa.opt_out.map(|o| OptOutView {
            reason: o.reason,
            expires_at: o.expires_at.map(rfc3339),
        }),
        skipped: mfa.skipped_at.is_some(),
        skip_count: mfa.skip_count,
        pending_reset_request: pending.map(|r| request_view(r, &user)),
    }))
}

/// Resets a user's MFA: factors, recovery codes, the remembered skip and a pending request
/// are cleared, and the user is emailed.
#[utoipa::path(post, path = "/users/{id}/mfa/reset", tag = "mfa", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn reset_user_mfa(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let (user, company) = user_in_reach(&state, &caller, &id).await?;
    let now = state.now();
    admin(&state)
        .reset_user(&user.id, Some("an administrator"), now)
        .await?;
    crate::mfa::service::emails_queued(&state);
    caller
        .audit("mfa.reset")
        .subject(&user.id)
        .tenant(Some(&company.id), Some(&company.reseller_id))
        .record(&state.store, now)
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// The per-user opt-out (seed 003's membership call).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MembershipBody {
    pub mfa_opt_out: bool,
    /// Why (required to opt a user out).
    pub reason: Option<String>,
    /// RFC 3339, or null: no expiry.
    pub expires_at: Option<String>,
}

/// Opts a user out of a required (not enforced) policy, or back in.
#[utoipa::path(put, path = "/users/{id}/membership", tag = "mfa", params(("id" = String, Path)), request_body = MembershipBody,
    responses((status = 204), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn put_membership(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<MembershipBody>,
) -> ApiResult<StatusCode> {
    let (user, company) = user_in_reach(&state, &caller, &id).await?;
    let opt_out = if body.mfa_opt_out {
        Some(OptOut {
            reason: body
                .reason
                .clone()
                .ok_or_else(|| ApiError::invalid("reason is required to opt a user out"))?,
            expires_at: body
                .expires_at
                .as_deref()
                .map(|at| parse_time(at, "expiresAt"))
                .transpose()?,
        })
    } else {
        None
    };
    let now = state.now();
    admin(&state).set_opt_out(&user.id, opt_out.clone(), now).await?;
    caller
        .audit(if body.mfa_opt_out {
            "mfa.opt_out.set"
        } else {
            "mfa.opt_out.cleared"
        })
        .subject(&user.id)
        .tenant(Some(&company.id), Some(&company.reseller_id))
        .detail(json!({ "reason": body.reason, "expiresAt": body.expires_at }))
        .record(&state.store, now)
        .await;
    Ok(StatusCode::NO_CONTENT)
}

// ----- reset requests -----

/// The pending reset requests of a company, oldest first.
#[utoipa::path(get, path = "/companies/{id}/reset-requests", tag = "mfa", params(("id" = String, Path)),
    responses((status = 200, body = Vec<ResetRequestView>), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_reset_requests(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ResetRequestView>>> {
    let company = company_in_reach(&state, &caller, &id).await?;
    let mut views = Vec::new();
    for request in state.store.pending_reset_requests(&company.id).await? {
        if let Some(user) = state.store.get_user(&request.user_id).await? {
            views.push(request_view(request, &user));
        }
    }
    Ok(Json(views))
}

async fn decide(state: &AppState, caller: &Caller, id: &str, verdict: Verdict) -> ApiResult<StatusCode> {
    let request = state
        .store
        .get_reset_request(id)
        .await?
        .ok_or_else(|| ApiError::not_found("reset request"))?;
    company_in_reach(state, caller, &request.company_id)
        .await
        .map_err(|_| ApiError::not_found("reset request"))?;
    let by = match &caller.reach {
        Reach::Company { .. } => "your company's administrator",
        _ => "your reseller's administrator",
    };
    if !resets::decide(state, &request, verdict, &caller.actor, by, caller.ip).await? {
        return Err(ApiError::conflict(format!(
            "the request is already {}",
            request.status
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Approves a pending request: the user's MFA is reset and they are emailed.
#[utoipa::path(post, path = "/reset-requests/{id}/approve", tag = "mfa", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn approve_reset_request(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    decide(&state, &caller, &id, Verdict::Approve).await
}

/// Declines a pending request: the user's set-up stays; they are emailed.
#[utoipa::path(post, path = "/reset-requests/{id}/decline", tag = "mfa", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn decline_reset_request(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    decide(&state, &caller, &id, Verdict::Decline).await
}

// ----- audit -----

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this company's events.
    pub company: Option<String>,
    /// Only events about this user.
    pub user: Option<String>,
    /// Only events of this type, e.g. `login.succeeded`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    /// RFC 3339: at or after.
    pub since: Option<String>,
    /// RFC 3339: before.
    pub until: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventView {
    pub id: String,
    pub at: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `success` or `failure`.
    pub outcome: String,
    pub actor: Option<String>,
    /// `user`, `client`, `cli`, `system` or `anonymous`.
    pub actor_kind: String,
    pub subject: Option<String>,
    pub company_id: Option<String>,
    pub reseller_id: Option<String>,
    pub client_ip: Option<String>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl From<AuditEvent> for AuditEventView {
    fn from(e: AuditEvent) -> Self {
        Self {
            at: rfc3339(e.at),
            detail: serde_json::from_str(&e.detail).unwrap_or_default(),
            id: e.id,
            kind: e.kind,
            outcome: e.outcome,
            actor: e.actor,
            actor_kind: e.actor_kind,
            subject: e.subject,
            company_id: e.company_id,
            reseller_id: e.reseller_id,
            client_ip: e.client_ip,
        }
    }
}

/// Security events in the caller's reach, oldest first.
#[utoipa::path(get, path = "/audit-events", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Listing<AuditEventView>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_audit_events(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Listing<AuditEventView>>> {
    let page = super::tenancy::Page {
        limit: query.limit,
        cursor: query.cursor.clone(),
    }
    .request()?;
    let company = match &query.company {
        Some(id) => Some(company_in_reach(&state, &caller, id).await?.id),
        None => caller.company_filter().map(str::to_owned),
    };
    if let Some(user) = &query.user {
        user_in_reach(&state, &caller, user).await?;
    }
    let filter = AuditFilter {
        reseller: match &caller.reach {
            Reach::Instance => None,
            Reach::Reseller(r) | Reach::Company { reseller: r, .. } => Some(r.clone()),
        },
        company,
        subject: query.user.clone(),
        kind: query.kind.clone(),
        since: query
            .since
            .as_deref()
            .map(|t| parse_time(t, "since"))
            .transpose()?,
        until: query
            .until
            .as_deref()
            .map(|t| parse_time(t, "until"))
            .transpose()?,
        after: page.after.clone(),
        limit: page.limit,
    };
    let rows = state.store.list_audit(&filter).await?;
    let request = PageRequest {
        after: page.after,
        limit: page.limit,
    };
    Ok(Json(listing(
        rows,
        &request,
        |e| e.id.clone(),
        AuditEventView::from,
    )))
}
