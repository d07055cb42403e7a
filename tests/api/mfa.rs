//! Multi-factor authentication through the real pages: required enrolment, challenges,
//! skips, the account security page, resets, recovery codes, the policy's corner cases,
//! and the notification emails received over SMTP.

use portcullis::mfa::totp;
use portcullis::model::{Company, User};
use portcullis::policy::{Method, Mode, OptOut};
use regex::Regex;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    Browser, ClientSpec, PASSWORD, TestApp, TestClient, VERIFIER, hidden_field, location, query_param,
};

/// A company whose policy the test sets, a user, an approver, and a client.
pub(crate) struct World {
    pub app: TestApp,
    pub company: Company,
    pub admin: User,
    pub user: User,
    pub client: TestClient,
}

async fn world(change: impl FnOnce(&mut portcullis::policy::CompanyPolicy)) -> World {
    world_with(|_| {}, change).await
}

pub(crate) async fn world_with(
    configure: impl FnOnce(&mut portcullis::config::Config),
    change: impl FnOnce(&mut portcullis::policy::CompanyPolicy),
) -> World {
    let app = TestApp::spawn_with(configure).await;
    let (_, company) = app.tenant().await;
    let admin = app.admin_user(&company.id, "boss").await;
    let user = app.user(&company.id, "alice").await;
    let client = app.confidential_client().await;
    let approver = admin.id.clone();
    app.set_policy(&company.id, |p| {
        p.reset_approvers = vec![approver];
        change(p);
    })
    .await
    .unwrap();
    World {
        app,
        company,
        admin,
        user,
        client,
    }
}

fn required(p: &mut portcullis::policy::CompanyPolicy) {
    p.mode = Mode::Required;
}

fn optional(p: &mut portcullis::policy::CompanyPolicy) {
    p.mode = Mode::Optional;
}

/// Where a login stands after a step: a page of the provider, or back at the client.
pub(crate) enum At {
    Page { url: String, html: String },
    Client(String),
}

impl At {
    pub fn html(&self) -> &str {
        match self {
            At::Page { html, .. } => html,
            At::Client(url) => panic!("expected a page, got the client redirect {url}"),
        }
    }

    pub fn client_url(&self) -> &str {
        match self {
            At::Client(url) => url,
            At::Page { url, html } => panic!("expected the client redirect, got {url}: {html}"),
        }
    }

    pub fn code(&self) -> String {
        query_param(self.client_url(), "code").unwrap_or_else(|| panic!("no code in {}", self.client_url()))
    }
}

/// Follows a 303 (to a page of ours, or out to the client), or reads a page answered directly.
pub(crate) async fn follow(browser: &Browser, response: reqwest::Response) -> At {
    if response.status() == StatusCode::SEE_OTHER {
        let target = location(&response);
        if target.starts_with('/') {
            let page = browser.get(&target).await;
            assert_eq!(page.status(), StatusCode::OK, "{target}");
            return At::Page {
                url: target,
                html: page.text().await.unwrap(),
            };
        }
        return At::Client(target);
    }
    let status = response.status();
    let html = response.text().await.unwrap();
    assert!(status.is_success(), "{status}: {html}");
    At::Page {
        url: String::new(),
        html,
    }
}

/// Authorize, then the password; where that leads.
pub(crate) async fn sign_in(
    app: &TestApp,
    browser: &Browser,
    client: &TestClient,
    query_extra: &str,
    username: &str,
) -> At {
    let response = browser.authorize(&client.authorize_query(query_extra)).await;
    let at = follow(browser, response).await;
    let At::Page { html, .. } = &at else {
        return at;
    };
    if !html.contains("name=\"password\"") {
        return at;
    }
    let form = crate::helpers::LoginForm {
        login: hidden_field(html, "login").unwrap(),
        csrf_token: hidden_field(html, "csrf_token").unwrap(),
    };
    let _ = app;
    follow(browser, browser.submit_password(&form, username, PASSWORD).await).await
}

/// Posts the form on `html` to `path` with `fields` (plus its login and CSRF fields).
pub(crate) async fn post(
    browser: &Browser,
    path: &str,
    html: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let login = hidden_field(html, "login").unwrap_or_default();
    let csrf = hidden_field(html, "csrf_token").unwrap();
    let mut form = vec![("login", login.as_str()), ("csrf_token", csrf.as_str())];
    form.extend_from_slice(fields);
    browser.post(path, &form).await
}

