//! The account security settings page (`/account/security`): MFA status, set-up, disable
//! (a reset at once when the company allows self reset, else a pending reset request), and
//! new recovery codes. Changing the set-up of a user who already has a factor first asks
//! for a fresh code from it, so a stolen session alone cannot re-bind MFA.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::authorize::current_session;
use super::cookies;
use super::login::{ACCOUNT_CLIENT_ID, authenticated_event, mfa, resumed, start_login};
use super::pages::{internal_error, see_other};
use crate::crypto::{constant_time_eq, token_hash};
use crate::flow::{self, Event, LoginState};
use crate::mfa::service::{self, ConfirmError};
use crate::model::{Company, ScopeSet, User, new_id};
use crate::notify::email::{Kind, compose, format_time};
use crate::policy::load::Inputs;
use crate::policy::{self, Method, Mode};
use crate::protocol::authorize::{AuthRequest, Prompt};
use crate::protocol::params::Params;
use crate::state::AppState;
use crate::storage::{Factor, ResetFiled, ResetRequest, Session};

/// A signed-in user on the account pages.
struct Account {
    session: Session,
    user: User,
    company: Company,
    inputs: Inputs,
    csrf_token: String,
}

impl Account {
    fn totp(&self) -> Option<&Factor> {
        self.inputs
            .confirmed()
            .find(|(_, m)| *m == Method::Totp)
            .map(|(f, _)| f)
    }

    fn has_factor(&self) -> bool {
        self.inputs.confirmed().next().is_some()
    }
}

fn account_request() -> AuthRequest {
    AuthRequest {
        client_id: ACCOUNT_CLIENT_ID.into(),
        redirect_uri: String::new(),
        scope: ScopeSet::from_static(&["openid"]),
        state: None,
        nonce: None,
        code_challenge: None,
        prompt: Prompt::default(),
        max_age: None,
        login_hint: None,
        acr_values: Vec::new(),
    }
}

/// The signed-in account, or the response that signs the user in first (through the same
/// login flow as any client, MFA included).
async fn account(state: &AppState, jar: CookieJar) -> Result<(Account, CookieJar), Response> {
    let client = match state.store.get_client(ACCOUNT_CLIENT_ID).await {
        Ok(Some(client)) => client,
        Ok(None) => return Err(internal_error(state, "the account client is missing")),
        Err(e) => return Err(internal_error(state, e)),
    };
    let request = account_request();
    let session = match current_session(state, &jar).await {
        Ok(session) => session,
        Err(e) => return Err(internal_error(state, e)),
    };
    let (Some(session), Some(secret)) = (session, cookies::session_secret(state, &jar)) else {
        return Err(start_login(state, jar, &client, &request, LoginState::Password, None).await);
    };
    let user = match state.store.get_user(&session.user_id).await {
        Ok(Some(user)) if user.active => user,
        Ok(_) => return Err(start_login(state, jar, &client, &request, LoginState::Password, None).await),
        Err(e) => return Err(internal_error(state, e)),
    };
    let resumed = resumed(&session);
    let (auth, pending, inputs) = match authenticated_event(state, &client, &request, &user, resumed).await {
        Ok((Event::Authenticated { auth, pending_factor }, inputs)) => (auth, pending_factor, inputs),
        Ok(_) => return Err(internal_error(state, "unexpected login event")),
        Err(response) => return Err(response),
    };
    // A session that no longer meets the policy (MFA was made required meanwhile) must
    // complete it before changing anything.
    if !policy::satisfied(&auth.decision, &auth.evidence()) {
        return Err(start_login(state, jar, &client, &request, flow::route(auth, pending), None).await);
    }
    let company = inputs.company.clone();
    Ok((
        Account {
            session,
            user,
            company,
            inputs,
            csrf_token: token_hash(&format!("account:{secret}")),
        },
        jar,
    ))
}

/// The session proved a second factor (`method`): its `amr` now says so.
async fn mfa_verified(
    state: &AppState,
    session: &Session,
    method: &str,
    now: i64,
) -> Result<(), crate::storage::StoreError> {
    let mut amr: Vec<String> = serde_json::from_str(&session.amr).unwrap_or_default();
    for value in [method, "mfa"] {
        if !amr.iter().any(|m| m == value) {
            amr.push(value.to_owned());
        }
    }
    let amr = serde_json::to_string(&amr).unwrap_or_else(|_| "[]".into());
    state
        .store
        .session_mfa_verified(&session.id, &amr, crate::tokens::claims::ACR_MFA, now)
        .await
}

#[derive(Deserialize)]
pub struct Notice {
    notice: Option<String>,
}

#[derive(Serialize)]
struct SecurityPage<'a> {
    username: &'a str,
    company: &'a str,
    csrf_token: &'a str,
    mode: Mode,
    enforced: bool,
    totp_enabled: bool,
    totp_since: Option<String>,
    totp_allowed: bool,
    has_factor: bool,
    needs_code: bool,
    reset_pending: bool,
    codes_left: i64,
    notice: Option<&'static str>,
    error: Option<&'a str>,
}

