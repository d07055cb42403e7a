//! Helpers for handlers that answer with pages and redirects.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// Logs the cause and shows a generic error page: the user learns nothing internal.
pub fn internal_error(state: &AppState, cause: impl std::fmt::Display) -> Response {
    tracing::error!(error = %cause, "request failed");
    state.templates.error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The sign-in service could not complete your request. Please try again in a moment.",
    )
}

/// 303 See Other: after a form post, the browser follows with a GET.
pub fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "invalid redirect").into_response(),
    }
}