fn totp_secret(html: &str) -> Vec<u8> {
    let pattern = Regex::new(r#"id="totp-secret"[^>]*>([A-Z2-7]+)<"#).unwrap();
    let secret = &pattern
        .captures(html)
        .unwrap_or_else(|| panic!("no TOTP secret on {html}"))[1];
    totp::secret_from_base32(secret).unwrap()
}

pub(crate) fn recovery_codes(html: &str) -> Vec<String> {
    let pattern = Regex::new(r"<li><code>([0-9a-z]{5}-[0-9a-z]{5})</code></li>").unwrap();
    pattern.captures_iter(html).map(|c| c[1].to_owned()).collect()
}

fn code_now(app: &TestApp, secret: &[u8]) -> String {
    totp::code_at(secret, app.now()).unwrap()
}

/// Answers the challenge page `at` with the authenticator's current code.
async fn pass_challenge(app: &TestApp, browser: &Browser, at: &At, secret: &[u8]) -> At {
    follow(
        browser,
        post(
            browser,
            "/login/challenge",
            at.html(),
            &[("code", &code_now(app, secret))],
        )
        .await,
    )
    .await
}

/// From the enrolment page: verify with the current code, save the recovery codes, and
/// arrive at the client. Returns the secret and the recovery codes.
async fn enrol(app: &TestApp, browser: &Browser, at: At) -> (Vec<u8>, Vec<String>, At) {
    let html = at.html().to_owned();
    assert!(html.contains("<svg"), "a QR code");
    let secret = totp_secret(&html);
    let at = follow(
        browser,
        post(
            browser,
            "/login/enrol",
            &html,
            &[("code", &code_now(app, &secret))],
        )
        .await,
    )
    .await;
    let codes = recovery_codes(at.html());
    assert_eq!(codes.len(), 10, "ten recovery codes after the first enrolment");
    let at = follow(
        browser,
        post(browser, "/login/recovery-codes", at.html(), &[("saved", "yes")]).await,
    )
    .await;
    (secret, codes, at)
}

/// The code exchange through the openidconnect RP: the ID token's claims, verified.
pub(crate) async fn exchange(w: &World, code: &str) -> Value {
    crate::rp::exchange_verified(&w.app, &w.client, code).await
}

/// Enrols alice through a required-policy login and returns her TOTP secret and codes.
async fn enrolled_alice(w: &World) -> (Vec<u8>, Vec<String>) {
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    let (secret, codes, at) = enrol(&w.app, &browser, at).await;
    exchange(w, &at.code()).await;
    // The next code from the app is in the next time step.
    w.app.clock.advance(30);
    (secret, codes)
}

#[tokio::test]
async fn required_enrolment_with_totp_then_tokens_say_mfa() {
    let w = world(required).await;
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    let html = at.html();
    assert!(html.contains("Set up multi-factor authentication"), "{html}");
    assert!(html.contains("Google Authenticator") && html.contains("Microsoft Authenticator"));
    assert!(
        !html.contains("name=\"skip\""),
        "no skip unless the company allows it"
    );
    let (secret, codes, at) = enrol(&w.app, &browser, at).await;
    assert_eq!(secret.len(), 20);
    assert!(codes.iter().all(|c| c.len() == 11));
    let claims = exchange(&w, &at.code()).await;
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    assert_eq!(claims["acr"], "urn:portcullis:acr:mfa");

    let email = w.app.smtp.wait_for(&w.user.email, "was set up").await;
    assert!(
        email.text().contains("If you did not make this change"),
        "{}",
        email.text()
    );
    assert!(email.subject().contains(&w.company.name));

    // The seed never reaches the database in clear.
    let factors = w.app.store.factors_of(&w.user.id).await.unwrap();
    let sealed = factors[0].secret.clone().unwrap();
    assert!(
        !sealed
            .windows(secret.len())
            .any(|window| window == secret.as_slice())
    );
}

#[tokio::test]
async fn an_enrolled_user_is_challenged_at_every_login() {
    let w = world(required).await;
    let (secret, _) = enrolled_alice(&w).await;
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    let html = at.html().to_owned();
    assert!(
        html.contains("Multi-factor authentication") && html.contains("name=\"code\""),
        "{html}"
    );
    let wrong = post(&browser, "/login/challenge", &html, &[("code", "000000")]).await;
    assert_eq!(wrong.status(), StatusCode::OK);
    assert!(wrong.text().await.unwrap().contains("That code is not right"));
    let at = follow(
        &browser,
        post(
            &browser,
            "/login/challenge",
            &html,
            &[("code", &code_now(&w.app, &secret))],
        )
        .await,
    )
    .await;
    let claims = exchange(&w, &at.code()).await;
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
}

/// The challenge step reads its login with the user's factors in one statement: the login is
/// still checked (it exists, is live, is this browser's, and the form is its own) before the
/// code is, and a refused form uses up nothing.
#[tokio::test]
async fn a_challenge_form_is_checked_before_its_code() {
    let w = world(required).await;
    let (secret, _) = enrolled_alice(&w).await;
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    let login = hidden_field(at.html(), "login").unwrap();
    let csrf = hidden_field(at.html(), "csrf_token").unwrap();
    let code = code_now(&w.app, &secret);
    let form = |login, csrf| [("login", login), ("csrf_token", csrf), ("code", code.as_str())];

    let unknown = browser
        .post("/login/challenge", &form("no-such-login", &csrf))
        .await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert!(unknown.text().await.unwrap().contains("expired"));
    let elsewhere = w
        .app
        .browser()
        .post("/login/challenge", &form(&login, &csrf))
        .await;
    assert_eq!(elsewhere.status(), StatusCode::FORBIDDEN);
    let forged = browser.post("/login/challenge", &form(&login, "forged")).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    // None of them used the code or counted as a wrong one.
    let right = browser.post("/login/challenge", &form(&login, &csrf)).await;
    assert!(query_param(&location(&right), "code").is_some());

    // An expired login is refused, code or not.
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    w.app.clock.advance(16 * 60);
    let code = code_now(&w.app, &secret);
    let late = post(&browser, "/login/challenge", at.html(), &[("code", &code)]).await;
    assert_eq!(late.status(), StatusCode::BAD_REQUEST);
    assert!(late.text().await.unwrap().contains("expired"));
}

#[tokio::test]
async fn a_used_totp_code_is_refused_even_in_another_login() {
    let w = world(required).await;
    let (secret, _) = enrolled_alice(&w).await;
    let code = code_now(&w.app, &secret);
    let first = w.app.browser();
    let at = sign_in(&w.app, &first, &w.client, "", "alice").await;
    follow(
        &first,
        post(&first, "/login/challenge", at.html(), &[("code", &code)]).await,
    )
    .await
    .code();
    // Same code, same time step, another browser: a replay.
    let second = w.app.browser();
    let at = sign_in(&w.app, &second, &w.client, "", "alice").await;
    let replay = post(&second, "/login/challenge", at.html(), &[("code", &code)]).await;
    assert!(replay.text().await.unwrap().contains("already used"));
    // An earlier step is refused too (the previous step's code is within the skew).
    let earlier = totp::code_at(&secret, w.app.now() - 30).unwrap();
    let again = post(&second, "/login/challenge", at.html(), &[("code", &earlier)]).await;
    assert!(again.text().await.unwrap().contains("That code is not right"));
}

#[tokio::test]
async fn a_right_code_forgets_earlier_wrong_ones() {
    let w = world(required).await;
    let (secret, _) = enrolled_alice(&w).await;
    // Four wrong codes and the right one, in two sign-ins: had the first right code kept
    // the count, the second sign-in's wrong codes would lock the factor at the fifth.
    for _ in 0..2 {
        let browser = w.app.browser();
        let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
        for _ in 0..4 {
            let wrong = post(&browser, "/login/challenge", at.html(), &[("code", "123456")]).await;
            assert_eq!(wrong.status(), StatusCode::OK);
        }
        let code = code_now(&w.app, &secret);
        let right = post(&browser, "/login/challenge", at.html(), &[("code", &code)]).await;
        assert!(query_param(&location(&right), "code").is_some());
        w.app.clock.advance(30); // the next code is a new one
    }
}

#[tokio::test]
async fn five_wrong_codes_end_the_login_and_lock_the_second_factor() {
    let w = world(required).await;
    let (secret, _) = enrolled_alice(&w).await;
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    let html = at.html().to_owned();
    for _ in 0..4 {
        let response = post(&browser, "/login/challenge", &html, &[("code", "123456")]).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let fifth = post(&browser, "/login/challenge", &html, &[("code", "123456")]).await;
    assert_eq!(fifth.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        query_param(&location(&fifth), "error").as_deref(),
        Some("access_denied")
    );
    // The login is over, and the user's MFA is locked for a while: even the right code waits.
    let retry = post(
        &browser,
        "/login/challenge",
        &html,
        &[("code", &code_now(&w.app, &secret))],
    )
    .await;
    assert_eq!(retry.status(), StatusCode::CONFLICT);
    let fresh = w.app.browser();
    let at = sign_in(&w.app, &fresh, &w.client, "", "alice").await;
    let locked = post(
        &fresh,
        "/login/challenge",
        at.html(),
        &[("code", &code_now(&w.app, &secret))],
    )
    .await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.text().await.unwrap().contains("Too many incorrect codes"));
    w.app.clock.advance(31);
    let open = post(
        &fresh,
        "/login/challenge",
        at.html(),
        &[("code", &code_now(&w.app, &secret))],
    )
    .await;
    assert_eq!(open.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn recovery_codes_work_once_each() {
    let w = world(required).await;
    let (_, codes) = enrolled_alice(&w).await;
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    let html = at.html().to_owned();
    // Typed loosely: upper case, no dash.
    let typed = codes[0].replace('-', "").to_uppercase();
    let at = follow(
        &browser,
        post(&browser, "/login/challenge", &html, &[("code", &typed)]).await,
    )
    .await;
    let claims = exchange(&w, &at.code()).await;
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "rc", "mfa"]));
    let email = w.app.smtp.wait_for(&w.user.email, "recovery code was used").await;
    assert!(
        email.text().contains("You have 9 recovery codes left"),
        "{}",
        email.text()
    );

    let again = w.app.browser();
    let at = sign_in(&w.app, &again, &w.client, "", "alice").await;
    let reuse = post(&again, "/login/challenge", at.html(), &[("code", &codes[0])]).await;
    assert!(reuse.text().await.unwrap().contains("That code is not right"));
}

