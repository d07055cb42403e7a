//! The login pages: `GET /login` shows the current step of a login transaction,
//! `POST /login` takes the password, `POST /consent` the consent decision. When the login
//! is done, [`finish_login`] starts (or refreshes) the browser session and redirects to the
//! client with a single-use authorization code.

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::{Deserialize, Serialize};

use super::authorize::{current_session, needs_consent, redirect_error};
use super::client_ip::client_ip;
use super::cookies;
use super::pages::{internal_error, see_other};
use crate::crypto::{constant_time_eq, random_token, token_hash};
use crate::flow::{self, Authenticated, Event, LoginState, throttle};
use crate::model::{Client, Username};
use crate::password::Verification;
use crate::protocol::authorize::{AuthRequest, redirect_to_client};
use crate::protocol::errors::ErrorCode;
use crate::protocol::params::Params;
use crate::state::AppState;
use crate::storage::{NewCode, Session, StoredLogin};
use crate::tokens::claims::ACR_PASSWORD;

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Starts a login transaction in `initial` state and sends the browser to its page.
pub async fn start_login(
    state: &AppState,
    jar: CookieJar,
    client: &Client,
    request: &AuthRequest,
    initial: LoginState,
    user_id: Option<&str>,
) -> Response {
    let (jar, browser) = cookies::ensure_browser_id(state, jar);
    let now = state.now();
    let (Ok(request_json), Ok(state_json)) =
        (serde_json::to_string(request), serde_json::to_string(&initial))
    else {
        return internal_error(state, "serialising a login transaction failed");
    };
    let login = StoredLogin {
        id: random_token(),
        browser_hash: token_hash(&browser),
        csrf_token: random_token(),
        client_id: client.id.clone(),
        request: request_json,
        state: state_json,
        user_id: user_id.map(str::to_owned),
        version: 0,
        created_at: now,
        expires_at: now + secs(state.config.login.transaction_ttl),
    };
    if let Err(e) = state.store.insert_login(&login).await {
        return internal_error(state, e);
    }
    (jar, see_other(&format!("/login?login={}", login.id))).into_response()
}

/// A login transaction loaded and checked for use by this browser.
struct Loaded {
    stored: StoredLogin,
    request: AuthRequest,
    state: LoginState,
    client: Client,
}

/// Loads a login and checks that it is live and was started by this browser.
async fn load(state: &AppState, jar: &CookieJar, id: &str) -> Result<Loaded, Response> {
    let gone = || {
        state.templates.error_page(
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "This sign-in page has expired or is no longer valid.",
        )
    };
    let stored = match state.store.get_login(id).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return Err(gone()),
        Err(e) => return Err(internal_error(state, e)),
    };
    if stored.expires_at <= state.now() {
        return Err(gone());
    }
    let same_browser = cookies::browser_id(state, jar)
        .is_some_and(|b| constant_time_eq(token_hash(&b).as_bytes(), stored.browser_hash.as_bytes()));
    if !same_browser {
        return Err(state.templates.error_page(
            StatusCode::FORBIDDEN,
            "Sign-in started elsewhere",
            "This sign-in was started in another browser, or your browser blocks cookies. \
             Start again from the application, in this browser, with cookies enabled.",
        ));
    }
    let (Ok(request), Ok(login_state)) = (
        serde_json::from_str::<AuthRequest>(&stored.request),
        serde_json::from_str::<LoginState>(&stored.state),
    ) else {
        return Err(internal_error(
            state,
            format!("login {} has a corrupt state", stored.id),
        ));
    };
    let client = match state.store.get_client(&stored.client_id).await {
        Ok(Some(client)) => client,
        Ok(None) => return Err(gone()),
        Err(e) => return Err(internal_error(state, e)),
    };
    Ok(Loaded {
        stored,
        request,
        state: login_state,
        client,
    })
}

