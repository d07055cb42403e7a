//! The provider seen by a real relying-party library: `openidconnect` discovers it, runs
//! the code flow with PKCE through the login form, verifies the ID token (signature,
//! nonce, audience, at_hash), and calls userinfo, refresh, introspection and revocation.

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod,
    CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreResponseMode, CoreResponseType, CoreRevocableToken, CoreSubjectIdentifierType,
};
use openidconnect::{
    AccessTokenHash, AdditionalProviderMetadata, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IntrospectionUrl, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, ProviderMetadata, RedirectUrl, RevocationUrl, Scope, TokenIntrospectionResponse,
    TokenResponse,
};
use portcullis::model::SigningAlg;
use serde::{Deserialize, Serialize};

use crate::helpers::{ClientSpec, PASSWORD, TestApp, TestClient, jwt_claims, jwt_header, query_param};

#[derive(Clone, Debug, Deserialize, Serialize)]
struct Endpoints {
    revocation_endpoint: String,
    introspection_endpoint: String,
    end_session_endpoint: String,
}
impl AdditionalProviderMetadata for Endpoints {}

type Metadata = ProviderMetadata<
    Endpoints,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

pub(crate) type Rp =
    CoreClient<EndpointSet, EndpointNotSet, EndpointSet, EndpointSet, EndpointMaybeSet, EndpointMaybeSet>;

fn http() -> reqwest::Client {
    // RP libraries must not follow redirects (SSRF); openidconnect documents this.
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn discover(app: &TestApp) -> Metadata {
    Metadata::discover_async(IssuerUrl::new(app.issuer.clone()).unwrap(), &http())
        .await
        .expect("discovery")
}

pub(crate) async fn relying_party(app: &TestApp, client: &TestClient) -> Rp {
    let metadata = discover(app).await;
    let extra = metadata.additional_metadata().clone();
    CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client.id.clone()),
        client.secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(client.redirect_uri.clone()).unwrap())
    .set_revocation_url(RevocationUrl::new(extra.revocation_endpoint).unwrap())
    .set_introspection_url(IntrospectionUrl::new(extra.introspection_endpoint).unwrap())
}

/// Exchanges a code obtained with [`TestClient::authorize_query`] (its PKCE verifier and
/// nonce) as an RP does, and returns the ID token's claims once the library verified it.
pub(crate) async fn exchange_verified(app: &TestApp, client: &TestClient, code: &str) -> serde_json::Value {
    let rp = relying_party(app, client).await;
    let tokens = rp
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .unwrap()
        .set_pkce_verifier(openidconnect::PkceCodeVerifier::new(
            crate::helpers::VERIFIER.into(),
        ))
        .request_async(&http())
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().expect("an ID token");
    let claims = id_token
        .claims(&rp.id_token_verifier(), &Nonce::new("nonce-456".into()))
        .expect("an ID token the library verifies");
    let raw = jwt_claims(&id_token.to_string());
    // The library reads the same amr and acr.
    let amr: Vec<String> = claims
        .auth_method_refs()
        .unwrap()
        .iter()
        .map(|m| m.to_string())
        .collect();
    assert_eq!(serde_json::json!(amr), raw["amr"]);
    assert_eq!(
        claims.auth_context_ref().unwrap().as_str(),
        raw["acr"].as_str().unwrap()
    );
    raw
}

/// Signs in through the browser pages and exchanges the code: what an RP's login does.
async fn log_in(app: &TestApp, rp: &Rp, username: &str) -> (openidconnect::core::CoreTokenResponse, Nonce) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    assert!(url.as_str().starts_with(&app.url("/authorize?")));
    let redirect = app
        .browser()
        .sign_in(url.query().unwrap(), username, PASSWORD)
        .await;
    assert_eq!(
        query_param(&redirect, "state").as_deref(),
        Some(csrf.secret().as_str())
    );
    assert_eq!(
        query_param(&redirect, "iss").as_deref(),
        Some(app.issuer.as_str()),
        "RFC 9207"
    );
    let code = query_param(&redirect, "code").expect("code");
    let tokens = rp
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http())
        .await
        .expect("code exchange");
    (tokens, nonce)
}

