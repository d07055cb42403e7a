//! `GET|POST /logout`: OpenID Connect RP-Initiated Logout 1.0.
//!
//! With an `id_token_hint` for the current session the user is signed out at once;
//! otherwise they are asked to confirm (a CSRF-protected form), so a third-party page
//! cannot sign them out. `post_logout_redirect_uri` must be registered for the client
//! named by `client_id` or by the hint's audience; it is never followed unvalidated.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::Serialize;
use url::Url;

use super::authorize::current_session;
use super::cookies;
use super::pages::{internal_error, see_other};
use crate::crypto::{constant_time_eq, token_hash};
use crate::model::Client;
use crate::protocol::params::Params;
use crate::state::AppState;
use crate::tokens::claims::IdTokenClaims;
use crate::tokens::jwt::{self, TYP_JWT};

pub async fn logout_get(
    State(state): State<AppState>,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Response {
    match Params::parse(query.unwrap_or_default().as_bytes()) {
        Ok(params) => logout(&state, jar, params).await,
        Err(e) => bad_request(&state, &e.to_string()),
    }
}

pub async fn logout_post(State(state): State<AppState>, jar: CookieJar, body: Bytes) -> Response {
    match Params::parse(&body) {
        Ok(params) if params.get("confirm") == Some("yes") => confirmed(&state, jar, params).await,
        Ok(params) => logout(&state, jar, params).await,
        Err(e) => bad_request(&state, &e.to_string()),
    }
}

fn bad_request(state: &AppState, message: &str) -> Response {
    state
        .templates
        .error_page(StatusCode::BAD_REQUEST, "Invalid sign-out request", message)
}

/// Where to send the browser afterwards, once validated.
struct Target {
    client: Option<Client>,
    redirect: Option<String>,
    state: Option<String>,
}

async fn target(state: &AppState, params: &Params, hint: Option<&IdTokenClaims>) -> Result<Target, Response> {
    let client_id = match (params.get("client_id"), hint.map(|h| h.aud.as_str())) {
        (Some(given), Some(aud)) if given != aud => {
            return Err(bad_request(state, "client_id does not match the id_token_hint."));
        }
        (Some(id), _) | (None, Some(id)) => Some(id.to_owned()),
        (None, None) => None,
    };
    let client = match &client_id {
        Some(id) => match state.client(id).await {
            Ok(Some(client)) => Some(client),
            Ok(None) => return Err(bad_request(state, "The application is not registered.")),
            Err(e) => return Err(internal_error(state, e)),
        },
        None => None,
    };
    let redirect = match (params.get("post_logout_redirect_uri"), &client) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(bad_request(
                state,
                "post_logout_redirect_uri needs client_id or id_token_hint to be validated.",
            ));
        }
        (Some(uri), Some(client)) if client.has_post_logout_redirect_uri(uri) => Some(uri.to_owned()),
        (Some(_), Some(_)) => {
            return Err(bad_request(
                state,
                "post_logout_redirect_uri is not registered for this application.",
            ));
        }
    };
    Ok(Target {
        client,
        redirect,
        state: params.get("state").map(str::to_owned),
    })
}

/// The hint's claims if it is an ID token we signed (expired ones are fine: a hint only
/// says who the RP believes is signed in).
async fn read_hint(state: &AppState, hint: &str) -> Option<IdTokenClaims> {
    let kid = jwt::kid_of(hint)?;
    let keys = state.keys.with_kid(&kid, state.now()).await;
    jwt::verify::<IdTokenClaims>(&keys, hint, TYP_JWT)
        .ok()
        .filter(|claims| claims.iss == state.issuer)
}

fn logout_csrf(session_secret: &str) -> String {
    token_hash(&format!("logout:{session_secret}"))
}

async fn logout(state: &AppState, jar: CookieJar, params: Params) -> Response {
    let hint = match params.get("id_token_hint") {
        Some(raw) => match read_hint(state, raw).await {
            Some(claims) => Some(claims),
            None => {
                return bad_request(
                    state,
                    "The id_token_hint is not a valid ID token of this provider.",
                );
            }
        },
        None => None,
    };
    let target = match target(state, &params, hint.as_ref()).await {
        Ok(target) => target,
        Err(response) => return response,
    };
    let session = match current_session(state, &jar).await {
        Ok(session) => session,
        Err(e) => return internal_error(state, e),
    };
    let Some(session) = session else {
        return finish(state, jar, &target);
    };
    if hint.as_ref().is_some_and(|h| h.sid == session.id) {
        return end(state, jar, &session.id, &target).await;
    }
    let Some(secret) = cookies::session_secret(state, &jar) else {
        return finish(state, jar, &target);
    };
    #[derive(Serialize)]
    struct Confirm<'a> {
        csrf_token: String,
        client_name: Option<&'a str>,
        client_id: Option<&'a str>,
        post_logout_redirect_uri: Option<&'a str>,
        state: Option<&'a str>,
    }
    state.templates.page(
        StatusCode::OK,
        "logout.html",
        &Confirm {
            csrf_token: logout_csrf(&secret),
            client_name: target.client.as_ref().map(|c| c.name.as_str()),
            client_id: target.client.as_ref().map(|c| c.id.as_str()),
            post_logout_redirect_uri: target.redirect.as_deref(),
            state: target.state.as_deref(),
        },
    )
}

async fn confirmed(state: &AppState, jar: CookieJar, params: Params) -> Response {
    let target = match target(state, &params, None).await {
        Ok(target) => target,
        Err(response) => return response,
    };
    let Some(secret) = cookies::session_secret(state, &jar) else {
        return finish(state, jar, &target);
    };
    let expected = logout_csrf(&secret);
    if !params
        .get("csrf_token")
        .is_some_and(|sent| constant_time_eq(sent.as_bytes(), expected.as_bytes()))
    {
        return state.templates.error_page(
            StatusCode::FORBIDDEN,
            "Form expired",
            "The sign-out form was not sent from this site, or it is out of date.",
        );
    }
    match current_session(state, &jar).await {
        Ok(Some(session)) => end(state, jar, &session.id, &target).await,
        Ok(None) => finish(state, jar, &target),
        Err(e) => internal_error(state, e),
    }
}

/// Ends the session (revoking the grants issued under it) and clears the cookie.
async fn end(state: &AppState, jar: CookieJar, session_id: &str, target: &Target) -> Response {
    if let Err(e) = state.store.end_session(session_id, state.now()).await {
        return internal_error(state, e);
    }
    finish(state, jar, target)
}

fn finish(state: &AppState, jar: CookieJar, target: &Target) -> Response {
    let jar = cookies::clear_session(state, jar);
    let response = match &target.redirect {
        Some(uri) => match Url::parse(uri) {
            Ok(mut url) => {
                if let Some(client_state) = &target.state {
                    url.query_pairs_mut().append_pair("state", client_state);
                }
                see_other(url.as_str())
            }
            Err(_) => internal_error(state, "a registered post-logout redirect URI did not parse"),
        },
        None => state
            .templates
            .page(StatusCode::OK, "logged_out.html", &serde_json::json!({})),
    };
    (jar, response).into_response()
}
