//! "Reset multi-factor authentication" from the challenge screen, for a user who lost their
//! device: `GET /login/reset?login=ID` explains what happens, `POST /login/reset` files the
//! request (the company's approvers are emailed; a second request while one is pending does
//! not pile up). The old factor keeps working until an approver acts.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use serde::Serialize;

use super::{LoginQuery, already_used, load, load_form, user_and_company};
use crate::flow::LoginState;
use crate::http::pages::internal_error;
use crate::state::AppState;
use crate::storage::ResetFiled;

#[derive(Serialize)]
struct ResetPage<'a> {
    login_id: &'a str,
    csrf_token: &'a str,
    company: &'a str,
    /// The request was filed now, or one was pending already.
    filed: bool,
    already: bool,
}

pub async fn reset_get(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(query): Query<LoginQuery>,
) -> Response {
    let Some(id) = query.login else {
        return already_used(&state);
    };
    let loaded = match load(&state, &jar, &id).await {
        Ok(loaded) => loaded,
        Err(response) => return response,
    };
    let LoginState::SecondFactor { auth, .. } = &loaded.state else {
        return already_used(&state);
    };
    let (_, company) = match user_and_company(&state, &auth.user_id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    state.templates.page(
        StatusCode::OK,
        "reset_request.html",
        &ResetPage {
            login_id: &loaded.stored.id,
            csrf_token: &loaded.stored.csrf_token,
            company: &company.name,
            filed: false,
            already: false,
        },
    )
}

pub async fn reset_post(State(state): State<AppState>, jar: CookieJar, body: Bytes) -> Response {
    let (_, loaded) = match load_form(&state, &jar, &body).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    // Only after the password: the user has proved who they are, less the second factor.
    let LoginState::SecondFactor { auth, .. } = &loaded.state else {
        return already_used(&state);
    };
    let (user, company) = match user_and_company(&state, &auth.user_id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let now = state.now();
    let filed =
        match crate::http::account::file_reset_request(&state, &user, &company, "challenge", now).await {
            Ok(filed) => filed,
            Err(e) => return internal_error(&state, e),
        };
    state.templates.page(
        StatusCode::OK,
        "reset_request.html",
        &ResetPage {
            login_id: &loaded.stored.id,
            csrf_token: &loaded.stored.csrf_token,
            company: &company.name,
            filed: true,
            already: matches!(filed, ResetFiled::AlreadyPending(_)),
        },
    )
}
