//! The challenge: a code from an enrolled factor or a recovery code, the choice between
//! enrolled factors, and sending a code again.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use serde::Serialize;

use super::{Choice, RESENT, in_use, send_problem, sends_codes, usable};
use crate::flow::throttle::Counters;
use crate::flow::{self, Authenticated, Event, LoginState};
use crate::http::authorize::redirect_error;
use crate::http::login::{
    Loaded, advance, advance_with, already_used, check_form, load_form, persist, read_form, user_and_company,
};
use crate::http::pages::internal_error;
use crate::mfa::otp::{self, SendError, SendProblem};
use crate::mfa::service;
use crate::model::{Company, User};
use crate::policy::Method;
use crate::policy::load::Inputs;
use crate::protocol::errors::ErrorCode;
use crate::state::AppState;
use crate::storage::Factor;

#[derive(Serialize)]
struct ChallengePage<'a> {
    client_name: &'a str,
    login_id: &'a str,
    csrf_token: &'a str,
    /// The chosen method (`totp`, `email`, `sms`), or none: the user picks one.
    chosen: Option<&'static str>,
    /// Where the code went, masked.
    destination: Option<String>,
    /// The other enrolled methods the user can switch to.
    others: Vec<Choice>,
    can_resend: bool,
    notice: Option<&'a str>,
    error: Option<&'a str>,
}

/// The facts a challenge page needs: the user, their company and their usable factors.
async fn challenge_facts(
    state: &AppState,
    auth: &Authenticated,
) -> Result<(User, Company, Vec<(Factor, Method)>), Response> {
    let (user, company) = user_and_company(state, &auth.user_id).await?;
    let inputs = Inputs::load(&state.store, &user)
        .await
        .map_err(|e| internal_error(state, e))?;
    Ok((user, company, usable(&inputs)))
}

/// Sends a code to the user's factor of `method`. `Ok(None)`: sent (or one was sent a
/// moment ago and still works); `Ok(Some(..))`: the user's words for why not.
async fn send_challenge_code(
    state: &AppState,
    factors: &[(Factor, Method)],
    method: Method,
    user: &User,
    company: &Company,
) -> Result<Option<(StatusCode, String)>, Response> {
    let Some((factor, _)) = factors.iter().find(|(_, m)| *m == method) else {
        return Ok(Some((
            StatusCode::BAD_REQUEST,
            "That method is not available. Choose another one.".into(),
        )));
    };
    match otp::send_code(state, factor, user, company, state.now()).await {
        Ok(()) | Err(SendError::Problem(SendProblem::Cooldown(_))) => Ok(None),
        Err(e) => send_problem(state, e).map(Some),
    }
}

/// The challenge page. When the method in use sends codes and none was sent for this
/// login yet, sends one first (the page is where the user waits for it).
pub(crate) async fn challenge_page(
    state: &AppState,
    status: StatusCode,
    loaded: &Loaded,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    let LoginState::SecondFactor {
        auth, method, sent, ..
    } = &loaded.state
    else {
        return already_used(state);
    };
    let (user, company, factors) = match challenge_facts(state, auth).await {
        Ok(facts) => facts,
        Err(response) => return response,
    };
    let available: Vec<Method> = factors.iter().map(|(_, m)| *m).collect();
    let mut chosen = in_use(*method, &available);
    let mut status = status;
    let mut error = error.map(str::to_owned);
    let mut sent = *sent;
    if let Some(m) = chosen
        && sends_codes(m)
        && !sent
    {
        match send_challenge_code(state, &factors, m, &user, &company).await {
            Ok(None) => {
                sent = true;
                let next = flow::step(
                    &loaded.state,
                    Event::ChoseMethod {
                        method: Some(m),
                        sent: true,
                    },
                );
                // A page shown after another step already moved the login on: the code
                // went out all the same, and the next page load knows it by the cooldown.
                if let Ok(next) = next {
                    let _ = persist(state, loaded, &next).await;
                }
            }
            Ok(Some((problem_status, problem))) => {
                status = problem_status;
                error = Some(problem);
                // The user picks another method (or uses a recovery code).
                if factors.len() > 1 {
                    chosen = None;
                }
            }
            Err(response) => return response,
        }
    }
    let destination = chosen.and_then(|m| {
        factors
            .iter()
            .find(|(_, f)| *f == m)
            .and_then(|(factor, _)| factor.destination.as_deref().map(otp::mask))
    });
    let others = factors
        .iter()
        .filter(|(_, m)| Some(*m) != chosen)
        .map(|(factor, m)| Choice {
            method: m.as_str(),
            label: otp::describe(*m, factor.destination.as_deref()),
        })
        .collect();
    state.templates.page(
        status,
        "challenge.html",
        &ChallengePage {
            client_name: &loaded.client.name,
            login_id: &loaded.stored.id,
            csrf_token: &loaded.stored.csrf_token,
            chosen: chosen.map(Method::as_str),
            destination,
            others,
            can_resend: chosen.is_some_and(sends_codes) && sent,
            notice,
            error: error.as_deref(),
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
    let (form, login_id) = match read_form(&state, &body) {
        Ok(read) => read,
        Err(response) => return response,
    };
    // The login, and the user it names with their factors and count of wrong codes: one
    // statement. Nothing read is used before the login and the form are checked.
    let mut facts = match service::challenge_facts(&state, &login_id).await {
        Ok(facts) => facts,
        Err(e) => return internal_error(&state, e),
    };
    let (form, loaded) = match check_form(&state, &jar, form, facts.login.take()).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let LoginState::SecondFactor { auth, .. } = &loaded.state else {
        return already_used(&state);
    };
    // The facts are of the user in the login's user column, which every move writes from
    // its state's (`move_of`).
    if loaded.stored.user_id.as_deref() != Some(auth.user_id.as_str()) {
        return internal_error(
            &state,
            format!("login {} names a user other than its state's", loaded.stored.id),
        );
    }
    let Some((user, context, factors)) = facts.user.filter(|(user, ..)| user.user.active) else {
        return already_used(&state);
    };
    let user = user.user;
    let now = state.now();
    let failures = Counters::from(facts.throttles);
    if let Some(until) = failures.locked_until(now) {
        return challenge_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            &loaded,
            None,
            Some(&try_again_in(until, now)),
        )
        .await;
    }
    let inputs = Inputs::new(context, factors);
    let code = form.get("code").unwrap_or_default();
    match service::check_code(&state, &inputs, &user, code, now).await {
        Ok(Some(verified)) => {
            if let Err(e) = service::clear_failures(&state, &user.id, &failures).await {
                tracing::warn!(error = %e, "clearing an MFA throttle failed");
            }
            let passed = Event::SecondFactorPassed {
                method: verified.amr(),
            };
            advance_with(&state, jar, &loaded, passed, Some((&user, &inputs))).await
        }
        Ok(None) => {
            if let Err(e) = service::record_failure(&state, &user.id, now).await {
                return internal_error(&state, e);
            }
            crate::audit::event("login.code_failed", crate::audit::Actor::user(&user.id))
                .failed()
                .subject(&user.id)
                .tenant(Some(&user.company_id), None)
                .detail(serde_json::json!({ "client_id": loaded.client.id }))
                .record(&state.store, now)
                .await;
            if let Ok(Some(until)) = service::locked_until(&state, &user.id, now).await {
                crate::audit::event("mfa.locked", crate::audit::Actor::system())
                    .failed()
                    .subject(&user.id)
                    .tenant(Some(&user.company_id), None)
                    .detail(serde_json::json!({ "until": until }))
                    .record(&state.store, now)
                    .await;
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
                    None,
                    Some(
                        "That code is not right, or it expired or was already used. Enter the current code.",
                    ),
                )
                .await,
            }
        }
        Err(e) => internal_error(&state, e),
    }
}

