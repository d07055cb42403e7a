//! The token endpoint's rules and the signing keys.

use reqwest::StatusCode;
use serde_json::Value;

use portcullis::config::Secret;
use portcullis::storage::Store;

use crate::helpers::{ClientSpec, TestApp, TestClient, VERIFIER, jwt_header};

async fn signed_in(app: &TestApp) -> (TestClient, crate::helpers::Browser) {
    let (_, company) = app.tenant().await;
    app.user(&company.id, "alice").await;
    (app.confidential_client().await, app.browser())
}

fn error_of(body: &Value) -> &str {
    body["error"].as_str().unwrap_or("(none)")
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_what_it_issued() {
    let app = TestApp::spawn().await;
    let (client, browser) = signed_in(&app).await;
    let code = browser.code(&client, "alice").await;
    let (status, tokens) = client.exchange(&app, &code, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = client.exchange(&app, &code, Some(VERIFIER)).await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    // What the first exchange issued is dead now.
    let (status, _) = client
        .refresh(&app, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let response = app.userinfo(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_code_presented_by_another_client_is_refused_and_not_consumed() {
    let app = TestApp::spawn().await;
    let (client, browser) = signed_in(&app).await;
    let thief = app.confidential_client().await;
    let code = browser.code(&client, "alice").await;
    let stolen = TestClient {
        redirect_uri: client.redirect_uri.clone(),
        ..thief
    };
    let (status, body) = stolen.exchange(&app, &code, Some(VERIFIER)).await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    let (status, _) = client.exchange(&app, &code, Some(VERIFIER)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the rightful client still gets its tokens"
    );
}

#[tokio::test]
async fn pkce_is_checked() {
    let app = TestApp::spawn().await;
    let (client, browser) = signed_in(&app).await;
    for (verifier, why) in [
        (None, "missing verifier"),
        (
            Some("wrong-verifier-wrong-verifier-wrong-verifier-x"),
            "wrong verifier",
        ),
        (Some("short"), "malformed verifier"),
    ] {
        let code = browser.code(&client, "alice").await;
        let (status, body) = client.exchange(&app, &code, verifier).await;
        assert_eq!(
            (status, error_of(&body)),
            (StatusCode::BAD_REQUEST, "invalid_grant"),
            "{why}"
        );
    }
    // A verifier without a challenge is a downgrade attempt.
    let query = client.authorize_query("").replace(
        &format!(
            "&code_challenge={}&code_challenge_method=S256",
            crate::helpers::CHALLENGE
        ),
        "",
    );
    let code = browser.code_for(&client, &query, "alice").await;
    let (status, body) = client.exchange(&app, &code, Some(VERIFIER)).await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let app = TestApp::spawn().await;
    let (client, browser) = signed_in(&app).await;
    let code = browser.code(&client, "alice").await;
    app.clock.advance(61);
    let (status, body) = client.exchange(&app, &code, Some(VERIFIER)).await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    assert!(body["error_description"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn the_redirect_uri_must_match_the_authorization_request() {
    let app = TestApp::spawn().await;
    let (client, browser) = signed_in(&app).await;
    let code = browser.code(&client, "alice").await;
    let other = TestClient {
        redirect_uri: "https://rp.example.com/other".into(),
        ..client.clone()
    };
    let (status, body) = other.exchange(&app, &code, Some(VERIFIER)).await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
}

#[tokio::test]
async fn client_authentication_failures_are_401_with_a_challenge() {
    let app = TestApp::spawn().await;
    let (client, browser) = signed_in(&app).await;
    let code = browser.code(&client, "alice").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", &client.redirect_uri),
    ];
    let cases = [
        app.http()
            .post(app.url("/token"))
            .basic_auth(&client.id, Some("wrong secret"))
            .form(&form),
        app.http()
            .post(app.url("/token"))
            .basic_auth("no-such-client", Some("x"))
            .form(&form),
        // A confidential client that does not authenticate.
        app.http().post(app.url("/token")).form(&[
            ("client_id", client.id.as_str()),
            ("grant_type", "authorization_code"),
        ]),
        app.http().post(app.url("/token")).form(&form),
        app.http()
            .post(app.url("/token"))
            .header("authorization", "Basic !!!")
            .form(&form),
    ];
    for request in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().get("www-authenticate").is_some());
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_of(&body), "invalid_client");
    }
    // client_secret_post works as well as basic.
    let secret = client.secret.clone().unwrap();
    let response = app
        .http()
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", &client.redirect_uri),
            ("code_verifier", VERIFIER),
            ("client_id", &client.id),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn malformed_token_requests_get_the_rfc_error() {
    let app = TestApp::spawn().await;
    let client = app.confidential_client().await;
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![], "invalid_request"),
        (vec![("grant_type", "password".into())], "unsupported_grant_type"),
        (
            vec![("grant_type", "authorization_code".into())],
            "invalid_request",
        ),
        (
            vec![("grant_type", "client_credentials".into())],
            "unauthorized_client",
        ),
        (vec![("grant_type", "refresh_token".into())], "invalid_request"),
        (
            vec![
                ("grant_type", "refresh_token".into()),
                ("refresh_token", "garbage".into()),
            ],
            "invalid_grant",
        ),
        (
            vec![
                ("grant_type", "authorization_code".into()),
                ("code", "garbage".into()),
                ("redirect_uri", client.redirect_uri.clone()),
            ],
            "invalid_grant",
        ),
    ];
    for (form, error) in cases {
        let (status, body) = client.token_request(&app, form.clone()).await;
        assert_eq!(
            (status, error_of(&body)),
            (StatusCode::BAD_REQUEST, error),
            "{form:?}"
        );
    }
    let secret = client.secret.clone().unwrap();
    // Parameters twice, JSON instead of a form, an oversized body.
    let duplicate = app
        .http()
        .post(app.url("/token"))
        .basic_auth(&client.id, Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=authorization_code&grant_type=refresh_token")
        .send()
        .await
        .unwrap();
    assert_eq!(duplicate.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&duplicate.json().await.unwrap()), "invalid_request");
    let json = app
        .http()
        .post(app.url("/token"))
        .basic_auth(&client.id, Some(&secret))
        .json(&serde_json::json!({"grant_type": "authorization_code"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&json.json().await.unwrap()), "invalid_request");
    let big = app
        .http()
        .post(app.url("/token"))
        .basic_auth(&client.id, Some(&secret))
        .form(&[
            ("grant_type", "authorization_code".to_owned()),
            ("code", "x".repeat(200 * 1024)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_refresh_may_narrow_the_scope_but_not_widen_it() {
    let app = TestApp::spawn().await;
    let (client, browser) = signed_in(&app).await;
    let code = browser.code(&client, "alice").await;
    let (_, tokens) = client.exchange(&app, &code, Some(VERIFIER)).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = client
        .token_request(
            &app,
            vec![
                ("grant_type", "refresh_token".into()),
                ("refresh_token", refresh.clone()),
                ("scope", "openid phone".into()),
            ],
        )
        .await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "invalid_scope")
    );
    // Refused before rotation: the token still works.
    let (status, body) = client
        .token_request(
            &app,
            vec![
                ("grant_type", "refresh_token".into()),
                ("refresh_token", refresh),
                ("scope", "openid email".into()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "email openid");
}

#[tokio::test]
async fn refresh_tokens_expire() {
    let app =
        TestApp::spawn_with(|c| c.tokens.refresh_token_ttl = std::time::Duration::from_secs(3600)).await;
    let (client, browser) = signed_in(&app).await;
    let code = browser.code(&client, "alice").await;
    let (_, tokens) = client.exchange(&app, &code, Some(VERIFIER)).await;
    app.clock.advance(3601);
    let (status, body) = client
        .refresh(&app, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
}

#[tokio::test]
async fn expired_access_tokens_are_refused_at_userinfo() {
    let app = TestApp::spawn().await;
    let (client, browser) = signed_in(&app).await;
    let code = browser.code(&client, "alice").await;
    let (_, tokens) = client.exchange(&app, &code, Some(VERIFIER)).await;
    let token = tokens["access_token"].as_str().unwrap();
    app.clock.advance(601);
    let response = app.userinfo(token).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    // No token at all: a bare challenge. A forged one: invalid_token.
    let response = app.http().get(app.url("/userinfo")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"portcullis\""
    );
    let mut forged = token.to_owned();
    forged.replace_range(forged.len() - 4.., "AAAA");
    let response = app.userinfo(&forged).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn key_rotation_keeps_old_keys_published_until_their_tokens_expire() {
    let app = TestApp::spawn().await;
    let (client, browser) = signed_in(&app).await;
    let code = browser.code(&client, "alice").await;
    let (_, before) = client.exchange(&app, &code, Some(VERIFIER)).await;
    let old_kid = jwt_header(before["id_token"].as_str().unwrap())["kid"]
        .as_str()
        .unwrap()
        .to_owned();

    // `portcullis keys rotate` does exactly this (tests/api/cli.rs runs the command).
    let master = portcullis::startup::master_key(&app.config).unwrap();
    let created = portcullis::tokens::keys::rotate(&app.store, &master, app.now())
        .await
        .unwrap();
    let new_kid = created.iter().find(|k| k.alg == "RS256").unwrap().kid.clone();

    // The instance re-reads its keys once its copy is older than key_refresh_interval.
    app.clock.advance(31);
    let kids = app.published_kids().await;
    assert!(kids.contains(&new_kid) && kids.contains(&old_kid), "{kids:?}");
    let code = browser.code(&client, "alice").await;
    let (_, after) = client.exchange(&app, &code, Some(VERIFIER)).await;
    assert_eq!(
        jwt_header(after["id_token"].as_str().unwrap())["kid"],
        new_kid.as_str()
    );
    assert_eq!(
        jwt_header(after["access_token"].as_str().unwrap())["kid"],
        new_kid.as_str()
    );
    // Tokens signed before the rotation still verify.
    let response = app
        .http()
        .post(app.url("/introspect"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[("token", before["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["active"], true,
        "a token signed by the retired key is still valid"
    );

    // Once every token the old key signed has expired, it leaves the JWKS.
    app.clock.advance(30 * 60);
    let kids = app.published_kids().await;
    assert!(kids.contains(&new_kid) && !kids.contains(&old_kid), "{kids:?}");
}

#[tokio::test]
async fn client_credentials_needs_a_confidential_client_allowed_to_use_it() {
    let app = TestApp::spawn().await;
    let public = app
        .client(ClientSpec {
            public: true,
            ..ClientSpec::default()
        })
        .await;
    let (status, body) = public
        .token_request(&app, vec![("grant_type", "client_credentials".into())])
        .await;
    assert_eq!(
        (status, error_of(&body)),
        (StatusCode::BAD_REQUEST, "unauthorized_client")
    );
}

/// PostgreSQL only (on SQLite it returns at once): a token request whose write waits on a
/// lock that someone else holds (an open transaction in `psql`) gets
/// `temporarily_unavailable` once the statement timeout cancels the write, and the code or
/// refresh token it presented still works once the lock is gone: the cancelled write left
/// nothing behind.
#[tokio::test]
async fn a_token_request_stuck_behind_a_lock_is_cancelled_and_writes_nothing() {
    use sqlx::Connection;
    let app = TestApp::spawn_with(|c| {
        if c.database_url.expose().starts_with("postgres") {
            let mut url = url::Url::parse(c.database_url.expose()).unwrap();
            url.query_pairs_mut()
                .append_pair("options[statement_timeout]", "300ms");
            c.database_url = Secret::new(url.to_string());
        }
    })
    .await;
    if !matches!(app.store, Store::Postgres(_)) {
        return;
    }
    let (client, browser) = signed_in(&app).await;
    let mut locker = sqlx::PgConnection::connect(app.config.database_url.expose())
        .await
        .unwrap();
    let unavailable = (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");

    // The code exchange.
    let code = browser.code(&client, "alice").await;
    let mut lock = locker.begin().await.unwrap();
    sqlx::query("LOCK TABLE authorization_codes IN EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let (status, body) = client.exchange(&app, &code, Some(VERIFIER)).await;
    assert_eq!((status, error_of(&body)), unavailable, "{body}");
    lock.rollback().await.unwrap();
    let (status, tokens) = client.exchange(&app, &code, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");

    // The refresh (a batch of one, then the rotation alone).
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let mut lock = locker.begin().await.unwrap();
    sqlx::query("LOCK TABLE refresh_tokens IN EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let (status, body) = client.refresh(&app, &refresh).await;
    assert_eq!((status, error_of(&body)), unavailable, "{body}");
    lock.rollback().await.unwrap();
    let (status, body) = client.refresh(&app, &refresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_ne!(body["refresh_token"].as_str(), Some(refresh.as_str()));
}