async fn security_page(
    state: &AppState,
    account: &Account,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    let reset_pending = match state.store.pending_reset_request(&account.user.id).await {
        Ok(pending) => pending.is_some(),
        Err(e) => return internal_error(state, e),
    };
    let codes_left = match state.store.recovery_codes_left(&account.user.id).await {
        Ok(left) => left,
        Err(e) => return internal_error(state, e),
    };
    let effective = &account.inputs.effective;
    let totp = account.totp();
    let notice = match notice {
        Some("enrolled") => Some("Your authenticator app is set up."),
        Some("disabled") => Some("Your authenticator app was removed. You can set up a new one."),
        Some("reset-pending") => Some(
            "Your reset request was sent to your administrators. Your current set-up keeps working until they act.",
        ),
        _ => None,
    };
    state.templates.page(
        status,
        "account_security.html",
        &SecurityPage {
            username: &account.user.username,
            company: &account.company.name,
            csrf_token: &account.csrf_token,
            mode: effective.mode,
            enforced: effective.enforced,
            totp_enabled: totp.is_some(),
            totp_since: totp.and_then(|f| f.confirmed_at).map(format_time),
            totp_allowed: effective.mode != Mode::Off && effective.methods.contains(&Method::Totp),
            has_factor: account.has_factor(),
            needs_code: account.has_factor(),
            reset_pending,
            codes_left,
            notice,
            error,
        },
    )
}

pub async fn security_get(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(query): Query<Notice>,
) -> Response {
    match account(&state, jar).await {
        Ok((account, _)) => {
            security_page(&state, &account, StatusCode::OK, query.notice.as_deref(), None).await
        }
        Err(response) => response,
    }
}

/// A posted account form: the signed-in account, its CSRF token checked, and — when the
/// user already has a factor — a fresh code from it.
async fn checked_form(
    state: &AppState,
    jar: CookieJar,
    body: &[u8],
    fresh_factor: bool,
) -> Result<(Account, Params), Response> {
    let (account, _) = account(state, jar).await?;
    let Ok(form) = Params::parse(body) else {
        return Err(state.templates.error_page(
            StatusCode::BAD_REQUEST,
            "Invalid form",
            "The form could not be read.",
        ));
    };
    let csrf_ok = form
        .get("csrf_token")
        .is_some_and(|t| constant_time_eq(t.as_bytes(), account.csrf_token.as_bytes()));
    if !csrf_ok {
        return Err(state.templates.error_page(
            StatusCode::FORBIDDEN,
            "Form expired",
            "The form was not sent from your security settings, or it is out of date.",
        ));
    }
    if fresh_factor && account.has_factor() {
        let now = state.now();
        match service::locked_until(state, &account.user.id, now).await {
            Ok(Some(_)) => {
                return Err(security_page(
                    state,
                    &account,
                    StatusCode::TOO_MANY_REQUESTS,
                    None,
                    Some("Too many incorrect codes. Try again later."),
                )
                .await);
            }
            Ok(None) => {}
            Err(e) => return Err(internal_error(state, e)),
        }
        let code = form.get("code").unwrap_or_default();
        match service::check_code(state, &account.inputs, &account.user, code, now).await {
            Ok(Some(verified)) => {
                if let Err(e) = service::clear_failures(state, &account.user.id).await {
                    tracing::warn!(error = %e, "clearing an MFA throttle failed");
                }
                if let Err(e) = mfa_verified(state, &account.session, verified.amr(), now).await {
                    return Err(internal_error(state, e));
                }
            }
            Ok(None) => {
                if let Err(e) = service::record_failure(state, &account.user.id, now).await {
                    return Err(internal_error(state, e));
                }
                return Err(security_page(
                    state,
                    &account,
                    StatusCode::BAD_REQUEST,
                    None,
                    Some("Enter a current code from your authenticator (or a recovery code) to make this change."),
                )
                .await);
            }
            Err(e) => return Err(internal_error(state, e)),
        }
    }
    Ok((account, form))
}

pub async fn totp_setup(State(state): State<AppState>, jar: CookieJar, body: Bytes) -> Response {
    let (account, _) = match checked_form(&state, jar, &body, true).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let effective = &account.inputs.effective;
    if effective.mode == Mode::Off || !effective.methods.contains(&Method::Totp) {
        return security_page(
            &state,
            &account,
            StatusCode::BAD_REQUEST,
            None,
            Some("Authenticator apps are not available for your organization."),
        )
        .await;
    }
    match service::start_totp(&state, &account.user.id, state.now()).await {
        Ok(_) => see_other("/account/security/totp"),
        Err(e) => internal_error(&state, e),
    }
}

/// The pending TOTP factor of the account, if a set-up was started.
fn pending_totp(account: &Account) -> Option<&Factor> {
    account
        .inputs
        .factors
        .iter()
        .find(|f| f.confirmed_at.is_none() && f.kind == Method::Totp.as_str())
}

