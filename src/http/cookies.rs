//! The provider's cookies: HttpOnly, SameSite=Lax, and Secure with the `__Host-` prefix
//! when the issuer is https.
//!
//! - session: the browser session (single sign-on); its value is a secret whose SHA-256
//!   is stored.
//! - browser: a random value binding login transactions to the browser that started
//!   them, so a login started elsewhere cannot be completed here (login CSRF).

use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use time::Duration;

use crate::state::AppState;

const SESSION: &str = "portcullis_session";
const BROWSER: &str = "portcullis_browser";
const HOST_SESSION: &str = "__Host-portcullis_session";
const HOST_BROWSER: &str = "__Host-portcullis_browser";

fn names(state: &AppState) -> (&'static str, &'static str) {
    if state.config.is_https() {
        (HOST_SESSION, HOST_BROWSER)
    } else {
        (SESSION, BROWSER)
    }
}

fn build(state: &AppState, name: &'static str, value: String, max_age: Option<Duration>) -> Cookie<'static> {
    let mut cookie = Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.is_https());
    if let Some(max_age) = max_age {
        cookie = cookie.max_age(max_age);
    }
    cookie.build()
}

pub fn session_secret(state: &AppState, jar: &CookieJar) -> Option<String> {
    jar.get(names(state).0).map(|c| c.value().to_owned())
}

pub fn set_session(state: &AppState, jar: CookieJar, secret: String) -> CookieJar {
    let ttl = i64::try_from(state.config.login.session_ttl.as_secs()).unwrap_or(i64::MAX);
    jar.add(build(state, names(state).0, secret, Some(Duration::seconds(ttl))))
}

pub fn clear_session(state: &AppState, jar: CookieJar) -> CookieJar {
    jar.remove(build(state, names(state).0, String::new(), None))
}

pub fn browser_id(state: &AppState, jar: &CookieJar) -> Option<String> {
    jar.get(names(state).1).map(|c| c.value().to_owned())
}

/// The browser id, creating (and setting) one when the browser has none.
pub fn ensure_browser_id(state: &AppState, jar: CookieJar) -> (CookieJar, String) {
    match browser_id(state, &jar) {
        Some(id) if id.len() == 43 => (jar, id),
        _ => {
            let id = crate::crypto::random_token();
            let jar = jar.add(build(state, names(state).1, id.clone(), None));
            (jar, id)
        }
    }
}
