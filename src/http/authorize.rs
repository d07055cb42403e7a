//! `GET|POST /authorize`: validates the request, then either answers at once from the
//! browser session (single sign-on, `prompt=none`) or starts a login transaction.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;

use super::cookies;
use super::login::{authenticated_event, finish_login, resumed, start_login};
use super::pages::{internal_error, see_other};
use crate::flow::{self, Event, LoginState};
use crate::model::Client;
use crate::policy::{self, Decision};
use crate::protocol::authorize::{
    AuthRequest, AuthorizeError, check_client_and_redirect, check_request, error_redirect,
};
use crate::protocol::errors::{ErrorCode, OAuthError};
use crate::protocol::params::Params;
use crate::state::AppState;
use crate::storage::Session;

pub async fn authorize_get(
    State(state): State<AppState>,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Response {
    authorize(state, jar, query.unwrap_or_default().as_bytes()).await
}

pub async fn authorize_post(State(state): State<AppState>, jar: CookieJar, body: Bytes) -> Response {
    authorize(state, jar, &body).await
}

async fn authorize(state: AppState, jar: CookieJar, raw: &[u8]) -> Response {
    let params = Params::parse_lenient(raw);
    let client = match params.as_ref().ok().and_then(|p| p.params.get("client_id")) {
        Some(id) => match state.client(id).await {
            Ok(client) => client,
            Err(e) => return internal_error(&state, e),
        },
        None => None,
    };
    let checked =
        check_client_and_redirect(&params, client.as_ref()).and_then(|(params, client, redirect_uri)| {
            check_request(params, client, redirect_uri).map(|r| (client, r))
        });
    let (client, request) = match checked {
        Ok(ok) => ok,
        Err(error) => return authorize_error(&state, error),
    };
    let now = state.now();
    let session = match current_session(&state, &jar).await {
        Ok(session) => session,
        Err(e) => return internal_error(&state, e),
    };
    let usable = session.filter(|s| {
        !request.prompt.login && request.max_age.is_none_or(|max_age| now - s.auth_time <= max_age)
    });
    let Some(session) = usable else {
        if request.prompt.none {
            return redirect_error(
                &state,
                &request,
                ErrorCode::LoginRequired,
                "the user is not signed in",
            );
        }
        return start_login(&state, jar, client, &request, LoginState::Password, None).await;
    };
    // Single sign-on: the browser session stands in for the password.
    let user = match state.store.get_user_with_tenancy(&session.user_id).await {
        Ok(Some(user)) if user.user.active => user,
        Ok(_) => {
            if request.prompt.none {
                return redirect_error(
                    &state,
                    &request,
                    ErrorCode::LoginRequired,
                    "the user is not signed in",
                );
            }
            return start_login(&state, jar, client, &request, LoginState::Password, None).await;
        }
        Err(e) => return internal_error(&state, e),
    };
    if !client.serves_company(&user.user.company_id) {
        return redirect_error(
            &state,
            &request,
            ErrorCode::AccessDenied,
            "this application is not available to the user's company",
        );
    }
    let resumed = resumed(&session);
    let (auth, pending_factor, inputs) =
        match authenticated_event(&state, client, &request, &user.user, resumed).await {
            Ok((Event::Authenticated { auth, pending_factor }, inputs)) => (auth, pending_factor, inputs),
            Ok(_) => return internal_error(&state, "unexpected login event"),
            Err(response) => return response,
        };
    // What the session already proves may be enough (single sign-on); if not, the user
    // is asked only for what is missing (step-up, enrolment, consent).
    let proven = policy::satisfied(&auth.decision, &auth.evidence());
    if proven && !auth.needs_consent {
        return finish_login(&state, jar, &request, auth, None, &inputs).await;
    }
    if request.prompt.none {
        return match (proven, &auth.decision) {
            (_, Decision::Refuse { reason }) => redirect_error(
                &state,
                &request,
                ErrorCode::UnmetAuthenticationRequirements,
                reason.describe(),
            ),
            (true, _) => redirect_error(
                &state,
                &request,
                ErrorCode::ConsentRequired,
                "the user has not allowed this application the requested scopes",
            ),
            (false, _) => redirect_error(
                &state,
                &request,
                ErrorCode::InteractionRequired,
                "the user must complete multi-factor authentication",
            ),
        };
    }
    let initial = if proven {
        LoginState::Consent { auth }
    } else {
        flow::route(auth, pending_factor)
    };
    start_login(&state, jar, client, &request, initial, None).await
}

fn authorize_error(state: &AppState, error: AuthorizeError) -> Response {
    match error {
        AuthorizeError::Page { title, message } => {
            state
                .templates
                .error_page(StatusCode::BAD_REQUEST, title, &message)
        }
        AuthorizeError::Redirect {
            redirect_uri,
            state: client_state,
            error,
        } => match error_redirect(&redirect_uri, client_state.as_deref(), &error, &state.issuer) {
            Some(url) => see_other(url.as_str()),
            None => internal_error(state, "a registered redirect URI did not parse"),
        },
    }
}

/// Redirects an error to the client of a validated request.
pub fn redirect_error(
    state: &AppState,
    request: &AuthRequest,
    code: ErrorCode,
    description: impl Into<std::borrow::Cow<'static, str>>,
) -> Response {
    authorize_error(
        state,
        AuthorizeError::Redirect {
            redirect_uri: request.redirect_uri.clone(),
            state: request.state.clone(),
            error: OAuthError::new(code, description),
        },
    )
}

/// The live browser session, if the browser presents one.
pub async fn current_session(
    state: &AppState,
    jar: &CookieJar,
) -> Result<Option<Session>, crate::storage::StoreError> {
    match cookies::session_secret(state, jar) {
        Some(secret) => {
            state
                .store
                .find_live_session(&crate::crypto::token_hash(&secret), state.now())
                .await
        }
        None => Ok(None),
    }
}

/// Third-party clients need the user's consent for the scopes they ask for; first-party
/// clients never do.
pub async fn needs_consent(
    state: &AppState,
    client: &Client,
    request: &AuthRequest,
    user_id: &str,
) -> Result<bool, crate::storage::StoreError> {
    if client.first_party {
        return Ok(false);
    }
    if request.prompt.consent {
        return Ok(true);
    }
    let granted = state.store.get_consent(user_id, &client.id).await?;
    Ok(
        match granted.and_then(|g| crate::model::ScopeSet::parse(&g).ok()) {
            Some(granted) => !request.scope.is_subset(&granted),
            None => true,
        },
    )
}