#[tokio::test]
async fn a_skip_is_offered_when_allowed_and_remembered() {
    let w = world(|p| {
        required(p);
        p.allow_skip = true;
    })
    .await;
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    assert!(at.html().contains("name=\"skip\""), "a skip button");
    let at = follow(
        &browser,
        post(&browser, "/login/enrol", at.html(), &[("skip", "yes")]).await,
    )
    .await;
    let claims = exchange(&w, &at.code()).await;
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    // Remembered: the next login goes straight through.
    let next = w.app.browser();
    let at = sign_in(&w.app, &next, &w.client, "", "alice").await;
    exchange(&w, &at.code()).await;
}

#[tokio::test]
async fn limited_skips_run_out() {
    let w = world(|p| {
        required(p);
        p.allow_skip = true;
        p.skip_limit = Some(2);
    })
    .await;
    for _ in 0..2 {
        let browser = w.app.browser();
        let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
        let at = follow(
            &browser,
            post(&browser, "/login/enrol", at.html(), &[("skip", "yes")]).await,
        )
        .await;
        exchange(&w, &at.code()).await;
    }
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    assert!(!at.html().contains("name=\"skip\""), "no skips left");
    let refused = post(&browser, "/login/enrol", at.html(), &[("skip", "yes")]).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_skip_deadline_ends_skipping() {
    let deadline_in = 3600;
    let app_now = portcullis::clock::ManualClock::starting_now();
    let deadline = {
        use portcullis::clock::Clock;
        app_now.now() + deadline_in
    };
    let w = world(move |p| {
        required(p);
        p.allow_skip = true;
        p.skip_deadline = Some(deadline);
    })
    .await;
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    follow(
        &browser,
        post(&browser, "/login/enrol", at.html(), &[("skip", "yes")]).await,
    )
    .await
    .code();
    w.app.clock.advance(deadline_in + 10);
    let later = w.app.browser();
    let at = sign_in(&w.app, &later, &w.client, "", "alice").await;
    assert!(at.html().contains("Set up multi-factor authentication") && !at.html().contains("name=\"skip\""));
}

#[tokio::test]
async fn policy_off_means_no_challenge_and_on_again_restores_kept_enrolments() {
    let w = world(required).await;
    let (secret, _) = enrolled_alice(&w).await;
    w.app
        .set_policy(&w.company.id, |p| p.mode = Mode::Off)
        .await
        .unwrap();
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    let claims = exchange(&w, &at.code()).await;
    assert_eq!(
        claims["amr"],
        serde_json::json!(["pwd"]),
        "seed 000: no challenge while off"
    );
    // On again: the kept authenticator is asked for again.
    w.app.set_policy(&w.company.id, required).await.unwrap();
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    assert!(
        at.html().contains("Verify &amp; sign in"),
        "challenged, not enrolling"
    );
    let at = pass_challenge(&w.app, &browser, &at, &secret).await;
    at.code();
}

#[tokio::test]
async fn turning_mfa_off_can_drop_every_enrolment() {
    let w = world(|p| {
        required(p);
        p.keep_enrollments_when_off = false;
    })
    .await;
    enrolled_alice(&w).await;
    w.app
        .set_policy(&w.company.id, |p| p.mode = Mode::Off)
        .await
        .unwrap();
    assert!(w.app.store.factors_of(&w.user.id).await.unwrap().is_empty());
    assert_eq!(w.app.store.recovery_codes_left(&w.user.id).await.unwrap(), 0);
    w.app.smtp.wait_for(&w.user.email, "was reset").await;
    // Seed 002: on again, everyone enrols again.
    w.app.set_policy(&w.company.id, required).await.unwrap();
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    assert!(at.html().contains("Set up multi-factor authentication"));
}

#[tokio::test]
async fn reseller_enforcement_overrides_company_off_skip_and_opt_out() {
    let w = world(|p| {
        p.mode = Mode::Off;
        p.allow_skip = true;
    })
    .await;
    w.app
        .admin()
        .set_opt_out(
            &w.user.id,
            Some(OptOut {
                reason: "contractor".into(),
                expires_at: None,
            }),
            w.app.now(),
        )
        .await
        .unwrap();
    w.app
        .admin()
        .enforce(&w.company.reseller_id, &w.company.id, None, w.app.now())
        .await
        .unwrap();
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    let html = at.html();
    assert!(
        html.contains("Set up multi-factor authentication"),
        "enforced: must enrol"
    );
    assert!(!html.contains("name=\"skip\""), "enforced: no skip");
    // And the company admin cannot loosen it.
    let error = w
        .app
        .set_policy(&w.company.id, |p| p.mode = Mode::Off)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("enforces MFA"), "{error}");
    let error = w
        .app
        .set_policy(&w.company.id, |p| {
            p.mode = Mode::Required;
            p.allow_skip = true;
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("cannot skip"), "{error}");
    // Released: the company's own settings apply again.
    w.app
        .admin()
        .release(&w.company.reseller_id, &w.company.id)
        .await
        .unwrap();
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    at.code();
}

#[tokio::test]
async fn an_opted_out_user_is_not_challenged_when_required_but_not_enforced() {
    let w = world(required).await;
    enrolled_alice(&w).await;
    let expires = w.app.now() + 3600;
    w.app
        .admin()
        .set_opt_out(
            &w.user.id,
            Some(OptOut {
                reason: "lost phone, travelling".into(),
                expires_at: Some(expires),
            }),
            w.app.now(),
        )
        .await
        .unwrap();
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    let claims = exchange(&w, &at.code()).await;
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    // The opt-out expires.
    w.app.clock.advance(3601);
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    assert!(at.html().contains("Verify &amp; sign in"));
    // An opt-out needs a reason.
    let error = w
        .app
        .admin()
        .set_opt_out(
            &w.user.id,
            Some(OptOut {
                reason: " ".into(),
                expires_at: None,
            }),
            w.app.now(),
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("reason"));
}

#[tokio::test]
async fn acr_values_force_a_step_up_or_fail_clearly() {
    let w = world(optional).await;
    // Optional and not enrolled: a plain login passes; one asking for MFA must enrol.
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    exchange(&w, &at.code()).await;
    let at = follow(
        &browser,
        browser
            .authorize(
                &w.client
                    .authorize_query("acr_values=urn%3Aportcullis%3Aacr%3Amfa"),
            )
            .await,
    )
    .await;
    assert!(at.html().contains("Set up multi-factor authentication") && !at.html().contains("name=\"skip\""));
    let (_, _, at) = enrol(&w.app, &browser, at).await;
    let claims = exchange(&w, &at.code()).await;
    assert_eq!(claims["acr"], "urn:portcullis:acr:mfa");

    // An opted-out user signs in with a password; a client asking for MFA gets a challenge
    // on top of the same session (no password again).
    w.app.clock.advance(30);
    w.app
        .admin()
        .set_opt_out(
            &w.user.id,
            Some(OptOut {
                reason: "kiosk".into(),
                expires_at: None,
            }),
            w.app.now(),
        )
        .await
        .unwrap();
    let fresh = w.app.browser();
    let at = sign_in(&w.app, &fresh, &w.client, "", "alice").await;
    let first = exchange(&w, &at.code()).await;
    assert_eq!(first["amr"], serde_json::json!(["pwd"]));
    let at = follow(
        &fresh,
        fresh
            .authorize(
                &w.client
                    .authorize_query("acr_values=urn%3Aportcullis%3Aacr%3Amfa"),
            )
            .await,
    )
    .await;
    assert!(
        at.html().contains("Verify &amp; sign in"),
        "challenged, not asked for the password"
    );
    let factors = w.app.store.factors_of(&w.user.id).await.unwrap();
    let secret = w
        .app
        .master()
        .open(&factors[0].id, factors[0].secret.as_deref().unwrap())
        .unwrap();
    let at = pass_challenge(&w.app, &fresh, &at, &secret).await;
    let stepped = exchange(&w, &at.code()).await;
    assert_eq!(stepped["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    assert_eq!(stepped["sid"], first["sid"], "the same session, stepped up");
    // prompt=none cannot step up.
    w.app
        .set_policy(&w.company.id, |p| p.mode = Mode::Off)
        .await
        .unwrap();
    let response = fresh
        .authorize(
            &w.client
                .authorize_query("acr_values=urn%3Aportcullis%3Aacr%3Amfa"),
        )
        .await;
    let target = location(&response);
    assert_eq!(
        query_param(&target, "error").as_deref(),
        Some("unmet_authentication_requirements"),
        "{target}"
    );
}

#[tokio::test]
async fn skipping_pages_never_gets_a_code() {
    let w = world(required).await;
    enrolled_alice(&w).await;
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    let html = at.html().to_owned();
    // Posting straight to later steps.
    for (path, fields) in [
        ("/login/enrol", vec![("skip", "yes")]),
        ("/login/enrol", vec![("code", "123456")]),
        ("/login/recovery-codes", vec![("saved", "yes")]),
        ("/consent", vec![("decision", "allow")]),
    ] {
        let response = post(&browser, path, &html, &fields).await;
        assert_eq!(response.status(), StatusCode::CONFLICT, "{path}");
        assert!(response.headers().get("location").is_none());
    }
    // Replaying the password step.
    let replay = browser
        .post(
            "/login",
            &[
                ("login", &hidden_field(&html, "login").unwrap()),
                ("csrf_token", &hidden_field(&html, "csrf_token").unwrap()),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(replay.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_policy_change_mid_login_sends_the_user_back_for_what_is_now_required() {
    let w = world(optional).await;
    let third_party = w
        .app
        .client(ClientSpec {
            third_party: true,
            ..ClientSpec::default()
        })
        .await;
    let browser = w.app.browser();
    // At the consent step (the password was enough when the login began)...
    let at = sign_in(&w.app, &browser, &third_party, "", "alice").await;
    assert!(at.html().contains("Allow access?"));
    // ...the company makes MFA required.
    w.app.set_policy(&w.company.id, required).await.unwrap();
    let at = follow(
        &browser,
        post(&browser, "/consent", at.html(), &[("decision", "allow")]).await,
    )
    .await;
    assert!(
        at.html().contains("Set up multi-factor authentication"),
        "no code: enrolment first"
    );
}

#[tokio::test]
async fn a_code_issued_before_a_policy_change_is_refused_at_the_token_endpoint() {
    let w = world(optional).await;
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    let code = at.code();
    let (_, tokens) = {
        // A first login's refresh token, to check refreshes too.
        let (status, tokens) = w.client.exchange(&w.app, &code, Some(VERIFIER)).await;
        assert_eq!(status, StatusCode::OK);
        (status, tokens)
    };
    let second = w.app.browser();
    let at = sign_in(&w.app, &second, &w.client, "", "alice").await;
    let code = at.code();
    w.app.set_policy(&w.company.id, required).await.unwrap();
    let (status, body) = w.client.exchange(&w.app, &code, Some(VERIFIER)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );
    let (status, body) = w
        .client
        .refresh(&w.app, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );
}

/// Signs alice in to the account security page and returns its HTML.
pub(crate) async fn security_page(w: &World, browser: &Browser) -> String {
    let response = browser.get("/account/security").await;
    if response.status() == StatusCode::OK {
        return response.text().await.unwrap();
    }
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let form = browser.login_form(&location(&response)).await;
    let response = browser.submit_password(&form, "alice", PASSWORD).await;
    assert_eq!(location(&response), "/account/security");
    let _ = w;
    browser.get("/account/security").await.text().await.unwrap()
}

/// Sets up TOTP from the security page; returns the secret and recovery codes.
async fn set_up_from_security_page(w: &World, browser: &Browser) -> (Vec<u8>, Vec<String>) {
    let page = security_page(w, browser).await;
    assert!(page.contains("Not set up"), "{page}");
    let setup = follow(
        browser,
        post(browser, "/account/security/totp/setup", &page, &[]).await,
    )
    .await;
    let secret = totp_secret(setup.html());
    let done = post(
        browser,
        "/account/security/totp/verify",
        setup.html(),
        &[("code", &code_now(&w.app, &secret))],
    )
    .await;
    assert_eq!(done.status(), StatusCode::OK);
    let codes = recovery_codes(&done.text().await.unwrap());
    assert_eq!(codes.len(), 10);
    w.app.clock.advance(30);
    (secret, codes)
}

#[tokio::test]
async fn optional_mode_enrolment_from_the_security_page() {
    let w = world(optional).await;
    let browser = w.app.browser();
    let (secret, _) = set_up_from_security_page(&w, &browser).await;
    let page = security_page(&w, &browser).await;
    assert!(page.contains("Enabled since"), "{page}");
    w.app.smtp.wait_for(&w.user.email, "was set up").await;
    // From now on the user is challenged.
    let other = w.app.browser();
    let at = sign_in(&w.app, &other, &w.client, "", "alice").await;
    let at = pass_challenge(&w.app, &other, &at, &secret).await;
    at.code();
}

#[tokio::test]
async fn changes_on_the_security_page_need_a_fresh_code() {
    let w = world(|p| {
        optional(p);
        p.allow_self_reset = true;
    })
    .await;
    let browser = w.app.browser();
    let (secret, _) = set_up_from_security_page(&w, &browser).await;
    let page = security_page(&w, &browser).await;
    // A stolen session alone cannot remove the factor or mint recovery codes.
    for path in [
        "/account/security/totp/disable",
        "/account/security/recovery-codes",
    ] {
        let response = post(&browser, path, &page, &[("code", "000000")]).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
    }
    assert_eq!(w.app.store.factors_of(&w.user.id).await.unwrap().len(), 1);
    // With a fresh code: new recovery codes, then disable (self reset allowed).
    let regenerated = post(
        &browser,
        "/account/security/recovery-codes",
        &page,
        &[("code", &code_now(&w.app, &secret))],
    )
    .await;
    assert_eq!(recovery_codes(&regenerated.text().await.unwrap()).len(), 10);
    w.app.smtp.wait_for(&w.user.email, "New recovery codes").await;
    w.app.clock.advance(30);
    let page = security_page(&w, &browser).await;
    let disabled = post(
        &browser,
        "/account/security/totp/disable",
        &page,
        &[("code", &code_now(&w.app, &secret))],
    )
    .await;
    assert_eq!(location(&disabled), "/account/security?notice=disabled");
    assert!(w.app.store.factors_of(&w.user.id).await.unwrap().is_empty());
    w.app.smtp.wait_for(&w.user.email, "was removed").await;
    // A forged form (wrong CSRF token) is refused.
    let page = security_page(&w, &browser).await;
    let forged = browser
        .post("/account/security/totp/setup", &[("csrf_token", "forged")])
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(page.contains("Not set up"));
}

#[tokio::test]
async fn disabling_without_self_reset_files_a_request_and_keeps_the_factor() {
    let w = world(optional).await;
    let browser = w.app.browser();
    let (secret, _) = set_up_from_security_page(&w, &browser).await;
    let page = security_page(&w, &browser).await;
    let response = post(
        &browser,
        "/account/security/totp/disable",
        &page,
        &[("code", &code_now(&w.app, &secret))],
    )
    .await;
    assert_eq!(location(&response), "/account/security?notice=reset-pending");
    let page = security_page(&w, &browser).await;
    assert!(page.contains("Reset pending"), "{page}");
    // The approver hears of it; the old factor keeps working meanwhile.
    let email = w.app.smtp.wait_for(&w.admin.email, "asked to reset").await;
    assert!(email.text().contains("alice"), "{}", email.text());
    w.app.clock.advance(30);
    let other = w.app.browser();
    let at = sign_in(&w.app, &other, &w.client, "", "alice").await;
    let at = pass_challenge(&w.app, &other, &at, &secret).await;
    at.code();
    // A second request does not pile up.
    w.app.clock.advance(30);
    let again = post(
        &browser,
        "/account/security/totp/disable",
        &page,
        &[("code", &code_now(&w.app, &secret))],
    )
    .await;
    assert_eq!(location(&again), "/account/security?notice=reset-pending");
    assert_eq!(
        w.app
            .smtp
            .all()
            .await
            .iter()
            .filter(|m| m.subject().contains("asked to reset"))
            .count(),
        1
    );
    // An administrator's reset clears it all and tells the user.
    w.app
        .admin()
        .reset_user(&w.user.id, Some("boss"), w.app.now())
        .await
        .unwrap();
    assert!(w.app.store.factors_of(&w.user.id).await.unwrap().is_empty());
    assert!(
        w.app
            .store
            .pending_reset_request(&w.user.id)
            .await
            .unwrap()
            .is_none()
    );
    w.app.smtp.wait_for(&w.user.email, "was reset").await;
}

#[tokio::test]
async fn a_failing_mail_server_delays_mail_but_never_the_user() {
    let w = world(required).await;
    w.app.smtp.refuse(true);
    // The enrolment succeeds while the mail server refuses.
    enrolled_alice(&w).await;
    let queued = w.app.store.emails_to(Some(&w.user.email)).await.unwrap();
    assert_eq!(queued.len(), 1);
    // Wait for the first attempt to fail (the worker polls every 100 ms).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let email = &w.app.store.emails_to(Some(&w.user.email)).await.unwrap()[0];
        if email.attempts >= 1 {
            assert!(email.sent_at.is_none() && email.last_error.is_some(), "{email:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the worker never tried");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The server recovers; the retry is due after the back-off.
    w.app.smtp.refuse(false);
    w.app.clock.advance(60);
    w.app.smtp.wait_for(&w.user.email, "was set up").await;
}

impl TestApp {
    fn master(&self) -> portcullis::crypto::MasterKey {
        portcullis::startup::master_key(&self.config).unwrap()
    }
}

#[tokio::test]
async fn the_totp_page_names_the_company_and_the_user() {
    let w = world(required).await;
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    let secret = totp_secret(at.html());
    let provisioning = totp::provisioning(&secret, &w.company.name, "alice").unwrap();
    assert!(provisioning.uri.contains("issuer=Globex"));
    assert!(at.html().contains(&provisioning.secret_base32));
    let _ = Method::Totp;
}
