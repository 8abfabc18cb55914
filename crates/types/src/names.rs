//! Validated names. A name that reaches storage has passed these checks.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} is longer than {max} characters")]
    TooLong { what: &'static str, max: usize },
    #[error("{what} {value:?} may contain only {allowed}")]
    BadChar {
        what: &'static str,
        value: String,
        allowed: &'static str,
    },
    #[error("{what} {value:?} must start with a letter or digit")]
    BadStart { what: &'static str, value: String },
    #[error("{what} {value:?} is reserved")]
    Reserved { what: &'static str, value: String },
}

fn check(
    what: &'static str,
    s: &str,
    max: usize,
    allowed: &'static str,
    ok: impl Fn(char) -> bool,
) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty { what });
    }
    if s.chars().count() > max {
        return Err(NameError::TooLong { what, max });
    }
    if !s.chars().all(ok) {
        return Err(NameError::BadChar {
            what,
            value: s.to_string(),
            allowed,
        });
    }
    if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(NameError::BadStart {
            what,
            value: s.to_string(),
        });
    }
    Ok(())
}

/// A tenant's name: a DNS label (lower-case letters, digits, hyphens; 1 to 63 characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantName(String);

impl TenantName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        check(
            "tenant name",
            s,
            63,
            "lower-case letters, digits and '-'",
            |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
        )?;
        if s.ends_with('-') {
            return Err(NameError::BadChar {
                what: "tenant name",
                value: s.to_string(),
                allowed: "lower-case letters, digits and '-' (not at the end)",
            });
        }
        Ok(TenantName(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        TenantName::parse(&s)
    }
}

impl From<TenantName> for String {
    fn from(n: TenantName) -> String {
        n.0
    }
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user's name within its tenant: letters, digits, '.', '_' and '-' (1 to 64 characters);
/// stored lower-case, so names are unique regardless of case (X.1642 8.1.1(3)).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        check(
            "user name",
            s,
            64,
            "letters, digits, '.', '_' and '-'",
            |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'),
        )?;
        Ok(Username(s.to_ascii_lowercase()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Username {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Username::parse(&s)
    }
}

impl From<Username> for String {
    fn from(n: Username) -> String {
        n.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names() {
        assert!(TenantName::parse("acme-corp").is_ok());
        assert!(TenantName::parse("a").is_ok());
        for bad in [
            "",
            "Acme",
            "-acme",
            "acme-",
            "ac me",
            "acmé",
            &"a".repeat(64),
        ] {
            assert!(TenantName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn usernames_fold_case() {
        assert_eq!(
            Username::parse("Alice.Smith").map(|u| u.0),
            Ok("alice.smith".into())
        );
        for bad in ["", "a@b", "a b", ".hidden", &"a".repeat(65)] {
            assert!(Username::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
