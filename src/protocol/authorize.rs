//! The authorization request (RFC 6749 section 4.1.1, OIDC Core section 3.1.2.1).
//!
//! Validation runs in two stages. Until the client and its redirect URI are known to be
//! good, an error is shown to the user on a page and never redirected (RFC 6749 section
//! 4.1.2.1), so the endpoint cannot be used as an open redirector. After that, each rule
//! is one small check, applied in order, and its error is redirected to the client.

use serde::{Deserialize, Serialize};
use url::Url;

use super::errors::{ErrorCode, OAuthError};
use super::params::{Lenient, Params, ParamsError};
use crate::model::{Client, GrantType, ScopeSet};

/// A validated authorization request. It is stored with the login transaction.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: ScopeSet,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    pub acr_values: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

/// Why a request was refused, and how the user or client is told.
#[derive(Debug)]
pub enum AuthorizeError {
    /// The client or redirect URI cannot be trusted: show a page, never redirect.
    Page { title: &'static str, message: String },
    /// Redirect the error to the client's validated redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: OAuthError,
    },
}

/// Stage one: the client (looked up by the caller from `client_id`) and the redirect URI.
pub fn check_client_and_redirect<'p, 'c>(
    parsed: &'p Result<Lenient, ParamsError>,
    client: Option<&'c Client>,
) -> Result<(&'p Lenient, &'c Client, String), AuthorizeError> {
    let page = |title: &'static str, message: &str| AuthorizeError::Page {
        title,
        message: message.to_owned(),
    };
    let lenient = match parsed {
        Ok(lenient) => lenient,
        Err(error) => {
            return Err(page(
                "Invalid request",
                &format!("The sign-in link is malformed: {error}."),
            ));
        }
    };
    if let Some(name) = lenient
        .duplicate
        .as_deref()
        .filter(|n| *n == "client_id" || *n == "redirect_uri")
    {
        return Err(page(
            "Invalid request",
            &format!("The parameter `{name}` appears more than once."),
        ));
    }
    let params = &lenient.params;
    let Some(client_id) = params.get("client_id") else {
        return Err(page("Invalid request", "The sign-in link has no client_id."));
    };
    let Some(client) = client.filter(|c| c.id == client_id) else {
        return Err(page(
            "Unknown application",
            "The application that sent you here is not registered with this sign-in service.",
        ));
    };
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return Err(page("Invalid request", "The sign-in link has no redirect_uri."));
    };
    if !client.has_redirect_uri(redirect_uri) {
        return Err(page(
            "Invalid redirect URI",
            "The application asked to send you back to an address it has not registered. \
             For your safety you were not redirected.",
        ));
    }
    Ok((lenient, client, redirect_uri.to_owned()))
}

/// Stage two: every other rule, in order. Errors are redirected to the client.
pub fn check_request(
    lenient: &Lenient,
    client: &Client,
    redirect_uri: String,
) -> Result<AuthRequest, AuthorizeError> {
    let params = &lenient.params;
    let state = params.get("state").map(str::to_owned);
    let fail = |error: OAuthError| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        error,
    };
    if state.as_ref().is_some_and(|s| s.len() > 2048) {
        // Too long to echo back safely; say so without it.
        return Err(AuthorizeError::Redirect {
            redirect_uri: redirect_uri.clone(),
            state: None,
            error: OAuthError::invalid_request("state is longer than 2048 characters"),
        });
    }
    if let Some(name) = &lenient.duplicate {
        return Err(fail(OAuthError::invalid_request(format!(
            "parameter `{name}` is included more than once"
        ))));
    }
    let checks: [Check; 5] = [
        check_request_objects,
        check_response_type,
        check_response_mode,
        check_client_may_use_code,
        check_pkce,
    ];
    for check in checks {
        check(params, client).map_err(fail)?;
    }
    let scope = check_scope(params, client).map_err(fail)?;
    let prompt = check_prompt(params).map_err(fail)?;
    let max_age = check_max_age(params).map_err(fail)?;
    let nonce = bounded(params, "nonce", 512).map_err(fail)?;
    let login_hint = bounded(params, "login_hint", 256).map_err(fail)?;
    let acr_values = bounded(params, "acr_values", 512)
        .map_err(fail)?
        .map(|v| {
            v.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(AuthRequest {
        client_id: client.id.clone(),
        redirect_uri,
        scope,
        state,
        nonce,
        code_challenge: params.get("code_challenge").map(str::to_owned),
        prompt,
        max_age,
        login_hint,
        acr_values,
    })
}

/// One rule of the authorization request.
type Check = fn(&Params, &Client) -> Result<(), OAuthError>;

fn check_request_objects(params: &Params, _: &Client) -> Result<(), OAuthError> {
    if params.contains("request") {
        return Err(OAuthError::new(
            ErrorCode::RequestNotSupported,
            "request objects are not supported",
        ));
    }
    if params.contains("request_uri") {
        return Err(OAuthError::new(
            ErrorCode::RequestUriNotSupported,
            "request_uri is not supported",
        ));
    }
    Ok(())
}

fn check_response_type(params: &Params, _: &Client) -> Result<(), OAuthError> {
    match params.get("response_type") {
        None => Err(OAuthError::invalid_request("response_type is required")),
        Some("code") => Ok(()),
        Some(_) => Err(OAuthError::new(
            ErrorCode::UnsupportedResponseType,
            "only response_type=code is supported",
        )),
    }
}

fn check_response_mode(params: &Params, _: &Client) -> Result<(), OAuthError> {
    match params.get("response_mode") {
        None | Some("query") => Ok(()),
        Some(_) => Err(OAuthError::invalid_request(
            "only response_mode=query is supported",
        )),
    }
}

fn check_client_may_use_code(_: &Params, client: &Client) -> Result<(), OAuthError> {
    if client.allows_grant(GrantType::AuthorizationCode) {
        Ok(())
    } else {
        Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client may not use the authorization code flow",
        ))
    }
}