/// Checks the form's CSRF token against the transaction's.
fn check_csrf(state: &AppState, loaded: &Loaded, sent: Option<&str>) -> Result<(), Response> {
    match sent {
        Some(token) if constant_time_eq(token.as_bytes(), loaded.stored.csrf_token.as_bytes()) => Ok(()),
        _ => Err(state.templates.error_page(
            StatusCode::FORBIDDEN,
            "Form expired",
            "The form was not sent from this sign-in page, or it is out of date. \
             Start again from the application.",
        )),
    }
}

fn already_used(state: &AppState) -> Response {
    state.templates.error_page(
        StatusCode::CONFLICT,
        "Sign-in already used",
        "This sign-in step was already completed. Start again from the application.",
    )
}

#[derive(Serialize)]
struct LoginPage<'a> {
    client_name: &'a str,
    login_id: &'a str,
    csrf_token: &'a str,
    username: &'a str,
    error: Option<&'a str>,
}

fn login_page(
    state: &AppState,
    status: StatusCode,
    loaded: &Loaded,
    username: &str,
    error: Option<&str>,
) -> Response {
    state.templates.page(
        status,
        "login.html",
        &LoginPage {
            client_name: &loaded.client.name,
            login_id: &loaded.stored.id,
            csrf_token: &loaded.stored.csrf_token,
            username,
            error,
        },
    )
}

#[derive(Serialize)]
struct ConsentPage<'a> {
    client_name: &'a str,
    login_id: &'a str,
    csrf_token: &'a str,
    username: &'a str,
    scopes: Vec<&'static str>,
}

