//! The second-factor steps: `POST /login/challenge` (a code from an enrolled factor or a
//! recovery code), `POST /login/enrol` (confirm a new authenticator, or skip when the
//! policy allows), `POST /login/recovery-codes` (the user saved their codes).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use serde::Serialize;

use super::{Loaded, advance, already_used, load_form, persist, user_and_company};
use crate::flow::{self, Authenticated, Event, LoginState};
use crate::http::authorize::redirect_error;
use crate::http::pages::{internal_error, see_other};
use crate::mfa::service::{self, ConfirmError};
use crate::policy::Decision;
use crate::policy::load::Inputs;
use crate::protocol::errors::ErrorCode;
use crate::state::AppState;

#[derive(Serialize)]
struct ChallengePage<'a> {
    client_name: &'a str,
    login_id: &'a str,
    csrf_token: &'a str,
    error: Option<&'a str>,
}

pub(super) fn challenge_page(
    state: &AppState,
    status: StatusCode,
    loaded: &Loaded,
    error: Option<&str>,
) -> Response {
    state.templates.page(
        status,
        "challenge.html",
        &ChallengePage {
            client_name: &loaded.client.name,
            login_id: &loaded.stored.id,
            csrf_token: &loaded.stored.csrf_token,
            error,
        },
    )
}

fn try_again_in(until: i64, now: i64) -> String {
    let minutes = ((until - now) + 59) / 60;
    format!(
        "Too many incorrect codes. Try again in {minutes} minute{}.",
        if minutes == 1 { "" } else { "s" }
    )
}

pub async fn challenge_post(State(state): State<AppState>, jar: CookieJar, body: Bytes) -> Response {
    let (form, loaded) = match load_form(&state, &jar, &body).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let LoginState::SecondFactor { auth, .. } = &loaded.state else {
        return already_used(&state);
    };
    let (user, _) = match user_and_company(&state, &auth.user_id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let now = state.now();
    match service::locked_until(&state, &user.id, now).await {
        Ok(Some(until)) => {
            return challenge_page(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                &loaded,
                Some(&try_again_in(until, now)),
            );
        }
        Ok(None) => {}
        Err(e) => return internal_error(&state, e),
    }
    let inputs = match Inputs::load(&state.store, &user).await {
        Ok(inputs) => inputs,
        Err(e) => return internal_error(&state, e),
    };
    let code = form.get("code").unwrap_or_default();
    match service::check_code(&state, &inputs, &user, code, now).await {
        Ok(Some(verified)) => {
            if let Err(e) = service::clear_failures(&state, &user.id).await {
                tracing::warn!(error = %e, "clearing an MFA throttle failed");
            }
            advance(
                &state,
                jar,
                &loaded,
                Event::SecondFactorPassed {
                    method: verified.amr(),
                },
            )
            .await
        }
        Ok(None) => {
            if let Err(e) = service::record_failure(&state, &user.id, now).await {
                return internal_error(&state, e);
            }
            let next = match flow::step(&loaded.state, Event::SecondFactorFailed) {
                Ok(next) => next,
                Err(_) => return already_used(&state),
            };
            if let Err(response) = persist(&state, &loaded, &next).await {
                return response;
            }
            match next {
                LoginState::Failed => redirect_error(
                    &state,
                    &loaded.request,
                    ErrorCode::AccessDenied,
                    "too many incorrect codes; the sign-in was ended",
                ),
                _ => challenge_page(
                    &state,
                    StatusCode::OK,
                    &loaded,
                    Some("That code is not right, or it was already used. Enter the current code."),
                ),
            }
        }
        Err(e) => internal_error(&state, e),
    }
}

#[derive(Serialize)]
struct EnrolPage<'a> {
    action: &'a str,
    login_id: Option<&'a str>,
    csrf_token: &'a str,
    company: &'a str,
    qr_svg: String,
    secret: String,
    required: bool,
    can_skip: bool,
    error: Option<&'a str>,
}

