//! HTTP routing. Handlers only parse requests and forward to `crate::protocol` and
//! `crate::flow`; every response gets the security headers.

mod account;
mod admin;
mod authorize;
mod client_ip;
mod cookies;
mod discovery;
mod login;
mod logout;
mod oidc;
mod pages;

pub use client_ip::client_ip;
pub use login::ACCOUNT_CLIENT_ID;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use tower_http::cors::{Any, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::protocol::discovery::JWKS_PATH;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    // Endpoints a browser-based client (SPA) calls directly. They use no cookies, so any
    // origin may call them.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(3600));
    let cross_origin = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .route(JWKS_PATH, get(discovery::jwks))
        .route("/token", post(oidc::token))
        .route("/userinfo", get(oidc::userinfo).post(oidc::userinfo))
        .route("/revoke", post(oidc::revoke))
        .layer(cors);
    let body_limit = state.config.http.body_limit;
    let timeout = state.config.http.request_timeout;
    Router::new()
        .route("/", get(discovery::index))
        .route(
            "/authorize",
            get(authorize::authorize_get).post(authorize::authorize_post),
        )
        .route("/login", get(login::login_get).post(login::login_post))
        .route("/login/challenge", post(login::challenge_post))
        .route("/login/challenge/method", post(login::challenge_method_post))
        .route("/login/challenge/resend", post(login::challenge_resend_post))
        .route("/login/enrol", post(login::enrol_post))
        .route("/login/enrol/method", post(login::enrol_method_post))
        .route("/login/enrol/destination", post(login::enrol_destination_post))
        .route("/login/enrol/resend", post(login::enrol_resend_post))
        .route("/login/enrol/finish", post(login::enrol_finish_post))
        .route("/login/recovery-codes", post(login::codes_post))
        .route("/login/reset", get(login::reset_get).post(login::reset_post))
        .route("/admin/reset-requests", get(admin::list))
        .route("/admin/reset-requests/{id}", get(admin::show))
        .route("/admin/reset-requests/{id}/approve", post(admin::approve))
        .route("/admin/reset-requests/{id}/decline", post(admin::decline))
        .route("/consent", post(login::consent_post))
        .route(
            "/account",
            get(|| async { pages::see_other("/account/security") }),
        )
        .route("/account/security", get(account::security_get))
        .route("/account/security/recovery-codes", post(account::recovery_codes))
        .route("/account/security/{method}", get(account::setup_get))
        .route("/account/security/{method}/setup", post(account::setup))
        .route("/account/security/{method}/verify", post(account::verify))
        .route("/account/security/{method}/resend", post(account::resend))
        .route("/account/security/{method}/finish", post(account::finish))
        .route("/account/security/{method}/disable", post(account::disable))
        .route("/account/security/{method}/send", post(account::send_code))
        .route("/introspect", post(oidc::introspect))
        .route("/logout", get(logout::logout_get).post(logout::logout_post))
        .route("/static/portcullis.css", get(discovery::stylesheet))
        .route("/healthz", get(discovery::healthz))
        .route("/readyz", get(discovery::readyz))
        .merge(cross_origin)
        .merge(crate::api::router())
        .fallback(discovery::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), security_headers))
        .layer(middleware::from_fn_with_state(state.clone(), remember_client_ip))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            // The path only: queries carry state, nonces and login ids.
            tracing::info_span!("http", method = %request.method(), path = %request.uri().path())
        }))
        .with_state(state)
}

/// Makes the request's client address known to the audit log while it is served.
async fn remember_client_ip(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let ip = client_ip(
        state.config.trust_forwarded_for,
        request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>(),
        request.headers(),
    );
    crate::audit::CLIENT_IP.scope(ip, next.run(request)).await
}

/// Headers every response carries. Responses that set their own `Cache-Control` (JWKS,
/// discovery, the stylesheet) keep it; everything else is `no-store`.
async fn security_headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // The API docs page runs Swagger UI's scripts and styles (served from here).
    let docs = request.uri().path().starts_with(crate::api::DOCS_PATH);
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    // No form-action: Chromium applies it to the redirect that follows a form post, and
    // the login form's redirect goes to the client.
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        if docs {
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"
        } else {
            "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"
        },
    );
    set(
        headers,
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    if state.config.is_https() {
        set(
            headers,
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        );
    }
    response
}
