use std::fmt;
use std::sync::Arc;

use super::{DomainError, DomainErrorKind};

/// A tenant's id, which is also its directory name under the tenants directory.
///
/// `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`: never `.`, `..`, a hidden directory or a path.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

impl TenantId {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 64
            && b[0].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(Arc::from(s)))
        } else {
            Err(DomainError::new(
                DomainErrorKind::BadTenantId,
                "a tenant id is 1 to 64 characters of [A-Za-z0-9._-] starting with a letter or digit",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for TenantId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Parsed like any other input: a journal or report read back is checked again.
impl<'de> serde::Deserialize<'de> for TenantId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

/// Lets the index be searched with the `&str` of a request path, without allocating.
impl std::borrow::Borrow<str> for TenantId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids_and_refuses_paths() {
        for ok in ["acme", "a", "Acme-1.prod_eu", &"x".repeat(64)] {
            assert!(TenantId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "../etc",
            "-a",
            "a b",
            &"x".repeat(65),
            "é",
        ] {
            assert!(TenantId::parse(bad).is_err(), "{bad}");
        }
    }
}
