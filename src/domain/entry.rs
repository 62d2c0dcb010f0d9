use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use super::{DomainError, KeyHash, KeyName, Permissions};

/// One entry of `apiKeys` in `security.yml`, exactly as stored.
///
/// Deserializing it from YAML is the file format's validation: unknown fields, bad names,
/// bad hashes and bad permissions are refused with their line and column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyEntry {
    pub name: KeyName,
    pub hash: KeyHash,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub permissions: Permissions,
    #[serde(default)]
    pub description: Option<Description>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub created_by: Option<Subject>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub previous_hashes: Vec<PreviousHash>,
}

/// An old hash kept valid for a grace period after a rotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PreviousHash {
    pub hash: KeyHash,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

fn enabled_by_default() -> bool {
    true
}

/// `permissions:` with nothing after it means "none", as a person would read it.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

impl KeyEntry {
    /// Is the key's own expiry (not a previous hash's) behind us?
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

/// Free text about a key: at most 1024 characters, no control characters but newline and tab.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Description(Box<str>);

impl Description {
    pub const MAX_CHARS: usize = 1024;

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if s.chars().count() > Self::MAX_CHARS {
            return Err(DomainError::new(format!(
                "a description is at most {} characters",
                Self::MAX_CHARS
            )));
        }
        if s.chars()
            .any(|c| forbidden_char(c) && c != '\n' && c != '\t')
        {
            return Err(DomainError::new(
                "a description may not contain control characters or bidirectional overrides",
            ));
        }
        Ok(Self(s.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Characters YAML cannot carry in a file (and nobody means to put in a label), and the
/// bidirectional overrides and isolates, which make text read differently from what it is
/// in a review of the file (Trojan Source, CVE-2021-42574).
fn forbidden_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{FEFF}' | '\u{FFFE}' | '\u{FFFF}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

impl TryFrom<String> for Description {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, DomainError> {
        Self::parse(&s)
    }
}

impl From<Description> for String {
    fn from(d: Description) -> String {
        d.0.into()
    }
}

impl fmt::Debug for Description {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Description({:?})", self.0)
    }
}

/// Who created a key: a JWT `sub`, or `apikey:<name>`. At most 256 characters.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subject(Box<str>);

impl Subject {
    pub const MAX_CHARS: usize = 256;

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if s.is_empty() || s.chars().count() > Self::MAX_CHARS || s.chars().any(forbidden_char) {
            return Err(DomainError::new(
                "createdBy is 1 to 256 characters without control characters or bidirectional overrides",
            ));
        }
        Ok(Self(s.into()))
    }

    /// Makes a storable subject out of whatever an identity provider put in `sub`.
    pub fn lossy(s: &str) -> Option<Self> {
        let cleaned: String = s
            .chars()
            .filter(|c| !forbidden_char(*c))
            .take(Self::MAX_CHARS)
            .collect();
        Self::parse(&cleaned).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Subject {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, DomainError> {
        Self::parse(&s)
    }
}

impl From<Subject> for String {
    fn from(d: Subject) -> String {
        d.0.into()
    }
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Subject({:?})", self.0)
    }
}
