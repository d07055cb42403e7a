//! The account security settings page (`/account/security`): per method (authenticator
//! app, email codes, text message codes) its status, set-up and disable (a reset at once
//! when the company allows self reset, else a pending reset request); new recovery codes.
//! Changing the set-up of a user who already has a factor first asks for a fresh code from
//! it ("Send me a code" for email and SMS factors), so a stolen session alone cannot
//! re-bind MFA.
//!
//! Routes, with `{method}` one of `totp`, `email`, `sms`: `GET /account/security/{method}`
//! (a set-up in progress), `POST .../{method}/setup|verify|resend|finish|disable|send`.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::authorize::current_session;
use super::cookies;
use super::login::mfa::{EnrolContext, SPENT, Stage, send_problem};
use super::login::{ACCOUNT_CLIENT_ID, authenticated_event, mfa, resumed, start_login};
use super::pages::{internal_error, see_other};
use crate::crypto::{constant_time_eq, token_hash};
use crate::flow::{self, Event, LoginState};
use crate::mfa::otp::{self, Checked};
use crate::mfa::service::{self, ConfirmError};
use crate::model::{Company, ScopeSet, User, new_id};
use crate::notify::email::{Kind, compose, format_time};
use crate::policy::load::Inputs;
use crate::policy::{self, Method, Mode};
use crate::protocol::authorize::{AuthRequest, Prompt};
use crate::protocol::params::Params;
use crate::state::AppState;
use crate::storage::{Factor, ResetFiled, ResetRequest, Session};

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

/// The methods the account page lists, in order.
const METHODS: [Method; 3] = [Method::Totp, Method::Email, Method::Sms];

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

async fn security_page(
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
            Ok(()) => (
                StatusCode::OK,
                Some("A new code is on its way. Codes sent before it no longer work."),
                None,
            ),
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

/// `POST /account/security/{method}/disable`: removes the factor when the company allows
/// self reset, else files a reset request (the factor keeps working meanwhile).
pub async fn disable(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(method): Path<String>,
    body: Bytes,
) -> Response {
    let method = match path_method(&state, &method) {
        Ok(m) => m,
        Err(response) => return response,
    };
    let (account, _) = match checked_form(&state, jar, &body).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let Some(factor) = account.factor(method).cloned() else {
        return see_other("/account/security");
    };
    let now = state.now();
    if account.inputs.policy.allow_self_reset {
        let email = match service::user_email(
            &state,
            Kind::MfaDisabled,
            &account.user,
            &account.company,
            json!({ "method": service::method_label(method) }),
            now,
        ) {
            Ok(email) => email,
            Err(e) => return internal_error(&state, e),
        };
        return match state
            .store
            .remove_factor(&factor.id, &account.user.id, &[email])
            .await
        {
            Ok(_) => {
                service::emails_queued(&state);
                crate::audit::event("mfa.disabled", crate::audit::Actor::user(&account.user.id))
                    .subject(&account.user.id)
                    .tenant(Some(&account.company.id), Some(&account.company.reseller_id))
                    .detail(json!({ "method": method.as_str() }))
                    .record(&state.store, now)
                    .await;
                see_other("/account/security?notice=disabled")
            }
            Err(e) => internal_error(&state, e),
        };
    }
    match file_reset_request(&state, &account.user, &account.company, "account", now).await {
        Ok(_) => see_other("/account/security?notice=reset-pending"),
        Err(e) => internal_error(&state, e),
    }
}

/// Files a reset request (unless one is pending) and emails the company's approvers — or,
/// when it has none, its reseller's admins.
pub async fn file_reset_request(
    state: &AppState,
    user: &User,
    company: &Company,
    source: &str,
    now: i64,
) -> Result<ResetFiled, service::MfaError> {
    let request = ResetRequest {
        id: new_id(),
        user_id: user.id.clone(),
        company_id: company.id.clone(),
        status: "pending".into(),
        source: source.into(),
        created_at: now,
        decided_at: None,
        decided_by: None,
    };
    let policy = state
        .store
        .get_company_policy(&company.id)
        .await?
        .unwrap_or_default();
    let mut approvers = Vec::new();
    for id in &policy.reset_approvers {
        if let Some(approver) = state.store.get_user(id).await?.filter(|u| u.active) {
            approvers.push(approver);
        }
    }
    if approvers.is_empty() {
        approvers = state.store.reseller_admins(&company.reseller_id).await?;
    }
    let mut emails = Vec::new();
    for approver in &approvers {
        let context = json!({
            "name": approver.name.clone().unwrap_or_else(|| approver.username.clone()),
            "requester": user.name.clone().unwrap_or_else(|| user.username.clone()),
            "requester_username": user.username,
            "company": company.name,
            "when": format_time(now),
            "link": state.url(&format!("/admin/reset-requests/{}", request.id)),
        });
        emails.push(compose(
            &state.templates,
            Kind::ResetRequested,
            &approver.email,
            &context,
            now,
        )?);
    }
    let filed = state.store.file_reset_request(&request, &emails).await?;
    if filed == ResetFiled::Created {
        service::emails_queued(state);
        crate::audit::event("mfa.reset_requested", crate::audit::Actor::user(&user.id))
            .subject(&user.id)
            .tenant(Some(&company.id), Some(&company.reseller_id))
            .detail(json!({ "request": request.id, "source": source }))
            .record(&state.store, now)
            .await;
    }
    Ok(filed)
}

pub async fn recovery_codes(State(state): State<AppState>, jar: CookieJar, body: Bytes) -> Response {
    let (account, _) = match checked_form(&state, jar, &body).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    if !account.has_factor() {
        return see_other("/account/security");
    }
    match service::regenerate_codes(&state, &account.user, &account.company, state.now()).await {
        Ok(codes) => mfa::render_codes(
            &state,
            codes,
            None,
            &account.csrf_token,
            &account.company.name,
            None,
        ),
        Err(e) => internal_error(&state, e),
    }
}
