//! The login pages. `GET /login?login=ID` shows the current step of a login transaction;
//! each step posts to its own handler (`password`, `mfa`, `consent`), which feeds an event
//! to `flow::step`, persists the result once, and shows or redirects to what comes next.
//! When the login is done, [`finish_login`] starts (or refreshes) the browser session and
//! redirects to the client with a single-use authorization code.

mod consent;
pub(crate) mod mfa;
mod password;
mod reset;

pub use consent::consent_post;
pub use mfa::{
    challenge_method_post, challenge_post, challenge_resend_post, codes_post, enrol_destination_post,
    enrol_finish_post, enrol_method_post, enrol_post, enrol_resend_post,
};
pub use password::login_post;
pub use reset::{reset_get, reset_post};

use std::borrow::Cow;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use super::authorize::{current_session, needs_consent, redirect_error};
use super::cookies;
use super::pages::{internal_error, see_other};
use crate::audit;
use crate::crypto::{constant_time_eq, random_token, token_hash};
use crate::flow::{self, Authenticated, Event, LoginState};
use crate::mfa::service;
use crate::model::{Client, User};
use crate::policy::load::Inputs;
use crate::policy::{self, Decision, Request};
use crate::protocol::authorize::{AuthRequest, redirect_to_client};
use crate::protocol::errors::ErrorCode;
use crate::state::AppState;
use crate::storage::{Advance, Completion, NewCode, Session, SessionWrite, StoredLogin};

/// The built-in client of the provider's own account pages (migration 0002).
pub const ACCOUNT_CLIENT_ID: &str = "portcullis-account";

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
    login_id: Option<String>,
) -> Response {
    let (jar, browser) = cookies::ensure_browser_id(state, jar);
    let now = state.now();
    let (Ok(request_json), Ok(state_json)) =
        (serde_json::to_string(request), serde_json::to_string(&initial))
    else {
        return internal_error(state, "serialising a login transaction failed");
    };
    let login = StoredLogin {
        id: login_id.unwrap_or_else(random_token),
        browser_hash: token_hash(&browser),
        csrf_token: random_token(),
        client_id: client.id.clone(),
        request: request_json,
        state: state_json,
        user_id: initial.auth().map(|a| a.user_id.clone()),
        version: 0,
        created_at: now,
        expires_at: now + secs(state.config.login.transaction_ttl),
    };
    if let Err(e) = state.store.insert_login(&login).await {
        return internal_error(state, e);
    }
    if let LoginState::Refused { reason, .. } = &initial {
        return refused(state, request, &initial, reason);
    }
    (jar, see_other(&format!("/login?login={}", login.id))).into_response()
}

/// A login transaction loaded and checked for use by this browser.
pub(super) struct Loaded {
    pub stored: StoredLogin,
    pub request: AuthRequest,
    pub state: LoginState,
    pub client: Client,
}

/// Loads a login and checks that it is live and was started by this browser.
async fn load(state: &AppState, jar: &CookieJar, id: &str) -> Result<Loaded, Response> {
    match state.store.get_login(id).await {
        Ok(stored) => check(state, jar, stored).await,
        Err(e) => Err(internal_error(state, e)),
    }
}

