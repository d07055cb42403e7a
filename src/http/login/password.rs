//! `POST /login`: the password step.

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use serde::Serialize;
use serde_json::json;

use super::{Loaded, advance_with, already_used, check_form, decided_event, read_form};
use crate::audit::{self, Actor};
use crate::flow::{Authenticated, LoginState, throttle};
use crate::http::authorize::redirect_error;
use crate::http::client_ip::client_ip;
use crate::http::pages::internal_error;
use crate::model::Username;
use crate::password::Verification;
use crate::policy::Decision;
use crate::policy::load::Inputs;
use crate::protocol::errors::ErrorCode;
use crate::state::AppState;
use crate::storage::LoginUser;
use crate::tokens::claims::ACR_PASSWORD;

#[derive(Serialize)]
struct LoginPage<'a> {
    client_name: &'a str,
    login_id: &'a str,
    csrf_token: &'a str,
    username: &'a str,
    error: Option<&'a str>,
}

pub(super) fn page(
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

pub async fn login_post(
    State(state): State<AppState>,
    peer: ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    body: Bytes,
) -> Response {
    let (mut form, login_id) = match read_form(&state, &body) {
        Ok(read) => read,
        Err(response) => return response,
    };
    let typed_name = form.take("username").unwrap_or_default();
    let password = form.take("password").unwrap_or_default();
    let now = state.now();

    // Throttle by login name (whether or not it exists) and by client address.
    let username = Username::parse(&typed_name);
    let account = throttle::account_key(username.as_ref().map(Username::as_str).unwrap_or("(invalid)"));
    let address =
        client_ip(state.config.trust_forwarded_for, Some(&peer), &headers).map(throttle::address_key);
    // The login, the counters, the user, their policy context and factors: one statement, the
    // same for a name that exists and one that does not. Nothing read is used before the
    // login and the form are checked.
    let name = username.as_ref().ok().map(Username::as_str);
    let user = LoginUser::Name {
        name,
        first: &account,
        second: address.as_deref(),
    };
    let mut facts = match state.store.login_facts(&login_id, user).await {
        Ok(facts) => facts,
        Err(e) => return internal_error(&state, e),
    };
    let (_, loaded) = match check_form(&state, &jar, form, facts.login.take()).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    if loaded.state != LoginState::Password {
        return already_used(&state);
    }
    let counters = throttle::Counters::from(facts.throttles);
    if let Some(until) = counters.locked_until(now) {
        let minutes = ((until - now) + 59) / 60;
        let message = format!(
            "Too many failed sign-in attempts. Try again in {minutes} minute{}.",
            if minutes == 1 { "" } else { "s" }
        );
        return page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            &loaded,
            &typed_name,
            Some(&message),
        );
    }

    let user = facts
        .user
        .map(|(user, context, factors)| (user, Inputs::new(context, factors)));
    let stored_hash = user.as_ref().and_then(|(u, _)| u.password_hash.clone());
    let verification = match state.passwords.verify(password, stored_hash).await {
        Ok(v) => v,
        Err(e) => return internal_error(&state, e),
    };
    let (user, inputs) = match (verification, user) {
        (Verification::Valid { rehash }, Some((user, inputs))) if user.user.active => {
            if let Some(hash) = rehash
                && let Err(e) = state.store.set_password_hash(&user.user.id, &hash, now).await
            {
                tracing::warn!(error = %e, "storing an upgraded password hash failed");
            }
            (user, inputs)
        }
        (_, user) => {
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
            // Filed under the user's company and reseller when the name exists.
            let known = user.as_ref().map(|(u, _)| {
                (
                    u.user.id.as_str(),
                    u.user.company_id.as_str(),
                    u.reseller_id.as_str(),
                )
            });
            let name: String = typed_name.chars().take(128).collect();
            let about = |event: audit::Event| match known {
                Some((id, company, reseller)) => event.subject(id).tenant(Some(company), Some(reseller)),
                None => event,
            };
            let actor = known.map_or_else(Actor::anonymous, |(id, _, _)| Actor::user(id));
            about(audit::event("login.password_failed", actor).failed())
                .detail(json!({ "username": name, "client_id": loaded.client.id }))
                .record(&state.store, now)
                .await;
            if let Ok(Some(until)) =
                throttle::locked_until(&state.store, &account, address.as_deref(), now).await
            {
                about(audit::event("login.locked", Actor::system()).failed())
                    .detail(json!({ "username": name, "until": until }))
                    .record(&state.store, now)
                    .await;
            }
            return page(
                &state,
                StatusCode::OK,
                &loaded,
                &typed_name,
                Some("The user name or password is incorrect."),
            );
        }
    };
    if let Err(e) = throttle::clear(&state.store, &counters, &account).await {
        tracing::warn!(error = %e, "clearing a login throttle failed");
    }
    if !loaded.client.serves_company(&user.user.company_id) {
        return redirect_error(
            &state,
            &loaded.request,
            ErrorCode::AccessDenied,
            "this application is not available to the user's company",
        );
    }
    let auth = Authenticated {
        user_id: user.user.id.clone(),
        auth_time: now,
        amr: vec!["pwd".into()],
        acr: ACR_PASSWORD.into(),
        session_id: None,
        decision: Decision::Pass,
        skipped: false,
        needs_consent: false,
    };
    match decided_event(&state, &loaded.client, &loaded.request, &user.user, auth, inputs).await {
        Ok((event, inputs)) => advance_with(&state, jar, &loaded, event, Some((&user.user, &inputs))).await,
        Err(response) => response,
    }
}