async fn consent_page(state: &AppState, loaded: &Loaded, auth: &Authenticated) -> Response {
    let username = match state.store.get_user(&auth.user_id).await {
        Ok(Some(user)) => user.username,
        Ok(None) => return already_used(state),
        Err(e) => return internal_error(state, e),
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

#[derive(Deserialize)]
pub struct LoginQuery {
    login: Option<String>,
}

pub async fn login_get(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(query): Query<LoginQuery>,
) -> Response {
    let Some(id) = query.login else {
        return state.templates.error_page(
            StatusCode::BAD_REQUEST,
            "Nothing to sign in to",
            "Open the application you want to use; it will send you here to sign in.",
        );
    };
    let loaded = match load(&state, &jar, &id).await {
        Ok(loaded) => loaded,
        Err(response) => return response,
    };
    match &loaded.state {
        LoginState::Password => {
            let hint = loaded.request.login_hint.clone().unwrap_or_default();
            login_page(&state, StatusCode::OK, &loaded, &hint, None)
        }
        LoginState::Consent { auth } => consent_page(&state, &loaded, auth).await,
        LoginState::Done { .. } | LoginState::Refused => already_used(&state),
    }
}

pub async fn login_post(
    State(state): State<AppState>,
    peer: ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    body: Bytes,
) -> Response {
    let Ok(mut form) = Params::parse(&body) else {
        return state.templates.error_page(
            StatusCode::BAD_REQUEST,
            "Invalid form",
            "The form could not be read.",
        );
    };
    let Some(id) = form.take("login") else {
        return state.templates.error_page(
            StatusCode::BAD_REQUEST,
            "Invalid form",
            "The form is incomplete.",
        );
    };
    let loaded = match load(&state, &jar, &id).await {
        Ok(loaded) => loaded,
        Err(response) => return response,
    };
    if let Err(response) = check_csrf(&state, &loaded, form.get("csrf_token")) {
        return response;
    }
    if loaded.state != LoginState::Password {
        return already_used(&state);
    }
    let typed_name = form.take("username").unwrap_or_default();
    let password = form.take("password").unwrap_or_default();
    let now = state.now();

    // Throttle by login name (whether or not it exists) and by client address.
    let username = Username::parse(&typed_name);
    let account = throttle::account_key(username.as_ref().map(Username::as_str).unwrap_or("(invalid)"));
    let address =
        client_ip(state.config.trust_forwarded_for, Some(&peer), &headers).map(throttle::address_key);
    let mut keys = vec![account.clone()];
    keys.extend(address.clone());
    match throttle::locked_until(&state.store, &keys, now).await {
        Ok(Some(until)) => {
            let minutes = ((until - now) + 59) / 60;
            let message = format!(
                "Too many failed sign-in attempts. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            );
            return login_page(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                &loaded,
                &typed_name,
                Some(&message),
            );
        }
        Ok(None) => {}
        Err(e) => return internal_error(&state, e),
    }

    let user = match &username {
        Ok(name) => match state.store.find_user_for_login(name).await {
            Ok(user) => user,
            Err(e) => return internal_error(&state, e),
        },
        Err(_) => None,
    };
    let stored_hash = user.as_ref().and_then(|u| u.password_hash.clone());
    let verification = match state.passwords.verify(password, stored_hash).await {
        Ok(v) => v,
        Err(e) => return internal_error(&state, e),
    };
    let user = match (verification, user) {
        (Verification::Valid { rehash }, Some(user)) if user.user.active => {
            if let Some(hash) = rehash
                && let Err(e) = state.store.set_password_hash(&user.user.id, &hash, now).await
            {
                tracing::warn!(error = %e, "storing an upgraded password hash failed");
            }
            user
        }
        _ => {
            if let Err(e) = throttle::record_failure(
                &state.store,
                &state.config.login,
                &account,
                address.as_deref(),
                now,
            )
            .await
            {
                return internal_error(&state, e);
            }
            return login_page(
                &state,
                StatusCode::OK,
                &loaded,
                &typed_name,
                Some("The user name or password is incorrect."),
            );
        }
    };
    if let Err(e) = state.store.clear_throttle(&account).await {
        tracing::warn!(error = %e, "clearing a login throttle failed");
    }
    if !loaded.client.serves_company(&user.user.company_id) {
        return refuse(
            &state,
            &loaded,
            "this application is not available to the user's company",
        )
        .await;
    }
    let auth = Authenticated {
        user_id: user.user.id.clone(),
        auth_time: now,
        amr: vec!["pwd".into()],
        acr: ACR_PASSWORD.into(),
        session_id: None,
    };
    let consent = match needs_consent(&state, &loaded.client, &loaded.request, &auth.user_id).await {
        Ok(consent) => consent,
        Err(e) => return internal_error(&state, e),
    };
    advance(
        &state,
        jar,
        &loaded,
        Event::PasswordAccepted {
            auth,
            needs_consent: consent,
        },
    )
    .await
}

pub async fn consent_post(State(state): State<AppState>, jar: CookieJar, body: Bytes) -> Response {
    let Ok(mut form) = Params::parse(&body) else {
        return state.templates.error_page(
            StatusCode::BAD_REQUEST,
            "Invalid form",
            "The form could not be read.",
        );
    };
    let Some(id) = form.take("login") else {
        return state.templates.error_page(
            StatusCode::BAD_REQUEST,
            "Invalid form",
            "The form is incomplete.",
        );
    };
    let loaded = match load(&state, &jar, &id).await {
        Ok(loaded) => loaded,
        Err(response) => return response,
    };
    if let Err(response) = check_csrf(&state, &loaded, form.get("csrf_token")) {
        return response;
    }
    let LoginState::Consent { auth } = &loaded.state else {
        return already_used(&state);
    };
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

/// Applies `event`, persists the new state (once: a replay finds the version moved on),
/// and acts on it.
async fn advance(state: &AppState, jar: CookieJar, loaded: &Loaded, event: Event) -> Response {
    let next = match flow::step(&loaded.state, event) {
        Ok(next) => next,
        Err(_) => return already_used(state),
    };
    let Ok(next_json) = serde_json::to_string(&next) else {
        return internal_error(state, "serialising a login state failed");
    };
    let user_id = match &next {
        LoginState::Consent { auth } | LoginState::Done { auth } => Some(auth.user_id.as_str()),
        _ => loaded.stored.user_id.as_deref(),
    };
    match state
        .store
        .advance_login(&loaded.stored.id, loaded.stored.version, &next_json, user_id)
        .await
    {
        Ok(true) => {}
        Ok(false) => return already_used(state),
        Err(e) => return internal_error(state, e),
    }
    match next {
        LoginState::Done { auth } => {
            finish_login(state, jar, &loaded.request, auth, Some(&loaded.stored.id)).await
        }
        LoginState::Consent { .. } | LoginState::Password => {
            see_other(&format!("/login?login={}", loaded.stored.id))
        }
        LoginState::Refused => redirect_error(
            state,
            &loaded.request,
            ErrorCode::AccessDenied,
            "the user denied the request",
        ),
    }
}

/// Ends a login without a code: the client learns `access_denied`.
async fn refuse(state: &AppState, loaded: &Loaded, why: &'static str) -> Response {
    if let Ok(refused) = serde_json::to_string(&LoginState::Refused) {
        let _ = state
            .store
            .advance_login(
                &loaded.stored.id,
                loaded.stored.version,
                &refused,
                loaded.stored.user_id.as_deref(),
            )
            .await;
    }
    redirect_error(state, &loaded.request, ErrorCode::AccessDenied, why)
}

/// Starts or refreshes the browser session for `auth`, issues a single-use authorization
/// code bound to the request, and redirects to the client with it.
pub async fn finish_login(
    state: &AppState,
    jar: CookieJar,
    request: &AuthRequest,
    auth: Authenticated,
    login_id: Option<&str>,
) -> Response {
    let now = state.now();
    let amr = serde_json::to_string(&auth.amr).unwrap_or_else(|_| "[]".into());
    let session_expires = now + secs(state.config.login.session_ttl);
    let (jar, session_id) = match &auth.session_id {
        Some(id) => (jar, id.clone()),
        None => {
            let previous = match current_session(state, &jar).await {
                Ok(previous) => previous,
                Err(e) => return internal_error(state, e),
            };
            match previous {
                // The same user signed in again (prompt=login, max_age): keep the sid.
                Some(session) if session.user_id == auth.user_id => {
                    if let Err(e) = state
                        .store
                        .reauthenticate_session(&session.id, auth.auth_time, &amr, &auth.acr, session_expires)
                        .await
                    {
                        return internal_error(state, e);
                    }
                    (jar, session.id)
                }
                previous => {
                    // Another user signs in on this browser: the previous one is signed out.
                    if let Some(old) = previous
                        && let Err(e) = state.store.end_session(&old.id, now).await
                    {
                        return internal_error(state, e);
                    }
                    let secret = random_token();
                    let session = Session {
                        id: crate::model::new_id(),
                        secret_hash: token_hash(&secret),
                        user_id: auth.user_id.clone(),
                        auth_time: auth.auth_time,
                        amr: amr.clone(),
                        acr: auth.acr.clone(),
                        created_at: now,
                        expires_at: session_expires,
                        ended_at: None,
                    };
                    if let Err(e) = state.store.insert_session(&session).await {
                        return internal_error(state, e);
                    }
                    (cookies::set_session(state, jar, secret), session.id)
                }
            }
        }
    };
    let code = random_token();
    let stored = NewCode {
        code_hash: token_hash(&code),
        client_id: request.client_id.clone(),
        user_id: auth.user_id.clone(),
        session_id,
        login_id: login_id.map(str::to_owned),
        redirect_uri: request.redirect_uri.clone(),
        scope: request.scope.to_string(),
        nonce: request.nonce.clone(),
        code_challenge: request.code_challenge.clone(),
        auth_time: auth.auth_time,
        amr,
        acr: auth.acr.clone(),
        created_at: now,
        expires_at: now + secs(state.config.tokens.authorization_code_ttl),
    };
    if let Err(e) = state.store.insert_code(&stored).await {
        return internal_error(state, e);
    }
    let mut pairs = vec![("code", code.as_str())];
    if let Some(client_state) = &request.state {
        pairs.push(("state", client_state.as_str()));
    }
    match redirect_to_client(&request.redirect_uri, &pairs, &state.issuer) {
        Some(url) => (jar, see_other(url.as_str())).into_response(),
        None => internal_error(state, "a registered redirect URI did not parse"),
    }
}
