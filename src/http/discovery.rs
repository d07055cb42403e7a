//! Discovery, JWKS, the stylesheet, health checks and the landing page.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;
use crate::templates::STYLESHEET;

pub async fn openid_configuration(State(state): State<AppState>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        state.discovery.clone(),
    )
        .into_response()
}

pub async fn jwks(State(state): State<AppState>) -> Response {
    let keys = state.keys.fresh(state.now()).await;
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            // Short: relying parties must see a rotated key soon.
            (header::CACHE_CONTROL, "public, max-age=60"),
        ],
        keys.jwks.clone(),
    )
        .into_response()
}

pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the database answers.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.store.ping().await {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
    }
}

pub async fn index(State(state): State<AppState>) -> Response {
    state.templates.page(
        StatusCode::OK,
        "index.html",
        &serde_json::json!({ "issuer": state.issuer }),
    )
}

pub async fn not_found(State(state): State<AppState>, uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        return axum::response::IntoResponse::into_response(crate::api::error::ApiError::not_found("route"));
    }
    state.templates.error_page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no page at this address.",
    )
}
