use std::fmt;

use rand::RngExt;

use super::{DomainError, DomainErrorKind, KeyHash};

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BODY_LEN: usize = 43; // 62^43 > 2^256: 256 random bits
const CHECK_LEN: usize = 6; // 62^6 > 2^32: one CRC32
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
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
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

/// A key as a caller presented it, already hashed; the plaintext is not kept.
#[derive(Clone, Copy, Debug)]
pub struct PresentedKey(KeyHash);

impl PresentedKey {
    /// A string with our prefix must carry a valid checksum, so typos and random probes are
    /// refused without a lookup. Other strings (keys imported from elsewhere) are hashed as
    /// they are.
    pub fn parse(presented: &str, prefix: &TokenPrefix) -> Result<Self, DomainError> {
        let malformed = || DomainError::new(DomainErrorKind::MalformedKey, "malformed key");
        if presented.is_empty() || presented.len() > MAX_PRESENTED {
            return Err(malformed());
        }
        if let Some(rest) = presented.strip_prefix(prefix.0.as_str()) {
            // In this order: the slicing below needs the length and ASCII checks first.
            let well_formed = rest.len() == BODY_LEN + CHECK_LEN
                && rest.bytes().all(|b| b.is_ascii_alphanumeric())
                && {
                    let (body, check) = presented.split_at(presented.len() - CHECK_LEN);
                    checksum(body) == check.as_bytes()
                };
            if !well_formed {
                return Err(malformed());
            }
        }
        Ok(Self(KeyHash::of(presented.as_bytes())))
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
    fn a_bad_checksum_is_malformed_before_any_lookup() {
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
    }

    #[test]
    fn foreign_keys_are_hashed_as_they_are() {
        let p = PresentedKey::parse("legacy-key-123", &kw()).unwrap();
        assert_eq!(*p.hash(), KeyHash::of(b"legacy-key-123"));
    }
}
