//! The authorization endpoint's rules: which errors are pages and which are redirected.

use reqwest::StatusCode;

use crate::helpers::{CHALLENGE, ClientSpec, TestApp, location, query_param};

fn assert_redirected_error(response: &reqwest::Response, redirect_uri: &str, error: &str) {
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let target = location(response);
    assert!(target.starts_with(redirect_uri), "{target}");
    assert_eq!(query_param(&target, "error").as_deref(), Some(error), "{target}");
    assert_eq!(
        query_param(&target, "state").as_deref(),
        Some("state-123"),
        "{target}"
    );
    assert!(query_param(&target, "iss").is_some(), "RFC 9207: {target}");
}

#[tokio::test]
async fn unknown_client_or_redirect_uri_shows_a_page_and_never_redirects() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let browser = app.browser();
    let cases = [
        client.authorize_query("").replace(&client.id, "no-such-client"),
        client
            .authorize_query("")
            .replace("rp.example.com", "evil.example.com"),
        // Not an exact match: a trailing slash, a different case, an added query.
        client
            .authorize_query("")
            .replace("%2Fcallback", "%2Fcallback%2F"),
        client.authorize_query("").replace("%2Fcallback", "%2FCallback"),
        client
            .authorize_query("")
            .replace("%2Fcallback", "%2Fcallback%3Fx%3D1"),
        client.authorize_query("&redirect_uri=https%3A%2F%2Frp.example.com%2Fcallback"),
    ];
    for query in cases {
        let response = browser.authorize(&query).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        assert!(response.headers().get("location").is_none(), "{query}");
        let html = response.text().await.unwrap();
        assert!(html.contains("<h1>"), "a readable page: {html}");
    }
}

#[tokio::test]
async fn request_errors_are_redirected_with_the_rfc_error_code() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let public = app
        .client(ClientSpec {
            public: true,
            ..ClientSpec::default()
        })
        .await;
    let browser = app.browser();
    let uri = &client.redirect_uri;
    let base = client.authorize_query("");
    let cases = [
        (
            base.replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
        (
            base.replace("response_type=code", "response_type=id_token"),
            "unsupported_response_type",
        ),
        (
            base.replace("scope=openid+profile+email", "scope=profile"),
            "invalid_scope",
        ),
        (
            base.replace("scope=openid+profile+email", "scope=openid+admin"),
            "invalid_scope",
        ),
        (
            base.replace("code_challenge_method=S256", "code_challenge_method=plain"),
            "invalid_request",
        ),
        (base.replace("&code_challenge_method=S256", ""), "invalid_request"),
        (base.replace(CHALLENGE, "short"), "invalid_request"),
        (format!("{base}&prompt=none+login"), "invalid_request"),
        (format!("{base}&max_age=soon"), "invalid_request"),
        (
            format!("{base}&request=eyJhbGciOiJub25lIn0.e30."),
            "request_not_supported",
        ),
        (format!("{base}&response_mode=form_post"), "invalid_request"),
        (format!("{base}&scope=openid"), "invalid_request"),
    ];
    for (query, error) in cases {
        let response = browser.authorize(&query).await;
        assert_redirected_error(&response, uri, error);
    }
    // A public client must use PKCE.
    let without_pkce = public.authorize_query("").replace(
        &format!("&code_challenge={CHALLENGE}&code_challenge_method=S256"),
        "",
    );
    let response = browser.authorize(&without_pkce).await;
    assert_redirected_error(&response, &public.redirect_uri, "invalid_request");
}

#[tokio::test]
async fn prompt_none_without_a_session_is_login_required() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let response = app
        .browser()
        .authorize(&client.authorize_query("prompt=none"))
        .await;
    assert_redirected_error(&response, &client.redirect_uri, "login_required");
}

#[tokio::test]
async fn post_to_authorize_works_like_get() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let response = app
        .browser()
        .http
        .post(app.url("/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(client.authorize_query(""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(location(&response).starts_with("/login?login="));
}
