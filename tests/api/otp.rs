//! Email and SMS codes as second factors, through the real pages: codes are read from the
//! SMTP server on loopback and from the requests a mock Twilio (or webhook gateway)
//! received, which checks every request it accepts.

use std::time::Duration;

use base64::Engine;
use portcullis::config::{Config, Secret, SmsProvider};
use portcullis::policy::{CompanyPolicy, Method, Mode};
use portcullis::storage::Factor;
use regex::Regex;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::{Browser, TestApp};
use crate::mfa::{At, World, exchange, follow, post, recovery_codes, security_page, sign_in, world_with};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "twilio-auth-token-for-tests";
const FROM: &str = "+15005550006";
const MESSAGES_PATH: &str = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json";
const WEBHOOK_SECRET: &str = "a-webhook-secret-of-32-characters";

fn required(methods: &'static [Method]) -> impl FnOnce(&mut CompanyPolicy) {
    move |p| {
        p.mode = Mode::Required;
        p.methods = methods.iter().copied().collect();
    }
}

/// The codes emailed to `to`, oldest first.
async fn emailed_codes(w: &World, to: &str) -> Vec<String> {
    let pattern = Regex::new(r"(?m)^(\d{6})$").unwrap();
    w.app
        .smtp
        .all()
        .await
        .iter()
        .filter(|m| m.to.iter().any(|t| t == to) && m.subject().contains("verification code"))
        .filter_map(|m| pattern.captures(&m.text()).map(|c| c[1].to_owned()))
        .collect()
}

/// The `count`th code emailed to `to` (waiting for it).
async fn email_code(w: &World, to: &str, count: usize) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let codes = emailed_codes(w, to).await;
        if codes.len() >= count {
            return codes[count - 1].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} codes to {to}",
            codes.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Accepts only Twilio's Messages request as Portcullis must send it: form-encoded,
/// exactly `To`, `From` and `Body`, a number in E.164 and a code naming the company.
struct TwilioForm;

impl Match for TwilioForm {
    fn matches(&self, request: &Request) -> bool {
        let form_encoded = request
            .headers
            .get("content-type")
            .is_some_and(|v| v.as_bytes() == b"application/x-www-form-urlencoded");
        let mut fields: Vec<(String, String)> =
            url::form_urlencoded::parse(&request.body).into_owned().collect();
        fields.sort();
        let body =
            Regex::new(r"^\d{6} is your Globex verification code\. It expires in 10 minutes\.$").unwrap();
        form_encoded
            && fields.len() == 3
            && fields[0].0 == "Body"
            && body.is_match(&fields[0].1)
            && fields[1] == ("From".into(), FROM.into())
            && fields[2].0 == "To"
            && Regex::new(r"^\+[1-9]\d{7,14}$").unwrap().is_match(&fields[2].1)
    }
}

/// Twilio's answer to an accepted message (201, abridged from its API reference).
fn twilio_created() -> Value {
    json!({
        "account_sid": SID,
        "api_version": "2010-04-01",
        "body": "123456 is your Globex verification code.",
        "date_created": "Tue, 24 Nov 2026 11:00:00 +0000",
        "date_sent": null,
        "date_updated": "Tue, 24 Nov 2026 11:00:00 +0000",
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": FROM,
        "messaging_service_sid": null,
        "num_media": "0",
        "num_segments": "1",
        "price": null,
        "price_unit": "USD",
        "sid": "SM0123456789abcdef0123456789abcdef",
        "status": "queued",
        "subresource_uris": {},
        "to": "+14155550100",
        "uri": "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages/SM0123456789abcdef0123456789abcdef.json"
    })
}

/// Twilio's answer to a number that cannot receive messages.
fn twilio_invalid_number(number: &str) -> Value {
    json!({
        "code": 21211,
        "message": format!("Invalid 'To' Phone Number: {number}"),
        "more_info": "https://www.twilio.com/docs/errors/21211",
        "status": 400
    })
}

fn twilio_request() -> wiremock::MockBuilder {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"));
    Mock::given(method("POST"))
        .and(path(MESSAGES_PATH))
        .and(header("authorization", format!("Basic {basic}").as_str()))
        .and(TwilioForm)
}

