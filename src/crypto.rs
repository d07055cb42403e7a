//! Small cryptographic building blocks: random tokens, hashes of tokens, constant-time
//! comparison, and sealing secrets at rest under the master key (AES-256-GCM).

use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use subtle::ConstantTimeEq;

/// `n` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The system RNG failing is not recoverable and does not happen on a working OS; a
    // zeroed buffer would be a security bug, so abort rather than continue.
    if SystemRandom::new().fill(&mut bytes).is_err() {
        std::process::abort();
    }
    bytes
}

/// A 256-bit random token, base64url without padding (43 characters).
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// A uniformly random integer in `0..bound` (rejection sampling, no modulo bias).
pub fn random_below(bound: u32) -> u32 {
    if bound == 0 {
        return 0;
    }
    let zone = u32::MAX - (u32::MAX % bound);
    loop {
        let value = u32::from_le_bytes(random_bytes::<4>());
        if value < zone {
            return value % bound;
        }
    }
}

/// SHA-256 of a token, base64url: what the database stores instead of the token.
pub fn token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, token.as_bytes()))
}

/// The left half of SHA-256, base64url: `at_hash` for RS256 and ES256 (OIDC Core 3.1.3.6),
/// and the S256 PKCE transform uses the whole digest (see [`pkce_s256`]).
pub fn left_half_sha256(value: &str) -> String {
    let hash = digest(&SHA256, value.as_bytes());
    URL_SAFE_NO_PAD.encode(&hash.as_ref()[..16])
}

/// `BASE64URL(SHA256(ASCII(code_verifier)))` (RFC 7636 section 4.2).
pub fn pkce_s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()))
}

/// HMAC-SHA256 of `message` under `key`, base64url.
pub fn keyed_hash(key: &[u8; 32], message: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    URL_SAFE_NO_PAD.encode(hmac::sign(&key, message.as_bytes()))
}

/// Compares two secrets without leaking where they differ through timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// The key that seals secrets at rest (signing keys, and TOTP seeds). It lives in the key
/// directory, never in the database.
#[derive(Clone)]
pub struct MasterKey {
    key: std::sync::Arc<LessSafeKey>,
    bytes: std::sync::Arc<[u8; 32]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("must be base64 of exactly 32 bytes")]
    Malformed,
    #[error("cannot read or create {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// Sealed data could not be opened: wrong master key, or the data was altered.
#[derive(Debug, thiserror::Error)]
#[error("sealed data could not be opened (wrong master key or altered data)")]
pub struct OpenError;

const MASTER_KEY_FILE: &str = "master.key";

impl MasterKey {
    pub fn from_base64(text: &str) -> Result<Self, MasterKeyError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| MasterKeyError::Malformed)?;
        Self::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, MasterKeyError> {
        if bytes.len() != 32 {
            return Err(MasterKeyError::Malformed);
        }
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| MasterKeyError::Malformed)?;
        let mut raw = [0u8; 32];
        raw.copy_from_slice(bytes);
        Ok(Self {
            key: std::sync::Arc::new(LessSafeKey::new(unbound)),
            bytes: std::sync::Arc::new(raw),
        })
    }

    /// Reads `<dir>/master.key`, creating the directory and a new random key (mode 0600)
    /// when there is none.
    pub fn load_or_create(dir: &Path) -> Result<Self, MasterKeyError> {
        let path = dir.join(MASTER_KEY_FILE);
        let io = |source| MasterKeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_base64(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(io)?;
                let bytes = random_bytes::<32>();
                write_private_file(&path, format!("{}\n", STANDARD.encode(bytes)).as_bytes()).map_err(io)?;
                Self::from_bytes(&bytes)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Encrypts `plaintext`, binding it to `context` (e.g. the row it belongs to), so a
    /// sealed value copied to another row does not open there. Output: nonce || ciphertext.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let nonce_bytes = random_bytes::<NONCE_LEN>();
        let mut buffer = plaintext.to_vec();
        let nonce = Nonce::assume_unique_for_key(nonce_bytes);
        if self
            .key
            .seal_in_place_append_tag(nonce, Aad::from(context.as_bytes()), &mut buffer)
            .is_err()
        {
            // Only fails for inputs larger than AES-GCM's 64 GiB limit.
            std::process::abort();
        }
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&buffer);
        out
    }

    /// A key for another purpose, derived from the master key: HMAC-SHA256(master, label).
    pub fn derive(&self, label: &str) -> [u8; 32] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.bytes.as_ref());
        let mut out = [0u8; 32];
        out.copy_from_slice(hmac::sign(&key, label.as_bytes()).as_ref());
        out
    }

    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < NONCE_LEN {
            return Err(OpenError);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError)?;
        let mut buffer = ciphertext.to_vec();
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buffer)
            .map_err(|_| OpenError)?;
        Ok(plaintext.to_vec())
    }
}

/// Writes a file readable by its owner only.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn random_tokens_are_43_chars_and_differ() {
        let a = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token());
    }

    #[test]
    fn random_below_stays_in_range() {
        for _ in 0..1000 {
            assert!(random_below(10) < 10);
        }
    }

    #[test]
    fn sealed_data_opens_only_with_the_same_key_and_context() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::load_or_create(dir.path()).unwrap();
        let sealed = key.seal("row-1", b"secret seed");
        assert_eq!(key.open("row-1", &sealed).unwrap(), b"secret seed");
        assert!(key.open("row-2", &sealed).is_err());

        let reloaded = MasterKey::load_or_create(dir.path()).unwrap();
        assert_eq!(reloaded.open("row-1", &sealed).unwrap(), b"secret seed");

        let other = MasterKey::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        assert!(other.open("row-1", &sealed).is_err());

        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(key.open("row-1", &tampered).is_err());
    }

    #[test]
    fn constant_time_eq_compares_contents() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
