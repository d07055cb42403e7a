//! Enrolment during a login: choosing a method, the destination of an email or SMS factor,
//! confirming its code (or skipping when the policy allows), and finishing.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use serde::Serialize;

use super::{Choice, RESENT, SPENT, in_use, send_problem, sends_codes};
use crate::flow::{Authenticated, Event, LoginState};
use crate::http::login::{Loaded, advance, already_used, load_form, user_and_company};
use crate::http::pages::{internal_error, see_other};
use crate::mfa::otp::{self, Checked};
use crate::mfa::service::{self, ConfirmError};
use crate::model::{Company, User};
use crate::policy::load::supported_methods;
use crate::policy::{Decision, Method};
use crate::state::AppState;
use crate::storage::Factor;

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
    can_choose: bool,
    error: Option<&'a str>,
}

/// Where an enrolment page's forms go: in a login, or on the account page.
pub(crate) struct EnrolContext<'a> {
    pub login: Option<(&'a str, &'a Authenticated)>,
    pub csrf_token: &'a str,
    /// Several methods are allowed: the page offers to choose another.
    pub can_choose: bool,
}

impl EnrolContext<'_> {
    fn decision(&self) -> Option<&Decision> {
        self.login.map(|(_, auth)| &auth.decision)
    }

    fn required(&self) -> bool {
        matches!(
            self.decision(),
            Some(Decision::MustEnrol { .. } | Decision::MayEnrol { .. })
        )
    }

    fn can_skip(&self) -> bool {
        matches!(self.decision(), Some(Decision::MayEnrol { .. }))
    }
}

/// The TOTP enrolment page, for the login flow or the account page.
pub(crate) async fn render_enrolment(
    state: &AppState,
    status: StatusCode,
    factor_id: &str,
    context: &EnrolContext<'_>,
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
    state.templates.page(
        status,
        "enrol_totp.html",
        &EnrolPage {
            action: if context.login.is_some() {
                "/login/enrol"
            } else {
                "/account/security/totp/verify"
            },
            login_id: context.login.map(|(id, _)| id),
            csrf_token: context.csrf_token,
            company: &company.name,
            qr_svg: provisioning.qr_svg,
            secret: provisioning.secret_base32,
            required: context.required(),
            can_skip: context.can_skip(),
            can_choose: context.can_choose,
            error,
        },
    )
}

/// The stage of an email or SMS enrolment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Stage {
    /// Asking for the address or number.
    Destination,
    /// A code was sent; asking for it.
    Code,
    /// The code was confirmed; waiting for Finish.
    Verified,
}

#[derive(Serialize)]
struct OtpEnrolPage<'a> {
    method: &'static str,
    stage: Stage,
    /// Form actions: the destination, the code, "Send again", Finish.
    base: String,
    login_id: Option<&'a str>,
    csrf_token: &'a str,
    company: &'a str,
    /// The value the address or number field starts with.
    prefill: &'a str,
    destination: Option<String>,
    required: bool,
    can_skip: bool,
    can_choose: bool,
    notice: Option<&'a str>,
    error: Option<&'a str>,
}

/// The email or SMS enrolment page at `stage`, for the login flow or the account page.
#[allow(clippy::too_many_arguments)]
pub(crate) fn render_otp_enrolment(
    state: &AppState,
    status: StatusCode,
    method: Method,
    stage: Stage,
    factor: Option<&Factor>,
    user: &User,
    company: &Company,
    context: &EnrolContext<'_>,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    let prefill = match method {
        Method::Email => user.email.as_str(),
        _ => user.phone.as_deref().unwrap_or_default(),
    };
    state.templates.page(
        status,
        "enrol_otp.html",
        &OtpEnrolPage {
            method: method.as_str(),
            stage,
            base: match context.login {
                Some(_) => "/login/enrol".into(),
                None => format!("/account/security/{method}"),
            },
            login_id: context.login.map(|(id, _)| id),
            csrf_token: context.csrf_token,
            company: &company.name,
            prefill,
            destination: factor.and_then(|f| f.destination.as_deref()).map(otp::mask),
            required: context.required(),
            can_skip: context.can_skip(),
            can_choose: context.can_choose,
            notice,
            error,
        },
    )
}