/// RFC 7636: S256 only; a public client must use it.
fn check_pkce(params: &Params, client: &Client) -> Result<(), OAuthError> {
    let challenge = params.get("code_challenge");
    let method = params.get("code_challenge_method");
    match (challenge, method) {
        (None, None) if client.public => Err(OAuthError::invalid_request(
            "PKCE is required for public clients: send code_challenge with code_challenge_method=S256",
        )),
        (None, None) => Ok(()),
        (None, Some(_)) => Err(OAuthError::invalid_request(
            "code_challenge_method was sent without code_challenge",
        )),
        (Some(_), None | Some("plain")) => Err(OAuthError::invalid_request(
            "code_challenge_method must be S256 (plain is not supported)",
        )),
        (Some(_), Some(m)) if m != "S256" => {
            Err(OAuthError::invalid_request("code_challenge_method must be S256"))
        }
        (Some(challenge), Some(_)) => {
            // BASE64URL(SHA-256(...)) is always 43 characters.
            if challenge.len() == 43
                && challenge
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                Ok(())
            } else {
                Err(OAuthError::invalid_request(
                    "code_challenge must be the 43-character base64url SHA-256 of the verifier",
                ))
            }
        }
    }
}

fn check_scope(params: &Params, client: &Client) -> Result<ScopeSet, OAuthError> {
    let Some(raw) = params.get("scope") else {
        return Err(OAuthError::invalid_request(
            "scope is required and must contain openid",
        ));
    };
    let scope = ScopeSet::parse(raw).map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e.to_string()))?;
    if !scope.contains("openid") {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "scope must contain openid: this is an OpenID Connect provider",
        ));
    }
    if let Some(unknown) = scope.not_in(&client.scopes).next() {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            format!("scope `{unknown}` is not allowed for this client"),
        ));
    }
    Ok(scope)
}

fn check_prompt(params: &Params) -> Result<Prompt, OAuthError> {
    let mut prompt = Prompt::default();
    let Some(raw) = params.get("prompt") else {
        return Ok(prompt);
    };
    for value in raw.split(' ').filter(|v| !v.is_empty()) {
        match value {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            other => {
                return Err(OAuthError::invalid_request(format!(
                    "prompt value `{}` is not supported (none, login, consent)",
                    other.escape_default()
                )));
            }
        }
    }
    if prompt.none && (prompt.login || prompt.consent) {
        return Err(OAuthError::invalid_request(
            "prompt=none cannot be combined with other values",
        ));
    }
    Ok(prompt)
}

fn check_max_age(params: &Params) -> Result<Option<i64>, OAuthError> {
    params
        .get("max_age")
        .map(|raw| {
            raw.parse::<u32>()
                .map(i64::from)
                .map_err(|_| OAuthError::invalid_request("max_age must be a non-negative number of seconds"))
        })
        .transpose()
}

fn bounded(params: &Params, name: &'static str, max: usize) -> Result<Option<String>, OAuthError> {
    match params.get(name) {
        Some(value) if value.len() > max => Err(OAuthError::invalid_request(format!(
            "{name} is longer than {max} characters"
        ))),
        value => Ok(value.map(str::to_owned)),
    }
}

/// The redirect that carries an authorization response or error to the client, with
/// `iss` (RFC 9207). Parameters are added to the registered URI's own query, if any.
pub fn redirect_to_client(redirect_uri: &str, pairs: &[(&str, &str)], issuer: &str) -> Option<Url> {
    let mut url = Url::parse(redirect_uri).ok()?;
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in pairs {
            query.append_pair(name, value);
        }
        query.append_pair("iss", issuer);
    }
    Some(url)
}

