//! Disabling a method (a reset at once, or a reset request), and new recovery codes.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use serde_json::json;

use super::{checked_form, path_method};
use crate::http::login::mfa;
use crate::http::pages::{internal_error, see_other};
use crate::mfa::service;
use crate::model::{Company, User, new_id};
use crate::notify::email::{Kind, compose, format_time};
use crate::state::AppState;
use crate::storage::{ResetFiled, ResetRequest};

/// `POST /account/security/{method}/disable`: removes the factor when the company allows
/// self reset, else files a reset request (the factor keeps working meanwhile).
pub async fn disable(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(method): Path<String>,
    body: Bytes,
) -> Response {
    let method = match path_method(&state, &method) {
        Ok(m) => m,
        Err(response) => return response,
    };
    let (account, _) = match checked_form(&state, jar, &body).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let Some(factor) = account.factor(method).cloned() else {
        return see_other("/account/security");
    };
    let now = state.now();
    if account.inputs.policy.allow_self_reset {
        let email = match service::user_email(
            &state,
            Kind::MfaDisabled,
            &account.user,
            &account.company,
            json!({ "method": service::method_label(method) }),
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
                crate::audit::event("mfa.disabled", crate::audit::Actor::user(&account.user.id))
                    .subject(&account.user.id)
                    .tenant(Some(&account.company.id), Some(&account.company.reseller_id))
                    .detail(json!({ "method": method.as_str() }))
                    .record(&state.store, now)
                    .await;
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
        crate::audit::event("mfa.reset_requested", crate::audit::Actor::user(&user.id))
            .subject(&user.id)
            .tenant(Some(&company.id), Some(&company.reseller_id))
            .detail(json!({ "request": request.id, "source": source }))
            .record(&state.store, now)
            .await;
    }
    Ok(filed)
}

pub async fn recovery_codes(State(state): State<AppState>, jar: CookieJar, body: Bytes) -> Response {
    let (account, _) = match checked_form(&state, jar, &body).await {
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
