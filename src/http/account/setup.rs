//! Setting up a method from the account page: the set-up, its code, resending and finishing.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;

use super::{Account, account, fresh_code, mfa_verified, path_method, security_page, signed_form};
use crate::http::login::mfa;
use crate::http::login::mfa::{EnrolContext, RESENT, SPENT, Stage, send_problem};
use crate::http::pages::{internal_error, see_other};
use crate::mfa::otp::{self, Checked};
use crate::mfa::service::{self, ConfirmError};
use crate::policy::Method;
use crate::protocol::params::Params;
use crate::state::AppState;
use crate::storage::Factor;

/// `POST /account/security/{method}/send`: a code to the user's email or SMS factor, to
/// make a change with.
pub async fn send_code(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(method): Path<String>,
    body: Bytes,
) -> Response {
    let (account, _) = match signed_form(&state, jar, &body).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let factor = path_method(&state, &method)
        .ok()
        .filter(|m| account.allowed(*m))
        .and_then(|m| account.factor(m).cloned());
    let Some(factor) = factor.filter(|f| f.destination.is_some()) else {
        return see_other("/account/security");
    };
    match otp::send_code(&state, &factor, &account.user, &account.company, state.now()).await {
        Ok(()) => see_other("/account/security?notice=code-sent"),
        Err(e) => match send_problem(&state, e) {
            Ok((status, problem)) => security_page(&state, &account, status, None, Some(&problem)).await,
            Err(response) => response,
        },
    }
}

/// `POST /account/security/{method}/setup`: starts a set-up (TOTP: a new secret; email
/// and SMS: a code sent to the `email` or `phone` given).
pub async fn setup(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(method): Path<String>,
    body: Bytes,
) -> Response {
    let method = match path_method(&state, &method) {
        Ok(m) => m,
        Err(response) => return response,
    };
    let (account, form) = match signed_form(&state, jar, &body).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    if !account.allowed(method) {
        return security_page(
            &state,
            &account,
            StatusCode::BAD_REQUEST,
            None,
            Some("This method is not available for your organization."),
        )
        .await;
    }
    // The address or number is checked before the fresh code is used up.
    let destination = match method {
        Method::Email | Method::Sms => {
            let field = if method == Method::Email { "email" } else { "phone" };
            match otp::parse_destination(method, form.get(field).unwrap_or_default()) {
                Ok(destination) => Some(destination),
                Err(problem) => {
                    return security_page(&state, &account, StatusCode::BAD_REQUEST, None, Some(&problem))
                        .await;
                }
            }
        }
        _ => None,
    };
    if let Err(response) = fresh_code(&state, &account, &form).await {
        return response;
    }
    let now = state.now();
    match destination {
        None => match service::start_totp(&state, &account.user.id, now).await {
            Ok(_) => see_other("/account/security/totp"),
            Err(e) => internal_error(&state, e),
        },
        Some(destination) => {
            match otp::start(&state, method, &destination, &account.user, &account.company, now).await {
                Ok(_) => see_other(&format!("/account/security/{method}")),
                Err(e) => match send_problem(&state, e) {
                    Ok((status, problem)) => {
                        security_page(&state, &account, status, None, Some(&problem)).await
                    }
                    Err(response) => response,
                },
            }
        }
    }
}

/// The page of a set-up in progress.
async fn setup_page(
    state: &AppState,
    account: &Account,
    method: Method,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    let Some(factor) = account.pending(method) else {
        return see_other("/account/security");
    };
    let context = EnrolContext {
        login: None,
        csrf_token: &account.csrf_token,
        can_choose: false,
    };
    if method == Method::Totp {
        return mfa::render_enrolment(state, status, &factor.id, &context, error).await;
    }
    let stage = if factor.verified_at.is_some() {
        Stage::Verified
    } else {
        Stage::Code
    };
    mfa::render_otp_enrolment(
        state,
        status,
        method,
        stage,
        Some(factor),
        &account.user,
        &account.company,
        &context,
        notice,
        error,
    )
}

pub async fn setup_get(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(method): Path<String>,
) -> Response {
    let method = match path_method(&state, &method) {
        Ok(m) => m,
        Err(response) => return response,
    };
    match account(&state, jar).await {
        Ok((account, _)) => setup_page(&state, &account, method, StatusCode::OK, None, None).await,
        Err(response) => response,
    }
}

