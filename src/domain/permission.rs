use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{DomainError, DomainErrorKind};

/// A permission string: 1 to 256 printable ASCII characters without whitespace.
///
/// As a grant, `*` matches everything and a trailing `:*` matches any suffix.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Permission(Box<str>);

impl Permission {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if (1..=256).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_graphic()) {
            Ok(Self(s.into()))
        } else {
            Err(DomainError::new(
                DomainErrorKind::BadPermission,
                "a permission is 1 to 256 printable ASCII characters without whitespace",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Does holding `self` allow the action named `required`?
    pub fn grants(&self, required: &str) -> bool {
        let held: &str = &self.0;
        held == "*"
            || held == required
            || held
                .strip_suffix('*')
                .is_some_and(|prefix| prefix.ends_with(':') && required.starts_with(prefix))
    }

    /// Does holding `self` cover everything `other` would grant? Used so a key can never
    /// hand out more than it holds.
    pub fn covers(&self, other: &Permission) -> bool {
        // A wildcard grant is covered only by a grant whose matches are a superset:
        // `*` by `*`, `orders:*` by `*` or `orders:*` or `o:*` (prefix-wise).
        self.grants(other.as_str())
    }
}

impl TryFrom<String> for Permission {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, DomainError> {
        Self::parse(&s)
    }
}

impl From<Permission> for String {
    fn from(p: Permission) -> String {
        p.0.into()
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permission({})", self.0)
    }
}

/// The permissions of one key: at most 100, no duplicates, in the order given.
///
/// Shared, not copied, when cloned: the index gives every key of a tenant with the same set
/// one allocation (a million keys usually hold a handful of distinct sets).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<Permission>", into = "Vec<Permission>")]
pub struct Permissions(Arc<[Permission]>);

impl Permissions {
    pub const MAX: usize = 100;

    pub fn new(list: Vec<Permission>) -> Result<Self, DomainError> {
        if list.len() > Self::MAX {
            return Err(DomainError::new(
                DomainErrorKind::TooManyPermissions,
                format!("a key holds at most {} permissions", Self::MAX),
            ));
        }
        for (i, p) in list.iter().enumerate() {
            if list[..i].contains(p) {
                return Err(DomainError::new(
                    DomainErrorKind::DuplicatePermission,
                    format!("duplicate permission {p:?}"),
                ));
            }
        }
        Ok(Self(list.into()))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Permission> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when some held permission grants `required`.
    pub fn grants(&self, required: &str) -> bool {
        self.0.iter().any(|p| p.grants(required))
    }

    /// True when every permission of `other` is covered by one of `self`.
    pub fn covers_all(&self, other: &Permissions) -> bool {
        other.iter().all(|o| self.0.iter().any(|p| p.covers(o)))
    }

    pub fn as_strs(&self) -> Vec<&str> {
        self.0.iter().map(Permission::as_str).collect()
    }

    /// Separated by single spaces, in one allocation (forward-auth's header, on every
    /// gateway request).
    pub fn joined(&self) -> String {
        let mut out = String::with_capacity(self.0.iter().map(|p| p.as_str().len() + 1).sum());
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(p.as_str());
        }
        out
    }
}

impl TryFrom<Vec<Permission>> for Permissions {
    type Error = DomainError;
    fn try_from(v: Vec<Permission>) -> Result<Self, DomainError> {
        Self::new(v)
    }
}

impl From<Permissions> for Vec<Permission> {
    fn from(p: Permissions) -> Self {
        p.0.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Permission {
        Permission::parse(s).unwrap()
    }

    #[test]
    fn matching_is_exact_star_or_trailing_colon_star() {
        assert!(p("orders:read").grants("orders:read"));
        assert!(!p("orders:read").grants("orders:write"));
        assert!(p("*").grants("anything:at:all"));
        assert!(p("orders:*").grants("orders:read"));
        assert!(p("orders:*").grants("orders:read:deep"));
        assert!(!p("orders:*").grants("orders"));
        assert!(!p("orders:*").grants("ordersx:read"));
        assert!(
            !p("orders*").grants("orders:read"),
            "only a trailing `:*` is a wildcard"
        );
        assert!(!p("orders:read").grants("orders:*"));
    }

    #[test]
    fn a_holder_covers_only_what_it_could_itself_do() {
        assert!(p("*").covers(&p("*")));
        assert!(p("orders:*").covers(&p("orders:read:*")));
        assert!(!p("orders:*").covers(&p("*")));
        assert!(!p("orders:read").covers(&p("orders:*")));
    }

    #[test]
    fn permissions_are_printable_ascii_without_spaces_and_unique() {
        for bad in ["", "a b", "tab\t", "é", &"a".repeat(257)] {
            assert!(Permission::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Permissions::new(vec![p("a"), p("a")]).is_err());
        let many = (0..101).map(|i| p(&format!("p{i}"))).collect();
        assert!(Permissions::new(many).is_err());
    }
}
