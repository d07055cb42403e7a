//! Client authentication at the token, revocation and introspection endpoints:
//! `client_secret_basic`, `client_secret_post`, and `none` for public clients
//! (RFC 6749 section 2.3.1, OIDC Core section 9).

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::errors::OAuthError;
use super::params::Params;
use crate::crypto::{constant_time_eq, token_hash};
use crate::model::Client;
use crate::state::AppState;

/// How the client presented itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    Basic {
        client_id: String,
        secret: String,
    },
    Post {
        client_id: String,
        secret: String,
    },
    /// A public client names itself and proves nothing (PKCE does the proving).
    Public {
        client_id: String,
    },
}

/// Reads the client's credentials from the `Authorization` header or the form, and takes
/// them out of `params`. Using two methods at once is an error (RFC 6749 section 2.3).
pub fn presented(headers: &HeaderMap, params: &mut Params) -> Result<Presented, OAuthError> {
    let body_id = params.take("client_id");
    let body_secret = params.take("client_secret");
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let (client_id, secret) = parse_basic(value.to_str().unwrap_or_default()).ok_or_else(|| {
            OAuthError::invalid_client("the Authorization header is not valid HTTP Basic credentials")
        })?;
        if body_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not two",
            ));
        }
        if body_id.as_ref().is_some_and(|id| *id != client_id) {
            return Err(OAuthError::invalid_request(
                "client_id does not match the Authorization header",
            ));
        }
        return Ok(Presented::Basic { client_id, secret });
    }
    match (body_id, body_secret) {
        (Some(client_id), Some(secret)) => Ok(Presented::Post { client_id, secret }),
        (Some(client_id), None) => Ok(Presented::Public { client_id }),
        (None, _) => Err(OAuthError::invalid_client("client authentication is required")),
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`.
fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let id = urlencoding_decode(id)?;
    let secret = urlencoding_decode(secret)?;
    (!id.is_empty()).then_some((id, secret))
}

fn urlencoding_decode(value: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&format!("v={value}")).ok()?;
    pairs.into_iter().next().map(|(_, v)| v)
}

/// The client the credentials prove, or `invalid_client`.
pub async fn authenticate(state: &AppState, presented: &Presented) -> Result<Client, OAuthError> {
    let (client_id, secret) = match presented {
        Presented::Basic { client_id, secret } | Presented::Post { client_id, secret } => {
            (client_id, Some(secret))
        }
        Presented::Public { client_id } => (client_id, None),
    };
    let client = state
        .client(client_id)
        .await
        .map_err(|e| OAuthError::server_error(&e))?
        .ok_or_else(|| OAuthError::invalid_client("client authentication failed"))?;
    match (secret, &client.secret_hash) {
        (Some(secret), Some(hash)) if constant_time_eq(token_hash(secret).as_bytes(), hash.as_bytes()) => {
            Ok(client)
        }
        (None, None) if client.public => Ok(client),
        (None, Some(_)) => Err(OAuthError::invalid_client(
            "this client is confidential and must authenticate",
        )),
        _ => Err(OAuthError::invalid_client("client authentication failed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        assert_eq!(
            parse_basic(&format!("Basic {}", STANDARD.encode("my%20app:s%3Acret"))),
            Some(("my app".into(), "s:cret".into()))
        );
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }

    #[test]
    fn two_methods_at_once_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {}", STANDARD.encode("a:b")).parse().unwrap(),
        );
        let mut params = Params::parse(b"client_id=a&client_secret=b").unwrap();
        assert_eq!(
            presented(&headers, &mut params).unwrap_err().code,
            super::super::errors::ErrorCode::InvalidRequest
        );
    }
}
