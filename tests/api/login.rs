//! The login pages: passwords, enumeration, throttling, CSRF, single sign-on, consent.

use portcullis::model::User;
use reqwest::StatusCode;

use crate::helpers::{
    Browser, ClientSpec, PASSWORD, TestApp, TestClient, hidden_field, location, query_param,
};

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_answer() {
    let app = TestApp::spawn().await;
    let client = app.with_alice().await;
    let browser = app.browser();
    let login_url = location(&browser.authorize(&client.authorize_query("")).await);
    let form = browser.login_form(&login_url).await;

    let wrong = browser.submit_password(&form, "alice", "not the password").await;
    let wrong_status = wrong.status();
    let wrong_html = wrong.text().await.unwrap();
    let unknown = browser
        .submit_password(&form, "mallory", "not the password")
        .await;
    let unknown_status = unknown.status();
    let unknown_html = unknown.text().await.unwrap();

    assert_eq!(wrong_status, StatusCode::OK);
    assert_eq!(wrong_status, unknown_status);
    assert!(wrong_html.contains("The user name or password is incorrect."));
    // The pages differ only in the echoed login name.
    assert_eq!(
        wrong_html.replace("alice", "X"),
        unknown_html.replace("mallory", "X")
    );
    // And no code was issued: the same form still works with the right password.
    let ok = browser.submit_password(&form, "alice", PASSWORD).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert!(query_param(&location(&ok), "code").is_some());
}

#[tokio::test]
async fn login_names_are_case_insensitive() {
    let app = TestApp::spawn().await;
    let client = app.with_alice().await;
    let redirect = app
        .browser()
        .sign_in(&client.authorize_query(""), " Alice ", PASSWORD)
        .await;
    assert!(query_param(&redirect, "code").is_some());
}

