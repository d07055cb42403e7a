//! Resellers, companies and users.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::Invalid;
use crate::clock::UnixTime;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reseller {
    pub id: String,
    pub name: String,
    pub created_at: UnixTime,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Company {
    pub id: String,
    pub reseller_id: String,
    pub name: String,
    pub created_at: UnixTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    CompanyAdmin,
    ResellerAdmin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::CompanyAdmin => "company_admin",
            Role::ResellerAdmin => "reseller_admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        match s {
            "user" => Ok(Role::User),
            "company_admin" => Ok(Role::CompanyAdmin),
            "reseller_admin" => Ok(Role::ResellerAdmin),
            other => Err(Invalid::new(format!(
                "unknown role `{other}` (expected user, company_admin or reseller_admin)"
            ))),
        }
    }
}

/// A login name: 1 to 128 characters of letters, digits and `. _ - @ +`, stored lower
/// case so that uniqueness and login are case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let value = input.trim().to_lowercase();
        if value.is_empty() {
            return Err(Invalid::new("the login name is empty"));
        }
        if value.chars().count() > 128 {
            return Err(Invalid::new("the login name is longer than 128 characters"));
        }
        if let Some(bad) = value
            .chars()
            .find(|c| !(c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+')))
        {
            return Err(Invalid::new(format!(
                "the login name may not contain `{}`; use letters, digits and . _ - @ +",
                bad.escape_default()
            )));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Username {
    type Error = Invalid;
    fn try_from(value: String) -> Result<Self, Invalid> {
        Self::parse(&value)
    }
}

impl From<Username> for String {
    fn from(value: Username) -> String {
        value.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address: one `@`, a non-empty local part, a domain with a dot, no spaces or
/// control characters, at most 254 characters. The domain is lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let value = input.trim();
        let invalid = || {
            Invalid::new(format!(
                "`{}` is not a valid email address",
                value.escape_default()
            ))
        };
        if value.len() > 254 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = value.rsplit_once('@').ok_or_else(invalid)?;
        if local.is_empty()
            || local.len() > 64
            || local.contains('@')
            || domain.len() < 3
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
            || !domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
        {
            return Err(invalid());
        }
        Ok(Self(format!("{local}@{}", domain.to_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = Invalid;
    fn try_from(value: String) -> Result<Self, Invalid> {
        Self::parse(&value)
    }
}

impl From<Email> for String {
    fn from(value: Email) -> String {
        value.0
    }
}

/// A phone number in E.164 form: `+`, a country code, 8 to 15 digits in all. Spaces,
/// dashes, dots and parentheses in the input are dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

impl Phone {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let trimmed = input.trim();
        let invalid = |why: &str| {
            Invalid::new(format!(
                "`{}` is not a phone number in international form (+ and country code, e.g. +14155550100): {why}",
                trimmed.escape_default()
            ))
        };
        let digits_part = if let Some(rest) = trimmed.strip_prefix('+') {
            rest
        } else if let Some(rest) = trimmed.strip_prefix("00") {
            rest
        } else {
            return Err(invalid("it must start with +"));
        };
        let mut digits = String::new();
        for c in digits_part.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(invalid("it may only contain digits")),
            }
        }
        if digits.starts_with('0') {
            return Err(invalid("a country code never starts with 0"));
        }
        if !(8..=15).contains(&digits.len()) {
            return Err(invalid("it must have 8 to 15 digits"));
        }
        Ok(Self(format!("+{digits}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Phone {
    type Error = Invalid;
    fn try_from(value: String) -> Result<Self, Invalid> {
        Self::parse(&value)
    }
}

impl From<Phone> for String {
    fn from(value: Phone) -> String {
        value.0
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub company_id: String,
    pub username: String,
    pub email: String,
    pub email_verified: bool,
    pub phone: Option<String>,
    pub name: Option<String>,
    pub role: Role,
    pub active: bool,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
}

/// What it takes to create a user; the password hash is computed by the caller.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub company_id: String,
    pub username: Username,
    pub email: Email,
    pub phone: Option<Phone>,
    pub name: Option<String>,
    pub role: Role,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lower_cased_and_checked() {
        assert_eq!(Username::parse(" Alice.Smith ").unwrap().as_str(), "alice.smith");
        assert!(Username::parse("").is_err());
        assert!(Username::parse("al ice").is_err());
        assert!(Username::parse("alice<script>").is_err());
        assert!(Username::parse(&"a".repeat(129)).is_err());
        assert!(Username::parse("bob@example.com").is_ok());
    }

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        assert_eq!(
            Email::parse("Bob@Example.COM").unwrap().as_str(),
            "Bob@example.com"
        );
        for bad in [
            "",
            "bob",
            "@example.com",
            "bob@",
            "bob@localhost",
            "bob@exa mple.com",
            "bob@@example.com",
            "bob@.example.com",
            "bob@example..com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phones_are_normalised_to_e164() {
        assert_eq!(
            Phone::parse("+1 (415) 555-0100").unwrap().as_str(),
            "+14155550100"
        );
        assert_eq!(
            Phone::parse("0044 20 7946 0958").unwrap().as_str(),
            "+442079460958"
        );
        for bad in [
            "4155550100",
            "+1",
            "+0 123 456 789",
            "+1415555010a",
            "+1234567890123456",
        ] {
            assert!(Phone::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn roles_round_trip() {
        for role in [Role::User, Role::CompanyAdmin, Role::ResellerAdmin] {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("admin".parse::<Role>().is_err());
    }
}
