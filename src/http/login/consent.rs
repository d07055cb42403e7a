//! `POST /consent`: a third-party client's consent step.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use serde::Serialize;

use super::{Loaded, active_user, advance, already_used, load_form};
use crate::flow::{Authenticated, Event, LoginState};
use crate::http::pages::internal_error;
use crate::state::AppState;

#[derive(Serialize)]
struct ConsentPage<'a> {
    client_name: &'a str,
    login_id: &'a str,
    csrf_token: &'a str,
    username: &'a str,
    scopes: Vec<&'static str>,
}

pub(super) async fn page(state: &AppState, loaded: &Loaded, auth: &Authenticated) -> Response {
    let username = match active_user(state, &auth.user_id).await {
        Ok(user) => user.username,
        Err(response) => return response,
    };
    let scopes = loaded
        .request
        .scope
        .iter()
        .filter_map(|s| match s {
            "openid" => Some("Know who you are"),
            "profile" => Some("See your name and user name"),
            "email" => Some("See your email address"),
            "phone" => Some("See your phone number"),
            "offline_access" => Some("Stay connected while you are away"),
            _ => None,
        })
        .collect();
    state.templates.page(
        StatusCode::OK,
        "consent.html",
        &ConsentPage {
            client_name: &loaded.client.name,
            login_id: &loaded.stored.id,
            csrf_token: &loaded.stored.csrf_token,
            username: &username,
            scopes,
        },
    )
}

pub async fn consent_post(State(state): State<AppState>, jar: CookieJar, body: Bytes) -> Response {
    let (form, loaded) = match load_form(&state, &jar, &body).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let LoginState::Consent { auth } = &loaded.state else {
        return already_used(&state);
    };
    // A user deactivated since the password step grants nothing (the login ends here).
    if let Err(response) = active_user(&state, &auth.user_id).await {
        return response;
    }
    let event = match form.get("decision") {
        Some("allow") => {
            if let Err(e) = state
                .store
                .save_consent(
                    &auth.user_id,
                    &loaded.client.id,
                    &loaded.request.scope.to_string(),
                    state.now(),
                )
                .await
            {
                return internal_error(&state, e);
            }
            Event::ConsentGiven
        }
        Some("deny") => Event::ConsentRefused,
        _ => {
            return state.templates.error_page(
                StatusCode::BAD_REQUEST,
                "Invalid form",
                "Choose Allow or Deny.",
            );
        }
    };
    advance(&state, jar, &loaded, event).await
}
