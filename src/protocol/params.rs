//! Request parameters of the OAuth endpoints: form-encoded, each at most once.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

/// Parameters of one request. RFC 6749 section 3.1: "Request and response parameters MUST
/// NOT be included more than once"; parameters sent without a value are treated as absent.
#[derive(Debug, Clone, Default)]
pub struct Params(HashMap<String, String>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error("parameter `{0}` is included more than once")]
    Duplicate(String),
    #[error("the request body is not valid application/x-www-form-urlencoded data")]
    Malformed,
}

/// Parameters parsed without refusing duplicates: every parameter that appeared more than
/// once is dropped (no value of it can be trusted) and the first such name is kept, so the
/// caller can decide how to report it.
#[derive(Debug, Clone, Default)]
pub struct Lenient {
    pub params: Params,
    pub duplicate: Option<String>,
}

impl Params {
    pub fn parse(encoded: &[u8]) -> Result<Self, ParamsError> {
        let lenient = Self::parse_lenient(encoded)?;
        match lenient.duplicate {
            Some(name) => Err(ParamsError::Duplicate(name)),
            None => Ok(lenient.params),
        }
    }

    pub fn parse_lenient(encoded: &[u8]) -> Result<Lenient, ParamsError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_bytes(encoded).map_err(|_| ParamsError::Malformed)?;
        let mut map = HashMap::with_capacity(pairs.len());
        let mut duplicates = Vec::new();
        for (name, value) in pairs {
            if value.is_empty() {
                continue;
            }
            match map.entry(name) {
                Entry::Occupied(entry) => duplicates.push(entry.key().clone()),
                Entry::Vacant(entry) => {
                    entry.insert(value);
                }
            }
        }
        for name in &duplicates {
            map.remove(name);
        }
        Ok(Lenient {
            params: Self(map),
            duplicate: duplicates.into_iter().next(),
        })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn take(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused_and_empty_values_ignored() {
        assert_eq!(
            Params::parse(b"a=1&a=2").unwrap_err(),
            ParamsError::Duplicate("a".into())
        );
        let params = Params::parse(b"a=1&b=&c=x%20y").unwrap();
        assert_eq!(params.get("a"), Some("1"));
        assert_eq!(params.get("b"), None);
        assert_eq!(params.get("c"), Some("x y"));
        // An empty duplicate does not count as a second value.
        assert!(Params::parse(b"a=1&a=").is_ok());
    }

    #[test]
    fn lenient_parsing_drops_every_value_of_a_duplicate() {
        let lenient = Params::parse_lenient(b"a=1&b=2&a=3").unwrap();
        assert_eq!(lenient.duplicate.as_deref(), Some("a"));
        assert_eq!(lenient.params.get("a"), None);
        assert_eq!(lenient.params.get("b"), Some("2"));
    }
}
