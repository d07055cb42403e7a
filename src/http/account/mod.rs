//! The account security settings page (`/account/security`): per method (authenticator
//! app, email codes, text message codes) its status, set-up and disable (a reset at once
//! when the company allows self reset, else a pending reset request); new recovery codes.
//! Changing the set-up of a user who already has a factor first asks for a fresh code from
//! it ("Send me a code" for email and SMS factors), so a stolen session alone cannot
//! re-bind MFA.
//!
//! Routes, with `{method}` one of `totp`, `email`, `sms`: `GET /account/security/{method}`
//! (a set-up in progress), `POST .../{method}/setup|verify|resend|finish|disable|send`.

mod disable;
mod page;
mod setup;

pub(crate) use disable::file_reset_request;
pub use disable::{disable, recovery_codes};
pub use page::security_get;
use page::{METHODS, security_page};
pub use setup::{finish, resend, send_code, setup, setup_get, verify};

use axum::http::StatusCode;
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use super::authorize::current_session;
use super::cookies;
use super::login::{ACCOUNT_CLIENT_ID, authenticated_event, resumed, start_login};
use super::pages::internal_error;
use crate::crypto::{constant_time_eq, token_hash};
use crate::flow::{self, Event, LoginState};
use crate::mfa::service;
use crate::model::{Company, ScopeSet, User};
use crate::policy::load::Inputs;
use crate::policy::{self, Method, Mode};
use crate::protocol::authorize::{AuthRequest, Prompt};
use crate::protocol::params::Params;
use crate::state::AppState;
use crate::storage::{Factor, Session};

/// A signed-in user on the account pages.
pub(super) struct Account {
    pub session: Session,
    pub user: User,
    pub company: Company,
    pub inputs: Inputs,
    pub csrf_token: String,
}

impl Account {
    /// The confirmed factor of `method`.
    fn factor(&self, method: Method) -> Option<&Factor> {
        self.inputs
            .confirmed()
            .find(|(_, m)| *m == method)
            .map(|(f, _)| f)
    }

    /// The set-up of `method` in progress.
    fn pending(&self, method: Method) -> Option<&Factor> {
        self.inputs
            .factors
            .iter()
            .find(|f| f.confirmed_at.is_none() && f.kind == method.as_str())
    }

    fn allowed(&self, method: Method) -> bool {
        let effective = &self.inputs.effective;
        effective.mode != Mode::Off && effective.methods.contains(&method)
    }

    fn has_factor(&self) -> bool {
        self.inputs.confirmed().next().is_some()
    }
}

/// A sign-in to the account pages that returns to `return_to` (a path of ours).
fn account_request(return_to: &str) -> AuthRequest {
    AuthRequest {
        client_id: ACCOUNT_CLIENT_ID.into(),
        redirect_uri: String::new(),
        scope: ScopeSet::from_static(&["openid"]),
        state: Some(return_to.to_owned()),
        nonce: None,
        code_challenge: None,
        prompt: Prompt::default(),
        max_age: None,
        login_hint: None,
        acr_values: Vec::new(),
    }
}

/// The signed-in account, or the response that signs the user in first (through the same
/// login flow as any client, MFA included).
async fn account(state: &AppState, jar: CookieJar) -> Result<(Account, CookieJar), Response> {
    signed_in(state, jar, "/account/security").await
}

/// The signed-in account, or the response that signs the user in first and then returns
/// to `return_to`.
pub(super) async fn signed_in(
    state: &AppState,
    jar: CookieJar,
    return_to: &str,
) -> Result<(Account, CookieJar), Response> {
    let client = match state.client(ACCOUNT_CLIENT_ID).await {
        Ok(Some(client)) => client,
        Ok(None) => return Err(internal_error(state, "the account client is missing")),
        Err(e) => return Err(internal_error(state, e)),
    };
    let request = account_request(return_to);
    let session = match current_session(state, &jar).await {
        Ok(session) => session,
        Err(e) => return Err(internal_error(state, e)),
    };
    let (Some(session), Some(secret)) = (session, cookies::session_secret(state, &jar)) else {
        return Err(start_login(state, jar, &client, &request, LoginState::Password, None).await);
    };
    let user = match state.store.get_user(&session.user_id).await {
        Ok(Some(user)) if user.active => user,
        Ok(_) => return Err(start_login(state, jar, &client, &request, LoginState::Password, None).await),
        Err(e) => return Err(internal_error(state, e)),
    };
    let resumed = resumed(&session);
    let (auth, pending, inputs) = match authenticated_event(state, &client, &request, &user, resumed).await {
        Ok((Event::Authenticated { auth, pending_factor }, inputs)) => (auth, pending_factor, inputs),
        Ok(_) => return Err(internal_error(state, "unexpected login event")),
        Err(response) => return Err(response),
    };
    // A session that no longer meets the policy (MFA was made required meanwhile) must
    // complete it before changing anything.
    if !policy::satisfied(&auth.decision, &auth.evidence()) {
        return Err(start_login(state, jar, &client, &request, flow::route(auth, pending), None).await);
    }
    let company = inputs.company.clone();
    Ok((
        Account {
            session,
            user,
            company,
            inputs,
            csrf_token: token_hash(&format!("account:{secret}")),
        },
        jar,
    ))
}

