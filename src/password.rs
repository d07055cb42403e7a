//! Password hashing with argon2id, off the async executor and with bounded concurrency.
//!
//! Every verification costs one full argon2 computation whether or not the user exists
//! (unknown users are checked against a dummy hash), so neither the answer nor its timing
//! tells an attacker which login names exist.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, Version};

use crate::config::PasswordConfig;
use crate::model::Invalid;

/// Longest password accepted, in bytes. argon2 itself takes any length; this only bounds
/// the work an attacker can make us do per request.
pub const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Clone)]
pub struct Passwords {
    argon: Argon2<'static>,
    params: Params,
    workers: Arc<Workers>,
    dummy_hash: Arc<str>,
    min_length: usize,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("params", &self.params)
            .field("threads", &self.workers.threads)
            .finish()
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads that run argon2, taking jobs in order. Fixed threads (not the
/// blocking pool) keep memory bounded: each thread's allocator keeps at most one run's
/// `memory_kib`, however many logins arrive. The threads end when the last `Passwords`
/// clone is dropped.
struct Workers {
    jobs: Mutex<Sender<Job>>,
    threads: usize,
}

impl Workers {
    fn start(threads: usize) -> Result<Self, PasswordError> {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads {
            let queue: Arc<Mutex<Receiver<Job>>> = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|_| PasswordError::Worker)?;
        }
        Ok(Self {
            jobs: Mutex::new(jobs),
            threads,
        })
    }
}

/// The outcome of checking a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Correct. `rehash` is set when the stored hash used other parameters than the
    /// configured ones: store this new hash instead.
    Valid {
        rehash: Option<String>,
    },
    Invalid,
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the password worker stopped")]
    Worker,
}

impl Passwords {
    /// Builds the hasher and computes the dummy hash (one argon2 run).
    pub fn new(config: &PasswordConfig) -> Result<Self, PasswordError> {
        let params = Params::new(config.memory_kib, config.iterations, config.parallelism, None)
            .map_err(|e| PasswordError::Hash(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let dummy_hash = argon
            .hash_password(crate::crypto::random_token().as_bytes())
            .map_err(|e| PasswordError::Hash(e.to_string()))?
            .to_string();
        let threads = match config.max_concurrent_hashes {
            0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            n => n,
        };
        Ok(Self {
            argon,
            params,
            workers: Arc::new(Workers::start(threads)?),
            dummy_hash: dummy_hash.into(),
            min_length: config.min_length,
        })
    }

    /// The rules a new password must meet (NIST SP 800-63B: length, not composition).
    pub fn check_policy(&self, password: &str) -> Result<(), Invalid> {
        if password.chars().count() < self.min_length {
            return Err(Invalid::new(format!(
                "the password must be at least {} characters long",
                self.min_length
            )));
        }
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(Invalid::new(format!(
                "the password must be at most {MAX_PASSWORD_BYTES} bytes long"
            )));
        }
        if password.trim().is_empty() {
            return Err(Invalid::new("the password must not be only spaces"));
        }
        Ok(())
    }

    /// Hashes a new password (after [`Self::check_policy`]).
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        let argon = self.argon.clone();
        self.run(move || {
            argon
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| PasswordError::Hash(e.to_string()))
        })
        .await?
    }

    /// Checks `password` against `stored` (None: the user does not exist or has no
    /// password). Always does one argon2 computation.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<Verification, PasswordError> {
        let argon = self.argon.clone();
        let dummy = self.dummy_hash.clone();
        let wanted = self.params.clone();
        self.run(move || {
            let too_long = password.len() > MAX_PASSWORD_BYTES;
            let candidate: &[u8] = if too_long { b"" } else { password.as_bytes() };
            let (hash_text, real) = match &stored {
                Some(hash) if !too_long => (hash.as_str(), true),
                _ => (&*dummy, false),
            };
            let Ok(parsed) = PasswordHash::new(hash_text) else {
                // A stored hash we cannot parse: spend the same work, then refuse.
                if let Ok(dummy) = PasswordHash::new(&dummy) {
                    let _ = verify_in_place(candidate, &dummy);
                }
                return Ok(Verification::Invalid);
            };
            if !verify_in_place(candidate, &parsed) || !real {
                return Ok(Verification::Invalid);
            }
            let current = Params::try_from(&parsed).ok();
            let outdated = current.is_none_or(|p| {
                p.m_cost() != wanted.m_cost()
                    || p.t_cost() != wanted.t_cost()
                    || p.p_cost() != wanted.p_cost()
            }) || parsed.algorithm.as_str() != "argon2id";
            let rehash = if outdated {
                argon.hash_password(candidate).ok().map(|h| h.to_string())
            } else {
                None
            };
            Ok(Verification::Valid { rehash })
        })
        .await?
    }

    /// Runs argon2 work on the password threads, at most `max_concurrent_hashes` at a time,
    /// so a burst of logins queues instead of exhausting memory (each run holds `memory_kib`).
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        self.workers
            .jobs
            .lock()
            .map_err(|_| PasswordError::Worker)?
            .send(job)
            .map_err(|_| PasswordError::Worker)?;
        result.await.map_err(|_| PasswordError::Worker)
    }
}

