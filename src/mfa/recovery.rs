//! Recovery codes: ten single-use codes shown once after the first enrolment. Stored as
//! HMAC-SHA256 under a key derived from the master key, so a database dump alone cannot be
//! brute-forced offline.

use crate::crypto::{MasterKey, keyed_hash, random_below};

pub const COUNT: usize = 10;
/// Crockford's base32 alphabet: no i, l, o, u.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const LENGTH: usize = 10;

/// Ten new codes, formatted `xxxxx-xxxxx` (50 random bits each).
pub fn generate() -> Vec<String> {
    (0..COUNT)
        .map(|_| {
            let raw: String = (0..LENGTH)
                .map(|_| char::from(ALPHABET[random_below(32) as usize]))
                .collect();
            format!("{}-{}", &raw[..5], &raw[5..])
        })
        .collect()
}

/// The canonical form of what a user typed: lower case, without spaces and dashes, with
/// Crockford's look-alikes mapped (i, l to 1; o to 0). None when it cannot be a code.
pub fn normalize(input: &str) -> Option<String> {
    let mut out = String::with_capacity(LENGTH);
    for c in input.trim().chars() {
        let c = match c.to_ascii_lowercase() {
            '-' | ' ' => continue,
            'i' | 'l' => '1',
            'o' => '0',
            c => c,
        };
        if !ALPHABET.contains(&(c as u8)) || !c.is_ascii() {
            return None;
        }
        out.push(c);
    }
    (out.len() == LENGTH).then_some(out)
}

/// The stored form of a code.
pub fn hash(master: &MasterKey, code: &str) -> Option<String> {
    let key = master.derive("portcullis recovery codes v1");
    normalize(code).map(|normal| keyed_hash(&key, &normal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_ten_distinct_and_normalise_to_themselves() {
        let codes = generate();
        assert_eq!(codes.len(), 10);
        let distinct: std::collections::BTreeSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), 10);
        for code in &codes {
            assert_eq!(code.len(), 11);
            assert_eq!(normalize(code).unwrap(), code.replace('-', ""));
        }
    }

    #[test]
    fn typing_variations_are_forgiven_and_garbage_is_not() {
        assert_eq!(normalize(" ABCDE-F0123 ").as_deref(), Some("abcdef0123"));
        assert_eq!(normalize("abcde fo123").as_deref(), Some("abcdef0123"));
        assert_eq!(normalize("abcdeil123").as_deref(), Some("abcde11123"));
        assert_eq!(normalize("123456"), None);
        assert_eq!(normalize("abcde-fghiju"), None);
        assert_eq!(normalize("abcde-f012é"), None);
    }

    #[test]
    fn hashes_depend_on_the_master_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = MasterKey::load_or_create(&dir.path().join("a")).unwrap();
        let b = MasterKey::load_or_create(&dir.path().join("b")).unwrap();
        assert_eq!(hash(&a, "abcde-f0123"), hash(&a, "ABCDEF0123"));
        assert_ne!(hash(&a, "abcde-f0123"), hash(&b, "abcde-f0123"));
    }
}
