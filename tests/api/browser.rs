//! The sign-in pages in a real browser: headless Chromium driven through chromedriver
//! (installed by `scripts/test`). This is where the pages' own HTML matters: required
//! fields, the code pattern, "Skip for now" bypassing validation, the content security
//! policy, cookies, and the redirects that end at the client.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use portcullis::mfa::totp;
use portcullis::policy::Mode;

use crate::helpers::{ClientSpec, PASSWORD, TestApp, TestClient, VERIFIER, jwt_claims, query_param};

/// A chromedriver process, killed when dropped.
struct Chromedriver {
    child: tokio::process::Child,
    url: String,
    profiles: tempfile::TempDir,
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl Chromedriver {
    /// Starts chromedriver, or returns None (outside CI) when it is not installed.
    async fn start() -> Option<Chromedriver> {
        // Two rustls crypto providers are compiled into the test binary (through reqwest
        // and sqlx); fantoccini needs one chosen. Its link to chromedriver is plain HTTP.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let binary = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let child = match tokio::process::Command::new(&binary)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
        {
            Ok(child) => child,
            Err(error) => {
                assert!(
                    std::env::var("CI").is_err(),
                    "chromedriver ({binary}) is required in CI: {error}"
                );
                eprintln!("skipping the browser test: chromedriver not found ({error})");
                return None;
            }
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profiles: tempfile::tempdir().unwrap(),
        })
    }

    /// A fresh browser (its own profile: no cookies).
    async fn browser(&self) -> Client {
        let profile = tempfile::tempdir_in(self.profiles.path()).unwrap().keep();
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let capabilities = serde_json::json!({
            "goog:chromeOptions": {
                "binary": binary,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--no-first-run", "--disable-quic", format!("--user-data-dir={}", profile.display()),
                ],
            }
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        ClientBuilder::rustls()
            .unwrap()
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

/// The relying party's callback: a real HTTP server on loopback recording what arrives.
async fn callback_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let recorder = seen.clone();
    let app = axum::Router::new().route(
        "/callback",
        axum::routing::get(move |uri: axum::http::Uri| {
            let recorder = recorder.clone();
            async move {
                recorder.lock().unwrap().push(uri.to_string());
                "signed in"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!(
        "http://127.0.0.1:{}/callback",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (uri, seen)
}

async fn fill(browser: &Client, css: &str, text: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn wait_for(browser: &Client, css: &str) -> fantoccini::elements::Element {
    browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|_| panic!("no {css} on the page"))
}

/// Waits until the browser is back at the client; returns the code it brought.
async fn code_at_client(browser: &Client, callback: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let url = browser.current_url().await.unwrap().to_string();
        if url.starts_with(callback) {
            return query_param(&url, "code").unwrap_or_else(|| panic!("no code in {url}"));
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never back at the client; at {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sign_in_with_password(browser: &Client, app: &TestApp, client: &TestClient, username: &str) {
    browser
        .goto(&app.url(&format!("/authorize?{}", client.authorize_query(""))))
        .await
        .unwrap();
    wait_for(browser, "#username").await;
    fill(browser, "#username", username).await;
    fill(browser, "#password", PASSWORD).await;
    click(browser, "button[type=submit]").await;
}

#[tokio::test]
async fn enrolment_challenge_and_skip_work_in_a_real_browser() {
    let Some(driver) = Chromedriver::start().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let (callback, seen) = callback_server().await;
    let (_, company) = app.tenant().await;
    let admin = app.admin_user(&company.id, "boss").await;
    app.user(&company.id, "alice").await;
    let client = app
        .client(ClientSpec {
            redirect_uri: callback.clone(),
            ..ClientSpec::default()
        })
        .await;
    app.set_policy(&company.id, |p| {
        p.mode = Mode::Required;
        p.reset_approvers = vec![admin.id.clone()];
    })
    .await
    .unwrap();

    // Required enrolment: password, then the authenticator app, then the recovery codes.
    let browser = driver.browser().await;
    sign_in_with_password(&browser, &app, &client, "alice").await;
    let secret = wait_for(&browser, "#totp-secret").await.text().await.unwrap();
    let secret = totp::secret_from_base32(secret.trim()).expect("a base32 secret on the page");
    assert!(
        browser.find(Locator::Css(".qr svg")).await.is_ok(),
        "the QR code renders"
    );
    // The page's own validation refuses a malformed code without a round trip.
    fill(&browser, "#code", "12ab").await;
    click(&browser, "button[name=verify]").await;
    assert!(
        browser.find(Locator::Css("#totp-secret")).await.is_ok(),
        "still on the set-up page"
    );
    browser
        .find(Locator::Css("#code"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    fill(&browser, "#code", &totp::code_at(&secret, app.now()).unwrap()).await;
    click(&browser, "button[name=verify]").await;
    wait_for(&browser, "input[name=saved]")
        .await
        .click()
        .await
        .unwrap();
    click(&browser, "button[type=submit]").await;
    let code = code_at_client(&browser, &callback).await;
    let (_, tokens) = client.exchange(&app, &code, Some(VERIFIER)).await;
    assert_eq!(
        jwt_claims(tokens["id_token"].as_str().unwrap())["amr"],
        serde_json::json!(["pwd", "otp", "mfa"])
    );
    browser.close().await.unwrap();

    // The next sign-in, in another browser, is challenged.
    app.clock.advance(30);
    let browser = driver.browser().await;
    sign_in_with_password(&browser, &app, &client, "alice").await;
    wait_for(&browser, "#code").await;
    fill(&browser, "#code", &totp::code_at(&secret, app.now()).unwrap()).await;
    click(&browser, "button[type=submit]").await;
    code_at_client(&browser, &callback).await;
    browser.close().await.unwrap();

    // With skipping allowed, "Skip for now" works with the code field left empty.
    app.set_policy(&company.id, |p| p.allow_skip = true)
        .await
        .unwrap();
    app.user(&company.id, "bob").await;
    let browser = driver.browser().await;
    sign_in_with_password(&browser, &app, &client, "bob").await;
    wait_for(&browser, "button[name=skip]")
        .await
        .click()
        .await
        .unwrap();
    let code = code_at_client(&browser, &callback).await;
    let (_, tokens) = client.exchange(&app, &code, Some(VERIFIER)).await;
    assert_eq!(
        jwt_claims(tokens["id_token"].as_str().unwrap())["amr"],
        serde_json::json!(["pwd"])
    );
    browser.close().await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 3, "the client saw three sign-ins");
}
