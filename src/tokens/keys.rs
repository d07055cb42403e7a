//! Signing keys: generation, sealing at rest, rotation, and the in-memory key set.
//!
//! Keys live in the database (private keys sealed under the master key), so every instance
//! that shares the database and the master key signs with the same keys and publishes the
//! same JWKS. Each instance keeps the parsed keys in memory ([`KeySet`]) and re-reads the
//! table when its copy is older than `tokens.key_refresh_interval` (by the injected clock,
//! on the next request that needs keys), or at once when it sees an unknown `kid`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::clock::UnixTime;
use crate::crypto::MasterKey;
use crate::model::SigningAlg;
use crate::storage::{Store, StoreError, StoredKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key generation failed")]
    Generate,
    #[error("signing key {kid} cannot be opened: {reason}")]
    Unreadable { kid: String, reason: String },
    #[error("no signing key for {0}")]
    Missing(SigningAlg),
    #[error("signing failed")]
    Sign,
    #[error(transparent)]
    Store(#[from] StoreError),
}

enum PrivateKey {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// A parsed private key, ready to sign without re-parsing.
pub struct Signer {
    pub kid: String,
    pub alg: SigningAlg,
    key: PrivateKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

impl Signer {
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match &self.key {
            PrivateKey::Rsa(key) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .map_err(|_| KeyError::Sign)?;
                Ok(signature)
            }
            PrivateKey::Ec(key) => key
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
        }
    }
}

/// A public key that verifies tokens signed with one of our keys.
pub struct Verifier {
    pub alg: SigningAlg,
    pub key: jsonwebtoken::DecodingKey,
}

/// The keys one instance currently uses.
pub struct KeySet {
    pub loaded_at: UnixTime,
    signers: HashMap<SigningAlg, Arc<Signer>>,
    verifiers: HashMap<String, Verifier>,
    /// The JWKS document, serialised once per load (a response shares it, without a copy).
    pub jwks: axum::body::Bytes,
}

impl KeySet {
    pub fn signer(&self, alg: SigningAlg) -> Result<Arc<Signer>, KeyError> {
        self.signers.get(&alg).cloned().ok_or(KeyError::Missing(alg))
    }

    pub fn verifier(&self, kid: &str) -> Option<&Verifier> {
        self.verifiers.get(kid)
    }
}

/// The shared, refreshable key set of a running instance.
pub struct KeyRing {
    store: Store,
    master: MasterKey,
    /// Keys retired less than this long ago stay published (their tokens may be live).
    publish_retired_for: i64,
    refresh_interval: i64,
    current: RwLock<Arc<KeySet>>,
    /// One refresh at a time; others keep using the current set meanwhile.
    refreshing: tokio::sync::Mutex<()>,
}

impl KeyRing {
    /// Makes sure a key exists for every algorithm (generating the missing ones), then
    /// loads them.
    pub async fn open(
        store: Store,
        master: MasterKey,
        publish_retired_for: i64,
        refresh_interval: i64,
        now: UnixTime,
    ) -> Result<Self, KeyError> {
        ensure_keys(&store, &master, now).await?;
        let set = load(&store, &master, publish_retired_for, now).await?;
        Ok(Self {
            store,
            master,
            publish_retired_for,
            refresh_interval,
            current: RwLock::new(Arc::new(set)),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    /// The key set, re-read first when it is older than the refresh interval.
    pub async fn fresh(&self, now: UnixTime) -> Arc<KeySet> {
        let set = self.current();
        if now - set.loaded_at < self.refresh_interval {
            return set;
        }
        self.reload(set, now).await
    }

    /// Re-reads the keys unless another task is already doing so.
    async fn reload(&self, set: Arc<KeySet>, now: UnixTime) -> Arc<KeySet> {
        let Ok(_guard) = self.refreshing.try_lock() else {
            return set;
        };
        match self.refresh(now).await {
            Ok(fresh) => fresh,
            Err(error) => {
                tracing::warn!(%error, "re-reading signing keys failed");
                set
            }
        }
    }

    fn current(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads the keys from the database.
    pub async fn refresh(&self, now: UnixTime) -> Result<Arc<KeySet>, KeyError> {
        let set = Arc::new(load(&self.store, &self.master, self.publish_retired_for, now).await?);
        match self.current.write() {
            Ok(mut guard) => *guard = set.clone(),
            Err(poisoned) => *poisoned.into_inner() = set.clone(),
        }
        Ok(set)
    }

    /// The key set, re-read first if `kid` is not in it (another instance or the CLI may
    /// have rotated) and the last read is at least a second old.
    pub async fn with_kid(&self, kid: &str, now: UnixTime) -> Arc<KeySet> {
        let set = self.fresh(now).await;
        if set.verifier(kid).is_some() || now - set.loaded_at < 1 {
            return set;
        }
        self.reload(set, now).await
    }
}

/// Generates a key for every algorithm that has none in use.
pub async fn ensure_keys(store: &Store, master: &MasterKey, now: UnixTime) -> Result<(), KeyError> {
    let existing = store.published_keys(now).await?;
    for alg in SigningAlg::ALL {
        if !existing
            .iter()
            .any(|k| k.alg == alg.as_str() && k.retired_at.is_none())
        {
            let key = generate(master, alg, now).await?;
            store.insert_key_and_retire_others(&key, now).await?;
            tracing::info!(kid = %key.kid, %alg, "generated a signing key");
        }
    }
    Ok(())
}

/// Adds a new key for every algorithm; the previous ones are retired (they keep verifying
/// and stay in the JWKS until their tokens have expired). Returns the new keys.
pub async fn rotate(store: &Store, master: &MasterKey, now: UnixTime) -> Result<Vec<StoredKey>, KeyError> {
    let mut created = Vec::new();
    for alg in SigningAlg::ALL {
        let key = generate(master, alg, now).await?;
        store.insert_key_and_retire_others(&key, now).await?;
        created.push(key);
    }
    Ok(created)
}

/// Generates a key pair (RSA 2048 or P-256) on the blocking pool and seals it.
async fn generate(master: &MasterKey, alg: SigningAlg, now: UnixTime) -> Result<StoredKey, KeyError> {
    let (pkcs8, jwk) = tokio::task::spawn_blocking(move || generate_pair(alg))
        .await
        .map_err(|_| KeyError::Generate)??;
    let kid = thumbprint(&jwk);
    let mut public = jwk;
    if let Value::Object(map) = &mut public {
        map.insert("kid".into(), json!(kid));
        map.insert("alg".into(), json!(alg.as_str()));
        map.insert("use".into(), json!("sig"));
    }
    Ok(StoredKey {
        private_key: master.seal(&kid, &pkcs8),
        kid,
        alg: alg.as_str().into(),
        public_jwk: public.to_string(),
        created_at: now,
        retired_at: None,
    })
}

fn generate_pair(alg: SigningAlg) -> Result<(Vec<u8>, Value), KeyError> {
    match alg {
        SigningAlg::RS256 => {
            let key = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
            let der = key.as_der().map_err(|_| KeyError::Generate)?;
            let jwk = rsa_jwk(&key);
            Ok((der.as_ref().to_vec(), jwk))
        }
        SigningAlg::ES256 => {
            let key =
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|_| KeyError::Generate)?;
            let der = key.to_pkcs8v1().map_err(|_| KeyError::Generate)?;
            let jwk = ec_jwk(&key)?;
            Ok((der.as_ref().to_vec(), jwk))
        }
    }
}

/// The required members of a public JWK, in RFC 7638's lexicographic order.
fn rsa_jwk(key: &RsaKeyPair) -> Value {
    let public = key.public_key();
    json!({
        "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        "kty": "RSA",
        "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
    })
}

fn ec_jwk(key: &EcdsaKeyPair) -> Result<Value, KeyError> {
    let point = key.public_key().as_ref();
    // Uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
    if point.len() != 65 || point[0] != 4 {
        return Err(KeyError::Generate);
    }
    Ok(json!({
        "crv": "P-256",
        "kty": "EC",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    }))
}

/// RFC 7638 JWK thumbprint (SHA-256): a stable `kid` derived from the public key.
fn thumbprint(required_members: &Value) -> String {
    // serde_json writes object members in key order (BTreeMap) without whitespace, which is
    // exactly RFC 7638's canonical form for these members.
    crate::crypto::pkce_s256(&required_members.to_string())
}

async fn load(
    store: &Store,
    master: &MasterKey,
    publish_retired_for: i64,
    now: UnixTime,
) -> Result<KeySet, KeyError> {
    let stored = store.published_keys(now - publish_retired_for).await?;
    let mut signers = HashMap::new();
    let mut verifiers = HashMap::new();
    let mut jwks = Vec::new();
    for key in stored {
        let alg: SigningAlg = key
            .alg
            .parse()
            .map_err(|e: crate::model::Invalid| KeyError::Unreadable {
                kid: key.kid.clone(),
                reason: e.to_string(),
            })?;
        let public: Value = serde_json::from_str(&key.public_jwk).map_err(|e| KeyError::Unreadable {
            kid: key.kid.clone(),
            reason: e.to_string(),
        })?;
        verifiers.insert(key.kid.clone(), verifier(&key.kid, alg, &public)?);
        jwks.push(public);
        // Newest first: the first unretired key of each algorithm signs.
        if key.retired_at.is_none() && !signers.contains_key(&alg) {
            let pkcs8 = master
                .open(&key.kid, &key.private_key)
                .map_err(|e| KeyError::Unreadable {
                    kid: key.kid.clone(),
                    reason: e.to_string(),
                })?;
            let parsed = match alg {
                SigningAlg::RS256 => RsaKeyPair::from_pkcs8(&pkcs8)
                    .map(PrivateKey::Rsa)
                    .map_err(|e| e.to_string()),
                SigningAlg::ES256 => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
                    .map(PrivateKey::Ec)
                    .map_err(|e| e.to_string()),
            }
            .map_err(|reason| KeyError::Unreadable {
                kid: key.kid.clone(),
                reason,
            })?;
            signers.insert(
                alg,
                Arc::new(Signer {
                    kid: key.kid.clone(),
                    alg,
                    key: parsed,
                }),
            );
        }
    }
    let jwks = json!({ "keys": jwks }).to_string();
    Ok(KeySet {
        loaded_at: now,
        signers,
        verifiers,
        jwks: jwks.into(),
    })
}

fn verifier(kid: &str, alg: SigningAlg, jwk: &Value) -> Result<Verifier, KeyError> {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str).unwrap_or_default();
    let key = match alg {
        SigningAlg::RS256 => jsonwebtoken::DecodingKey::from_rsa_components(member("n"), member("e")),
        SigningAlg::ES256 => jsonwebtoken::DecodingKey::from_ec_components(member("x"), member("y")),
    }
    .map_err(|e| KeyError::Unreadable {
        kid: kid.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(Verifier { alg, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7638_thumbprint_example() {
        // RFC 7638 section 3.1.
        let jwk = json!({
            "e": "AQAB",
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        });
        assert_eq!(thumbprint(&jwk), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn generated_keys_sign_what_their_public_jwk_verifies() {
        for alg in SigningAlg::ALL {
            let (pkcs8, jwk) = generate_pair(alg).unwrap();
            let signer = Signer {
                kid: "k".into(),
                alg,
                key: match alg {
                    SigningAlg::RS256 => PrivateKey::Rsa(RsaKeyPair::from_pkcs8(&pkcs8).unwrap()),
                    SigningAlg::ES256 => PrivateKey::Ec(
                        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).unwrap(),
                    ),
                },
            };
            let message = b"header.payload";
            let signature = URL_SAFE_NO_PAD.encode(signer.sign(message).unwrap());
            let verifier = verifier("k", alg, &jwk).unwrap();
            let jwt_alg = match alg {
                SigningAlg::RS256 => jsonwebtoken::Algorithm::RS256,
                SigningAlg::ES256 => jsonwebtoken::Algorithm::ES256,
            };
            assert!(jsonwebtoken::crypto::verify(&signature, message, &verifier.key, jwt_alg).unwrap());
            assert!(
                !jsonwebtoken::crypto::verify(&signature, b"header.other", &verifier.key, jwt_alg).unwrap()
            );
        }
    }
}