#[tokio::test]
async fn discovery_advertises_exactly_what_is_supported() {
    let app = TestApp::spawn().await;
    let metadata = discover(&app).await;
    assert_eq!(metadata.issuer().as_str(), app.issuer);
    assert_eq!(metadata.token_endpoint().unwrap().as_str(), app.url("/token"));
    assert_eq!(
        metadata.additional_metadata().end_session_endpoint,
        app.url("/logout")
    );
    let raw: serde_json::Value = app
        .http()
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        raw["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        raw["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256", "ES256"])
    );
    assert_eq!(raw["authorization_response_iss_parameter_supported"], true);
    assert_eq!(raw["request_uri_parameter_supported"], false);
    assert_eq!(
        raw["grant_types_supported"],
        serde_json::json!(["authorization_code", "refresh_token", "client_credentials"])
    );
    // Every advertised endpoint answers (not 404).
    for endpoint in [
        "token_endpoint",
        "userinfo_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
    ] {
        let status = app
            .http()
            .post(raw[endpoint].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .status();
        assert_ne!(status, reqwest::StatusCode::NOT_FOUND, "{endpoint}");
    }
    let jwks: serde_json::Value = app
        .http()
        .get(raw["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let algs: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap())
        .collect();
    assert!(algs.contains(&"RS256") && algs.contains(&"ES256"), "{algs:?}");
}

#[tokio::test]
async fn code_flow_with_pkce_yields_tokens_the_library_verifies() {
    let app = TestApp::spawn().await;
    let (reseller, company) = app.tenant().await;
    let user = app.user(&company.id, "alice").await;
    let client = app.confidential_client().await;
    let rp = relying_party(&app, &client).await;

    let (tokens, nonce) = log_in(&app, &rp, "alice").await;
    let id_token = tokens.id_token().expect("an ID token");
    let verifier = rp.id_token_verifier();
    // Signature (from the JWKS), issuer, audience, expiry and nonce.
    let claims = id_token.claims(&verifier, &nonce).expect("a valid ID token");
    assert_eq!(claims.subject().as_str(), user.id);
    assert_eq!(claims.preferred_username().unwrap().as_str(), "alice");
    assert_eq!(claims.email().unwrap().as_str(), "alice@example.com");
    let expected_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected_hash));

    let raw = jwt_claims(&id_token.to_string());
    assert_eq!(raw["amr"], serde_json::json!(["pwd"]));
    assert_eq!(raw["acr"], "urn:portcullis:acr:pwd");
    assert_eq!(raw["azp"], client.id);
    assert!(raw["sid"].is_string() && raw["auth_time"].is_i64());
    assert_eq!(raw["urn:portcullis:company_id"], company.id);
    assert_eq!(raw["urn:portcullis:reseller_id"], reseller.id);
    assert_eq!(jwt_header(&id_token.to_string())["alg"], "RS256");

    // The access token is an RFC 9068 JWT with the same tenancy.
    let access = tokens.access_token().secret();
    assert_eq!(jwt_header(access)["typ"], "at+jwt");
    let access_claims = jwt_claims(access);
    assert_eq!(access_claims["client_id"], client.id);
    assert_eq!(access_claims["urn:portcullis:company_id"], company.id);

    let info: openidconnect::core::CoreUserInfoClaims = rp
        .user_info(tokens.access_token().clone(), Some(claims.subject().clone()))
        .unwrap()
        .request_async(&http())
        .await
        .expect("userinfo");
    assert_eq!(info.email().unwrap().as_str(), "alice@example.com");
    // POST works too, with the token in the header.
    let posted: serde_json::Value = app
        .http()
        .post(app.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(posted["sub"], user.id);
    assert_eq!(posted["urn:portcullis:reseller_id"], reseller.id);
}

#[tokio::test]
async fn refresh_rotates_and_reusing_an_old_token_revokes_the_family() {
    let app = TestApp::spawn().await;
    let client = app.with_alice().await;
    let rp = relying_party(&app, &client).await;
    let (tokens, _) = log_in(&app, &rp, "alice").await;
    let first = tokens.refresh_token().expect("a refresh token").clone();

    let second = rp
        .exchange_refresh_token(&first)
        .unwrap()
        .request_async(&http())
        .await
        .expect("refresh");
    let second_refresh = second.refresh_token().expect("rotated").clone();
    assert_ne!(second_refresh.secret(), first.secret());
    let second_id = second.id_token().expect("an ID token on refresh");
    assert_eq!(
        jwt_claims(&second_id.to_string())["sub"],
        jwt_claims(&tokens.id_token().unwrap().to_string())["sub"]
    );

    // The first token again: reuse. The whole family dies, including the current token
    // and the access tokens of the grant.
    let reuse = rp
        .exchange_refresh_token(&first)
        .unwrap()
        .request_async(&http())
        .await;
    assert!(reuse.is_err(), "a used refresh token must be refused");
    let after = rp
        .exchange_refresh_token(&second_refresh)
        .unwrap()
        .request_async(&http())
        .await;
    assert!(after.is_err(), "reuse revokes the current refresh token too");
    let introspected = rp
        .introspect(second.access_token())
        .request_async(&http())
        .await
        .unwrap();
    assert!(!introspected.active(), "reuse revokes the grant's access tokens");
}

#[tokio::test]
async fn introspection_and_revocation() {
    let app = TestApp::spawn().await;
    let client = app.with_alice().await;
    let rp = relying_party(&app, &client).await;
    let (tokens, _) = log_in(&app, &rp, "alice").await;

    let active = rp
        .introspect(tokens.access_token())
        .request_async(&http())
        .await
        .unwrap();
    assert!(active.active());
    assert_eq!(active.client_id().unwrap().as_str(), client.id);
    assert_eq!(active.username(), Some("alice"));

    // Another client learns nothing about this client's tokens.
    let other = app.confidential_client().await;
    let other_rp = relying_party(&app, &other).await;
    let foreign = other_rp
        .introspect(tokens.access_token())
        .request_async(&http())
        .await
        .unwrap();
    assert!(!foreign.active());

    // The refresh token introspects as such.
    let refresh = tokens.refresh_token().unwrap();
    let response = client
        .post(
            &app,
            "/introspect",
            &[("token", refresh.secret()), ("token_type_hint", "refresh_token")],
        )
        .await;
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["token_type"], "refresh_token");

    // Revoking the access token deactivates it (and only it). (The oauth2 crate refuses to
    // send revocations over plain http, as RFC 7009 requires TLS; the test server is http.)
    let response = client
        .post(
            &app,
            "/revoke",
            &[
                ("token", tokens.access_token().secret()),
                ("token_type_hint", "access_token"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let revoked = rp
        .introspect(tokens.access_token())
        .request_async(&http())
        .await
        .unwrap();
    assert!(!revoked.active());
    let userinfo = app.userinfo(tokens.access_token().secret()).await;
    assert_eq!(userinfo.status(), 401);

    // Revoking the refresh token ends the grant: no more refreshing.
    let response = client.post(&app, "/revoke", &[("token", refresh.secret())]).await;
    assert_eq!(response.status(), 200);
    // The library's revocation request is well-formed; only the scheme stops it here.
    assert!(matches!(
        rp.revoke_token(CoreRevocableToken::from(refresh.clone())),
        Err(openidconnect::ConfigurationError::InsecureUrl(_))
    ));
    assert!(
        rp.exchange_refresh_token(refresh)
            .unwrap()
            .request_async(&http())
            .await
            .is_err()
    );
    // Revoking garbage is not an error (RFC 7009 section 2.2).
    assert_eq!(
        client
            .post(&app, "/revoke", &[("token", "not-a-token")])
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn an_es256_client_gets_es256_tokens_the_library_verifies() {
    let app = TestApp::spawn().await;
    let (_, company) = app.tenant().await;
    app.user(&company.id, "dave").await;
    let client = app
        .client(ClientSpec {
            alg: SigningAlg::ES256,
            ..ClientSpec::default()
        })
        .await;
    let rp = relying_party(&app, &client).await;
    let (tokens, nonce) = log_in(&app, &rp, "dave").await;
    let id_token = tokens.id_token().unwrap();
    assert_eq!(jwt_header(&id_token.to_string())["alg"], "ES256");
    id_token
        .claims(&rp.id_token_verifier(), &nonce)
        .expect("ES256 signature verifies");
}

#[tokio::test]
async fn a_public_client_uses_pkce_without_a_secret() {
    let app = TestApp::spawn().await;
    let (_, company) = app.tenant().await;
    app.user(&company.id, "erin").await;
    let client = app
        .client(ClientSpec {
            public: true,
            redirect_uri: "com.example.app:/callback".into(),
            ..ClientSpec::default()
        })
        .await;
    let rp = relying_party(&app, &client).await;
    let (tokens, nonce) = log_in(&app, &rp, "erin").await;
    tokens
        .id_token()
        .unwrap()
        .claims(&rp.id_token_verifier(), &nonce)
        .unwrap();
    assert!(tokens.refresh_token().is_some());
}

#[tokio::test]
async fn client_credentials_issues_an_access_token_for_the_client_itself() {
    let app = TestApp::spawn().await;
    let client = app
        .client(ClientSpec {
            grants: vec![portcullis::model::GrantType::ClientCredentials],
            scopes: "reports.read reports.write".into(),
            ..ClientSpec::default()
        })
        .await;
    let rp = relying_party(&app, &client).await;
    let tokens = rp
        .exchange_client_credentials()
        .unwrap()
        .add_scope(Scope::new("reports.read".into()))
        .request_async(&http())
        .await
        .expect("client_credentials");
    assert!(tokens.id_token().is_none() && tokens.refresh_token().is_none());
    let claims = jwt_claims(tokens.access_token().secret());
    assert_eq!(claims["sub"], client.id);
    assert_eq!(claims["scope"], "reports.read");
    let introspected = rp
        .introspect(tokens.access_token())
        .request_async(&http())
        .await
        .unwrap();
    assert!(introspected.active());

    // A scope the client was not given, and a scope about a user.
    for scope in ["admin", "openid"] {
        let (status, body) = client
            .token_request(
                &app,
                vec![
                    ("grant_type", "client_credentials".into()),
                    ("scope", scope.into()),
                ],
            )
            .await;
        assert_eq!(
            (status.as_u16(), body["error"].as_str()),
            (400, Some("invalid_scope")),
            "{scope}"
        );
    }
}