/// `POST /login/challenge/method`: the user picks one of their factors (`method`).
pub async fn challenge_method_post(State(state): State<AppState>, jar: CookieJar, body: Bytes) -> Response {
    let (form, loaded) = match load_form(&state, &jar, &body).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let LoginState::SecondFactor { auth, .. } = &loaded.state else {
        return already_used(&state);
    };
    let (user, company, factors) = match challenge_facts(&state, auth).await {
        Ok(facts) => facts,
        Err(response) => return response,
    };
    let chosen = form
        .get("method")
        .and_then(|m| m.parse::<Method>().ok())
        .filter(|m| factors.iter().any(|(_, f)| f == m));
    let Some(method) = chosen else {
        return challenge_page(
            &state,
            StatusCode::BAD_REQUEST,
            &loaded,
            None,
            Some("Choose one of the methods listed."),
        )
        .await;
    };
    if sends_codes(method) {
        match send_challenge_code(&state, &factors, method, &user, &company).await {
            Ok(None) => {}
            Ok(Some((status, problem))) => {
                return challenge_page(&state, status, &loaded, None, Some(&problem)).await;
            }
            Err(response) => return response,
        }
    }
    advance(
        &state,
        jar,
        &loaded,
        Event::ChoseMethod {
            method: Some(method),
            sent: sends_codes(method),
        },
    )
    .await
}

/// `POST /login/challenge/resend`: "Send again", after the cooldown.
pub async fn challenge_resend_post(State(state): State<AppState>, jar: CookieJar, body: Bytes) -> Response {
    let (_, loaded) = match load_form(&state, &jar, &body).await {
        Ok(ok) => ok,
        Err(response) => return response,
    };
    let LoginState::SecondFactor { auth, method, .. } = &loaded.state else {
        return already_used(&state);
    };
    let (user, company, factors) = match challenge_facts(&state, auth).await {
        Ok(facts) => facts,
        Err(response) => return response,
    };
    let available: Vec<Method> = factors.iter().map(|(_, m)| *m).collect();
    let Some(method) = method
        .or_else(|| in_use(None, &available))
        .filter(|m| sends_codes(*m))
    else {
        return challenge_page(&state, StatusCode::BAD_REQUEST, &loaded, None, None).await;
    };
    let Some((factor, _)) = factors.iter().find(|(_, m)| *m == method) else {
        return challenge_page(&state, StatusCode::BAD_REQUEST, &loaded, None, None).await;
    };
    match otp::send_code(&state, factor, &user, &company, state.now()).await {
        Ok(()) => challenge_page(&state, StatusCode::OK, &loaded, Some(RESENT), None).await,
        Err(e) => match send_problem(&state, e) {
            Ok((status, problem)) => challenge_page(&state, status, &loaded, None, Some(&problem)).await,
            Err(response) => response,
        },
    }
}
