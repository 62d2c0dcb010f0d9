use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{DomainError, DomainErrorKind};

/// The SHA-256 of a whole token: all that is ever stored of it.
///
/// Written as `sha256:<64 lowercase hex>`; a bare 64-hex string (what `sha256sum` prints)
/// is accepted too. `Debug` does not print it: hashes never reach the logs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    pub fn of(token: &[u8]) -> Self {
        Self(Sha256::digest(token).into())
    }

    /// A digest kept as bytes (keyward's own snapshots): any 32 bytes are one.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        let bytes = hex.as_bytes();
        let err = || {
            DomainError::new(
                DomainErrorKind::BadHash,
                "a hash is `sha256:` followed by 64 lowercase hexadecimal digits",
            )
        };
        if bytes.len() != 64 {
            return Err(err());
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            out[i] = (nibble(pair[0]).ok_or_else(err)? << 4) | nibble(pair[1]).ok_or_else(err)?;
        }
        Ok(Self(out))
    }

    /// The first 8 bytes, for sorting many hashes cheaply.
    pub fn prefix_u64(&self) -> u64 {
        let mut b = [0; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(b)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl TryFrom<String> for KeyHash {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, DomainError> {
        Self::parse(&s)
    }
}

impl From<KeyHash> for String {
    fn from(h: KeyHash) -> String {
        h.to_string()
    }
}

impl fmt::Display for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One write, not a formatter call per byte: every rendered entry and ETag has one.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = *b"sha256:0000000000000000000000000000000000000000000000000000000000000000";
        for (i, b) in self.0.iter().enumerate() {
            text[7 + 2 * i] = HEX[usize::from(b >> 4)];
            text[8 + 2 * i] = HEX[usize::from(b & 15)];
        }
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_and_bare_hex_parse_to_the_same_hash() {
        let h = KeyHash::of(b"test");
        let text = h.to_string();
        assert_eq!(
            text,
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        assert_eq!(KeyHash::parse(&text).unwrap(), h);
        assert_eq!(KeyHash::parse(&text[7..]).unwrap(), h);
        assert!(!format!("{h:?}").contains("9f86"));
    }

    #[test]
    fn malformed_hashes_are_refused() {
        let good = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        for bad in [
            "",
            "sha256:",
            &good[1..],
            &good.to_uppercase(),
            &format!("md5:{good}"),
            &format!("{good}0"),
            &format!("sha256:{}", &good.replace('a', "g")),
        ] {
            assert!(KeyHash::parse(bad).is_err(), "{bad}");
        }
    }
}
