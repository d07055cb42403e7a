//! The approvers' pages for reset requests: `GET /admin/reset-requests` (pending requests
//! in the administrator's reach: name and date), `GET /admin/reset-requests/{id}` (the link
//! in the approvers' email), and `POST .../approve` or `.../decline`. The administrator signs
//! in through the same flow as anyone (their own MFA applies) and returns to the page.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use serde::{Deserialize, Serialize};

use super::account::{Account, signed_in};
use super::pages::{internal_error, see_other};
use crate::audit::Actor;
use crate::crypto::constant_time_eq;
use crate::mfa::resets::{self, Verdict};
use crate::model::{Company, Role};
use crate::notify::email::format_time;
use crate::protocol::params::Params;
use crate::state::AppState;
use crate::storage::ResetRequest;

#[derive(Serialize)]
struct Row {
    id: String,
    name: String,
    username: String,
    company: String,
    requested: String,
    status: String,
    source: String,
}

#[derive(Serialize)]
struct Page<'a> {
    username: &'a str,
    csrf_token: &'a str,
    rows: Vec<Row>,
    /// Showing one request (with its actions when pending).
    single: bool,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
pub struct Notice {
    notice: Option<String>,
}

/// The companies an administrator may act for, or a 403 page for anyone else.
async fn reach(state: &AppState, account: &Account) -> Result<Vec<Company>, Response> {
    match account.user.role {
        Role::CompanyAdmin => Ok(vec![account.company.clone()]),
        Role::ResellerAdmin => state
            .store
            .list_companies(Some(&account.company.reseller_id))
            .await
            .map_err(|e| internal_error(state, e)),
        Role::User => Err(state.templates.error_page(
            StatusCode::FORBIDDEN,
            "Administrators only",
            "Only your organization's administrators can review reset requests.",
        )),
    }
}

async fn row(
    state: &AppState,
    request: ResetRequest,
    companies: &[Company],
) -> Result<Option<Row>, Response> {
    let Some(user) = state
        .store
        .get_user(&request.user_id)
        .await
        .map_err(|e| internal_error(state, e))?
    else {
        return Ok(None);
    };
    let company = companies
        .iter()
        .find(|c| c.id == request.company_id)
        .map(|c| c.name.clone())
        .unwrap_or_default();
    Ok(Some(Row {
        id: request.id,
        name: user.name.unwrap_or_else(|| user.username.clone()),
        username: user.username,
        company,
        requested: format_time(request.created_at),
        status: request.status,
        source: request.source,
    }))
}

fn render(
    state: &AppState,
    account: &Account,
    rows: Vec<Row>,
    single: bool,
    notice: Option<&str>,
) -> Response {
    let notice = match notice {
        Some("approved") => Some("The user's multi-factor authentication was reset and they were emailed."),
        Some("declined") => Some("The request was declined and the user was emailed."),
        Some("decided") => Some("This request was already decided."),
        _ => None,
    };
    state.templates.page(
        StatusCode::OK,
        "admin_reset_requests.html",
        &Page {
            username: &account.user.username,
            csrf_token: &account.csrf_token,
            rows,
            single,
            notice,
        },
    )
}

pub async fn list(State(state): State<AppState>, jar: CookieJar) -> Response {
    let (account, _) = match signed_in(&state, jar, "/admin/reset-requests").await {
        Ok(signed) => signed,
        Err(response) => return response,
    };
    let companies = match reach(&state, &account).await {
        Ok(companies) => companies,
        Err(response) => return response,
    };
    let mut rows = Vec::new();
    for company in &companies {
        let pending = match state.store.pending_reset_requests(&company.id).await {
            Ok(pending) => pending,
            Err(e) => return internal_error(&state, e),
        };
        for request in pending {
            match row(&state, request, &companies).await {
                Ok(Some(row)) => rows.push(row),
                Ok(None) => {}
                Err(response) => return response,
            }
        }
    }
    render(&state, &account, rows, false, None)
}

/// The signed-in administrator and the request, if it is in their reach.
async fn request_in_reach(
    state: &AppState,
    jar: CookieJar,
    id: &str,
) -> Result<(Account, Vec<Company>, ResetRequest), Response> {
    let (account, _) = signed_in(state, jar, &format!("/admin/reset-requests/{id}")).await?;
    let companies = reach(state, &account).await?;
    let not_found = || {
        state.templates.error_page(
            StatusCode::NOT_FOUND,
            "Request not found",
            "There is no such reset request for your organization.",
        )
    };
    match state.store.get_reset_request(id).await {
        Ok(Some(request)) if companies.iter().any(|c| c.id == request.company_id) => {
            Ok((account, companies, request))
        }
        Ok(_) => Err(not_found()),
        Err(e) => Err(internal_error(state, e)),
    }
}

pub async fn show(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(id): Path<String>,
    Query(query): Query<Notice>,
) -> Response {
    let (account, companies, request) = match request_in_reach(&state, jar, &id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let rows = match row(&state, request, &companies).await {
        Ok(row) => row.into_iter().collect(),
        Err(response) => return response,
    };
    render(&state, &account, rows, true, query.notice.as_deref())
}

async fn decide(state: AppState, jar: CookieJar, id: String, body: Bytes, verdict: Verdict) -> Response {
    let (account, _, request) = match request_in_reach(&state, jar, &id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let csrf_ok = Params::parse(&body).ok().is_some_and(|form| {
        form.get("csrf_token")
            .is_some_and(|t| constant_time_eq(t.as_bytes(), account.csrf_token.as_bytes()))
    });
    if !csrf_ok {
        return state.templates.error_page(
            StatusCode::FORBIDDEN,
            "Form expired",
            "The form was not sent from the reset request page, or it is out of date.",
        );
    }
    let by = account
        .user
        .name
        .clone()
        .unwrap_or_else(|| account.user.username.clone());
    match resets::decide(
        &state,
        &request,
        verdict,
        &Actor::user(&account.user.id),
        &by,
        None,
    )
    .await
    {
        Ok(true) => see_other(&format!(
            "/admin/reset-requests/{id}?notice={}",
            if verdict == Verdict::Approve {
                "approved"
            } else {
                "declined"
            }
        )),
        Ok(false) => see_other(&format!("/admin/reset-requests/{id}?notice=decided")),
        Err(e) => internal_error(&state, e),
    }
}

pub async fn approve(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    decide(state, jar, id, body, Verdict::Approve).await
}

pub async fn decline(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    decide(state, jar, id, body, Verdict::Decline).await
}
