//! Which keys a list shows and in what order: the filters (`q` among them), the sort, and
//! the position a page ended at, from which the next one starts. The order is total (ties
//! go by name, and names are unique), so a position names exactly one place in it.

use std::cmp::Ordering;

use time::OffsetDateTime;

use crate::domain::{KeyEntry, KeyName};

/// Which keys a list shows: a page in `order`, filtered.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    /// At most this many (None: every key, as with no query at all).
    pub limit: Option<usize>,
    /// Only keys after this position in `order` (the page before ended there).
    pub after: Option<ListPosition>,
    /// Only keys whose name, description or a permission contains this.
    pub search: Option<Search>,
    pub enabled: Option<bool>,
    pub expired: Option<bool>,
    pub order: KeyOrder,
}

impl KeyFilter {
    /// Largest page a caller may ask for.
    pub const MAX_LIMIT: usize = 1000;

    /// Whether `entry` passes the filters (the position aside).
    pub fn admits(&self, entry: &KeyEntry, now: OffsetDateTime) -> bool {
        self.search.as_ref().is_none_or(|s| s.matches(entry))
            && self.enabled.is_none_or(|on| entry.enabled == on)
            && self.expired.is_none_or(|x| entry.is_expired(now) == x)
    }
}

/// A case-insensitive substring search over a key's name, description and permissions.
/// Both sides are lowercased by Unicode's rules, so `ORDERS` finds `orders:read`.
#[derive(Debug, Clone)]
pub struct Search {
    lowercase: String,
}

impl Search {
    /// Longer than the longest field it is matched against (a description) matches nothing.
    pub const MAX_CHARS: usize = crate::domain::Description::MAX_CHARS;

    pub fn parse(q: &str) -> Result<Self, String> {
        if q.chars().count() > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        Ok(Self {
            lowercase: q.to_lowercase(),
        })
    }

    pub fn matches(&self, entry: &KeyEntry) -> bool {
        self.found_in(entry.name.as_str())
            || entry
                .description
                .as_ref()
                .is_some_and(|d| self.found_in(d.as_str()))
            || entry.permissions.iter().any(|p| self.found_in(p.as_str()))
    }

    fn found_in(&self, text: &str) -> bool {
        let needle = self.lowercase.as_bytes();
        if text.is_ascii() {
            // Names and permissions are always ASCII: no allocation per key. Lowercasing
            // ASCII by Unicode's rules is ASCII lowercasing.
            return needle.is_empty()
                || text
                    .as_bytes()
                    .windows(needle.len())
                    .any(|w| w.eq_ignore_ascii_case(needle));
        }
        text.to_lowercase().contains(&self.lowercase)
    }
}

/// The field a list is sorted by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortField {
    #[default]
    Name,
    CreatedAt,
    ExpiresAt,
    LastUsedAt,
}

impl SortField {
    const ALL: [(SortField, &'static str); 4] = [
        (Self::Name, "name"),
        (Self::CreatedAt, "createdAt"),
        (Self::ExpiresAt, "expiresAt"),
        (Self::LastUsedAt, "lastUsedAt"),
    ];

    /// The field names `sort` accepts, each also with a leading `-` (descending).
    pub fn names() -> impl Iterator<Item = &'static str> {
        Self::ALL.iter().map(|(_, name)| *name)
    }

    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(f, _)| *f == self)
            .map_or("name", |(_, name)| *name)
    }
}

/// A list's order: a field, ascending or descending. Keys without the field come last either
/// way; ties go by name, ascending.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyOrder {
    pub field: SortField,
    pub descending: bool,
}

impl KeyOrder {
    /// `name`, `-lastUsedAt`, ...
    pub fn parse(s: &str) -> Result<Self, String> {
        let (descending, field) = match s.strip_prefix('-') {
            Some(field) => (true, field),
            None => (false, s),
        };
        SortField::ALL
            .iter()
            .find(|(_, name)| *name == field)
            .map(|(field, _)| Self {
                field: *field,
                descending,
            })
            .ok_or_else(|| {
                let allowed: Vec<&str> = SortField::names().collect();
                format!(
                    "must be one of {}, with a leading - for descending",
                    allowed.join(", ")
                )
            })
    }

    /// Where `entry` stands in this order.
    pub fn position(&self, entry: &KeyEntry, last_used: Option<OffsetDateTime>) -> ListPosition {
        let at = match self.field {
            SortField::Name => None,
            SortField::CreatedAt => entry.created_at,
            SortField::ExpiresAt => entry.expires_at,
            SortField::LastUsedAt => last_used,
        };
        ListPosition {
            value: at.map(OffsetDateTime::unix_timestamp_nanos),
            name: entry.name.clone(),
        }
    }

    /// How two positions compare in this order.
    pub fn compare(&self, a: &ListPosition, b: &ListPosition) -> Ordering {
        let by_value = match (a.value, b.value) {
            (Some(x), Some(y)) if self.descending => y.cmp(&x),
            (Some(x), Some(y)) => x.cmp(&y),
            // Without the field: last, in both directions.
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        let by_name = if self.field == SortField::Name && self.descending {
            b.name.cmp(&a.name)
        } else {
            a.name.cmp(&b.name)
        };
        by_value.then(by_name)
    }
}

impl std::fmt::Display for KeyOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.descending { "-" } else { "" };
        write!(f, "{sign}{}", self.field.name())
    }
}

/// Where a key stands in a list's order: its sort field's value (Unix nanoseconds; None
/// without the field, and always for the name order) and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPosition {
    pub value: Option<i128>,
    pub name: KeyName,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(value: Option<i128>, name: &str) -> ListPosition {
        ListPosition {
            value,
            name: KeyName::parse(name).unwrap(),
        }
    }

    fn sorted(order: &str, mut list: Vec<ListPosition>) -> Vec<String> {
        let order = KeyOrder::parse(order).unwrap();
        list.sort_by(|a, b| order.compare(a, b));
        list.iter().map(|p| p.name.to_string()).collect()
    }

    #[test]
    fn keys_without_the_field_come_last_both_ways_and_ties_go_by_name() {
        let list = || {
            vec![
                at(None, "a"),
                at(Some(2), "c"),
                at(Some(1), "d"),
                at(Some(2), "b"),
            ]
        };
        assert_eq!(sorted("createdAt", list()), ["d", "b", "c", "a"]);
        assert_eq!(sorted("-createdAt", list()), ["b", "c", "d", "a"]);
        let names = vec![at(None, "b"), at(None, "d"), at(None, "a")];
        assert_eq!(sorted("-name", names), ["d", "b", "a"]);
    }

    #[test]
    fn sort_names_round_trip_and_others_are_refused() {
        for s in ["name", "-name", "createdAt", "-expiresAt", "lastUsedAt"] {
            assert_eq!(KeyOrder::parse(s).unwrap().to_string(), s);
        }
        for bad in ["", "-", "Name", "--name", "hash", "name "] {
            let err = KeyOrder::parse(bad).unwrap_err();
            assert!(err.contains("lastUsedAt"), "{err}");
        }
    }
}