#[derive(Serialize)]
struct ChoosePage<'a> {
    login_id: &'a str,
    csrf_token: &'a str,
    company: &'a str,
    choices: Vec<Choice>,
    required: bool,
    can_skip: bool,
    error: Option<&'a str>,
}

/// The methods a login's enrolment can offer: what the decision allows and this build supports.
fn enrol_methods(auth: &Authenticated) -> Vec<Method> {
    let supported = supported_methods();
    match &auth.decision {
        Decision::MustEnrol { methods } | Decision::MayEnrol { methods } => {
            methods.intersection(&supported).copied().collect()
        }
        _ => Vec::new(),
    }
}

fn method_name(method: Method) -> &'static str {
    match method {
        Method::Totp => "Authenticator app",
        Method::Email => "Codes by email",
        Method::Sms => "Codes by text message (SMS)",
        Method::Webauthn => "Security key",
    }
}

/// The page of an enrolment during login, at whatever point it is.
pub(crate) async fn enrol_page(
    state: &AppState,
    status: StatusCode,
    loaded: &Loaded,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    let LoginState::Enrol {
        auth,
        factor_id,
        method,
        otp_factor,
    } = &loaded.state
    else {
        return already_used(state);
    };
    let methods = enrol_methods(auth);
    let context = EnrolContext {
        login: Some((&loaded.stored.id, auth)),
        csrf_token: &loaded.stored.csrf_token,
        can_choose: methods.len() > 1,
    };
    let (user, company) = match user_and_company(state, &auth.user_id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    match in_use(*method, &methods) {
        None if methods.is_empty() => state.templates.error_page(
            StatusCode::FORBIDDEN,
            "No method available",
            "Your organization requires a second step, but none of its methods can be set up here. \
             Ask your administrator.",
        ),
        None => state.templates.page(
            status,
            "enrol_choose.html",
            &ChoosePage {
                login_id: &loaded.stored.id,
                csrf_token: &loaded.stored.csrf_token,
                company: &company.name,
                choices: methods
                    .iter()
                    .map(|m| Choice {
                        method: m.as_str(),
                        label: method_name(*m).into(),
                    })
                    .collect(),
                required: context.required(),
                can_skip: context.can_skip(),
                error,
            },
        ),
        Some(Method::Totp) => match factor_id {
            Some(factor_id) => render_enrolment(state, status, factor_id, &context, error).await,
            None => internal_error(state, "a TOTP enrolment has no pending factor"),
        },
        Some(method) => {
            let factor = match otp_factor {
                Some(id) => match state.store.get_factor(id).await {
                    Ok(Some(factor)) if factor.user_id == auth.user_id && factor.confirmed_at.is_none() => {
                        Some(factor)
                    }
                    Ok(_) => None,
                    Err(e) => return internal_error(state, e),
                },
                None => None,
            };
            let stage = match &factor {
                None => Stage::Destination,
                Some(f) if f.verified_at.is_some() => Stage::Verified,
                Some(_) => Stage::Code,
            };
            render_otp_enrolment(
                state,
                status,
                method,
                stage,
                factor.as_ref(),
                &user,
                &company,
                &context,
                notice,
                error,
            )
        }
    }
}

/// The method an enrolment is at, and its pending email or SMS factor (if a code was sent).
async fn enrolment_at(
    state: &AppState,
    loaded: &Loaded,
) -> Result<(Authenticated, Option<Method>, Option<String>, Option<Factor>), Response> {
    let LoginState::Enrol {
        auth,
        factor_id,
        method,
        otp_factor,
    } = &loaded.state
    else {
        return Err(already_used(state));
    };
    let chosen = in_use(*method, &enrol_methods(auth));
    let factor = match otp_factor {
        Some(id) => match state.store.get_factor(id).await {
            Ok(Some(factor)) if factor.user_id == auth.user_id && factor.confirmed_at.is_none() => {
                Some(factor)
            }
            Ok(_) => return Err(already_used(state)),
            Err(e) => return Err(internal_error(state, e)),
        },
        None => None,
    };
    Ok((auth.clone(), chosen, factor_id.clone(), factor))
}

/// `POST /login/enrol/method`: the user picks a method to set up (empty: back to the list).
pub async fn enrol_method_post(State(state): State<AppState>, jar: CookieJar, body: Bytes) -> Response {
    let (form, loaded) = match load_form(&state, &jar, &body).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let LoginState::Enrol { auth, .. } = &loaded.state else {
        return already_used(&state);
    };
    let method = match form.get("method").unwrap_or_default() {
        "" => None,
        m => match m.parse::<Method>() {
            Ok(m) if enrol_methods(auth).contains(&m) => Some(m),
            _ => {
                return enrol_page(
                    &state,
                    StatusCode::BAD_REQUEST,
                    &loaded,
                    None,
                    Some("Choose one of the methods listed."),
                )
                .await;
            }
        },
    };
    advance(&state, jar, &loaded, Event::ChoseMethod { method, sent: false }).await
}

/// `POST /login/enrol/destination`: the address (`email`) or number (`phone`) of a new
/// factor; a code is sent to it.
pub async fn enrol_destination_post(State(state): State<AppState>, jar: CookieJar, body: Bytes) -> Response {
    let (form, loaded) = match load_form(&state, &jar, &body).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let (auth, method, _, _) = match enrolment_at(&state, &loaded).await {
        Ok(at) => at,
        Err(response) => return response,
    };
    let Some(method) = method.filter(|m| sends_codes(*m)) else {
        return enrol_page(&state, StatusCode::BAD_REQUEST, &loaded, None, None).await;
    };
    let field = if method == Method::Email { "email" } else { "phone" };
    let destination = match otp::parse_destination(method, form.get(field).unwrap_or_default()) {
        Ok(destination) => destination,
        Err(problem) => {
            return enrol_page(&state, StatusCode::BAD_REQUEST, &loaded, None, Some(&problem)).await;
        }
    };
    let (user, company) = match user_and_company(&state, &auth.user_id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    match otp::start(&state, method, &destination, &user, &company, state.now()).await {
        Ok(factor) => advance(&state, jar, &loaded, Event::CodeSent { factor_id: factor.id }).await,
        Err(e) => match send_problem(&state, e) {
            Ok((status, problem)) => enrol_page(&state, status, &loaded, None, Some(&problem)).await,
            Err(response) => response,
        },
    }
}

/// `POST /login/enrol/resend`: a new code to the pending email or SMS factor.
pub async fn enrol_resend_post(State(state): State<AppState>, jar: CookieJar, body: Bytes) -> Response {
    let (_, loaded) = match load_form(&state, &jar, &body).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let (auth, _, _, factor) = match enrolment_at(&state, &loaded).await {
        Ok(at) => at,
        Err(response) => return response,
    };
    let Some(factor) = factor.filter(|f| f.verified_at.is_none()) else {
        return enrol_page(&state, StatusCode::BAD_REQUEST, &loaded, None, None).await;
    };
    let (user, company) = match user_and_company(&state, &auth.user_id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    match otp::send_code(&state, &factor, &user, &company, state.now()).await {
        Ok(()) => enrol_page(&state, StatusCode::OK, &loaded, Some(RESENT), None).await,
        Err(e) => match send_problem(&state, e) {
            Ok((status, problem)) => enrol_page(&state, status, &loaded, None, Some(&problem)).await,
            Err(response) => response,
        },
    }
}

pub async fn enrol_post(State(state): State<AppState>, jar: CookieJar, body: Bytes) -> Response {
    let (form, loaded) = match load_form(&state, &jar, &body).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let (auth, method, totp_factor, otp_factor) = match enrolment_at(&state, &loaded).await {
        Ok(at) => at,
        Err(response) => return response,
    };
    let now = state.now();
    if form.get("skip").is_some_and(|v| !v.is_empty()) {
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
        crate::audit::event("mfa.skipped", crate::audit::Actor::user(&auth.user_id))
            .subject(&auth.user_id)
            .tenant_of_user(&state.store, &auth.user_id)
            .await
            .record(&state.store, now)
            .await;
        return advance(&state, jar, &loaded, Event::Skipped).await;
    }
    let code = form.get("code").unwrap_or_default();
    match (method, totp_factor, otp_factor) {
        (Some(Method::Totp), Some(factor_id), _) => {
            let factor = match state.store.get_factor(&factor_id).await {
                Ok(Some(factor)) if factor.user_id == auth.user_id => factor,
                Ok(_) => return already_used(&state),
                Err(e) => return internal_error(&state, e),
            };
            let (user, company) = match user_and_company(&state, &auth.user_id).await {
                Ok(found) => found,
                Err(response) => return response,
            };
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
                        None,
                        Some("That code is not right. Check that your phone's clock is correct and enter the current code."),
                    )
                    .await
                }
                Err(ConfirmError::Gone) => already_used(&state),
                Err(ConfirmError::Mfa(e)) => internal_error(&state, e),
            }
        }
        (Some(m), _, Some(factor)) if sends_codes(m) && factor.verified_at.is_none() => {
            match otp::verify_pending(&state, &factor, code, now).await {
                Ok(Checked::Right) => see_other(&format!("/login?login={}", loaded.stored.id)),
                Ok(Checked::Wrong) => {
                    enrol_page(
                        &state,
                        StatusCode::OK,
                        &loaded,
                        None,
                        Some("That code is not right. Enter the 6-digit code we sent."),
                    )
                    .await
                }
                Ok(Checked::Spent) => enrol_page(&state, StatusCode::OK, &loaded, None, Some(SPENT)).await,
                Err(e) => internal_error(&state, e),
            }
        }
        _ => enrol_page(&state, StatusCode::BAD_REQUEST, &loaded, None, None).await,
    }
}