/// A mock Twilio that accepts every well-formed message.
async fn twilio() -> MockServer {
    let server = MockServer::start().await;
    twilio_request()
        .respond_with(ResponseTemplate::new(201).set_body_json(twilio_created()))
        .mount(&server)
        .await;
    server
}

fn use_twilio(uri: String) -> impl FnOnce(&mut Config) {
    move |config| {
        config.sms.provider = SmsProvider::Twilio;
        config.sms.twilio.account_sid = SID.into();
        config.sms.twilio.auth_token = Some(Secret::new(TOKEN));
        config.sms.twilio.from = Some(FROM.into());
        config.sms.twilio.base_url = uri;
        config.sms.timeout = Duration::from_millis(500);
    }
}

/// The texts the provider accepted, as (to, body), oldest first.
async fn texts(server: &MockServer) -> Vec<(String, String)> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| {
            let fields: Vec<(String, String)> = url::form_urlencoded::parse(&r.body).into_owned().collect();
            let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            Some((get("To")?, get("Body")?))
        })
        .collect()
}

/// The code in the last text to `to`.
async fn text_code(server: &MockServer, to: &str) -> String {
    let (_, body) = texts(server)
        .await
        .into_iter()
        .rev()
        .find(|(t, _)| t == to)
        .unwrap_or_else(|| panic!("no text to {to}"));
    body[..6].to_owned()
}

/// From the destination page: sends a code to `field=value`, confirms it with the code
/// `code_of` finds, selects Finish, saves the recovery codes (of a first factor); back at
/// the client.
async fn enrol_otp<F, Fut>(browser: &Browser, at: At, field: &str, value: &str, code_of: F) -> At
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = String>,
{
    assert!(at.html().contains(&format!("name=\"{field}\"")), "{}", at.html());
    let at = follow(
        browser,
        post(browser, "/login/enrol/destination", at.html(), &[(field, value)]).await,
    )
    .await;
    assert!(at.html().contains("id=\"code-destination\""), "{}", at.html());
    let code = code_of().await;
    let at = follow(
        browser,
        post(browser, "/login/enrol", at.html(), &[("code", &code)]).await,
    )
    .await;
    assert!(at.html().contains("id=\"verified\""), "{}", at.html());
    let at = follow(
        browser,
        post(browser, "/login/enrol/finish", at.html(), &[]).await,
    )
    .await;
    if let At::Client(_) = at {
        return at;
    }
    assert_eq!(recovery_codes(at.html()).len(), 10, "{}", at.html());
    follow(
        browser,
        post(browser, "/login/recovery-codes", at.html(), &[("saved", "yes")]).await,
    )
    .await
}

/// Seeds a confirmed factor (for tests about users who already have several).
pub(crate) async fn seed_factor(app: &TestApp, user_id: &str, method: Method, destination: &str) {
    let factor = Factor {
        id: portcullis::model::new_id(),
        user_id: user_id.into(),
        kind: method.as_str().into(),
        secret: None,
        destination: Some(destination.into()),
        last_step: None,
        created_at: app.now(),
        confirmed_at: None,
        verified_at: None,
    };
    app.store.insert_pending_factor(&factor).await.unwrap();
    assert!(
        app.store
            .confirm_factor(&factor, None, None, &[], app.now())
            .await
            .unwrap()
    );
}

fn amr(claims: &Value) -> Vec<String> {
    serde_json::from_value(claims["amr"].clone()).unwrap()
}

