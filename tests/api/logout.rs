//! RP-initiated logout.

use openidconnect::core::CoreIdToken;
use openidconnect::{CsrfToken, EndSessionUrl, LogoutRequest, PostLogoutRedirectUrl};
use reqwest::StatusCode;

use crate::helpers::{TestApp, TestClient, VERIFIER, hidden_field, location, query_param};

async fn signed_in(app: &TestApp) -> (TestClient, crate::helpers::Browser, serde_json::Value) {
    let client = app.with_alice().await;
    let browser = app.browser();
    let code = browser.code(&client, "alice").await;
    let (status, tokens) = client.exchange(app, &code, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::OK);
    (client, browser, tokens)
}

#[tokio::test]
async fn logout_with_an_id_token_hint_ends_the_session_and_its_grants() {
    let app = TestApp::spawn().await;
    let (client, browser, tokens) = signed_in(&app).await;
    let id_token: CoreIdToken = tokens["id_token"].as_str().unwrap().parse().unwrap();
    let url = LogoutRequest::from(EndSessionUrl::new(app.url("/logout")).unwrap())
        .set_id_token_hint(&id_token)
        .set_post_logout_redirect_uri(
            PostLogoutRedirectUrl::new(client.post_logout_redirect_uri.clone()).unwrap(),
        )
        .set_state(CsrfToken::new("bye".into()))
        .http_get_url();
    let response = browser.get(url.as_str()).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let target = location(&response);
    assert!(target.starts_with(&client.post_logout_redirect_uri), "{target}");
    assert_eq!(query_param(&target, "state").as_deref(), Some("bye"));

    // The browser is signed out...
    let response = browser.authorize(&client.authorize_query("prompt=none")).await;
    assert_eq!(
        query_param(&location(&response), "error").as_deref(),
        Some("login_required")
    );
    // ...and what was issued under the session is revoked.
    let (status, _) = client
        .refresh(&app, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let userinfo = app.userinfo(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(userinfo.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_without_a_hint_asks_for_confirmation() {
    let app = TestApp::spawn().await;
    let (client, browser, _) = signed_in(&app).await;
    let response = browser.get("/logout").await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    let csrf = hidden_field(&html, "csrf_token").unwrap();

    // A cross-site form cannot know the token.
    let forged = browser
        .post("/logout", &[("confirm", "yes"), ("csrf_token", "forged")])
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let response = browser.authorize(&client.authorize_query("prompt=none")).await;
    assert!(
        query_param(&location(&response), "code").is_some(),
        "still signed in"
    );

    let response = browser
        .post("/logout", &[("confirm", "yes"), ("csrf_token", &csrf)])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("signed out"));
    let response = browser.authorize(&client.authorize_query("prompt=none")).await;
    assert_eq!(
        query_param(&location(&response), "error").as_deref(),
        Some("login_required")
    );
}

#[tokio::test]
async fn logout_never_redirects_to_an_unregistered_address() {
    let app = TestApp::spawn().await;
    let (client, browser, tokens) = signed_in(&app).await;
    let hint = tokens["id_token"].as_str().unwrap();
    let cases = [
        format!("/logout?id_token_hint={hint}&post_logout_redirect_uri=https%3A%2F%2Fevil.example.com%2F"),
        "/logout?post_logout_redirect_uri=https%3A%2F%2Frp.example.com%2Fsigned-out".to_owned(),
        format!("/logout?client_id=other&id_token_hint={hint}"),
        "/logout?id_token_hint=not.a.token".to_owned(),
    ];
    for path in cases {
        let response = browser.get(&path).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        assert!(response.headers().get("location").is_none(), "{path}");
    }
    // client_id alone is enough to validate the address.
    let response = browser
        .get(&format!(
            "/logout?client_id={}&post_logout_redirect_uri=https%3A%2F%2Frp.example.com%2Fsigned-out",
            client.id
        ))
        .await;
    assert_eq!(response.status(), StatusCode::OK, "asks for confirmation first");
}
