//! Relying-party clients.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use url::Url;

use super::{Invalid, ScopeSet};
use crate::clock::UnixTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlg {
    RS256,
    ES256,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 2] = [SigningAlg::RS256, SigningAlg::ES256];

    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::ES256 => "ES256",
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlg {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        match s {
            "RS256" => Ok(SigningAlg::RS256),
            "ES256" => Ok(SigningAlg::ES256),
            other => Err(Invalid::new(format!(
                "unsupported signing algorithm `{other}` (expected RS256 or ES256)"
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }
}

impl FromStr for GrantType {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        match s {
            "authorization_code" => Ok(GrantType::AuthorizationCode),
            "refresh_token" => Ok(GrantType::RefreshToken),
            "client_credentials" => Ok(GrantType::ClientCredentials),
            other => Err(Invalid::new(format!(
                "unsupported grant type `{other}` (expected authorization_code, refresh_token or client_credentials)"
            ))),
        }
    }
}

/// A registered redirect URI (or post-logout redirect URI). Requests must repeat it
/// exactly, character for character.
///
/// Accepted: `https://` URLs; `http://` only on a loopback host (development and native
/// apps, RFC 8252 section 7.3); private-use schemes with a dot, such as
/// `com.example.app:/callback` (RFC 8252 section 7.1). Never a fragment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RedirectUri(String);

impl RedirectUri {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let invalid = |why: &str| Invalid::new(format!("redirect URI `{}` {why}", input.escape_default()));
        if input.len() > 2000 {
            return Err(invalid("is longer than 2000 characters"));
        }
        let url = Url::parse(input).map_err(|e| invalid(&format!("is not an absolute URL ({e})")))?;
        if url.fragment().is_some() || input.contains('#') {
            return Err(invalid("must not contain a fragment"));
        }
        match url.scheme() {
            "https" => {}
            "http" => {
                let loopback = matches!(url.host(), Some(url::Host::Domain("localhost")))
                    || matches!(url.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
                    || matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback());
                if !loopback {
                    return Err(invalid(
                        "uses http:// on a host that is not loopback; use https://",
                    ));
                }
            }
            "javascript" | "data" | "file" | "vbscript" | "blob" | "about" => {
                return Err(invalid("uses a forbidden scheme"));
            }
            scheme if scheme.contains('.') => {}
            _ => {
                return Err(invalid(
                    "must be https://, http:// on loopback, or a private-use scheme with a dot (com.example.app:/cb)",
                ));
            }
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RedirectUri {
    type Error = Invalid;
    fn try_from(value: String) -> Result<Self, Invalid> {
        Self::parse(&value)
    }
}

impl From<RedirectUri> for String {
    fn from(value: RedirectUri) -> String {
        value.0
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub name: String,
    #[serde(skip)]
    pub secret_hash: Option<String>,
    pub public: bool,
    pub first_party: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub scopes: ScopeSet,
    pub id_token_alg: SigningAlg,
    /// Set for service clients acting for a reseller or a company.
    pub reseller_id: Option<String>,
    pub company_id: Option<String>,
    /// When not empty, only users of these companies may log in to this client.
    pub allowed_companies: Vec<String>,
    pub created_at: UnixTime,
}

impl Client {
    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
    }

    pub fn has_post_logout_redirect_uri(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris.iter().any(|r| r == uri)
    }

    pub fn serves_company(&self, company_id: &str) -> bool {
        self.allowed_companies.is_empty() || self.allowed_companies.iter().any(|c| c == company_id)
    }
}

/// What it takes to register a client. The secret (for confidential clients) is generated
/// by the caller and only its hash is stored.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub name: String,
    pub public: bool,
    pub first_party: bool,
    pub redirect_uris: Vec<RedirectUri>,
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    pub grant_types: Vec<GrantType>,
    pub scopes: ScopeSet,
    pub id_token_alg: SigningAlg,
    pub reseller_id: Option<String>,
    pub company_id: Option<String>,
    pub allowed_companies: Vec<String>,
}

impl NewClient {
    /// The client to store under `id`, with its secret in clear (shown once; `None` for a
    /// public client) and only the secret's hash kept.
    pub fn into_client(self, id: String, now: crate::clock::UnixTime) -> (Client, Option<String>) {
        let secret = (!self.public).then(crate::crypto::random_token);
        let client = Client {
            id,
            name: self.name,
            secret_hash: secret.as_deref().map(crate::crypto::token_hash),
            public: self.public,
            first_party: self.first_party,
            redirect_uris: self.redirect_uris.into_iter().map(String::from).collect(),
            post_logout_redirect_uris: self
                .post_logout_redirect_uris
                .into_iter()
                .map(String::from)
                .collect(),
            grant_types: self.grant_types,
            scopes: self.scopes,
            id_token_alg: self.id_token_alg,
            reseller_id: self.reseller_id,
            company_id: self.company_id,
            allowed_companies: self.allowed_companies,
            created_at: now,
        };
        (client, secret)
    }

    /// Rules that hold across fields.
    pub fn check(&self) -> Result<(), Invalid> {
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return Err(Invalid::new("the client name must be 1 to 200 characters"));
        }
        if self.grant_types.is_empty() {
            return Err(Invalid::new("a client needs at least one grant type"));
        }
        let interactive = self.grant_types.contains(&GrantType::AuthorizationCode);
        if interactive && self.redirect_uris.is_empty() {
            return Err(Invalid::new(
                "a client using authorization_code needs at least one redirect URI",
            ));
        }
        if self.grant_types.contains(&GrantType::RefreshToken) && !interactive {
            return Err(Invalid::new("refresh_token needs authorization_code as well"));
        }
        if self.public && self.grant_types.contains(&GrantType::ClientCredentials) {
            return Err(Invalid::new(
                "a public client cannot use client_credentials: it has no secret",
            ));
        }
        if interactive && !self.scopes.contains("openid") {
            return Err(Invalid::new(
                "a client using authorization_code must allow the openid scope",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_follow_rfc_8252_rules() {
        for good in [
            "https://app.example.com/callback",
            "http://127.0.0.1:9000/cb",
            "http://localhost/cb",
            "http://[::1]:8080/cb",
            "com.example.app:/oauth2redirect",
        ] {
            assert!(RedirectUri::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "/relative",
            "https://app.example.com/cb#frag",
            "http://app.example.com/cb",
            "javascript:alert(1)",
            "myapp:/cb",
            "data:text/html,hi",
        ] {
            assert!(RedirectUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn public_clients_cannot_use_client_credentials() {
        let client = NewClient {
            name: "spa".into(),
            public: true,
            first_party: true,
            redirect_uris: vec![RedirectUri::parse("https://spa.example.com/cb").unwrap()],
            post_logout_redirect_uris: vec![],
            grant_types: vec![GrantType::AuthorizationCode, GrantType::ClientCredentials],
            scopes: ScopeSet::parse("openid").unwrap(),
            id_token_alg: SigningAlg::RS256,
            reseller_id: None,
            company_id: None,
            allowed_companies: vec![],
        };
        assert!(client.check().is_err());
    }
}