#[tokio::test]
async fn enrol_and_sign_in_with_email_codes() {
    let w = world_with(|_| {}, required(&[Method::Email])).await;
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    // Only email is allowed: straight to the address, no TOTP, no list of methods.
    assert!(!at.html().contains("totp-secret") && !at.html().contains("/login/enrol/method\">"));
    let address = "alice.work@example.com";
    let at = enrol_otp(&browser, at, "email", address, || email_code(&w, address, 1)).await;
    let claims = exchange(&w, &at.code()).await;
    assert_eq!(amr(&claims), ["pwd", "otp", "mfa"]);
    let mail = w
        .app
        .smtp
        .wait_for(address, "Your Globex verification code")
        .await;
    assert!(mail.text().contains("10 minutes"), "{}", mail.text());
    let factors = w.app.store.factors_of(&w.user.id).await.unwrap();
    assert_eq!(factors.len(), 1);
    assert_eq!(factors[0].destination.as_deref(), Some(address));
    w.app.smtp.wait_for(&w.user.email, "was set up").await;

    // The next sign-in sends a code at once; a wrong one is refused, the right one works once.
    let other = w.app.browser();
    let at = sign_in(&w.app, &other, &w.client, "", "alice").await;
    assert!(at.html().contains("a•••@example.com"), "{}", at.html());
    let code = email_code(&w, address, 2).await;
    let early = post(&other, "/login/challenge/resend", at.html(), &[]).await;
    assert_eq!(early.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(early.text().await.unwrap().contains("Wait"));
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let again = follow(
        &other,
        post(&other, "/login/challenge", at.html(), &[("code", wrong)]).await,
    )
    .await;
    assert!(again.html().contains("not right"), "{}", again.html());
    let done = follow(
        &other,
        post(&other, "/login/challenge", at.html(), &[("code", &code)]).await,
    )
    .await;
    assert_eq!(amr(&exchange(&w, &done.code()).await), ["pwd", "otp", "mfa"]);

    // A used code does not open a third sign-in (whose own code is a new one).
    let third = w.app.browser();
    let at = sign_in(&w.app, &third, &w.client, "", "alice").await;
    email_code(&w, address, 3).await;
    let replay = follow(
        &third,
        post(&third, "/login/challenge", at.html(), &[("code", &code)]).await,
    )
    .await;
    assert!(replay.html().contains("not right"), "{}", replay.html());
}

#[tokio::test]
async fn enrol_and_sign_in_with_sms_codes_through_twilio() {
    let twilio = twilio().await;
    let w = world_with(use_twilio(twilio.uri()), required(&[Method::Sms])).await;
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    // Typed with spaces and brackets, sent in E.164.
    let at = enrol_otp(&browser, at, "phone", "+1 (415) 555-0100", || {
        text_code(&twilio, "+14155550100")
    })
    .await;
    assert_eq!(amr(&exchange(&w, &at.code()).await), ["pwd", "sms", "mfa"]);
    w.app.smtp.wait_for(&w.user.email, "was set up").await;

    let other = w.app.browser();
    let at = sign_in(&w.app, &other, &w.client, "", "alice").await;
    assert!(at.html().contains("by text message"), "{}", at.html());
    assert_eq!(texts(&twilio).await.len(), 2);
    let code = text_code(&twilio, "+14155550100").await;
    let done = follow(
        &other,
        post(&other, "/login/challenge", at.html(), &[("code", &code)]).await,
    )
    .await;
    assert_eq!(amr(&exchange(&w, &done.code()).await), ["pwd", "sms", "mfa"]);
}

/// Accepts only JSON signed with the webhook secret.
struct SignedWebhook;

impl Match for SignedWebhook {
    fn matches(&self, request: &Request) -> bool {
        let Some(signature) = request
            .headers
            .get(portcullis::notify::sms::SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some(time) = signature
            .strip_prefix("t=")
            .and_then(|rest| rest.split(',').next())
            .and_then(|t| t.parse::<i64>().ok())
        else {
            return false;
        };
        let body = String::from_utf8_lossy(&request.body);
        let Ok(payload) = serde_json::from_str::<Value>(&body) else {
            return false;
        };
        signature == portcullis::notify::sms::signature(WEBHOOK_SECRET, time, &body)
            && payload["to"] == "+447700900123"
            && payload["body"]
                .as_str()
                .is_some_and(|b| b.contains("Globex verification code"))
    }
}

#[tokio::test]
async fn sms_through_a_webhook_gateway_is_signed() {
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/sms"))
        .and(header("content-type", "application/json"))
        .and(SignedWebhook)
        .respond_with(ResponseTemplate::new(202))
        .mount(&gateway)
        .await;
    let url = format!("{}/sms", gateway.uri());
    let w = world_with(
        move |config| {
            config.sms.provider = SmsProvider::Webhook;
            config.sms.webhook.url = url;
            config.sms.webhook.secret = Some(Secret::new(WEBHOOK_SECRET));
        },
        required(&[Method::Sms]),
    )
    .await;
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    let at = enrol_otp(&browser, at, "phone", "+44 7700 900123", || async {
        let requests = gateway.received_requests().await.unwrap();
        let payload: Value = serde_json::from_slice(&requests.last().unwrap().body).unwrap();
        payload["body"].as_str().unwrap()[..6].to_owned()
    })
    .await;
    assert_eq!(amr(&exchange(&w, &at.code()).await), ["pwd", "sms", "mfa"]);
}

/// Signs alice in and sends a code to `address`; the code page.
async fn email_code_page(w: &World, browser: &Browser, address: &str) -> At {
    let at = sign_in(&w.app, browser, &w.client, "", "alice").await;
    follow(
        browser,
        post(
            browser,
            "/login/enrol/destination",
            at.html(),
            &[("email", address)],
        )
        .await,
    )
    .await
}

#[tokio::test]
async fn send_again_waits_for_the_cooldown_and_replaces_the_code() {
    let w = world_with(|_| {}, required(&[Method::Email])).await;
    let browser = w.app.browser();
    let address = "alice@example.com";
    let at = email_code_page(&w, &browser, address).await;
    let first = email_code(&w, address, 1).await;
    let early = post(&browser, "/login/enrol/resend", at.html(), &[]).await;
    assert_eq!(early.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(early.text().await.unwrap().contains("Wait 60 seconds"));
    assert_eq!(emailed_codes(&w, address).await.len(), 1);
    w.app.clock.advance(61);
    let resent = post(&browser, "/login/enrol/resend", at.html(), &[]).await;
    assert_eq!(resent.status(), StatusCode::OK);
    assert!(resent.text().await.unwrap().contains("A new code is on its way"));
    let second = email_code(&w, address, 2).await;
    if first != second {
        // The first code was replaced.
        let old = post(&browser, "/login/enrol", at.html(), &[("code", &first)]).await;
        assert!(old.text().await.unwrap().contains("not right"));
    }
    let verified = follow(
        &browser,
        post(&browser, "/login/enrol", at.html(), &[("code", &second)]).await,
    )
    .await;
    assert!(verified.html().contains("id=\"verified\""));
}

#[tokio::test]
async fn codes_expire_after_ten_minutes() {
    let w = world_with(|_| {}, required(&[Method::Email])).await;
    let browser = w.app.browser();
    let address = "alice@example.com";
    let at = email_code_page(&w, &browser, address).await;
    let code = email_code(&w, address, 1).await;
    w.app.clock.advance(601);
    let late = post(&browser, "/login/enrol", at.html(), &[("code", &code)]).await;
    assert!(late.text().await.unwrap().contains("expired"));
    // Nothing was enrolled, and Finish without a confirmed code does nothing.
    let finish = post(&browser, "/login/enrol/finish", at.html(), &[]).await;
    assert_eq!(finish.status(), StatusCode::BAD_REQUEST);
    assert!(
        w.app
            .store
            .factors_of(&w.user.id)
            .await
            .unwrap()
            .iter()
            .all(|f| f.confirmed_at.is_none())
    );
    // A new code works.
    post(&browser, "/login/enrol/resend", at.html(), &[]).await;
    let fresh = email_code(&w, address, 2).await;
    let verified = follow(
        &browser,
        post(&browser, "/login/enrol", at.html(), &[("code", &fresh)]).await,
    )
    .await;
    assert!(verified.html().contains("id=\"verified\""));
}

#[tokio::test]
async fn five_wrong_guesses_spend_a_code() {
    let w = world_with(|_| {}, required(&[Method::Email])).await;
    let browser = w.app.browser();
    let address = "alice@example.com";
    let at = email_code_page(&w, &browser, address).await;
    let code = email_code(&w, address, 1).await;
    let wrong = if code == "999999" { "999998" } else { "999999" };
    for _ in 0..5 {
        let response = post(&browser, "/login/enrol", at.html(), &[("code", wrong)]).await;
        assert!(response.text().await.unwrap().contains("not right"));
    }
    let right = post(&browser, "/login/enrol", at.html(), &[("code", &code)]).await;
    assert!(right.text().await.unwrap().contains("tried too many times"));
}

#[tokio::test]
async fn sends_are_throttled_per_destination_whoever_asks() {
    let w = world_with(
        |config| config.otp.sends_per_destination_per_hour = 2,
        required(&[Method::Email]),
    )
    .await;
    let target = "victim@example.com";
    let browser = w.app.browser();
    let at = email_code_page(&w, &browser, target).await;
    w.app.clock.advance(61);
    post(&browser, "/login/enrol/resend", at.html(), &[]).await;
    assert_eq!(emailed_codes(&w, target).await.len(), 2);
    // Another user of the company tries the same address.
    let mallory = w.app.user(&w.company.id, "mallory").await;
    let other = w.app.browser();
    let at = sign_in(&w.app, &other, &w.client, "", "mallory").await;
    let refused = post(
        &other,
        "/login/enrol/destination",
        at.html(),
        &[("email", target)],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.text().await.unwrap().contains("to this destination"));
    assert_eq!(emailed_codes(&w, target).await.len(), 2);
    // Nothing half-made is left behind, and the hour passes.
    assert!(w.app.store.factors_of(&mallory.id).await.unwrap().is_empty());
    w.app.clock.advance(3600);
    let other = w.app.browser();
    let at = sign_in(&w.app, &other, &w.client, "", "mallory").await;
    let allowed = post(
        &other,
        "/login/enrol/destination",
        at.html(),
        &[("email", target)],
    )
    .await;
    assert_eq!(
        allowed.status(),
        StatusCode::SEE_OTHER,
        "{}",
        allowed.text().await.unwrap()
    );
}

#[tokio::test]
async fn bad_numbers_and_addresses_get_a_clear_error() {
    let twilio = MockServer::start().await;
    twilio_request()
        .respond_with(ResponseTemplate::new(400).set_body_json(twilio_invalid_number("+15005550001")))
        .mount(&twilio)
        .await;
    let w = world_with(use_twilio(twilio.uri()), required(&[Method::Email, Method::Sms])).await;
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    // Both methods are offered, and never TOTP.
    assert!(at.html().contains("value=\"email\"") && at.html().contains("value=\"sms\""));
    assert!(!at.html().contains("value=\"totp\""), "{}", at.html());
    let totp = post(&browser, "/login/enrol/method", at.html(), &[("method", "totp")]).await;
    assert_eq!(totp.status(), StatusCode::BAD_REQUEST);
    let at = follow(
        &browser,
        post(&browser, "/login/enrol/method", at.html(), &[("method", "sms")]).await,
    )
    .await;
    for (typed, says) in [
        ("4155550100", "must start with +"),
        ("+1 415 CALL ME", "may only contain digits"),
        ("+0123456789", "never starts with 0"),
        ("", "Enter a mobile number"),
    ] {
        let response = post(
            &browser,
            "/login/enrol/destination",
            at.html(),
            &[("phone", typed)],
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{typed}");
        let html = response.text().await.unwrap();
        assert!(html.contains(says), "{typed}: {html}");
    }
    assert!(texts(&twilio).await.is_empty(), "nothing was sent for bad input");
    // Well-formed, but Twilio says it cannot receive texts.
    let response = post(
        &browser,
        "/login/enrol/destination",
        at.html(),
        &[("phone", "+15005550001")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("cannot receive text messages")
    );
    let at = follow(
        &browser,
        post(&browser, "/login/enrol/method", at.html(), &[("method", "email")]).await,
    )
    .await;
    for typed in ["alice@", "alice", "a b@example.com", "alice@localhost"] {
        let response = post(
            &browser,
            "/login/enrol/destination",
            at.html(),
            &[("email", typed)],
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{typed}");
        assert!(response.text().await.unwrap().contains("valid email address"));
    }
    assert!(w.app.store.factors_of(&w.user.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_provider_failure_or_timeout_is_explained_and_nothing_is_half_enrolled() {
    let twilio = MockServer::start().await;
    twilio_request()
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(twilio_created())
                .set_delay(Duration::from_secs(3)),
        )
        .up_to_n_times(1)
        .mount(&twilio)
        .await;
    twilio_request()
        .respond_with(
            ResponseTemplate::new(503)
                .set_body_json(json!({"code": 20503, "message": "Service unavailable", "status": 503})),
        )
        .mount(&twilio)
        .await;
    let w = world_with(use_twilio(twilio.uri()), required(&[Method::Sms])).await;
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    for _ in 0..2 {
        // First a timeout (500 ms configured, the provider takes 3 s), then a 503.
        let response = post(
            &browser,
            "/login/enrol/destination",
            at.html(),
            &[("phone", "+14155550100")],
        )
        .await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.text().await.unwrap().contains("could not send the code"));
        assert!(w.app.store.factors_of(&w.user.id).await.unwrap().is_empty());
        w.app.clock.advance(61);
    }
    // The mail server failing is handled the same way.
    let w = world_with(|_| {}, required(&[Method::Email])).await;
    w.app.smtp.refuse(true);
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    let response = post(
        &browser,
        "/login/enrol/destination",
        at.html(),
        &[("email", "alice@example.com")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.text().await.unwrap().contains("could not send the code"));
    assert!(w.app.store.factors_of(&w.user.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn when_sms_fails_at_sign_in_the_user_picks_another_method() {
    let twilio = MockServer::start().await;
    twilio_request()
        .respond_with(ResponseTemplate::new(500))
        .mount(&twilio)
        .await;
    let w = world_with(use_twilio(twilio.uri()), required(&[Method::Email, Method::Sms])).await;
    seed_factor(&w.app, &w.user.id, Method::Sms, "+14155550100").await;
    seed_factor(&w.app, &w.user.id, Method::Email, "alice.work@example.com").await;
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    // Several factors: the user chooses; nothing was sent yet.
    assert!(at.html().contains("Text a code to +1••• 0100"), "{}", at.html());
    assert!(at.html().contains("Email a code to a•••@example.com"));
    assert!(emailed_codes(&w, "alice.work@example.com").await.is_empty());
    let failed = post(
        &browser,
        "/login/challenge/method",
        at.html(),
        &[("method", "sms")],
    )
    .await;
    assert_eq!(failed.status(), StatusCode::SERVICE_UNAVAILABLE);
    let html = failed.text().await.unwrap();
    assert!(html.contains("could not send the code"), "{html}");
    assert!(
        html.contains("value=\"email\""),
        "the other method is offered: {html}"
    );
    let at = follow(
        &browser,
        post(&browser, "/login/challenge/method", &html, &[("method", "email")]).await,
    )
    .await;
    let code = email_code(&w, "alice.work@example.com", 1).await;
    let done = follow(
        &browser,
        post(&browser, "/login/challenge", at.html(), &[("code", &code)]).await,
    )
    .await;
    assert_eq!(amr(&exchange(&w, &done.code()).await), ["pwd", "otp", "mfa"]);
}

#[tokio::test]
async fn a_method_turned_off_is_not_offered_and_its_users_enrol_an_allowed_one() {
    let twilio = twilio().await;
    let w = world_with(use_twilio(twilio.uri()), required(&[Method::Email, Method::Sms])).await;
    seed_factor(&w.app, &w.user.id, Method::Sms, "+14155550100").await;
    w.app
        .set_policy(&w.company.id, |p| {
            p.methods = [Method::Email].into_iter().collect()
        })
        .await
        .unwrap();
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    // Not challenged by SMS: sent to set up email.
    assert!(at.html().contains("name=\"email\""), "{}", at.html());
    assert!(texts(&twilio).await.is_empty());
    let at = enrol_otp(&browser, at, "email", "alice@example.com", || {
        email_code(&w, "alice@example.com", 1)
    })
    .await;
    assert_eq!(amr(&exchange(&w, &at.code()).await), ["pwd", "otp", "mfa"]);
    // The SMS factor stays (for when the method is allowed again) but is never used.
    assert_eq!(w.app.store.factors_of(&w.user.id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn mfa_off_and_on_again_makes_everyone_enrol_again_unless_kept() {
    let w = world_with(
        |_| {},
        |p| {
            required(&[Method::Email])(p);
            p.keep_enrollments_when_off = false;
        },
    )
    .await;
    seed_factor(&w.app, &w.user.id, Method::Email, "alice@example.com").await;
    w.app
        .set_policy(&w.company.id, |p| p.mode = Mode::Off)
        .await
        .unwrap();
    let browser = w.app.browser();
    sign_in(&w.app, &browser, &w.client, "", "alice").await.code();
    w.app
        .set_policy(&w.company.id, |p| p.mode = Mode::Required)
        .await
        .unwrap();
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    assert!(
        at.html().contains("name=\"email\"") && at.html().contains("Send code"),
        "{}",
        at.html()
    );
    assert!(w.app.store.factors_of(&w.user.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn email_codes_from_the_security_page() {
    let w = world_with(
        |_| {},
        |p| {
            p.mode = Mode::Optional;
            p.allow_self_reset = true;
            p.methods = [Method::Totp, Method::Email].into_iter().collect();
        },
    )
    .await;
    let browser = w.app.browser();
    let page = security_page(&w, &browser).await;
    assert!(page.contains("id=\"email-status\">Not set up"), "{page}");
    assert!(!page.contains("id=\"sms-status\""), "SMS is not allowed");
    let bad = post(
        &browser,
        "/account/security/email/setup",
        &page,
        &[("email", "not an address")],
    )
    .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let address = "alice.home@example.com";
    let at = follow(
        &browser,
        post(
            &browser,
            "/account/security/email/setup",
            &page,
            &[("email", address)],
        )
        .await,
    )
    .await;
    let code = email_code(&w, address, 1).await;
    let verified = follow(
        &browser,
        post(
            &browser,
            "/account/security/email/verify",
            at.html(),
            &[("code", &code)],
        )
        .await,
    )
    .await;
    assert!(verified.html().contains("id=\"verified\""), "{}", verified.html());
    let codes = post(&browser, "/account/security/email/finish", verified.html(), &[]).await;
    assert_eq!(recovery_codes(&codes.text().await.unwrap()).len(), 10);
    let page = security_page(&w, &browser).await;
    assert!(page.contains("a•••@example.com"), "{page}");
    // A change now needs a fresh code: "Send me a code", then disable with it.
    let refused = post(
        &browser,
        "/account/security/email/disable",
        &page,
        &[("code", "000000")],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let sent = post(&browser, "/account/security/email/send", &page, &[]).await;
    assert_eq!(
        crate::helpers::location(&sent),
        "/account/security?notice=code-sent"
    );
    let fresh = email_code(&w, address, 2).await;
    let disabled = post(
        &browser,
        "/account/security/email/disable",
        &page,
        &[("code", &fresh)],
    )
    .await;
    assert_eq!(
        crate::helpers::location(&disabled),
        "/account/security?notice=disabled"
    );
    assert!(w.app.store.factors_of(&w.user.id).await.unwrap().is_empty());
    w.app.smtp.wait_for(&w.user.email, "was removed").await;
}

#[tokio::test]
async fn the_development_outbox_gets_one_json_line_per_text() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("sms").join("outbox.jsonl");
    let file = outbox.clone();
    let w = world_with(
        move |config| config.sms_outbox = Some(file),
        required(&[Method::Sms]),
    )
    .await;
    let browser = w.app.browser();
    let at = sign_in(&w.app, &browser, &w.client, "", "alice").await;
    let at = enrol_otp(&browser, at, "phone", "+49 30 901820", || async {
        let text = std::fs::read_to_string(&outbox).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["to"], "+4930901820");
        lines[0]["body"].as_str().unwrap()[..6].to_owned()
    })
    .await;
    assert_eq!(amr(&exchange(&w, &at.code()).await), ["pwd", "sms", "mfa"]);
}