/// Checks that a login read from the store (None: there is no such login) is live and was
/// started by this browser.
async fn check(state: &AppState, jar: &CookieJar, stored: Option<StoredLogin>) -> Result<Loaded, Response> {
    let gone = || {
        state.templates.error_page(
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "This sign-in page has expired or is no longer valid.",
        )
    };
    let Some(stored) = stored else {
        return Err(gone());
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
    let client = match state.client(&stored.client_id).await {
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

/// Reads a posted form, loads its login and checks its CSRF token.
async fn load_form(
    state: &AppState,
    jar: &CookieJar,
    body: &[u8],
) -> Result<(crate::protocol::params::Params, Loaded), Response> {
    let (form, id) = read_form(state, body)?;
    match state.store.get_login(&id).await {
        Ok(stored) => check_form(state, jar, form, stored).await,
        Err(e) => Err(internal_error(state, e)),
    }
}

/// Reads a posted form and the id of its login (`login`), which is not loaded yet: a step
/// that reads more with it ([`crate::storage::Store::login_facts`]) gives the login it read
/// to [`check_form`].
fn read_form(state: &AppState, body: &[u8]) -> Result<(crate::protocol::params::Params, String), Response> {
    let invalid = |message: &str| {
        state
            .templates
            .error_page(StatusCode::BAD_REQUEST, "Invalid form", message)
    };
    let Ok(mut form) = crate::protocol::params::Params::parse(body) else {
        return Err(invalid("The form could not be read."));
    };
    let Some(id) = form.take("login") else {
        return Err(invalid("The form is incomplete."));
    };
    Ok((form, id))
}

/// Checks the login a form names, read from the store (None: there is no such login), as
/// [`check`] does, and the form's CSRF token against it.
async fn check_form(
    state: &AppState,
    jar: &CookieJar,
    form: crate::protocol::params::Params,
    stored: Option<StoredLogin>,
) -> Result<(crate::protocol::params::Params, Loaded), Response> {
    let loaded = check(state, jar, stored).await?;
    match form.get("csrf_token") {
        Some(token) if constant_time_eq(token.as_bytes(), loaded.stored.csrf_token.as_bytes()) => {
            Ok((form, loaded))
        }
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

#[derive(Deserialize)]
pub(crate) struct LoginQuery {
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
    render(&state, &loaded, StatusCode::OK, None, None).await
}

/// Shows the page of the login's current step.
async fn render(
    state: &AppState,
    loaded: &Loaded,
    status: StatusCode,
    error: Option<&str>,
    username: Option<&str>,
) -> Response {
    match &loaded.state {
        LoginState::Password => {
            let hint = loaded.request.login_hint.clone().unwrap_or_default();
            password::page(state, status, loaded, username.unwrap_or(&hint), error)
        }
        LoginState::SecondFactor { .. } => mfa::challenge_page(state, status, loaded, None, error).await,
        LoginState::Enrol { .. } => mfa::enrol_page(state, status, loaded, None, error).await,
        LoginState::RecoveryCodes { sealed_codes, auth } => {
            mfa::codes_page(state, loaded, auth, sealed_codes).await
        }
        LoginState::Consent { auth } => consent::page(state, loaded, auth).await,
        LoginState::Done { .. } | LoginState::Refused { .. } | LoginState::Failed => already_used(state),
    }
}

/// What a browser session proves, as the starting point of a login that resumes it.
pub(crate) fn resumed(session: &Session) -> Authenticated {
    Authenticated {
        user_id: session.user_id.clone(),
        auth_time: session.auth_time,
        amr: serde_json::from_str(&session.amr).unwrap_or_default(),
        acr: session.acr.clone(),
        session_id: Some(session.id.clone()),
        decision: Decision::Pass,
        skipped: false,
        needs_consent: false,
    }
}

/// What the policy decides for an authenticated user, as the event that starts (or
/// resumes, for a session) the MFA steps. Creates the pending factor when the decision
/// asks for an enrolment.
pub(crate) async fn authenticated_event(
    state: &AppState,
    client: &Client,
    request: &AuthRequest,
    user: &User,
    auth: Authenticated,
) -> Result<(Event, Inputs), Response> {
    let inputs = Inputs::load(&state.store, user)
        .await
        .map_err(|e| internal_error(state, e))?;
    decided_event(state, client, request, user, auth, inputs).await
}

/// [`authenticated_event`], for a request that has read the user's policy `inputs`.
pub(crate) async fn decided_event(
    state: &AppState,
    client: &Client,
    request: &AuthRequest,
    user: &User,
    mut auth: Authenticated,
    inputs: Inputs,
) -> Result<(Event, Inputs), Response> {
    let now = state.now();
    auth.decision = inputs.decide(&policy_request(request), now);
    auth.needs_consent = needs_consent(state, client, request, &user.id)
        .await
        .map_err(|e| internal_error(state, e))?;
    let pending_factor = pending_factor(state, &auth.decision, &user.id).await?;
    Ok((Event::Authenticated { auth, pending_factor }, inputs))
}

fn policy_request(request: &AuthRequest) -> Request {
    Request {
        wants_mfa: policy::wants_mfa(&request.acr_values),
    }
}

async fn pending_factor(
    state: &AppState,
    decision: &Decision,
    user_id: &str,
) -> Result<Option<String>, Response> {
    // Only TOTP needs its factor (the secret the QR code shows) before the page; an email
    // or SMS factor is made when the user gives its address or number.
    let (Decision::MustEnrol { methods } | Decision::MayEnrol { methods }) = decision else {
        return Ok(None);
    };
    if !methods.contains(&crate::policy::Method::Totp) {
        return Ok(None);
    }
    match service::start_totp(state, user_id, state.now()).await {
        Ok(factor) => Ok(Some(factor.id)),
        Err(e) => Err(internal_error(state, e)),
    }
}

/// Applies `event`, re-checks the policy before a login is done, persists the new state
/// (once: a replay finds the version moved on), and acts on it.
async fn advance(state: &AppState, jar: CookieJar, loaded: &Loaded, event: Event) -> Response {
    advance_with(state, jar, loaded, event, None).await
}

/// [`advance`], for a request that has already read the user and their policy inputs: the
/// re-check before the login is done uses those instead of reading them again.
async fn advance_with(
    state: &AppState,
    jar: CookieJar,
    loaded: &Loaded,
    event: Event,
    known: Option<(&User, &Inputs)>,
) -> Response {
    let mut next = match flow::step(&loaded.state, event) {
        Ok(next) => next,
        Err(_) => return already_used(state),
    };
    if let LoginState::Done { auth } = &next {
        let inputs = match known.filter(|(user, _)| user.id == auth.user_id && user.active) {
            Some((_, inputs)) => Cow::Borrowed(inputs),
            None => {
                let user = match active_user(state, &auth.user_id).await {
                    Ok(user) => user,
                    Err(response) => return response,
                };
                match Inputs::load(&state.store, &user).await {
                    Ok(inputs) => Cow::Owned(inputs),
                    Err(e) => return internal_error(state, e),
                }
            }
        };
        let request = policy_request(&loaded.request);
        let Some(decision) = inputs.unmet(&request, &auth.evidence(), state.now()) else {
            return finish_login(state, jar, &loaded.request, auth.clone(), Some(loaded), &inputs).await;
        };
        // The policy changed during this login: it starts over from the new decision (one
        // that is not met asks for more than a pass, so this is not done yet).
        let mut auth = auth.clone();
        auth.decision = decision;
        let pending = match pending_factor(state, &auth.decision, &auth.user_id).await {
            Ok(pending) => pending,
            Err(response) => return response,
        };
        next = flow::route(auth, pending);
    }
    if let Err(response) = persist(state, loaded, &next).await {
        return response;
    }
    match &next {
        LoginState::Refused { reason, .. } => refused(state, &loaded.request, &next, reason),
        LoginState::Failed => redirect_error(
            state,
            &loaded.request,
            ErrorCode::AccessDenied,
            "too many incorrect codes; the sign-in was ended",
        ),
        _ => see_other(&format!("/login?login={}", loaded.stored.id)),
    }
}

/// Stores the login's next state, unless it moved since it was loaded.
async fn persist(state: &AppState, loaded: &Loaded, next: &LoginState) -> Result<(), Response> {
    let Ok(next_json) = serde_json::to_string(next) else {
        return Err(internal_error(state, "serialising a login state failed"));
    };
    match state
        .store
        .advance_login(&move_of(loaded, next, &next_json))
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => Err(already_used(state)),
        Err(e) => Err(internal_error(state, e)),
    }
}

/// The move of `loaded` to `next` (serialised as `next_json`).
fn move_of<'a>(loaded: &'a Loaded, next: &'a LoginState, next_json: &'a str) -> Advance<'a> {
    Advance {
        id: &loaded.stored.id,
        expected_version: loaded.stored.version,
        state: next_json,
        user_id: next
            .auth()
            .map(|a| a.user_id.as_str())
            .or(loaded.stored.user_id.as_deref()),
    }
}

/// The user of a login, who must still be active (else the login is over).
async fn active_user(state: &AppState, user_id: &str) -> Result<User, Response> {
    match state.store.get_user(user_id).await {
        Ok(Some(user)) if user.active => Ok(user),
        Ok(_) => Err(already_used(state)),
        Err(e) => Err(internal_error(state, e)),
    }
}

/// The user of a login and their company, for pages and emails.
async fn user_and_company(
    state: &AppState,
    user_id: &str,
) -> Result<(User, crate::model::Company), Response> {
    let user = active_user(state, user_id).await?;
    match state.store.get_company(&user.company_id).await {
        Ok(Some(company)) => Ok((user, company)),
        Ok(None) => Err(already_used(state)),
        Err(e) => Err(internal_error(state, e)),
    }
}

/// Tells the client a login was refused.
fn refused(state: &AppState, request: &AuthRequest, login: &LoginState, reason: &str) -> Response {
    let reason = reason.to_owned();
    let code = match login {
        LoginState::Refused { policy: true, .. } => ErrorCode::UnmetAuthenticationRequirements,
        _ => ErrorCode::AccessDenied,
    };
    if request.client_id == ACCOUNT_CLIENT_ID {
        return state
            .templates
            .error_page(StatusCode::FORBIDDEN, "Sign-in refused", &reason);
    }
    redirect_error(state, request, code, reason)
}

/// Starts or refreshes the browser session for `auth`, issues a single-use authorization
/// code bound to the request, and redirects to the client with it. `login` is the login
/// transaction this completes (none for single sign-on straight from `/authorize`): its
/// final state, the session, the audit event and the code are written in one transaction.
/// `inputs` are the user's policy inputs (for the tenancy the audit event is filed under).
pub async fn finish_login(
    state: &AppState,
    jar: CookieJar,
    request: &AuthRequest,
    auth: Authenticated,
    login: Option<&Loaded>,
    inputs: &Inputs,
) -> Response {
    let now = state.now();
    let done = LoginState::Done { auth: auth.clone() };
    let Ok(done_json) = serde_json::to_string(&done) else {
        return internal_error(state, "serialising a login state failed");
    };
    let amr = serde_json::to_string(&auth.amr).unwrap_or_else(|_| "[]".into());
    let mfa_verified = auth.evidence().has_mfa();
    let session_expires = now + secs(state.config.login.session_ttl);
    let previous = match current_session(state, &jar).await {
        Ok(previous) => previous,
        Err(e) => return internal_error(state, e),
    };
    let new_session;
    let (jar, session_id, session_write) = match &previous {
        // The same user again (single sign-on, step-up, prompt=login, max_age): keep the sid.
        Some(session) if session.user_id == auth.user_id => (
            jar,
            session.id.clone(),
            SessionWrite::Reauthenticate {
                id: &session.id,
                auth_time: auth.auth_time,
                amr: &amr,
                acr: &auth.acr,
                expires_at: session_expires,
                mfa_verified_at: mfa_verified.then_some(now),
            },
        ),
        // Another user signs in on this browser: the previous one is signed out.
        previous => {
            let secret = random_token();
            new_session = Session {
                id: crate::model::new_id(),
                secret_hash: token_hash(&secret),
                user_id: auth.user_id.clone(),
                auth_time: auth.auth_time,
                amr: amr.clone(),
                acr: auth.acr.clone(),
                created_at: now,
                expires_at: session_expires,
                ended_at: None,
                mfa_verified_at: mfa_verified.then_some(now),
            };
            (
                cookies::set_session(state, jar, secret),
                new_session.id.clone(),
                SessionWrite::Start {
                    session: &new_session,
                    replaces: previous.as_ref().map(|old| old.id.as_str()),
                },
            )
        }
    };
    let event = audit::event("login.succeeded", audit::Actor::user(&auth.user_id))
        .subject(&auth.user_id)
        .tenant(Some(&inputs.company.id), Some(&inputs.reseller.id))
        .detail(serde_json::json!({ "client_id": request.client_id, "amr": auth.amr, "acr": auth.acr }))
        .at(now);
    let code = random_token();
    let new_code = (request.client_id != ACCOUNT_CLIENT_ID).then(|| NewCode {
        code_hash: token_hash(&code),
        client_id: request.client_id.clone(),
        user_id: auth.user_id.clone(),
        session_id,
        login_id: login.map(|l| l.stored.id.clone()),
        redirect_uri: request.redirect_uri.clone(),
        scope: request.scope.to_string(),
        nonce: request.nonce.clone(),
        code_challenge: request.code_challenge.clone(),
        auth_time: auth.auth_time,
        amr: amr.clone(),
        acr: auth.acr.clone(),
        acr_values: serde_json::to_string(&request.acr_values).unwrap_or_else(|_| "[]".into()),
        skipped: auth.skipped,
        created_at: now,
        expires_at: now + secs(state.config.tokens.authorization_code_ttl),
    });
    let completion = Completion {
        login: login.map(|loaded| move_of(loaded, &done, &done_json)),
        session: session_write,
        audit: &event,
        code: new_code.as_ref(),
        now,
    };
    match state.store.complete_login(&completion).await {
        Ok(true) => {}
        Ok(false) => return already_used(state),
        Err(e) => return internal_error(state, e),
    }
    if new_code.is_none() {
        // The account pages need the session, not a code; back to the page that asked.
        let target = request
            .state
            .as_deref()
            .filter(|t| t.starts_with('/') && !t.starts_with("//") && !t.contains('\\'))
            .unwrap_or("/account/security");
        return (jar, see_other(target)).into_response();
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