/// The TOTP enrolment page, for the login flow or the account page.
pub(crate) async fn render_enrolment(
    state: &AppState,
    status: StatusCode,
    factor_id: &str,
    login: Option<(&str, &Authenticated)>,
    csrf_token: &str,
    error: Option<&str>,
) -> Response {
    let factor = match state.store.get_factor(factor_id).await {
        Ok(Some(factor)) if factor.confirmed_at.is_none() => factor,
        Ok(_) => return already_used(state),
        Err(e) => return internal_error(state, e),
    };
    let (user, company) = match user_and_company(state, &factor.user_id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let provisioning = match service::provisioning(state, &factor, &company, &user) {
        Ok(p) => p,
        Err(e) => return internal_error(state, e),
    };
    let decision = login.map(|(_, auth)| &auth.decision);
    state.templates.page(
        status,
        "enrol_totp.html",
        &EnrolPage {
            action: if login.is_some() {
                "/login/enrol"
            } else {
                "/account/security/totp/verify"
            },
            login_id: login.map(|(id, _)| id),
            csrf_token,
            company: &company.name,
            qr_svg: provisioning.qr_svg,
            secret: provisioning.secret_base32,
            required: matches!(
                decision,
                Some(Decision::MustEnrol { .. } | Decision::MayEnrol { .. })
            ),
            can_skip: matches!(decision, Some(Decision::MayEnrol { .. })),
            error,
        },
    )
}

pub(super) async fn enrol_page(
    state: &AppState,
    status: StatusCode,
    loaded: &Loaded,
    auth: &Authenticated,
    factor_id: &str,
    error: Option<&str>,
) -> Response {
    render_enrolment(
        state,
        status,
        factor_id,
        Some((&loaded.stored.id, auth)),
        &loaded.stored.csrf_token,
        error,
    )
    .await
}

pub async fn enrol_post(State(state): State<AppState>, jar: CookieJar, body: Bytes) -> Response {
    let (form, loaded) = match load_form(&state, &jar, &body).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let LoginState::Enrol { auth, factor_id } = &loaded.state else {
        return already_used(&state);
    };
    let now = state.now();
    if form.get("skip") == Some("yes") {
        if !matches!(auth.decision, Decision::MayEnrol { .. }) {
            return state.templates.error_page(
                StatusCode::BAD_REQUEST,
                "Set-up required",
                "Your organization requires multi-factor authentication: it cannot be skipped.",
            );
        }
        if let Err(e) = state.store.record_skip(&auth.user_id, now).await {
            return internal_error(&state, e);
        }
        return advance(&state, jar, &loaded, Event::Skipped).await;
    }
    let factor = match state.store.get_factor(factor_id).await {
        Ok(Some(factor)) if factor.user_id == auth.user_id => factor,
        Ok(_) => return already_used(&state),
        Err(e) => return internal_error(&state, e),
    };
    let (user, company) = match user_and_company(&state, &auth.user_id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let code = form.get("code").unwrap_or_default();
    match service::confirm_totp(&state, &factor, code, &user, &company, now).await {
        Ok(codes) => {
            let sealed_codes = codes.map(|codes| service::seal_codes(&state, &loaded.stored.id, &codes));
            advance(&state, jar, &loaded, Event::Enrolled { method: "otp", sealed_codes }).await
        }
        Err(ConfirmError::WrongCode) => {
            enrol_page(
                &state,
                StatusCode::OK,
                &loaded,
                auth,
                factor_id,
                Some("That code is not right. Check that your phone's clock is correct and enter the current code."),
            )
            .await
        }
        Err(ConfirmError::Gone) => already_used(&state),
        Err(ConfirmError::Mfa(e)) => internal_error(&state, e),
    }
}

#[derive(Serialize)]
struct CodesPage<'a> {
    codes: Vec<String>,
    login_id: Option<&'a str>,
    csrf_token: &'a str,
    company: &'a str,
    error: Option<&'a str>,
}

pub(crate) fn render_codes(
    state: &AppState,
    codes: Vec<String>,
    login_id: Option<&str>,
    csrf_token: &str,
    company: &str,
    error: Option<&str>,
) -> Response {
    state.templates.page(
        StatusCode::OK,
        "recovery_codes.html",
        &CodesPage {
            codes,
            login_id,
            csrf_token,
            company,
            error,
        },
    )
}

pub(super) async fn codes_page(
    state: &AppState,
    loaded: &Loaded,
    auth: &Authenticated,
    sealed: &str,
) -> Response {
    let Some(codes) = service::open_codes(state, &loaded.stored.id, sealed) else {
        return internal_error(state, "recovery codes in a login could not be opened");
    };
    let (_, company) = match user_and_company(state, &auth.user_id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    render_codes(
        state,
        codes,
        Some(&loaded.stored.id),
        &loaded.stored.csrf_token,
        &company.name,
        None,
    )
}

pub async fn codes_post(State(state): State<AppState>, jar: CookieJar, body: Bytes) -> Response {
    let (form, loaded) = match load_form(&state, &jar, &body).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    if !matches!(loaded.state, LoginState::RecoveryCodes { .. }) {
        return already_used(&state);
    }
    if form.get("saved") != Some("yes") {
        // The checkbox is required by the page; a post without it goes back to the codes.
        return see_other(&format!("/login?login={}", loaded.stored.id));
    }
    advance(&state, jar, &loaded, Event::CodesSaved).await
}