/// Shows new recovery codes, or goes back to the page saying the method is set up.
async fn activated(
    state: &AppState,
    account: &Account,
    method: Method,
    confirmed: Result<Option<Vec<String>>, ConfirmError>,
) -> Response {
    let now = state.now();
    if confirmed.is_ok()
        && let Err(e) = mfa_verified(state, &account.session, service::method_amr(method), now).await
    {
        return internal_error(state, e);
    }
    match confirmed {
        Ok(Some(codes)) => mfa::render_codes(
            state,
            codes,
            None,
            &account.csrf_token,
            &account.company.name,
            None,
        ),
        Ok(None) => see_other("/account/security?notice=enrolled"),
        Err(ConfirmError::WrongCode) => setup_page(
            state,
            account,
            method,
            StatusCode::OK,
            None,
            Some(if method == Method::Totp {
                "That code is not right. Check that your phone's clock is correct and enter the current code."
            } else {
                "Enter the code we sent before selecting Finish."
            }),
        )
        .await,
        Err(ConfirmError::Gone) => see_other("/account/security"),
        Err(ConfirmError::Mfa(e)) => internal_error(state, e),
    }
}

/// A posted form about the set-up of `method` in progress: the account, the form, the
/// method and the pending factor; or a 404 page for an unknown method, or back to the
/// security page when no set-up is in progress.
async fn pending_form(
    state: &AppState,
    jar: CookieJar,
    method: &str,
    body: &[u8],
) -> Result<(Account, Params, Method, Factor), Response> {
    let method = path_method(state, method)?;
    let (account, form) = signed_form(state, jar, body).await?;
    let Some(factor) = account.pending(method).cloned() else {
        return Err(see_other("/account/security"));
    };
    Ok((account, form, method, factor))
}

/// `POST /account/security/{method}/verify`: the `code` that confirms a set-up.
pub async fn verify(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(method): Path<String>,
    body: Bytes,
) -> Response {
    // The fresh code was asked for when the set-up started.
    let (account, form, method, factor) = match pending_form(&state, jar, &method, &body).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let code = form.get("code").unwrap_or_default();
    let now = state.now();
    if method == Method::Totp {
        let confirmed =
            service::confirm_totp(&state, &factor, code, &account.user, &account.company, now).await;
        return activated(&state, &account, method, confirmed).await;
    }
    let error = match otp::verify_pending(&state, &factor, code, now).await {
        Ok(Checked::Right) => return see_other(&format!("/account/security/{method}")),
        Ok(Checked::Wrong) => "That code is not right. Enter the 6-digit code we sent.",
        Ok(Checked::Spent) => SPENT,
        Err(e) => return internal_error(&state, e),
    };
    setup_page(&state, &account, method, StatusCode::OK, None, Some(error)).await
}

/// `POST /account/security/{method}/resend`: a new code for an email or SMS set-up.
pub async fn resend(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(method): Path<String>,
    body: Bytes,
) -> Response {
    let (account, _, method, factor) = match pending_form(&state, jar, &method, &body).await {
        Ok(found) if found.3.destination.is_some() => found,
        Ok(_) => return see_other("/account/security"),
        Err(response) => return response,
    };
    let (status, notice, error) =
        match otp::send_code(&state, &factor, &account.user, &account.company, state.now()).await {
            Ok(()) => (StatusCode::OK, Some(RESENT), None),
            Err(e) => match send_problem(&state, e) {
                Ok((status, problem)) => (status, None, Some(problem)),
                Err(response) => return response,
            },
        };
    setup_page(&state, &account, method, status, notice, error.as_deref()).await
}

/// `POST /account/security/{method}/finish`: activates an email or SMS factor whose code
/// was confirmed.
pub async fn finish(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(method): Path<String>,
    body: Bytes,
) -> Response {
    let (account, _, method, factor) = match pending_form(&state, jar, &method, &body).await {
        Ok(found) if found.3.destination.is_some() => found,
        Ok(_) => return see_other("/account/security"),
        Err(response) => return response,
    };
    let confirmed = service::finish_otp(&state, &factor, &account.user, &account.company, state.now()).await;
    activated(&state, &account, method, confirmed).await
}
