use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use super::{DomainError, DomainErrorKind, KeyHash, KeyName, Permissions, TokenHint};

/// One entry of `apiKeys` in `security.yml`, exactly as stored.
///
/// Deserializing it from YAML is the file format's validation: unknown fields, bad names,
/// bad hashes and bad permissions are refused with their line and column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyEntry {
    pub name: KeyName,
    pub hash: KeyHash,
    /// The current token's public hint (`kw_...0eOu`), written by keyward at create and
    /// rotate; None for entries written otherwise. Left out of JSON when None, so a journal
    /// entry without one reads as it did before the field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<TokenHint>,
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
    /// When the key's token was last rotated, to the second.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub rotated_at: Option<OffsetDateTime>,
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
            return Err(DomainError::new(
                DomainErrorKind::BadDescription,
                format!("a description is at most {} characters", Self::MAX_CHARS),
            ));
        }
        if s.chars()
            .any(|c| forbidden_char(c) && c != '\n' && c != '\t')
        {
            return Err(DomainError::new(
                DomainErrorKind::BadDescription,
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

/// What stays as it is in an encoded `sub`: RFC 3986's unreserved characters. Everything
/// else, `%` included, is escaped, so two different `sub`s never encode alike.
const ESCAPED_IN_SUB: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Marks a `sub` that is recorded encoded rather than as it was sent.
const ENCODED_SUB_PREFIX: &str = "jwt:";

/// Marks an API key acting as a principal.
const API_KEY_PREFIX: &str = "apikey:";

impl Subject {
    pub const MAX_CHARS: usize = 256;

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if s.is_empty() || s.chars().count() > Self::MAX_CHARS || s.chars().any(forbidden_char) {
            return Err(DomainError::new(
                DomainErrorKind::BadSubject,
                "createdBy is 1 to 256 characters without control characters or bidirectional overrides",
            ));
        }
        Ok(Self(s.into()))
    }

    /// An API key acting as a principal: `apikey:<name>`.
    pub fn api_key(name: &KeyName) -> Self {
        Self(format!("{API_KEY_PREFIX}{name}").into())
    }

    /// How a JWT's `sub` is recorded (`createdBy`, a commit's author, the history, the log).
    ///
    /// As it was sent when it can be: when git takes it as an author name, the file can
    /// hold it and it cannot pass for another kind of principal (`apikey:<name>`) or for
    /// an encoded `sub`. Otherwise `jwt:` and its percent-encoding, which keeps every
    /// character's meaning and can never be mistaken for another principal. `None` for an
    /// empty `sub`: nobody to record.
    pub fn of_jwt(sub: &str) -> Option<Self> {
        if sub.is_empty() {
            return None;
        }
        if Self::verbatim(sub) {
            return Some(Self(sub.into()));
        }
        Some(Self(encoded_sub(sub).into()))
    }

    fn verbatim(sub: &str) -> bool {
        let claims_another_kind = [API_KEY_PREFIX, ENCODED_SUB_PREFIX].iter().any(|prefix| {
            sub.get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
        });
        !claims_another_kind
            && sub.chars().count() <= Self::MAX_CHARS
            && !sub.chars().any(|c| forbidden_char(c) || git_delimiter(c))
            && !sub.chars().all(git_crud)
    }

    /// Makes a storable subject out of whatever a person's git configuration holds.
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

/// `jwt:` and the percent-encoding of `sub`, cut to `Subject::MAX_CHARS` between two
/// escapes when a very long `sub` does not fit.
fn encoded_sub(sub: &str) -> String {
    let mut out = String::from(ENCODED_SUB_PREFIX);
    for c in sub.chars() {
        let mut utf8 = [0; 4];
        let piece = utf8_percent_encode(c.encode_utf8(&mut utf8), ESCAPED_IN_SUB).to_string();
        if out.len() + piece.len() > Subject::MAX_CHARS {
            break;
        }
        out.push_str(&piece);
    }
    out
}

/// What ends a name or address in a git author line (`name <email> time`); git drops or
/// refuses them, so the author would not be the `sub`.
fn git_delimiter(c: char) -> bool {
    matches!(c, '<' | '>' | '\n' | '\0')
}

/// What git trims from both ends of an author's name; a name of nothing else is refused
/// (`name consists only of disallowed characters`).
fn git_crud(c: char) -> bool {
    c <= ' ' || matches!(c, '.' | ',' | ':' | ';' | '<' | '>' | '"' | '\\' | '\'')
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

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(sub: &str) -> String {
        Subject::of_jwt(sub).expect("a subject").as_str().to_owned()
    }

    #[test]
    fn a_jwt_sub_is_recorded_as_it_is_when_git_and_the_file_can_carry_it() {
        for sub in ["alice@example.com", "service account 7", "a.b", "ʻokina"] {
            assert_eq!(recorded(sub), sub);
        }
        assert_eq!(Subject::of_jwt(""), None);
    }

    #[test]
    fn a_jwt_sub_that_git_refuses_or_that_claims_another_kind_is_encoded() {
        assert_eq!(recorded("a<b>c"), "jwt:a%3Cb%3Ec");
        assert_eq!(recorded("line\nbreak"), "jwt:line%0Abreak");
        assert_eq!(recorded("nul\0"), "jwt:nul%00");
        assert_eq!(recorded("..."), "jwt:...");
        assert_eq!(recorded(" , "), "jwt:%20%2C%20");
        assert_eq!(recorded("apikey:root"), "jwt:apikey%3Aroot");
        assert_eq!(recorded("ApiKey:root"), "jwt:ApiKey%3Aroot");
        assert_eq!(recorded("jwt:x"), "jwt:jwt%3Ax");
        assert_eq!(
            recorded("mallory\u{202E}nimda"),
            "jwt:mallory%E2%80%AEnimda"
        );
    }

    #[test]
    fn a_recorded_sub_is_always_a_valid_subject_and_never_cut_inside_an_escape() {
        for sub in ["<".repeat(300), "a".repeat(300), "é".repeat(300)] {
            let s = recorded(&sub);
            assert!(Subject::parse(&s).is_ok(), "{s}");
            assert!(
                s.starts_with("jwt:") && s.len() <= Subject::MAX_CHARS,
                "{s}"
            );
            let escapes = s.match_indices('%').map(|(i, _)| i);
            assert!(escapes.into_iter().all(|i| i + 3 <= s.len()), "{s}");
        }
    }
}
