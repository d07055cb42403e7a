//! The recovery codes page shown once after a first enrolment.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use serde::Serialize;

use crate::flow::{Authenticated, Event, LoginState};
use crate::http::login::{Loaded, advance, already_used, load_form, user_and_company};
use crate::http::pages::{internal_error, see_other};
use crate::mfa::service;
use crate::state::AppState;

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

pub(crate) async fn codes_page(
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
