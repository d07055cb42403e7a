//! The JSON endpoints of OAuth 2.0 and OpenID Connect: token, userinfo, introspection,
//! revocation. Each forwards to `crate::protocol`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::crypto::token_hash;
use crate::model::ScopeSet;
use crate::protocol::access_token::{self, TokenProblem};
use crate::protocol::client_auth::{Presented, authenticate, presented};
use crate::protocol::errors::{BearerError, OAuthError};
use crate::protocol::issue::{profile_claims, user_tenancy};
use crate::protocol::params::Params;
use crate::state::AppState;

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

fn require_form(headers: &HeaderMap) -> Result<(), OAuthError> {
    if is_form(headers) {
        Ok(())
    } else {
        Err(OAuthError::invalid_request(
            "the request body must be application/x-www-form-urlencoded",
        ))
    }
}

/// JSON that must never be cached (RFC 6749 section 5.1).
fn no_store<T: Serialize>(body: &T) -> Response {
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

pub async fn token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = require_form(&headers) {
        return e.into_response();
    }
    match crate::protocol::token::token(&state, &headers, &body).await {
        Ok(tokens) => no_store(&tokens),
        Err(error) => error.into_response(),
    }
}

/// `GET|POST /userinfo` (OIDC Core section 5.3) with a bearer access token.
pub async fn userinfo(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match userinfo_claims(&state, &method, &headers, &body).await {
        Ok(claims) => no_store(&claims),
        Err(error) => error.into_response(),
    }
}

async fn userinfo_claims(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, BearerError> {
    let from_header = match headers.get(header::AUTHORIZATION) {
        Some(value) => {
            let value = value
                .to_str()
                .map_err(|_| BearerError::invalid_request("malformed Authorization header"))?;
            match value.split_once(' ') {
                Some((scheme, token))
                    if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
                {
                    Some(token.trim().to_owned())
                }
                _ => {
                    return Err(BearerError::invalid_request(
                        "the Authorization header must be `Bearer <token>`",
                    ));
                }
            }
        }
        None => None,
    };
    // RFC 6750 section 2.2: a form body may carry the token instead.
    let from_body = if *method == Method::POST && is_form(headers) {
        Params::parse(body)
            .map_err(|_| BearerError::invalid_request("the form body is malformed"))?
            .take("access_token")
    } else {
        None
    };
    let token = match (from_header, from_body) {
        (Some(_), Some(_)) => {
            return Err(BearerError::invalid_request(
                "send the access token once, not twice",
            ));
        }
        (Some(token), None) | (None, Some(token)) => token,
        (None, None) => return Err(BearerError::missing()),
    };
    let claims = access_token::validate(state, &token)
        .await
        .map_err(|problem| match problem {
            TokenProblem::Expired => BearerError::invalid_token("the access token has expired"),
            TokenProblem::Revoked => BearerError::invalid_token("the access token was revoked"),
            _ => BearerError::invalid_token("the access token is invalid"),
        })?;
    let scope = ScopeSet::parse(&claims.scope).unwrap_or_default();
    if claims.gid.is_none() || !scope.contains("openid") {
        return Err(BearerError::insufficient_scope(
            "userinfo needs a user's token with the openid scope",
        ));
    }
    let user = state
        .store
        .get_user_with_tenancy(&claims.sub)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "loading the userinfo subject failed");
            BearerError::invalid_token("the access token is invalid")
        })?
        .filter(|u| u.user.active)
        .ok_or_else(|| BearerError::invalid_token("the user no longer exists"))?;
    let mut body = Map::new();
    body.insert("sub".into(), json!(user.user.id));
    merge(&mut body, &profile_claims(&user.user, &scope));
    merge(&mut body, &user_tenancy(&user));
    Ok(Value::Object(body))
}

fn merge<T: Serialize>(into: &mut Map<String, Value>, value: &T) {
    if let Ok(Value::Object(map)) = serde_json::to_value(value) {
        into.extend(map);
    }
}