thread_local! {
    /// argon2's working memory, kept by each password thread between runs: no 19 MiB
    /// allocation (and zeroing) per login, and memory bounded by the number of threads.
    static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Checks `password` against a PHC argon2 hash, computing in this thread's kept memory.
/// The comparison is constant-time.
fn verify_in_place(password: &[u8], hash: &PasswordHash) -> bool {
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::new(hash.algorithm.as_str()) else {
        return false;
    };
    let version = match hash.version {
        Some(v) => match Version::try_from(v) {
            Ok(version) => version,
            Err(_) => return false,
        },
        None => Version::default(),
    };
    let blocks = params.block_count();
    let argon = Argon2::new(algorithm, version, params);
    let mut output = vec![0u8; expected.len()];
    let computed = BLOCKS.with_borrow_mut(|memory| {
        if memory.len() < blocks {
            memory.resize(blocks, argon2::Block::default());
        }
        argon.hash_password_into_with_memory(password, salt.as_ref(), &mut output, &mut memory[..blocks])
    });
    computed.is_ok() && crate::crypto::constant_time_eq(&output, expected.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Passwords {
        Passwords::new(&PasswordConfig {
            memory_kib: 8 * 1024,
            iterations: 1,
            parallelism: 1,
            max_concurrent_hashes: 2,
            min_length: 8,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn correct_password_verifies_and_wrong_one_does_not() {
        let passwords = cheap();
        let hash = passwords.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"));
        assert_eq!(
            passwords
                .verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap(),
            Verification::Valid { rehash: None }
        );
        assert_eq!(
            passwords.verify("wrong horse".into(), Some(hash)).await.unwrap(),
            Verification::Invalid
        );
    }

    #[tokio::test]
    async fn unknown_user_and_garbage_hash_are_invalid() {
        let passwords = cheap();
        assert_eq!(
            passwords.verify("anything".into(), None).await.unwrap(),
            Verification::Invalid
        );
        assert_eq!(
            passwords
                .verify("anything".into(), Some("not a phc string".into()))
                .await
                .unwrap(),
            Verification::Invalid
        );
    }

    #[tokio::test]
    async fn hashes_with_old_parameters_are_upgraded() {
        let old = cheap();
        let hash = old.hash("correct horse".into()).await.unwrap();
        let stronger = Passwords::new(&PasswordConfig {
            memory_kib: 9 * 1024,
            ..PasswordConfig::default()
        })
        .unwrap();
        let Verification::Valid {
            rehash: Some(new_hash),
        } = stronger.verify("correct horse".into(), Some(hash)).await.unwrap()
        else {
            panic!("expected a rehash");
        };
        assert!(new_hash.contains("m=9216,t=2,p=1"), "{new_hash}");
    }

    #[test]
    fn policy_counts_characters_and_bounds_bytes() {
        let passwords = cheap();
        assert!(passwords.check_policy("short").is_err());
        assert!(passwords.check_policy("        ").is_err());
        assert!(passwords.check_policy("long enough").is_ok());
        assert!(
            passwords
                .check_policy(&"x".repeat(MAX_PASSWORD_BYTES + 1))
                .is_err()
        );
    }

    #[test]
    fn verification_in_kept_memory_agrees_with_argon2() {
        use argon2::PasswordVerifier;
        for (m, t) in [(8 * 1024, 1), (16 * 1024, 2), (8 * 1024, 3)] {
            let params = Params::new(m, t, 1, None).unwrap();
            let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
            let text = argon.hash_password(b"correct horse").unwrap().to_string();
            let hash = PasswordHash::new(&text).unwrap();
            assert!(argon.verify_password(b"correct horse", &hash).is_ok());
            assert!(verify_in_place(b"correct horse", &hash), "m={m} t={t}");
            assert!(!verify_in_place(b"correct horsE", &hash), "m={m} t={t}");
        }
        // argon2i and argon2d hashes (other versions of the algorithm) verify too.
        for algorithm in [Algorithm::Argon2i, Algorithm::Argon2d] {
            let argon = Argon2::new(
                algorithm,
                Version::V0x13,
                Params::new(8 * 1024, 1, 1, None).unwrap(),
            );
            let text = argon.hash_password(b"pw").unwrap().to_string();
            assert!(verify_in_place(b"pw", &PasswordHash::new(&text).unwrap()));
        }
    }
}
