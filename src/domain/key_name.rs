//! A key's name: the last segment of its URL and its `name:` in `security.yml`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{DomainError, DomainErrorKind};

/// A key's name, unique within its tenant: `^[A-Za-z0-9._-]{1,128}$`, but never `.` or `..`.
///
/// Those two are path segments every URL-normalizing client (browsers, `fetch`, curl,
/// proxies) folds away, so a key named that way could be created but never be read,
/// edited, rotated or deleted by name; `DELETE .../apiKeys/..` would even reach another
/// route.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyName(Box<str>);

impl KeyName {
    /// Longest name, in bytes (every allowed character is one).
    pub const MAX_LEN: usize = 128;

    /// `parse`'s rule as one regular expression, for the OpenAPI document: a first character
    /// that is not a dot, or one dot and then not a dot, or two dots and at least one more.
    /// JSON Schema's dialect has no lookahead, hence three alternatives, each 1 to 128 long.
    pub const PATTERN: &str = r"^(?:[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}|\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,126}|\.\.[A-Za-z0-9._-]{1,126})$";

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let ok = (1..=Self::MAX_LEN).contains(&s.len())
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
            && !matches!(s, "." | "..");
        if ok {
            Ok(Self(s.into()))
        } else {
            Err(DomainError::new(
                DomainErrorKind::BadKeyName,
                "a key name is 1 to 128 characters of [A-Za-z0-9._-], and not `.` or `..`",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for KeyName {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, DomainError> {
        Self::parse(&s)
    }
}

impl From<KeyName> for String {
    fn from(n: KeyName) -> String {
        n.0.into()
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyName({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_spec_pattern() {
        assert!(KeyName::parse("ci-deploy.v2_x").is_ok());
        assert!(KeyName::parse(&"a".repeat(128)).is_ok());
        for dotted in ["...", ".a", "a.", "..a"] {
            assert!(KeyName::parse(dotted).is_ok(), "{dotted}");
        }
        for bad in ["", "a b", "a/b", "ä", &"a".repeat(129), "a:b", ".", ".."] {
            assert!(KeyName::parse(bad).is_err(), "{bad}");
        }
    }
}
