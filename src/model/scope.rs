//! OAuth scopes (RFC 6749 section 3.3).

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::Invalid;

/// Scopes a user-facing client may be given, and what `/userinfo` knows how to answer.
pub const SUPPORTED_USER_SCOPES: &[&str] = &["openid", "profile", "email", "phone", "offline_access"];

/// A set of scope tokens, kept sorted so that its string form is canonical.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ScopeSet(BTreeSet<String>);

impl ScopeSet {
    /// Parses a space-delimited scope string. Each token must be printable ASCII without
    /// `"` or `\` (RFC 6749 section 3.3).
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let mut set = BTreeSet::new();
        for token in input.split(' ').filter(|t| !t.is_empty()) {
            if token.len() > 128
                || !token
                    .bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
            {
                return Err(Invalid::new(format!(
                    "`{}` is not a valid scope",
                    token.escape_default()
                )));
            }
            set.insert(token.to_owned());
        }
        if set.len() > 32 {
            return Err(Invalid::new("too many scopes"));
        }
        Ok(Self(set))
    }

    pub fn from_static(tokens: &[&str]) -> Self {
        Self(tokens.iter().map(|t| (*t).to_owned()).collect())
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The scopes in `self` that `allowed` does not contain.
    pub fn not_in<'a>(&'a self, allowed: &'a ScopeSet) -> impl Iterator<Item = &'a str> {
        self.0.difference(&allowed.0).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for token in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(token)?;
            first = false;
        }
        Ok(())
    }
}

impl TryFrom<String> for ScopeSet {
    type Error = Invalid;
    fn try_from(value: String) -> Result<Self, Invalid> {
        Self::parse(&value)
    }
}

impl From<ScopeSet> for String {
    fn from(value: ScopeSet) -> String {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_deduplicated_and_sorted() {
        let set = ScopeSet::parse("profile openid  profile email").unwrap();
        assert_eq!(set.to_string(), "email openid profile");
    }

    #[test]
    fn invalid_scope_characters_are_refused() {
        assert!(ScopeSet::parse("openid \"quoted\"").is_err());
        assert!(ScopeSet::parse("openid back\\slash").is_err());
        assert!(ScopeSet::parse("openid caf\u{e9}").is_err());
    }

    #[test]
    fn subset_and_difference() {
        let allowed = ScopeSet::parse("openid profile").unwrap();
        let asked = ScopeSet::parse("openid email").unwrap();
        assert!(!asked.is_subset(&allowed));
        assert_eq!(asked.not_in(&allowed).collect::<Vec<_>>(), vec!["email"]);
    }
}