/// `POST /login/enrol/finish`: activates the email or SMS factor whose code was confirmed.
pub async fn enrol_finish_post(State(state): State<AppState>, jar: CookieJar, body: Bytes) -> Response {
    let (_, loaded) = match load_form(&state, &jar, &body).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let (auth, method, _, factor) = match enrolment_at(&state, &loaded).await {
        Ok(at) => at,
        Err(response) => return response,
    };
    let (Some(method), Some(factor)) = (method, factor) else {
        return enrol_page(&state, StatusCode::BAD_REQUEST, &loaded, None, None).await;
    };
    let (user, company) = match user_and_company(&state, &auth.user_id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    match service::finish_otp(&state, &factor, &user, &company, state.now()).await {
        Ok(codes) => {
            let sealed_codes = codes.map(|codes| service::seal_codes(&state, &loaded.stored.id, &codes));
            advance(
                &state,
                jar,
                &loaded,
                Event::Enrolled {
                    method: service::method_amr(method),
                    sealed_codes,
                },
            )
            .await
        }
        Err(ConfirmError::WrongCode) => {
            enrol_page(
                &state,
                StatusCode::BAD_REQUEST,
                &loaded,
                None,
                Some("Enter the code we sent before selecting Finish."),
            )
            .await
        }
        Err(ConfirmError::Gone) => already_used(&state),
        Err(ConfirmError::Mfa(e)) => internal_error(&state, e),
    }
}