/// The redirect for an error, with its state.
pub fn error_redirect(
    redirect_uri: &str,
    state: Option<&str>,
    error: &OAuthError,
    issuer: &str,
) -> Option<Url> {
    let mut pairs = vec![
        ("error", error.code.as_str()),
        ("error_description", error.description.as_ref()),
    ];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    redirect_to_client(redirect_uri, &pairs, issuer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SigningAlg;

    fn client(public: bool) -> Client {
        Client {
            id: "app".into(),
            name: "App".into(),
            secret_hash: None,
            public,
            first_party: true,
            redirect_uris: vec!["https://app.example.com/cb".into()],
            post_logout_redirect_uris: vec![],
            grant_types: vec![GrantType::AuthorizationCode],
            scopes: ScopeSet::parse("openid profile email").unwrap(),
            id_token_alg: SigningAlg::RS256,
            reseller_id: None,
            company_id: None,
            allowed_companies: vec![],
            created_at: 0,
        }
    }

    const CHALLENGE: &str = "E9Melhoa2OwvFWpxtXpShUd3oIkUBp4MpkG4lWeqV1M";

    fn check(query: &str, public: bool) -> Result<AuthRequest, AuthorizeError> {
        let c = client(public);
        let parsed = Params::parse_lenient(query.as_bytes());
        let (params, c, uri) = check_client_and_redirect(&parsed, Some(&c))?;
        check_request(params, c, uri)
    }

    fn redirected_error(query: &str, public: bool) -> ErrorCode {
        match check(query, public) {
            Err(AuthorizeError::Redirect { error, .. }) => error.code,
            other => panic!("expected a redirected error, got {other:?}"),
        }
    }

    const BASE: &str = "client_id=app&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb";

    #[test]
    fn a_complete_request_is_accepted() {
        let request = check(
            &format!("{BASE}&response_type=code&scope=openid%20email&state=s&nonce=n&code_challenge={CHALLENGE}&code_challenge_method=S256&max_age=60&prompt=login"),
            true,
        )
        .unwrap();
        assert_eq!(request.scope.to_string(), "email openid");
        assert_eq!(request.max_age, Some(60));
        assert!(request.prompt.login);
    }

    #[test]
    fn unknown_client_or_redirect_uri_is_a_page_not_a_redirect() {
        let c = client(false);
        for query in [
            "client_id=other&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb",
            "client_id=app&redirect_uri=https%3A%2F%2Fevil.example.com%2Fcb",
            "client_id=app&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb%2F",
            "client_id=app",
            "redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb",
            "client_id=app&client_id=app&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb",
        ] {
            let parsed = Params::parse_lenient(query.as_bytes());
            assert!(
                matches!(
                    check_client_and_redirect(&parsed, Some(&c)),
                    Err(AuthorizeError::Page { .. })
                ),
                "{query}"
            );
        }
    }

    #[test]
    fn each_rule_gives_its_rfc_error() {
        let ok = format!("&code_challenge={CHALLENGE}&code_challenge_method=S256");
        assert_eq!(
            redirected_error(&format!("{BASE}&scope=openid{ok}"), false),
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            redirected_error(&format!("{BASE}&response_type=token&scope=openid{ok}"), false),
            ErrorCode::UnsupportedResponseType
        );
        assert_eq!(
            redirected_error(&format!("{BASE}&response_type=code&scope=profile{ok}"), false),
            ErrorCode::InvalidScope
        );
        assert_eq!(
            redirected_error(
                &format!("{BASE}&response_type=code&scope=openid%20admin{ok}"),
                false
            ),
            ErrorCode::InvalidScope
        );
        assert_eq!(
            redirected_error(&format!("{BASE}&response_type=code&scope=openid"), true),
            ErrorCode::InvalidRequest,
            "public clients need PKCE"
        );
        assert_eq!(
            redirected_error(
                &format!(
                    "{BASE}&response_type=code&scope=openid&code_challenge={CHALLENGE}&code_challenge_method=plain"
                ),
                false
            ),
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            redirected_error(
                &format!("{BASE}&response_type=code&scope=openid&code_challenge={CHALLENGE}"),
                false
            ),
            ErrorCode::InvalidRequest,
            "a missing method means plain"
        );
        assert_eq!(
            redirected_error(
                &format!("{BASE}&response_type=code&scope=openid&prompt=none%20login{ok}"),
                false
            ),
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            redirected_error(
                &format!("{BASE}&response_type=code&scope=openid&max_age=-1{ok}"),
                false
            ),
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            redirected_error(
                &format!("{BASE}&response_type=code&scope=openid&request=x{ok}"),
                false
            ),
            ErrorCode::RequestNotSupported
        );
        assert_eq!(
            redirected_error(
                &format!("{BASE}&response_type=code&scope=openid&response_mode=fragment{ok}"),
                false
            ),
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn confidential_clients_may_omit_pkce() {
        assert!(check(&format!("{BASE}&response_type=code&scope=openid"), false).is_ok());
    }

    #[test]
    fn error_redirects_keep_the_registered_query_and_add_iss() {
        let url = error_redirect(
            "https://app.example.com/cb?tenant=a",
            Some("xyz"),
            &OAuthError::new(ErrorCode::LoginRequired, "no session"),
            "https://id.example.com",
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://app.example.com/cb?tenant=a&error=login_required&error_description=no+session&state=xyz&iss=https%3A%2F%2Fid.example.com"
        );
    }
}
