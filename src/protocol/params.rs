//! Request parameters of the OAuth endpoints: form-encoded, each at most once.

use std::collections::HashMap;

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

impl Params {
    pub fn parse(encoded: &[u8]) -> Result<Self, ParamsError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_bytes(encoded).map_err(|_| ParamsError::Malformed)?;
        Self::from_pairs(pairs)
    }

    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, ParamsError> {
        let mut map = HashMap::with_capacity(pairs.len());
        for (name, value) in pairs {
            if value.is_empty() {
                continue;
            }
            if map.insert(name.clone(), value).is_some() {
                return Err(ParamsError::Duplicate(name));
            }
        }
        Ok(Self(map))
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
}
