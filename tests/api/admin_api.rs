//! The admin API over HTTP with real bearer tokens: every endpoint's happy path and its
//! refusal for callers of another company and another reseller, bad input, the OpenAPI
//! document, enforcement, opt-out, the reset-request journey through pages, API and SMTP,
//! and the audit log.

use portcullis::model::{Client, Company, GrantType, Reseller, Role, ScopeSet, SigningAlg, User, new_id};
use portcullis::policy::{Method, Mode};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ClientSpec, PASSWORD, TestApp, TestClient, VERIFIER, location, query_param};

/// A bearer token and the app it is for.
struct Api<'a> {
    app: &'a TestApp,
    token: String,
}

impl Api<'_> {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self
            .app
            .http()
            .request(method, self.app.url(&format!("/api/v1{path}")))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
        };
        (status, value)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }
}

/// A service client bound to a company, a reseller, or (neither) the instance, and its
/// client_credentials token.
async fn service<'a>(app: &'a TestApp, company: Option<&str>, reseller: Option<&str>) -> Api<'a> {
    let id = format!("svc-{}", &portcullis::crypto::random_token()[..12]);
    let secret = portcullis::crypto::random_token();
    let client = Client {
        id: id.clone(),
        name: "Automation".into(),
        secret_hash: Some(portcullis::crypto::token_hash(&secret)),
        public: false,
        first_party: true,
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        grant_types: vec![GrantType::ClientCredentials],
        scopes: ScopeSet::parse("admin").unwrap(),
        id_token_alg: SigningAlg::RS256,
        reseller_id: reseller.map(str::to_owned),
        company_id: company.map(str::to_owned),
        allowed_companies: vec![],
        created_at: app.now(),
    };
    app.store.insert_client(&client).await.unwrap();
    let test_client = TestClient {
        id,
        secret: Some(secret),
        redirect_uri: String::new(),
        post_logout_redirect_uri: String::new(),
    };
    let (status, body) = test_client
        .token_request(
            app,
            vec![
                ("grant_type", "client_credentials".into()),
                ("scope", "admin".into()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    Api {
        app,
        token: body["access_token"].as_str().unwrap().to_owned(),
    }
}

/// An administrator's token from a normal sign-in to a console client allowed `admin`.
async fn signed_in<'a>(app: &'a TestApp, username: &str) -> Api<'a> {
    let console = app
        .client(ClientSpec {
            name: "Admin console".into(),
            scopes: "openid profile admin".into(),
            ..ClientSpec::default()
        })
        .await;
    let query = console
        .authorize_query("")
        .replace("scope=openid+profile+email", "scope=openid+admin");
    let code = app.browser().code_for(&console, &query, username).await;
    let (status, body) = console.exchange(app, &code, Some(VERIFIER)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    Api {
        app,
        token: body["access_token"].as_str().unwrap().to_owned(),
    }
}

/// Two resellers: r1 with companies a and b, r2 with company c; users in each.
struct Tree {
    app: TestApp,
    r1: Reseller,
    r2: Reseller,
    a: Company,
    b: Company,
    c: Company,
    alice: User,
    bob: User,
    boss_a: User,
}

async fn tree() -> Tree {
    let app = TestApp::spawn().await;
    let (r1, a) = app.tenant().await;
    let b = app.company(&r1.id, "Initech").await;
    let r2 = Reseller {
        id: new_id(),
        name: "Other Partners".into(),
        created_at: app.now(),
    };
    app.store.insert_reseller(&r2).await.unwrap();
    let c = app.company(&r2.id, "Umbrella").await;
    let alice = app.user(&a.id, "alice").await;
    let bob = app.user(&b.id, "bob").await;
    let boss_a = app.admin_user(&a.id, "boss").await;
    Tree {
        app,
        r1,
        r2,
        a,
        b,
        c,
        alice,
        bob,
        boss_a,
    }
}

async fn seed_email_factor(app: &TestApp, user: &User) {
    crate::otp::seed_factor(app, &user.id, Method::Email, &user.email).await;
}

#[tokio::test]
async fn every_endpoint_refuses_callers_of_another_company_or_reseller() {
    let t = tree().await;
    let app = &t.app;
    // bob's company b (reseller r1) has a client, a policy and a pending reset request.
    let kb = {
        let reseller_r1 = service(app, None, Some(&t.r1.id)).await;
        let (status, body) = reseller_r1
            .post(
                "/clients",
                json!({ "name": "Initech app", "companyId": t.b.id, "redirectUris": ["https://initech.example/cb"] }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["clientId"].as_str().unwrap().to_owned()
    };
    let approver = app.admin_user(&t.b.id, "lumbergh").await;
    app.set_policy(&t.b.id, |p| {
        p.mode = Mode::Optional;
        p.reset_approvers = vec![approver.id.clone()];
    })
    .await
    .unwrap();
    seed_email_factor(app, &t.bob).await;
    let request = portcullis::storage::ResetRequest {
        id: new_id(),
        user_id: t.bob.id.clone(),
        company_id: t.b.id.clone(),
        status: "pending".into(),
        source: "challenge".into(),
        created_at: app.now(),
        decided_at: None,
        decided_by: None,
    };
    app.store.file_reset_request(&request, &[]).await.unwrap();

    let (r1, b, bob, rq) = (&t.r1.id, &t.b.id, &t.bob.id, &request.id);
    let attempts: Vec<(reqwest::Method, String, Option<Value>)> = {
        use reqwest::Method as M;
        vec![
            (M::GET, format!("/resellers/{r1}"), None),
            (
                M::PATCH,
                format!("/resellers/{r1}"),
                Some(json!({ "name": "Mine" })),
            ),
            (M::DELETE, format!("/resellers/{r1}"), None),
            (
                M::POST,
                "/companies".into(),
                Some(json!({ "resellerId": r1, "name": "Sneaky" })),
            ),
            (M::GET, format!("/companies/{b}"), None),
            (
                M::PATCH,
                format!("/companies/{b}"),
                Some(json!({ "name": "Mine" })),
            ),
            (M::DELETE, format!("/companies/{b}"), None),
            (M::GET, format!("/users?company={b}"), None),
            (
                M::POST,
                "/users".into(),
                Some(json!({ "companyId": b, "username": "mole", "email": "mole@example.com" })),
            ),
            (M::GET, format!("/users/{bob}"), None),
            (
                M::PATCH,
                format!("/users/{bob}"),
                Some(json!({ "active": false })),
            ),
            (M::DELETE, format!("/users/{bob}"), None),
            (M::GET, format!("/clients/{kb}"), None),
            (
                M::PATCH,
                format!("/clients/{kb}"),
                Some(json!({ "name": "Mine" })),
            ),
            (M::DELETE, format!("/clients/{kb}"), None),
            (
                M::POST,
                "/clients".into(),
                Some(json!({ "name": "Sneaky", "companyId": b, "redirectUris": ["https://x.example/cb"] })),
            ),
            (M::GET, format!("/companies/{b}/mfa-policy"), None),
            (
                M::PUT,
                format!("/companies/{b}/mfa-policy"),
                Some(json!({ "mode": "off", "methods": ["totp"] })),
            ),
            (M::PUT, format!("/companies/{b}/enforcement"), Some(json!({}))),
            (M::DELETE, format!("/companies/{b}/enforcement"), None),
            (M::GET, format!("/users/{bob}/mfa"), None),
            (M::POST, format!("/users/{bob}/mfa/reset"), Some(json!({}))),
            (
                M::PUT,
                format!("/users/{bob}/membership"),
                Some(json!({ "mfaOptOut": true, "reason": "sneaky" })),
            ),
            (M::GET, format!("/companies/{b}/reset-requests"), None),
            (M::POST, format!("/reset-requests/{rq}/approve"), Some(json!({}))),
            (M::POST, format!("/reset-requests/{rq}/decline"), Some(json!({}))),
            (M::GET, format!("/audit-events?company={b}"), None),
            (M::GET, format!("/audit-events?user={bob}"), None),
        ]
    };
    let callers = [
        (
            "a company's service client",
            service(app, Some(&t.a.id), None).await,
        ),
        ("a company admin", signed_in(app, "boss").await),
        (
            "another reseller's service client",
            service(app, None, Some(&t.r2.id)).await,
        ),
    ];
    for (who, caller) in &callers {
        for (method, path, body) in &attempts {
            let (status, answer) = caller.call(method.clone(), path, body.clone()).await;
            assert!(
                status == StatusCode::NOT_FOUND || status == StatusCode::FORBIDDEN,
                "{who}: {method} {path} answered {status}: {answer}"
            );
            assert!(
                answer["error"].is_string() && answer["message"].is_string(),
                "{answer}"
            );
        }
    }
    // Nothing changed.
    assert_eq!(app.store.get_company(b).await.unwrap().unwrap().name, "Initech");
    assert_eq!(
        app.store.get_reseller(r1).await.unwrap().unwrap().name,
        "Acme Partners"
    );
    assert!(app.store.get_user(bob).await.unwrap().unwrap().active);
    assert_eq!(
        app.store.get_client(&kb).await.unwrap().unwrap().name,
        "Initech app"
    );
    assert_eq!(app.store.factors_of(bob).await.unwrap().len(), 1);
    assert!(app.store.get_user_mfa(bob).await.unwrap().opt_out.is_none());
    assert_eq!(
        app.store.get_reset_request(rq).await.unwrap().unwrap().status,
        "pending"
    );
    assert_eq!(
        app.store.get_company_policy(b).await.unwrap().unwrap().mode,
        Mode::Optional
    );
    assert!(app.store.get_enforcement(b).await.unwrap().is_none());
    // Listings show only what is in reach.
    let company_caller = &callers[0].1;
    let (_, companies) = company_caller.get("/companies").await;
    assert_eq!(companies["items"].as_array().unwrap().len(), 1);
    assert_eq!(companies["items"][0]["id"], t.a.id.as_str());
    let (_, users) = company_caller.get("/users").await;
    assert!(
        users["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["companyId"] == t.a.id.as_str())
    );
    let (_, clients) = company_caller.get("/clients").await;
    assert!(
        clients["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["id"] != kb.as_str())
    );
    let (status, _) = company_caller.get("/resellers").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, resellers) = callers[2].1.get("/resellers").await;
    assert_eq!(resellers["items"].as_array().unwrap().len(), 1);
    assert_eq!(resellers["items"][0]["id"], t.r2.id.as_str());
    let (_, users) = callers[2].1.get("/users").await;
    assert!(users["items"].as_array().unwrap().is_empty(), "{users}");
    let _ = (&t.c, &t.alice, &t.boss_a);
}

#[tokio::test]
async fn tenants_users_and_clients_can_be_managed_in_reach() {
    let t = tree().await;
    let app = &t.app;
    let instance = service(app, None, None).await;
    // Resellers: the instance operator creates, renames and deletes; in-use ones stay.
    let (status, created) = instance
        .post("/resellers", json!({ "name": "  New Partners " }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "New Partners");
    let id = created["id"].as_str().unwrap();
    let (status, renamed) = instance
        .patch(&format!("/resellers/{id}"), json!({ "name": "Renamed" }))
        .await;
    assert_eq!(
        (status, renamed["name"].as_str()),
        (StatusCode::OK, Some("Renamed"))
    );
    assert_eq!(
        instance.get(&format!("/resellers/{id}")).await.1["name"],
        "Renamed"
    );
    assert_eq!(
        instance.delete(&format!("/resellers/{id}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        instance.get(&format!("/resellers/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        instance.delete(&format!("/resellers/{}", t.r1.id)).await.0,
        StatusCode::CONFLICT
    );
    let reseller = service(app, None, Some(&t.r1.id)).await;
    assert_eq!(
        reseller.post("/resellers", json!({ "name": "Mine" })).await.0,
        StatusCode::FORBIDDEN
    );

    // Companies: the reseller creates (under itself by default), pages, renames, deletes.
    let (status, company) = reseller.post("/companies", json!({ "name": "Hooli" })).await;
    assert_eq!(status, StatusCode::CREATED, "{company}");
    assert_eq!(company["resellerId"], t.r1.id.as_str());
    let hooli = company["id"].as_str().unwrap().to_owned();
    let (_, first) = reseller.get("/companies?limit=2").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["nextCursor"].as_str().unwrap();
    let (_, second) = reseller.get(&format!("/companies?limit=2&cursor={cursor}")).await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert!(second["nextCursor"].is_null());
    assert_eq!(
        reseller
            .patch(&format!("/companies/{hooli}"), json!({ "name": "Hooli XYZ" }))
            .await
            .1["name"],
        "Hooli XYZ"
    );
    assert_eq!(
        reseller.get(&format!("/companies/{hooli}")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        reseller.delete(&format!("/companies/{}", t.a.id)).await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        reseller.delete(&format!("/companies/{hooli}")).await.0,
        StatusCode::NO_CONTENT
    );

    // Users: a company admin creates one who can sign in, changes and deactivates them.
    let boss = signed_in(app, "boss").await;
    let (status, user) = boss
        .post(
            "/users",
            json!({ "companyId": t.a.id, "username": "Carol", "email": "carol@example.com",
                    "phone": "+1 415 555 0100", "name": "Carol", "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_eq!(
        (user["username"].as_str(), user["phone"].as_str()),
        (Some("carol"), Some("+14155550100"))
    );
    let carol = user["id"].as_str().unwrap().to_owned();
    let rp = app.confidential_client().await;
    app.browser().code(&rp, "carol").await;
    let (status, _) = boss
        .post(
            "/users",
            json!({ "companyId": t.a.id, "username": "carol", "email": "c2@example.com" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = boss
        .post(
            "/users",
            json!({ "companyId": t.a.id, "username": "dave", "email": "d@example.com", "role": "reseller_admin" }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a company admin cannot make reseller admins"
    );
    let (status, patched) = boss
        .patch(
            &format!("/users/{carol}"),
            json!({ "phone": null, "role": "company_admin" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert!(patched["phone"].is_null());
    assert_eq!(patched["role"], "company_admin");
    let (_, listed) = boss.get(&format!("/users?company={}", t.a.id)).await;
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["id"] == carol.as_str())
    );
    assert_eq!(
        boss.delete(&format!("/users/{carol}")).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, gone) = boss.get(&format!("/users/{carol}")).await;
    assert_eq!(gone["active"], false);
    let browser = app.browser();
    let response = browser.authorize(&rp.authorize_query("")).await;
    let form = browser.login_form(&location(&response)).await;
    let refused = browser.submit_password(&form, "carol", PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::OK, "a deactivated user is refused");
    assert!(refused.text().await.unwrap().contains("incorrect"));

    // Clients: the secret once, never again; update; a service client acting for a company.
    let (status, created) = boss
        .post(
            "/clients",
            json!({ "name": "Globex app", "redirectUris": ["https://globex.example/cb"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(created["clientSecret"].as_str().unwrap().len() >= 40);
    assert_eq!(created["client"]["companyId"], t.a.id.as_str());
    let kid = created["clientId"].as_str().unwrap().to_owned();
    let (_, fetched) = boss.get(&format!("/clients/{kid}")).await;
    assert!(fetched.get("clientSecret").is_none() && !fetched.to_string().contains("secret"));
    let (status, patched) = boss
        .patch(
            &format!("/clients/{kid}"),
            json!({ "name": "Globex portal", "redirectUris": ["https://globex.example/callback"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["redirectUris"][0], "https://globex.example/callback");
    let (status, bad) = boss
        .patch(
            &format!("/clients/{kid}"),
            json!({ "redirectUris": ["ftp://nope"] }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    let (status, svc) = boss
        .post("/clients", json!({ "name": "Robot", "service": true }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{svc}");
    let robot = TestClient {
        id: svc["clientId"].as_str().unwrap().into(),
        secret: svc["clientSecret"].as_str().map(str::to_owned),
        redirect_uri: String::new(),
        post_logout_redirect_uri: String::new(),
    };
    let (_, token) = robot
        .token_request(app, vec![("grant_type", "client_credentials".into())])
        .await;
    let robot_api = Api {
        app,
        token: token["access_token"].as_str().unwrap().into(),
    };
    assert_eq!(
        robot_api.get(&format!("/companies/{}", t.a.id)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        robot_api.get(&format!("/companies/{}", t.b.id)).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, _) = boss
        .post(
            "/clients",
            json!({ "name": "Sneaky", "grantTypes": ["client_credentials"], "scopes": ["admin"] }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        boss.delete(&format!("/clients/{kid}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        boss.get(&format!("/clients/{kid}")).await.0,
        StatusCode::NOT_FOUND
    );
    // A deleted client is refused at once, although the token endpoint has just read it
    // (and keeps client records for a moment).
    let (status, _) = robot
        .token_request(app, vec![("grant_type", "client_credentials".into())])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        boss.delete(&format!("/clients/{}", robot.id)).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, refused) = robot
        .token_request(app, vec![("grant_type", "client_credentials".into())])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused}");
    assert_eq!(refused["error"], "invalid_client");
    let _ = (&t.r2, &t.c, &t.alice, &t.bob, &t.boss_a);
}

#[tokio::test]
async fn only_admins_with_a_live_admin_token_get_in() {
    let t = tree().await;
    let app = &t.app;
    let url = app.url("/api/v1/companies");
    let none = app.http().get(&url).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert!(none.headers().contains_key("www-authenticate"));
    let body: Value = none.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    let forged = Api {
        app,
        token: "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.".into(),
    };
    assert_eq!(forged.get("/companies").await.0, StatusCode::UNAUTHORIZED);
    // A plain user, even with the admin scope.
    assert_eq!(
        signed_in(app, "alice").await.get("/companies").await.0,
        StatusCode::FORBIDDEN
    );
    // A token without the admin scope.
    let rp = app.confidential_client().await;
    let code = app.browser().code(&rp, "boss").await;
    let (_, tokens) = rp.exchange(app, &code, Some(VERIFIER)).await;
    let plain = Api {
        app,
        token: tokens["access_token"].as_str().unwrap().into(),
    };
    assert_eq!(plain.get("/companies").await.0, StatusCode::FORBIDDEN);
    // An expired token, and a deactivated admin.
    let boss = signed_in(app, "boss").await;
    assert_eq!(boss.get("/companies").await.0, StatusCode::OK);
    app.clock.advance(3600);
    assert_eq!(boss.get("/companies").await.0, StatusCode::UNAUTHORIZED);
    let boss = signed_in(app, "boss").await;
    app.store
        .update_user(
            &t.boss_a.id,
            &portcullis::storage::UserChanges {
                active: Some(false),
                ..Default::default()
            },
            app.now(),
        )
        .await
        .unwrap();
    assert_eq!(boss.get("/companies").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_input_gets_a_json_4xx_and_writes_nothing() {
    let t = tree().await;
    let app = &t.app;
    let boss = signed_in(app, "boss").await;
    let before = app.store.list_users(Some(&t.a.id)).await.unwrap().len();
    let post_raw = |body: Vec<u8>, content_type: Option<&'static str>| {
        let mut request = app
            .http()
            .post(app.url("/api/v1/users"))
            .bearer_auth(&boss.token)
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send()
    };
    let json_type = Some("application/json");
    let cases: Vec<(Vec<u8>, Option<&'static str>, StatusCode, &str)> = vec![
        (b"{".to_vec(), json_type, StatusCode::BAD_REQUEST, "invalid JSON"),
        (
            json!({ "companyId": t.a.id, "username": "x1", "email": "x@example.com", "bogus": 1 })
                .to_string()
                .into_bytes(),
            json_type,
            StatusCode::BAD_REQUEST,
            "unknown field `bogus`",
        ),
        (
            json!({ "companyId": t.a.id, "username": 5, "email": "x@example.com" })
                .to_string()
                .into_bytes(),
            json_type,
            StatusCode::BAD_REQUEST,
            "invalid type",
        ),
        (
            json!({ "companyId": t.a.id, "username": "x2", "email": "not-an-address" })
                .to_string()
                .into_bytes(),
            json_type,
            StatusCode::UNPROCESSABLE_ENTITY,
            "not a valid email address",
        ),
        (
            json!({ "companyId": t.a.id, "username": "x3", "email": "x@example.com", "password": "short" })
                .to_string()
                .into_bytes(),
            json_type,
            StatusCode::UNPROCESSABLE_ENTITY,
            "password",
        ),
        (
            json!({ "companyId": t.a.id, "username": "x4", "email": "x@example.com" })
                .to_string()
                .into_bytes(),
            None,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "JSON",
        ),
        (
            format!(
                "{{\"companyId\":\"{}\",\"username\":\"x5\",\"email\":\"x@example.com\",\"name\":\"{}\"}}",
                t.a.id,
                "x".repeat(70_000)
            )
            .into_bytes(),
            json_type,
            StatusCode::PAYLOAD_TOO_LARGE,
            "too large",
        ),
    ];
    for (body, content_type, status, says) in cases {
        let response = post_raw(body, content_type).await.unwrap();
        assert_eq!(response.status(), status, "{says}");
        let answer: Value = response.json().await.unwrap();
        assert!(answer["message"].as_str().unwrap().contains(says), "{answer}");
    }
    assert_eq!(app.store.list_users(Some(&t.a.id)).await.unwrap().len(), before);
    for (path, status) in [
        ("/users?limit=0", StatusCode::UNPROCESSABLE_ENTITY),
        ("/users?colour=red", StatusCode::BAD_REQUEST),
        ("/audit-events?since=yesterday", StatusCode::UNPROCESSABLE_ENTITY),
        ("/no-such-thing", StatusCode::NOT_FOUND),
        ("/users/no-such-user", StatusCode::NOT_FOUND),
    ] {
        let (got, answer) = boss.get(path).await;
        assert_eq!(got, status, "{path}: {answer}");
        assert!(answer["message"].is_string(), "{path}: {answer}");
    }
    let (status, answer) = boss
        .put(
            &format!("/companies/{}/mfa-policy", t.a.id),
            json!({ "mode": "sometimes", "methods": ["totp"] }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
}

#[tokio::test]
async fn the_openapi_document_is_valid_and_matches_the_routes() {
    let app = TestApp::spawn().await;
    let response = app
        .http()
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    let spec = oas3::from_json(&text).unwrap_or_else(|e| panic!("not an OpenAPI 3.1 document: {e}"));
    assert!(spec.validate_version().is_ok(), "{}", spec.openapi);
    let document: Value = serde_json::from_str(&text).unwrap();
    let paths = document["paths"].as_object().unwrap();
    // The routes black-box clients rely on.
    for (path, methods) in [
        ("/api/v1/resellers", &["get", "post"][..]),
        ("/api/v1/resellers/{id}", &["get", "patch", "delete"]),
        ("/api/v1/companies", &["get", "post"]),
        ("/api/v1/companies/{id}", &["get", "patch", "delete"]),
        ("/api/v1/users", &["get", "post"]),
        ("/api/v1/users/{id}", &["get", "patch", "delete"]),
        ("/api/v1/clients", &["get", "post"]),
        ("/api/v1/clients/{id}", &["get", "patch", "delete"]),
        ("/api/v1/companies/{id}/mfa-policy", &["get", "put"]),
        ("/api/v1/companies/{id}/enforcement", &["put", "delete"]),
        ("/api/v1/users/{id}/mfa", &["get"]),
        ("/api/v1/users/{id}/mfa/reset", &["post"]),
        ("/api/v1/users/{id}/membership", &["put"]),
        ("/api/v1/companies/{id}/reset-requests", &["get"]),
        ("/api/v1/reset-requests/{id}/approve", &["post"]),
        ("/api/v1/reset-requests/{id}/decline", &["post"]),
        ("/api/v1/audit-events", &["get"]),
    ] {
        for method in methods {
            assert!(
                paths[path].get(*method).is_some(),
                "{method} {path} is not documented"
            );
        }
    }
    // Everything documented exists: without a token each answers 401, never 404 or 405.
    let mut operations = 0;
    for (path, item) in paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            operations += 1;
            let url = app.url(&path.replace("{id}", "x"));
            let response = app
                .http()
                .request(method.to_uppercase().parse().unwrap(), url)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        }
    }
    assert_eq!(operations, 31);
    assert!(document["components"]["securitySchemes"]["bearer"].is_object());
    // The browsable docs, served from the binary.
    let docs = app.http().get(app.url("/api/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    let html = docs.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let bundle = app
        .http()
        .get(app.url("/api/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(bundle.status(), StatusCode::OK);
}

#[tokio::test]
async fn enforcement_locks_the_company_admin_out_of_weakening_the_policy() {
    let t = tree().await;
    let app = &t.app;
    let boss = signed_in(app, "boss").await;
    let reseller = service(app, None, Some(&t.r1.id)).await;
    let path = format!("/companies/{}/mfa-policy", t.a.id);
    let (status, answer) = boss
        .put(&path, json!({ "mode": "required", "methods": ["totp"] }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "no approver: {answer}");
    assert!(answer["message"].as_str().unwrap().contains("approver"));
    let (status, answer) = boss
        .put(
            &path,
            json!({ "mode": "required", "methods": [], "resetApprovers": [t.boss_a.id] }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "no method: {answer}");
    let (status, view) = boss
        .put(
            &path,
            json!({ "mode": "optional", "methods": ["totp", "email"], "allowSkip": false,
                    "resetApprovers": [t.boss_a.id], "skipDeadline": "2027-03-31T00:00:00Z" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["policy"]["skipDeadline"], "2027-03-31T00:00:00Z");
    // Only the reseller enforces.
    let enforcement = format!("/companies/{}/enforcement", t.a.id);
    assert_eq!(boss.put(&enforcement, json!({})).await.0, StatusCode::FORBIDDEN);
    let (status, view) = reseller.put(&enforcement, json!({ "methods": ["email"] })).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["effective"]["mode"], "required");
    assert_eq!(view["effective"]["methods"], json!(["email"]));
    assert_eq!(view["enforcedBy"], t.r1.id.as_str());
    let (status, answer) = boss
        .put(
            &path,
            json!({ "mode": "off", "methods": ["email"], "resetApprovers": [t.boss_a.id] }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("enforces"),
        "{answer}"
    );
    let (status, _) = boss
        .put(
            &path,
            json!({ "mode": "required", "methods": ["email"], "allowSkip": true, "resetApprovers": [t.boss_a.id] }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(boss.get(&path).await.1["effective"]["enforced"], true);
    assert_eq!(boss.delete(&enforcement).await.0, StatusCode::FORBIDDEN);
    let (status, view) = reseller.delete(&enforcement).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let (status, _) = boss
        .put(
            &path,
            json!({ "mode": "off", "methods": ["email"], "resetApprovers": [t.boss_a.id] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        reseller.delete(&enforcement).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // The refused attempt is in the audit log.
    let (_, events) = reseller.get("/audit-events?type=policy.changed").await;
    let outcomes: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert!(
        outcomes.contains(&"failure") && outcomes.contains(&"success"),
        "{events}"
    );
}

#[tokio::test]
async fn opt_out_on_and_off_and_a_direct_reset() {
    let t = tree().await;
    let app = &t.app;
    app.set_policy(&t.a.id, |p| {
        p.mode = Mode::Required;
        p.methods = [Method::Email].into_iter().collect();
        p.reset_approvers = vec![t.boss_a.id.clone()];
    })
    .await
    .unwrap();
    let boss = service(app, Some(&t.a.id), None).await;
    let alice = &t.alice.id;
    let membership = format!("/users/{alice}/membership");
    let (status, answer) = boss.put(&membership, json!({ "mfaOptOut": true })).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a reason is required: {answer}"
    );
    let (status, _) = boss
        .put(
            &membership,
            json!({ "mfaOptOut": true, "reason": "shared kiosk", "expiresAt": "2099-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, mfa) = boss.get(&format!("/users/{alice}/mfa")).await;
    assert_eq!(mfa["optOut"]["reason"], "shared kiosk");
    // Opted out: straight through.
    let rp = app.confidential_client().await;
    app.browser().code(&rp, "alice").await;
    assert_eq!(
        boss.put(&membership, json!({ "mfaOptOut": false })).await.0,
        StatusCode::NO_CONTENT
    );
    assert!(boss.get(&format!("/users/{alice}/mfa")).await.1["optOut"].is_null());
    let browser = app.browser();
    let response = browser.authorize(&rp.authorize_query("")).await;
    let form = browser.login_form(&location(&response)).await;
    let response = browser.submit_password(&form, "alice", PASSWORD).await;
    let page = browser.get(&location(&response)).await.text().await.unwrap();
    assert!(page.contains("name=\"email\""), "alice must now enrol: {page}");
    // A direct reset clears factors and tells the user.
    seed_email_factor(app, &t.alice).await;
    let (_, mfa) = boss.get(&format!("/users/{alice}/mfa")).await;
    assert_eq!(mfa["factors"][0]["type"], "email");
    assert!(
        !mfa.to_string().contains(&t.alice.email),
        "destinations are masked: {mfa}"
    );
    assert_eq!(
        boss.post(&format!("/users/{alice}/mfa/reset"), json!({})).await.0,
        StatusCode::NO_CONTENT
    );
    assert!(app.store.factors_of(alice).await.unwrap().is_empty());
    app.smtp.wait_for(&t.alice.email, "was reset").await;
    let (_, events) = boss.get(&format!("/audit-events?user={alice}")).await;
    let kinds: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for kind in [
        "mfa.opt_out.set",
        "mfa.opt_out.cleared",
        "mfa.reset",
        "login.succeeded",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
}

/// The request id in the approvers' email link.
fn request_link(text: &str) -> String {
    let start = text
        .find("/admin/reset-requests/")
        .expect("a link to the request");
    text[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches('.')
        .to_owned()
}

#[tokio::test]
async fn the_reset_request_journey_through_pages_api_and_email() {
    let t = tree().await;
    let app = &t.app;
    app.set_policy(&t.a.id, |p| {
        p.mode = Mode::Optional;
        p.methods = [Method::Email, Method::Totp].into_iter().collect();
        p.reset_approvers = vec![t.boss_a.id.clone()];
    })
    .await
    .unwrap();
    seed_email_factor(app, &t.alice).await;
    let rp = app.confidential_client().await;

    // alice lost access to her mailbox: after the password, the challenge offers a reset.
    let browser = app.browser();
    let response = browser.authorize(&rp.authorize_query("")).await;
    let form = browser.login_form(&location(&response)).await;
    let response = browser.submit_password(&form, "alice", PASSWORD).await;
    let challenge_url = location(&response);
    let challenge = browser.get(&challenge_url).await.text().await.unwrap();
    assert!(
        challenge.contains("Reset multi-factor authentication"),
        "{challenge}"
    );
    let login = query_param(&format!("http://x{challenge_url}"), "login").unwrap();
    let explain = browser.get(&format!("/login/reset?login={login}")).await;
    assert_eq!(explain.status(), StatusCode::OK);
    let explain = explain.text().await.unwrap();
    assert!(explain.contains("current method keeps working"), "{explain}");
    let csrf = crate::helpers::hidden_field(&explain, "csrf_token").unwrap();
    for _ in 0..2 {
        let filed = browser
            .post("/login/reset", &[("login", &login), ("csrf_token", &csrf)])
            .await;
        assert_eq!(filed.status(), StatusCode::OK);
        assert!(filed.text().await.unwrap().contains("id=\"reset-filed\""));
    }
    // The approver is emailed once, with the name, the time and a link.
    let email = app.smtp.wait_for(&t.boss_a.email, "asked to reset").await;
    assert!(email.text().contains("alice"), "{}", email.text());
    let link = request_link(&email.text());
    let boss_api = signed_in(app, "boss").await;
    let (_, pending) = boss_api
        .get(&format!("/companies/{}/reset-requests", t.a.id))
        .await;
    assert_eq!(pending.as_array().unwrap().len(), 1, "{pending}");
    assert_eq!(pending[0]["username"], "alice");
    assert_eq!(pending[0]["source"], "challenge");
    assert!(
        app.smtp
            .all()
            .await
            .iter()
            .filter(|m| m.subject().contains("asked to reset"))
            .count()
            == 1
    );
    // The old factor still works meanwhile.
    assert_eq!(app.store.factors_of(&t.alice.id).await.unwrap().len(), 1);

    // A plain user cannot open the approver's page.
    let nosy = app.browser();
    let response = nosy.get(&link).await;
    let form = nosy.login_form(&location(&response)).await;
    let response = nosy.submit_password(&form, "bob", PASSWORD).await;
    assert_eq!(location(&response), link);
    assert_eq!(nosy.get(&link).await.status(), StatusCode::FORBIDDEN);

    // The approver follows the link, signs in, lands back on the request, and resets.
    let approver = app.browser();
    let response = approver.get(&link).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let form = approver.login_form(&location(&response)).await;
    let response = approver.submit_password(&form, "boss", PASSWORD).await;
    assert_eq!(location(&response), link);
    let page = approver.get(&link).await.text().await.unwrap();
    assert!(page.contains("alice") && page.contains("Pending"), "{page}");
    let listing = approver.get("/admin/reset-requests").await.text().await.unwrap();
    assert!(listing.contains("alice"), "{listing}");
    let csrf = crate::helpers::hidden_field(&page, "csrf_token").unwrap();
    let forged = approver
        .post(&format!("{link}/approve"), &[("csrf_token", "forged")])
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let approved = approver
        .post(&format!("{link}/approve"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(location(&approved), format!("{link}?notice=approved"));
    assert!(app.store.factors_of(&t.alice.id).await.unwrap().is_empty());
    app.smtp.wait_for(&t.alice.email, "was reset").await;
    let (_, pending) = boss_api
        .get(&format!("/companies/{}/reset-requests", t.a.id))
        .await;
    assert!(pending.as_array().unwrap().is_empty());
    let again = approver
        .post(&format!("{link}/approve"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(location(&again), format!("{link}?notice=decided"));

    // Another request, declined through the API: the set-up stays, the user is told.
    seed_email_factor(app, &t.alice).await;
    let request = portcullis::storage::ResetRequest {
        id: new_id(),
        user_id: t.alice.id.clone(),
        company_id: t.a.id.clone(),
        status: "pending".into(),
        source: "account".into(),
        created_at: app.now(),
        decided_at: None,
        decided_by: None,
    };
    app.store.file_reset_request(&request, &[]).await.unwrap();
    let (status, _) = boss_api
        .post(&format!("/reset-requests/{}/decline", request.id), json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.smtp.wait_for(&t.alice.email, "was declined").await;
    assert_eq!(app.store.factors_of(&t.alice.id).await.unwrap().len(), 1);
    let (status, _) = boss_api
        .post(&format!("/reset-requests/{}/approve", request.id), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Everything is in the audit log, with who acted.
    let (_, events) = boss_api.get(&format!("/audit-events?user={}", t.alice.id)).await;
    let events = events["items"].as_array().unwrap();
    let find = |kind: &str| {
        events
            .iter()
            .find(|e| e["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {events:?}"))
    };
    assert_eq!(find("mfa.reset_requested")["actor"], t.alice.id.as_str());
    assert_eq!(find("mfa.reset_request.approved")["actor"], t.boss_a.id.as_str());
    assert_eq!(find("mfa.reset_request.declined")["actorKind"], "user");
    let _ = Role::User;
}

#[tokio::test]
async fn the_audit_log_records_logins_and_is_scoped_and_append_only() {
    let t = tree().await;
    let app = &t.app;
    let rp = app.confidential_client().await;
    app.browser().code(&rp, "alice").await;
    let browser = app.browser();
    let response = browser.authorize(&rp.authorize_query("")).await;
    let form = browser.login_form(&location(&response)).await;
    browser.submit_password(&form, "alice", "wrong password").await;
    let boss = service(app, Some(&t.a.id), None).await;
    let (_, events) = boss
        .get(&format!("/audit-events?user={}&type=login.succeeded", t.alice.id))
        .await;
    let event = &events["items"][0];
    assert_eq!(event["outcome"], "success");
    assert_eq!(event["clientIp"], "127.0.0.1");
    assert_eq!(event["companyId"], t.a.id.as_str());
    assert_eq!(event["detail"]["client_id"], rp.id.as_str());
    let (_, failed) = boss.get("/audit-events?type=login.password_failed").await;
    assert_eq!(failed["items"][0]["outcome"], "failure");
    assert_eq!(failed["items"][0]["subject"], t.alice.id.as_str());
    // Time filters.
    let future = "2999-01-01T00:00:00Z";
    let (_, none) = boss.get(&format!("/audit-events?since={future}")).await;
    assert!(none["items"].as_array().unwrap().is_empty());
    // Another company's admin sees none of it.
    let other = service(app, Some(&t.b.id), None).await;
    let (_, theirs) = other.get("/audit-events").await;
    assert!(
        theirs["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["companyId"] != t.a.id.as_str()),
        "{theirs}"
    );
    // The database refuses to change or delete an event.
    let url = app.config.database_url.expose().to_owned();
    let (update, delete) = if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        (
            sqlx::query("UPDATE audit_events SET outcome = 'success'")
                .execute(&pool)
                .await
                .is_err(),
            sqlx::query("DELETE FROM audit_events")
                .execute(&pool)
                .await
                .is_err(),
        )
    } else {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        (
            sqlx::query("UPDATE audit_events SET outcome = 'success'")
                .execute(&pool)
                .await
                .is_err(),
            sqlx::query("DELETE FROM audit_events")
                .execute(&pool)
                .await
                .is_err(),
        )
    };
    assert!(update && delete, "audit events must be append-only");
    let _ = (&t.r2, &t.c, &t.bob, &t.r1);
}