#[tokio::test]
async fn repeated_failures_lock_the_account_whether_or_not_it_exists() {
    let app = TestApp::spawn().await;
    let client = app.with_alice().await;
    let browser = app.browser();
    let login_url = location(&browser.authorize(&client.authorize_query("")).await);
    let form = browser.login_form(&login_url).await;
    for name in ["alice", "nobody"] {
        for _ in 0..5 {
            let response = browser.submit_password(&form, name, "wrong password").await;
            assert_eq!(response.status(), StatusCode::OK);
        }
        // Locked: even the right password is not checked now.
        let locked = browser.submit_password(&form, name, PASSWORD).await;
        assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS, "{name}");
        assert!(
            locked
                .text()
                .await
                .unwrap()
                .contains("Too many failed sign-in attempts")
        );
    }
    // The lock ends (after lockout_base, 30 s) and the right password works again.
    app.clock.advance(31);
    let response = browser.submit_password(&form, "alice", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn lockouts_grow_with_further_failures() {
    let app = TestApp::spawn().await;
    let client = app.with_alice().await;
    let browser = app.browser();
    let form = browser.start_login(&client).await;
    for _ in 0..5 {
        browser.submit_password(&form, "alice", "wrong").await;
    }
    app.clock.advance(31);
    // One more failure after the first lock: locked for 60 s now.
    browser.submit_password(&form, "alice", "wrong").await;
    app.clock.advance(31);
    let still = browser.submit_password(&form, "alice", PASSWORD).await;
    assert_eq!(still.status(), StatusCode::TOO_MANY_REQUESTS);
    app.clock.advance(30);
    let open = browser.submit_password(&form, "alice", PASSWORD).await;
    assert_eq!(open.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_successful_login_forgets_earlier_failures() {
    let app = TestApp::spawn().await;
    let client = app.with_alice().await;
    // Four failures and the right password, twice: had the first success kept the count,
    // the second round's first failure would be the fifth and lock the account.
    for _ in 0..2 {
        let browser = app.browser();
        let form = browser.start_login(&client).await;
        for _ in 0..4 {
            let wrong = browser.submit_password(&form, "alice", "wrong").await;
            assert_eq!(wrong.status(), StatusCode::OK);
        }
        let right = browser.submit_password(&form, "alice", PASSWORD).await;
        assert_eq!(right.status(), StatusCode::SEE_OTHER);
    }
}

#[tokio::test]
async fn failures_from_one_address_are_throttled_across_accounts() {
    let app = TestApp::spawn_with(|c| c.login.max_failures_per_address = 8).await;
    let (_, company) = app.tenant().await;
    app.user(&company.id, "victim").await;
    let client = app.confidential_client().await;
    let browser = app.browser();
    let form = browser.start_login(&client).await;
    for i in 0..8 {
        browser.submit_password(&form, &format!("user{i}"), "guess").await;
    }
    let blocked = browser.submit_password(&form, "victim", PASSWORD).await;
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused() {
    let app = TestApp::spawn().await;
    let client = app.with_alice().await;
    let browser = app.browser();
    let form = browser.start_login(&client).await;
    for csrf in [None, Some("forged")] {
        let mut fields = vec![
            ("login", form.login.as_str()),
            ("username", "alice"),
            ("password", PASSWORD),
        ];
        if let Some(csrf) = csrf {
            fields.push(("csrf_token", csrf));
        }
        let response = browser.post("/login", &fields).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(response.headers().get("location").is_none());
    }
}

#[tokio::test]
async fn a_login_started_in_another_browser_cannot_be_completed_here() {
    let app = TestApp::spawn().await;
    let (_, company) = app.tenant().await;
    app.user(&company.id, "mallory").await;
    let client = app.confidential_client().await;
    // The attacker starts a login and lures the victim's browser into finishing it.
    let attacker = app.browser();
    let login_url = location(&attacker.authorize(&client.authorize_query("")).await);
    let form = attacker.login_form(&login_url).await;
    let victim = app.browser();
    assert_eq!(victim.get(&login_url).await.status(), StatusCode::FORBIDDEN);
    let response = victim.submit_password(&form, "mallory", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_completed_login_cannot_be_replayed() {
    let app = TestApp::spawn().await;
    let client = app.with_alice().await;
    let browser = app.browser();
    let form = browser.start_login(&client).await;
    assert_eq!(
        browser.submit_password(&form, "alice", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let again = browser.submit_password(&form, "alice", PASSWORD).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn an_expired_login_page_is_refused() {
    let app = TestApp::spawn().await;
    let client = app.with_alice().await;
    let browser = app.browser();
    let form = browser.start_login(&client).await;
    app.clock.advance(16 * 60);
    let response = browser.submit_password(&form, "alice", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("expired"));
}

#[tokio::test]
async fn a_second_client_signs_in_from_the_session_without_a_password() {
    let app = TestApp::spawn().await;
    let (_, company) = app.tenant().await;
    app.user(&company.id, "alice").await;
    let first = app.confidential_client().await;
    let second = app
        .client(ClientSpec {
            redirect_uri: "https://crm.example.com/cb".into(),
            ..ClientSpec::default()
        })
        .await;
    let browser = app.browser();
    let code = browser.code(&first, "alice").await;
    let (_, first_tokens) = first.exchange(&app, &code, Some(crate::helpers::VERIFIER)).await;

    // Single sign-on: straight back to the second client with a code.
    let response = browser.authorize(&second.authorize_query("")).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let target = location(&response);
    assert!(target.starts_with("https://crm.example.com/cb?code="), "{target}");
    let (status, tokens) = second
        .exchange(
            &app,
            &query_param(&target, "code").unwrap(),
            Some(crate::helpers::VERIFIER),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let claims = crate::helpers::jwt_claims(tokens["id_token"].as_str().unwrap());
    let first_claims = crate::helpers::jwt_claims(first_tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["sid"], first_claims["sid"], "one browser session");
    assert_eq!(
        claims["auth_time"], first_claims["auth_time"],
        "no new authentication"
    );

    // prompt=none works with the session.
    let response = browser.authorize(&second.authorize_query("prompt=none")).await;
    assert!(query_param(&location(&response), "code").is_some());
}

#[tokio::test]
async fn prompt_login_and_max_age_force_a_new_password() {
    let app = TestApp::spawn().await;
    let client = app.with_alice().await;
    let browser = app.browser();
    browser.code(&client, "alice").await;

    let response = browser.authorize(&client.authorize_query("prompt=login")).await;
    assert!(location(&response).starts_with("/login?"));

    app.clock.advance(120);
    let response = browser.authorize(&client.authorize_query("max_age=60")).await;
    assert!(
        location(&response).starts_with("/login?"),
        "session older than max_age"
    );
    let response = browser
        .authorize(&client.authorize_query("max_age=60&prompt=none"))
        .await;
    assert_eq!(
        query_param(&location(&response), "error").as_deref(),
        Some("login_required")
    );
    let response = browser.authorize(&client.authorize_query("max_age=600")).await;
    assert!(
        query_param(&location(&response), "code").is_some(),
        "young enough"
    );

    // Signing in again as the same user keeps the session id and moves auth_time.
    let redirect = browser
        .sign_in(&client.authorize_query("prompt=login"), "alice", PASSWORD)
        .await;
    let (_, tokens) = client
        .exchange(
            &app,
            &query_param(&redirect, "code").unwrap(),
            Some(crate::helpers::VERIFIER),
        )
        .await;
    let claims = crate::helpers::jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["auth_time"], app.now());
}

#[tokio::test]
async fn session_cookies_are_httponly_and_samesite() {
    let app = TestApp::spawn().await;
    let client = app.with_alice().await;
    let browser = app.browser();
    let form = browser.start_login(&client).await;
    let response = browser.submit_password(&form, "alice", PASSWORD).await;
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("portcullis_session="))
        .expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http issuer: {cookie}");
}

#[tokio::test]
async fn https_issuers_get_secure_host_prefixed_cookies() {
    let app = TestApp::spawn_with(|c| c.issuer = "https://id.example.com".into()).await;
    let client = app.confidential_client().await;
    let response = app.browser().authorize(&client.authorize_query("")).await;
    let cookie = response
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("__Host-portcullis_browser="), "{cookie}");
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(response.headers().get("strict-transport-security").is_some());
}

#[tokio::test]
async fn pages_carry_security_headers() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let browser = app.browser();
    let response = browser
        .get(&location(&browser.authorize(&client.authorize_query("")).await))
        .await;
    let headers = response.headers();
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
}

/// Alice, a third-party client, and a browser whose login of alice is at the consent step
/// (the step's URL).
async fn at_consent(app: &TestApp) -> (User, TestClient, Browser, String) {
    let (_, company) = app.tenant().await;
    let alice = app.user(&company.id, "alice").await;
    let client = app
        .client(ClientSpec {
            third_party: true,
            ..ClientSpec::default()
        })
        .await;
    let browser = app.browser();
    let form = browser.start_login(&client).await;
    let consent_url = location(&browser.submit_password(&form, "alice", PASSWORD).await);
    assert!(consent_url.starts_with("/login?"));
    (alice, client, browser, consent_url)
}

#[tokio::test]
async fn a_third_party_client_asks_for_consent_once() {
    let app = TestApp::spawn().await;
    let (_, client, browser, consent_url) = at_consent(&app).await;
    let html = browser.get(&consent_url).await.text().await.unwrap();
    assert!(html.contains("Allow access?"), "{html}");
    let login = hidden_field(&html, "login").unwrap();
    let csrf = hidden_field(&html, "csrf_token").unwrap();
    let response = browser
        .post(
            "/consent",
            &[("login", &login), ("csrf_token", &csrf), ("decision", "allow")],
        )
        .await;
    assert!(query_param(&location(&response), "code").is_some());
    // Remembered: the next request goes straight through; prompt=consent asks again.
    let response = browser.authorize(&client.authorize_query("")).await;
    assert!(query_param(&location(&response), "code").is_some());
    let response = browser.authorize(&client.authorize_query("prompt=consent")).await;
    let html = browser.get(&location(&response)).await.text().await.unwrap();
    let login = hidden_field(&html, "login").unwrap();
    let csrf = hidden_field(&html, "csrf_token").unwrap();
    let response = browser
        .post(
            "/consent",
            &[("login", &login), ("csrf_token", &csrf), ("decision", "deny")],
        )
        .await;
    assert_eq!(
        query_param(&location(&response), "error").as_deref(),
        Some("access_denied")
    );
}

#[tokio::test]
async fn a_user_deactivated_at_the_consent_step_grants_nothing() {
    let app = TestApp::spawn().await;
    let (alice, client, browser, consent_url) = at_consent(&app).await;
    let html = browser.get(&consent_url).await.text().await.unwrap();
    let login = hidden_field(&html, "login").unwrap();
    let csrf = hidden_field(&html, "csrf_token").unwrap();
    let deactivate = portcullis::storage::UserChanges {
        active: Some(false),
        ..Default::default()
    };
    assert!(
        app.store
            .update_user(&alice.id, &deactivate, app.now())
            .await
            .unwrap()
    );
    // Neither the page nor the decision goes on, and no consent is stored.
    let page = browser.get(&consent_url).await;
    assert_eq!(page.status(), StatusCode::CONFLICT);
    let response = browser
        .post(
            "/consent",
            &[("login", &login), ("csrf_token", &csrf), ("decision", "allow")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(response.headers().get("location").is_none());
    assert_eq!(app.store.get_consent(&alice.id, &client.id).await.unwrap(), None);
}

#[tokio::test]
async fn a_client_restricted_to_other_companies_refuses_the_user() {
    let app = TestApp::spawn().await;
    let (reseller, company) = app.tenant().await;
    let other = app.company(&reseller.id, "Initech").await;
    app.user(&company.id, "alice").await;
    let client = app
        .client(ClientSpec {
            allowed_companies: vec![other.id.clone()],
            ..ClientSpec::default()
        })
        .await;
    let redirect = app
        .browser()
        .sign_in(&client.authorize_query(""), "alice", PASSWORD)
        .await;
    assert_eq!(query_param(&redirect, "error").as_deref(), Some("access_denied"));
    assert!(query_param(&redirect, "code").is_none());
}

#[tokio::test]
async fn oversized_and_malformed_forms_get_clear_errors() {
    let app = TestApp::spawn().await;
    let browser = app.browser();
    let big = "x".repeat(100 * 1024);
    let response = browser
        .post("/login", &[("login", "x"), ("username", &big)])
        .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let response = browser.post("/login", &[("username", "alice")]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = browser.get("/login").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = browser.get("/login?login=unknown").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = browser.get("/no/such/page").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