/// Reads the form and authenticates the client, for introspection and revocation.
async fn authenticated_form(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(crate::model::Client, Presented, Params), OAuthError> {
    require_form(headers)?;
    let mut params = Params::parse(body).map_err(|e| OAuthError::invalid_request(e.to_string()))?;
    let presented = presented(headers, &mut params)?;
    let client = authenticate(state, &presented).await?;
    Ok((client, presented, params))
}

/// `POST /introspect` (RFC 7662). A client may introspect the tokens issued to it.
pub async fn introspect(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (client, presented, mut params) = match authenticated_form(&state, &headers, &body).await {
        Ok(ok) => ok,
        Err(e) => return e.into_response(),
    };
    if matches!(presented, Presented::Public { .. }) {
        return OAuthError::invalid_client("introspection requires a confidential client").into_response();
    }
    let Some(token) = params.take("token") else {
        return OAuthError::invalid_request("token is required").into_response();
    };
    let inactive = || no_store(&json!({ "active": false }));
    let now = state.now();
    if let Ok(claims) = access_token::validate(&state, &token).await {
        if claims.client_id != client.id {
            return inactive();
        }
        let mut body = Map::new();
        body.insert("active".into(), json!(true));
        body.insert("token_type".into(), json!("Bearer"));
        body.insert("scope".into(), json!(claims.scope));
        body.insert("client_id".into(), json!(claims.client_id));
        body.insert("sub".into(), json!(claims.sub));
        body.insert("aud".into(), json!(claims.aud));
        body.insert("iss".into(), json!(claims.iss));
        body.insert("exp".into(), json!(claims.exp));
        body.insert("iat".into(), json!(claims.iat));
        body.insert("jti".into(), json!(claims.jti));
        if let Some(auth_time) = claims.auth_time {
            body.insert("auth_time".into(), json!(auth_time));
        }
        if let Some(acr) = &claims.acr {
            body.insert("acr".into(), json!(acr));
        }
        if let Some(amr) = &claims.amr {
            body.insert("amr".into(), json!(amr));
        }
        if claims.gid.is_some()
            && let Ok(Some(user)) = state.store.get_user(&claims.sub).await
        {
            body.insert("username".into(), json!(user.username));
        }
        merge(&mut body, &claims.tenancy);
        return no_store(&Value::Object(body));
    }
    match state.store.grant_of_refresh_token(&token_hash(&token), now).await {
        Ok(Some((grant, expires_at))) if grant.client_id == client.id => {
            let tenancy = match state.store.get_user_with_tenancy(&grant.user_id).await {
                Ok(Some(user)) if user.user.active => user_tenancy(&user),
                Ok(_) => return inactive(),
                Err(e) => return OAuthError::server_error(&e).into_response(),
            };
            let mut body = Map::new();
            body.insert("active".into(), json!(true));
            body.insert("token_type".into(), json!("refresh_token"));
            body.insert("scope".into(), json!(grant.scope));
            body.insert("client_id".into(), json!(grant.client_id));
            body.insert("sub".into(), json!(grant.user_id));
            body.insert("iss".into(), json!(state.issuer));
            body.insert("exp".into(), json!(expires_at));
            body.insert("iat".into(), json!(grant.created_at));
            merge(&mut body, &tenancy);
            no_store(&Value::Object(body))
        }
        Ok(_) => inactive(),
        Err(e) => OAuthError::server_error(&e).into_response(),
    }
}

/// `POST /revoke` (RFC 7009). Unknown or invalid tokens are not an error.
pub async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (client, _, mut params) = match authenticated_form(&state, &headers, &body).await {
        Ok(ok) => ok,
        Err(e) => return e.into_response(),
    };
    let Some(token) = params.take("token") else {
        return OAuthError::invalid_request("token is required").into_response();
    };
    let now = state.now();
    let not_yours = || OAuthError::invalid_request("the token was not issued to this client").into_response();
    match state.store.grant_of_refresh_token(&token_hash(&token), now).await {
        Ok(Some((grant, _))) => {
            if grant.client_id != client.id {
                return not_yours();
            }
            // RFC 7009 section 2.1: revoking a refresh token revokes the access tokens of
            // the same grant too.
            if let Err(e) = state.store.revoke_grant(&grant.id, now).await {
                return OAuthError::server_error(&e).into_response();
            }
            crate::audit::event("token.revoked", crate::audit::Actor::client(&client.id))
                .subject(&grant.user_id)
                .tenant_of_user(&state.store, &grant.user_id)
                .await
                .detail(serde_json::json!({ "token": "refresh_token", "grant": grant.id }))
                .record(&state.store, now)
                .await;
            return revoked();
        }
        Ok(None) => {}
        Err(e) => return OAuthError::server_error(&e).into_response(),
    }
    if let Ok(claims) = access_token::decode(&state, &token).await {
        if claims.client_id != client.id {
            return not_yours();
        }
        if let Err(e) = state.store.revoke_jti(&claims.jti, claims.exp).await {
            return OAuthError::server_error(&e).into_response();
        }
        crate::audit::event("token.revoked", crate::audit::Actor::client(&client.id))
            .subject(&claims.sub)
            .tenant(
                claims.tenancy.company_id.as_deref(),
                claims.tenancy.reseller_id.as_deref(),
            )
            .detail(serde_json::json!({ "token": "access_token", "jti": claims.jti }))
            .record(&state.store, now)
            .await;
    }
    revoked()
}

fn revoked() -> Response {
    (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")]).into_response()
}
