//! The security settings page: each method's status and what the user can do with it.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use serde::Serialize;

use super::{Account, Notice, account};
use crate::http::login::mfa;
use crate::http::pages::internal_error;
use crate::mfa::otp;
use crate::notify::email::format_time;
use crate::policy::{Method, Mode};
use crate::state::AppState;

/// The methods the account page lists, in order.
pub(super) const METHODS: [Method; 3] = [Method::Totp, Method::Email, Method::Sms];

/// One method's row on the security page.
#[derive(Serialize)]
struct Row {
    method: &'static str,
    name: &'static str,
    enabled: bool,
    since: Option<String>,
    destination: Option<String>,
    allowed: bool,
    /// The field a set-up asks for (`email`, `phone`), with its starting value.
    field: Option<&'static str>,
    prefill: String,
}

#[derive(Serialize)]
struct SecurityPage<'a> {
    username: &'a str,
    company: &'a str,
    csrf_token: &'a str,
    mode: Mode,
    enforced: bool,
    rows: Vec<Row>,
    /// Factors that can be sent a code for a change ("Send me a code").
    sendable: Vec<mfa::Choice>,
    has_factor: bool,
    needs_code: bool,
    reset_pending: bool,
    codes_left: i64,
    notice: Option<&'static str>,
    error: Option<&'a str>,
}

pub(super) async fn security_page(
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
    let notice = match notice {
        Some("enrolled") => Some("Your new method is set up."),
        Some("disabled") => Some("The method was removed. You can set up a new one."),
        Some("code-sent") => Some("A code is on its way. Enter it with the change you want to make."),
        Some("reset-pending") => Some(
            "Your reset request was sent to your administrators. Your current set-up keeps working until they act.",
        ),
        _ => None,
    };
    let rows = METHODS
        .iter()
        .filter(|m| account.allowed(**m) || account.factor(**m).is_some())
        .map(|&m| {
            let factor = account.factor(m);
            Row {
                method: m.as_str(),
                name: match m {
                    Method::Totp => "Authenticator app",
                    Method::Email => "Email codes",
                    _ => "Text message (SMS) codes",
                },
                enabled: factor.is_some(),
                since: factor.and_then(|f| f.confirmed_at).map(format_time),
                destination: factor.and_then(|f| f.destination.as_deref()).map(otp::mask),
                allowed: account.allowed(m),
                field: match m {
                    Method::Email => Some("email"),
                    Method::Sms => Some("phone"),
                    _ => None,
                },
                prefill: match m {
                    Method::Email => account.user.email.clone(),
                    Method::Sms => account.user.phone.clone().unwrap_or_default(),
                    _ => String::new(),
                },
            }
        })
        .collect();
    let sendable = mfa::usable(&account.inputs)
        .into_iter()
        .filter(|(_, m)| matches!(m, Method::Email | Method::Sms))
        .map(|(f, m)| mfa::Choice {
            method: m.as_str(),
            label: otp::describe(m, f.destination.as_deref()),
        })
        .collect();
    state.templates.page(
        status,
        "account_security.html",
        &SecurityPage {
            username: &account.user.username,
            company: &account.company.name,
            csrf_token: &account.csrf_token,
            mode: effective.mode,
            enforced: effective.enforced,
            rows,
            sendable,
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
