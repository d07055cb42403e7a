//! OAuth 2.0 / OpenID Connect error codes and the responses that carry them.

use std::borrow::Cow;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::storage::StoreError;

/// Error codes from RFC 6749 (4.1.2.1, 5.2), RFC 7009, OIDC Core 3.1.2.6 and RFC 6750.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    UnsupportedTokenType,
    InvalidScope,
    AccessDenied,
    ServerError,
    TemporarilyUnavailable,
    LoginRequired,
    ConsentRequired,
    InteractionRequired,
    RequestNotSupported,
    RequestUriNotSupported,
    InvalidToken,
    InsufficientScope,
    /// OpenID Connect EAP ACR Values 1.0: the requested `acr_values` cannot be met.
    UnmetAuthenticationRequirements,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::InteractionRequired => "interaction_required",
            ErrorCode::RequestNotSupported => "request_not_supported",
            ErrorCode::RequestUriNotSupported => "request_uri_not_supported",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::UnmetAuthenticationRequirements => "unmet_authentication_requirements",
        }
    }
}

/// An error answered as JSON by the token, revocation and introspection endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: Cow<'static, str>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    pub fn invalid_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidClient, description)
    }

    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    /// A failure of the database: `temporarily_unavailable` (503) when it did not answer in
    /// time ([`StoreError::is_unavailable`]), so that the client may try again, and
    /// [`OAuthError::server_error`] otherwise.
    pub fn store(cause: &StoreError) -> Self {
        if cause.is_unavailable() {
            tracing::warn!(error = %cause, "the database did not answer in time");
            return Self::new(
                ErrorCode::TemporarilyUnavailable,
                "the server is busy; try again later",
            );
        }
        Self::server_error(cause)
    }

    /// A failure on our side. The cause is logged here; the client only learns that it
    /// was not its fault.
    pub fn server_error(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(
            ErrorCode::ServerError,
            "the server could not complete the request",
        )
    }

    fn status(&self) -> StatusCode {
        match self.code {
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'static str,
    error_description: &'a str,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status(),
            Json(ErrorBody {
                error: self.code.as_str(),
                error_description: &self.description,
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if self.code == ErrorCode::InvalidClient {
            // RFC 6749 section 5.2: a 401 must say how to authenticate.
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"portcullis\", charset=\"UTF-8\""),
            );
        }
        response
    }
}

/// An error of a bearer-token protected resource (RFC 6750 section 3), such as /userinfo.
#[derive(Debug, Clone)]
pub struct BearerError {
    pub code: Option<ErrorCode>,
    pub description: &'static str,
}

impl BearerError {
    /// No token was presented: answer with the challenge only (RFC 6750 section 3.1).
    pub fn missing() -> Self {
        Self {
            code: None,
            description: "",
        }
    }

    pub fn invalid_token(description: &'static str) -> Self {
        Self {
            code: Some(ErrorCode::InvalidToken),
            description,
        }
    }

    pub fn invalid_request(description: &'static str) -> Self {
        Self {
            code: Some(ErrorCode::InvalidRequest),
            description,
        }
    }

    pub fn insufficient_scope(description: &'static str) -> Self {
        Self {
            code: Some(ErrorCode::InsufficientScope),
            description,
        }
    }
}

impl IntoResponse for BearerError {
    fn into_response(self) -> Response {
        let (status, challenge) = match self.code {
            None => (StatusCode::UNAUTHORIZED, "Bearer realm=\"portcullis\"".to_owned()),
            Some(code) => {
                let status = match code {
                    ErrorCode::InvalidRequest => StatusCode::BAD_REQUEST,
                    ErrorCode::InsufficientScope => StatusCode::FORBIDDEN,
                    _ => StatusCode::UNAUTHORIZED,
                };
                (
                    status,
                    format!(
                        "Bearer realm=\"portcullis\", error=\"{}\", error_description=\"{}\"",
                        code.as_str(),
                        self.description
                    ),
                )
            }
        };
        let mut response = match self.code {
            None => status.into_response(),
            Some(code) => (
                status,
                Json(ErrorBody {
                    error: code.as_str(),
                    error_description: self.description,
                }),
            )
                .into_response(),
        };
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}
