//! Tokens: making one, checking one a caller presents, and the public hint of one.

use std::fmt;

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::{DomainError, DomainErrorKind, KeyHash};

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BODY_LEN: usize = 43; // 62^43 > 2^256: 256 random bits
const CHECK_LEN: usize = 6; // 62^6 > 2^32: one CRC32
/// How many of a token's last characters its hint shows: all of them checksum digits.
const HINT_LEN: usize = 4;
/// What stands in a hint for the part of the token it does not show.
const HINT_GAP: &str = "...";
/// Longest presented key we hash; anything longer is refused before any work.
const MAX_PRESENTED: usize = 1024;

/// The configured token prefix (`kw` by default): 1 to 16 ASCII letters or digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenPrefix(String);

impl TokenPrefix {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if (1..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(Self(format!("{s}_")))
        } else {
            Err(DomainError::new(
                DomainErrorKind::BadTokenPrefix,
                "a token prefix is 1 to 16 letters or digits",
            ))
        }
    }
}

/// A freshly made token: shown once, never stored, never logged.
pub struct Token(String);

impl Token {
    /// `<prefix>_<43 base62: 256 bits from the OS CSPRNG><6 base62: CRC32 of the rest>`.
    pub fn generate(prefix: &TokenPrefix) -> Self {
        let mut rng = rand::rand_core::UnwrapErr(rand::rngs::SysRng);
        let mut s = String::with_capacity(prefix.0.len() + BODY_LEN + CHECK_LEN);
        s.push_str(&prefix.0);
        // `random_range` samples without modulo bias.
        s.extend((0..BODY_LEN).map(|_| BASE62[rng.random_range(0..62)] as char));
        push_checksum(&mut s);
        Self(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> KeyHash {
        KeyHash::of(self.0.as_bytes())
    }

    /// The token's public hint: its prefix and its last `HINT_LEN` characters. Those are
    /// checksum digits, computed from the rest, so the hint shows none of the random body.
    pub fn hint(&self) -> TokenHint {
        let (prefix, _) = self.0.split_once('_').unwrap_or_default();
        let tail = &self.0[self.0.len() - HINT_LEN..];
        TokenHint(format!("{prefix}_{HINT_GAP}{tail}").into())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// A token's public hint, `<prefix>_...<last 4>` (`kw_...0eOu`), as dashboards show it to
/// tell keys apart. Public by design: the last 4 characters are checksum digits, never
/// random ones (see `Token::hint`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenHint(Box<str>);

impl TokenHint {
    /// The longest hint: a 16-character prefix, `_`, `...` and 4 characters.
    pub const MAX_LEN: usize = 16 + 1 + HINT_GAP.len() + HINT_LEN;

    /// A token prefix's characters (1 to 16 letters or digits), `_...`, and exactly 4
    /// characters of the token alphabet.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let bad = || {
            DomainError::new(
                DomainErrorKind::BadHint,
                "a hint is a token prefix, `_...` and the token's last 4 letters or digits",
            )
        };
        if s.len() > Self::MAX_LEN {
            return Err(bad());
        }
        let (prefix, tail) = s.split_once('_').ok_or_else(bad)?;
        let tail = tail.strip_prefix(HINT_GAP).ok_or_else(bad)?;
        let prefix_ok =
            (1..=16).contains(&prefix.len()) && prefix.bytes().all(|b| b.is_ascii_alphanumeric());
        let tail_ok = tail.len() == HINT_LEN && tail.bytes().all(|b| b.is_ascii_alphanumeric());
        if prefix_ok && tail_ok {
            Ok(Self(s.into()))
        } else {
            Err(bad())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TokenHint {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, DomainError> {
        Self::parse(&s)
    }
}

impl From<TokenHint> for String {
    fn from(h: TokenHint) -> String {
        h.0.into()
    }
}

impl fmt::Debug for TokenHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHint({:?})", self.0)
    }
}

fn push_checksum(s: &mut String) {
    let digits = checksum(s);
    s.extend(digits.iter().map(|&b| b as char));
}

/// The CRC32 of `s` in `CHECK_LEN` base62 digits.
fn checksum(s: &str) -> [u8; CHECK_LEN] {
    let mut crc = crc32fast::hash(s.as_bytes());
    let mut digits = [b'0'; CHECK_LEN];
    for d in digits.iter_mut().rev() {
        *d = BASE62[(crc % 62) as usize];
        crc /= 62;
    }
    digits
}

fn malformed() -> DomainError {
    DomainError::new(DomainErrorKind::MalformedKey, "malformed key")
}

/// A key as a caller presented it, already hashed; the plaintext is not kept.
#[derive(Clone, Copy, Debug)]
pub struct PresentedKey(KeyHash);

impl PresentedKey {
    /// A string with our prefix must carry a valid checksum, so typos and random probes are
    /// refused as malformed. Other strings (keys imported from elsewhere) are hashed as they
    /// are.
    pub fn parse(presented: &str, prefix: &TokenPrefix) -> Result<Self, DomainError> {
        if !Self::could_be_a_key(presented, prefix) {
            return Err(malformed());
        }
        Self::hashed(presented)
    }

    /// The presented string hashed for a lookup, with only its length checked: the hot
    /// path looks a key up first and asks `could_be_a_key` only when nothing holds it, so
    /// a valid key never pays for the checksum.
    pub fn hashed(presented: &str) -> Result<Self, DomainError> {
        if presented.is_empty() || presented.len() > MAX_PRESENTED {
            return Err(malformed());
        }
        Ok(Self(KeyHash::of(presented.as_bytes())))
    }

    /// False for what cannot be a key: empty or too long, or with our prefix but not the
    /// length, characters or checksum of a token we issue.
    pub fn could_be_a_key(presented: &str, prefix: &TokenPrefix) -> bool {
        if presented.is_empty() || presented.len() > MAX_PRESENTED {
            return false;
        }
        let Some(rest) = presented.strip_prefix(prefix.0.as_str()) else {
            return true;
        };
        // In this order: the slicing below needs the length and ASCII checks first.
        rest.len() == BODY_LEN + CHECK_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric()) && {
            let (body, check) = presented.split_at(presented.len() - CHECK_LEN);
            checksum(body) == check.as_bytes()
        }
    }

    /// Only a token this server could have issued: the configured prefix, the length and
    /// a valid checksum (no key imported from elsewhere). The error says so without
    /// quoting what was presented.
    pub fn parse_issued(presented: &str, prefix: &TokenPrefix) -> Result<Self, DomainError> {
        if !presented.starts_with(prefix.0.as_str()) {
            return Err(DomainError::new(
                DomainErrorKind::MalformedKey,
                "not a token of this server: it must start with the configured prefix",
            ));
        }
        Self::parse(presented, prefix).map_err(|_| {
            DomainError::new(
                DomainErrorKind::MalformedKey,
                "not a token of this server: its length, characters or checksum are wrong",
            )
        })
    }

    pub fn hash(&self) -> &KeyHash {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kw() -> TokenPrefix {
        TokenPrefix::parse("kw").unwrap()
    }

    #[test]
    fn generated_tokens_have_the_documented_shape_and_verify() {
        let t = Token::generate(&kw());
        let s = t.expose();
        assert_eq!(s.len(), 3 + 43 + 6);
        assert!(s.starts_with("kw_"));
        assert!(s[3..].bytes().all(|b| b.is_ascii_alphanumeric()));
        let p = PresentedKey::parse(s, &kw()).unwrap();
        assert_eq!(*p.hash(), t.hash());
        assert_ne!(Token::generate(&kw()).expose(), s);
        assert!(!format!("{t:?}").contains(&s[3..]));
    }

    #[test]
    fn a_bad_checksum_is_malformed() {
        let t = Token::generate(&kw());
        let s = t.expose();
        let last = s.chars().last().unwrap();
        let flipped = format!(
            "{}{}",
            &s[..s.len() - 1],
            if last == 'a' { 'b' } else { 'a' }
        );
        assert!(PresentedKey::parse(&flipped, &kw()).is_err());
        assert!(PresentedKey::parse(&s[..s.len() - 1], &kw()).is_err());
        assert!(PresentedKey::parse("kw_short", &kw()).is_err());
        assert!(PresentedKey::parse("", &kw()).is_err());
        assert!(PresentedKey::parse(&"x".repeat(2000), &kw()).is_err());
        for bad in [
            &flipped,
            &s[..s.len() - 1],
            "kw_short",
            "",
            &"x".repeat(2000),
        ] {
            assert!(!PresentedKey::could_be_a_key(bad, &kw()), "{bad}");
        }
        assert!(PresentedKey::could_be_a_key(s, &kw()));
        assert!(
            PresentedKey::could_be_a_key("imported-from-elsewhere", &kw()),
            "a key without our prefix is looked up as it is"
        );
        assert_eq!(
            *PresentedKey::hashed(&flipped).unwrap().hash(),
            KeyHash::of(flipped.as_bytes())
        );
        assert!(
            PresentedKey::hashed("").is_err() && PresentedKey::hashed(&"x".repeat(2000)).is_err()
        );
    }

    #[test]
    fn a_hint_is_the_prefix_and_the_last_four_checksum_characters() {
        let t = Token::generate(&kw());
        let s = t.expose();
        let hint = t.hint();
        assert_eq!(hint.as_str(), format!("kw_...{}", &s[s.len() - 4..]));
        // The last four are checksum digits: computed from what precedes the checksum.
        let (body, check) = s.split_at(s.len() - CHECK_LEN);
        assert_eq!(
            &checksum(body)[CHECK_LEN - HINT_LEN..],
            &check.as_bytes()[2..]
        );
        assert_eq!(TokenHint::parse(hint.as_str()).unwrap(), hint);
    }

    #[test]
    fn a_hint_of_any_other_shape_is_refused() {
        let long_prefix = format!("{}_...abcd", "p".repeat(17));
        for bad in [
            "",
            "kw_abcd",
            "kw_..abcd",
            "kw_...abc",
            "kw_...abcde",
            "_...abcd",
            "k w_...abcd",
            "kw_...ab-d",
            "kw_...abcé",
            "kw....abcd",
            long_prefix.as_str(),
        ] {
            assert!(TokenHint::parse(bad).is_err(), "{bad:?}");
        }
        let longest = format!("{}_...abcd", "p".repeat(16));
        assert_eq!(longest.len(), TokenHint::MAX_LEN);
        assert!(TokenHint::parse(&longest).is_ok());
    }

    #[test]
    fn only_an_issued_token_passes_the_strict_parse() {
        let t = Token::generate(&kw());
        assert!(PresentedKey::parse_issued(t.expose(), &kw()).is_ok());
        let other = TokenPrefix::parse("zz").unwrap();
        assert!(PresentedKey::parse_issued(t.expose(), &other).is_err());
        assert!(PresentedKey::parse_issued("legacy-key-123", &kw()).is_err());
        assert!(PresentedKey::parse_issued("kw_short", &kw()).is_err());
    }

    #[test]
    fn foreign_keys_are_hashed_as_they_are() {
        let p = PresentedKey::parse("legacy-key-123", &kw()).unwrap();
        assert_eq!(*p.hash(), KeyHash::of(b"legacy-key-123"));
    }
}