pub async fn totp_get(State(state): State<AppState>, jar: CookieJar) -> Response {
    let account = match account(&state, jar).await {
        Ok((account, _)) => account,
        Err(response) => return response,
    };
    match pending_totp(&account) {
        Some(factor) => {
            mfa::render_enrolment(
                &state,
                StatusCode::OK,
                &factor.id,
                None,
                &account.csrf_token,
                None,
            )
            .await
        }
        None => see_other("/account/security"),
    }
}

pub async fn totp_verify(State(state): State<AppState>, jar: CookieJar, body: Bytes) -> Response {
    // The fresh code was asked for when the set-up started.
    let (account, form) = match checked_form(&state, jar, &body, false).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let Some(factor) = pending_totp(&account).cloned() else {
        return see_other("/account/security");
    };
    let code = form.get("code").unwrap_or_default();
    let now = state.now();
    let confirmed = service::confirm_totp(&state, &factor, code, &account.user, &account.company, now).await;
    if confirmed.is_ok()
        && let Err(e) = mfa_verified(&state, &account.session, "otp", now).await
    {
        return internal_error(&state, e);
    }
    match confirmed {
        Ok(Some(codes)) => mfa::render_codes(&state, codes, None, &account.csrf_token, &account.company.name, None),
        Ok(None) => see_other("/account/security?notice=enrolled"),
        Err(ConfirmError::WrongCode) => {
            mfa::render_enrolment(
                &state,
                StatusCode::OK,
                &factor.id,
                None,
                &account.csrf_token,
                Some("That code is not right. Check that your phone's clock is correct and enter the current code."),
            )
            .await
        }
        Err(ConfirmError::Gone) => see_other("/account/security"),
        Err(ConfirmError::Mfa(e)) => internal_error(&state, e),
    }
}

pub async fn totp_disable(State(state): State<AppState>, jar: CookieJar, body: Bytes) -> Response {
    let (account, _) = match checked_form(&state, jar, &body, true).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let Some(factor) = account.totp().cloned() else {
        return see_other("/account/security");
    };
    let now = state.now();
    if account.inputs.policy.allow_self_reset {
        let email = match service::user_email(
            &state,
            Kind::MfaDisabled,
            &account.user,
            &account.company,
            json!({ "method": "authenticator app" }),
            now,
        ) {
            Ok(email) => email,
            Err(e) => return internal_error(&state, e),
        };
        return match state
            .store
            .remove_factor(&factor.id, &account.user.id, &[email])
            .await
        {
            Ok(_) => {
                service::emails_queued(&state);
                see_other("/account/security?notice=disabled")
            }
            Err(e) => internal_error(&state, e),
        };
    }
    match file_reset_request(&state, &account.user, &account.company, "account", now).await {
        Ok(_) => see_other("/account/security?notice=reset-pending"),
        Err(e) => internal_error(&state, e),
    }
}

/// Files a reset request (unless one is pending) and emails the company's approvers — or,
/// when it has none, its reseller's admins.
pub async fn file_reset_request(
    state: &AppState,
    user: &User,
    company: &Company,
    source: &str,
    now: i64,
) -> Result<ResetFiled, service::MfaError> {
    let request = ResetRequest {
        id: new_id(),
        user_id: user.id.clone(),
        company_id: company.id.clone(),
        status: "pending".into(),
        source: source.into(),
        created_at: now,
        decided_at: None,
        decided_by: None,
    };
    let policy = state
        .store
        .get_company_policy(&company.id)
        .await?
        .unwrap_or_default();
    let mut approvers = Vec::new();
    for id in &policy.reset_approvers {
        if let Some(approver) = state.store.get_user(id).await?.filter(|u| u.active) {
            approvers.push(approver);
        }
    }
    if approvers.is_empty() {
        approvers = state.store.reseller_admins(&company.reseller_id).await?;
    }
    let mut emails = Vec::new();
    for approver in &approvers {
        let context = json!({
            "name": approver.name.clone().unwrap_or_else(|| approver.username.clone()),
            "requester": user.name.clone().unwrap_or_else(|| user.username.clone()),
            "requester_username": user.username,
            "company": company.name,
            "when": format_time(now),
            "link": state.url(&format!("/admin/reset-requests/{}", request.id)),
        });
        emails.push(compose(
            &state.templates,
            Kind::ResetRequested,
            &approver.email,
            &context,
            now,
        )?);
    }
    let filed = state.store.file_reset_request(&request, &emails).await?;
    if filed == ResetFiled::Created {
        service::emails_queued(state);
    }
    Ok(filed)
}

pub async fn recovery_codes(State(state): State<AppState>, jar: CookieJar, body: Bytes) -> Response {
    let (account, _) = match checked_form(&state, jar, &body, true).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    if !account.has_factor() {
        return see_other("/account/security");
    }
    match service::regenerate_codes(&state, &account.user, &account.company, state.now()).await {
        Ok(codes) => mfa::render_codes(
            &state,
            codes,
            None,
            &account.csrf_token,
            &account.company.name,
            None,
        ),
        Err(e) => internal_error(&state, e),
    }
}