/// The session proved a second factor (`method`): its `amr` now says so.
async fn mfa_verified(
    state: &AppState,
    session: &Session,
    method: &str,
    now: i64,
) -> Result<(), crate::storage::StoreError> {
    let mut amr: Vec<String> = serde_json::from_str(&session.amr).unwrap_or_default();
    for value in [method, "mfa"] {
        if !amr.iter().any(|m| m == value) {
            amr.push(value.to_owned());
        }
    }
    let amr = serde_json::to_string(&amr).unwrap_or_else(|_| "[]".into());
    state
        .store
        .session_mfa_verified(&session.id, &amr, crate::tokens::claims::ACR_MFA, now)
        .await
}

#[derive(Deserialize)]
pub struct Notice {
    notice: Option<String>,
}

/// A posted account form: the signed-in account and the form, its CSRF token checked.
async fn signed_form(state: &AppState, jar: CookieJar, body: &[u8]) -> Result<(Account, Params), Response> {
    let (account, _) = account(state, jar).await?;
    let Ok(form) = Params::parse(body) else {
        return Err(state.templates.error_page(
            StatusCode::BAD_REQUEST,
            "Invalid form",
            "The form could not be read.",
        ));
    };
    let csrf_ok = form
        .get("csrf_token")
        .is_some_and(|t| constant_time_eq(t.as_bytes(), account.csrf_token.as_bytes()));
    if !csrf_ok {
        return Err(state.templates.error_page(
            StatusCode::FORBIDDEN,
            "Form expired",
            "The form was not sent from your security settings, or it is out of date.",
        ));
    }
    Ok((account, form))
}

/// When the user already has a factor, the form must carry a fresh `code` from it.
async fn fresh_code(state: &AppState, account: &Account, form: &Params) -> Result<(), Response> {
    if !account.has_factor() {
        return Ok(());
    }
    let now = state.now();
    let failures = match service::failures(state, &account.user.id).await {
        Ok(failures) => failures,
        Err(e) => return Err(internal_error(state, e)),
    };
    if failures.locked_until(now).is_some() {
        return Err(security_page(
            state,
            account,
            StatusCode::TOO_MANY_REQUESTS,
            None,
            Some("Too many incorrect codes. Try again later."),
        )
        .await);
    }
    let code = form.get("code").unwrap_or_default();
    match service::check_code(state, &account.inputs, &account.user, code, now).await {
        Ok(Some(verified)) => {
            if let Err(e) = service::clear_failures(state, &account.user.id, &failures).await {
                tracing::warn!(error = %e, "clearing an MFA throttle failed");
            }
            if let Err(e) = mfa_verified(state, &account.session, verified.amr(), now).await {
                return Err(internal_error(state, e));
            }
            Ok(())
        }
        Ok(None) => {
            if let Err(e) = service::record_failure(state, &account.user.id, now).await {
                return Err(internal_error(state, e));
            }
            Err(security_page(
                state,
                account,
                StatusCode::BAD_REQUEST,
                None,
                Some(
                    "Enter a current code from one of your methods (or a recovery code) to make this change.",
                ),
            )
            .await)
        }
        Err(e) => Err(internal_error(state, e)),
    }
}

/// A posted account form with its CSRF token and, when the user has a factor, a fresh code.
async fn checked_form(state: &AppState, jar: CookieJar, body: &[u8]) -> Result<(Account, Params), Response> {
    let (account, form) = signed_form(state, jar, body).await?;
    fresh_code(state, &account, &form).await?;
    Ok((account, form))
}

/// The method named in the path, or a readable 404.
fn path_method(state: &AppState, method: &str) -> Result<Method, Response> {
    match method.parse::<Method>() {
        Ok(m) if METHODS.contains(&m) => Ok(m),
        _ => Err(state.templates.error_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such sign-in method.",
        )),
    }
}
