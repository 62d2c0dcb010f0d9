//! An update's fields as an intent keeps them: each set, cleared or left as it is, so that
//! deciding the update again on a changed file touches only what the request changed.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::{Description, KeyEntry, Permissions, RateLimit};
use crate::keys::command::{KeyChanges, Patch};

/// The fields of an update.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fields {
    pub enabled: Option<bool>,
    pub permissions: Option<Permissions>,
    pub description: Edit<Description>,
    pub expires_at: Edit<Timestamp>,
    /// Absent from intents journaled before rate limits existed: those kept it.
    #[serde(default)]
    pub rate_limit: Edit<RateLimit>,
}

/// A field of an update, as the journal keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Edit<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

impl<T: Clone + PartialEq> Edit<T> {
    pub(super) fn apply(&self, current: &mut Option<T>) {
        match self {
            Self::Keep => {}
            Self::Clear => *current = None,
            Self::Set(v) => *current = Some(v.clone()),
        }
    }

    /// Keep, where it would leave `seen` as it is.
    fn unless_same(self, seen: &Option<T>) -> Self {
        let same = match &self {
            Self::Keep => true,
            Self::Clear => seen.is_none(),
            Self::Set(v) => seen.as_ref() == Some(v),
        };
        if same { Self::Keep } else { self }
    }
}

impl<T> From<Patch<T>> for Edit<T> {
    fn from(p: Patch<T>) -> Self {
        match p {
            Patch::Keep => Self::Keep,
            Patch::Clear => Self::Clear,
            Patch::Set(v) => Self::Set(v),
        }
    }
}

/// A point in time as RFC 3339 in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp(#[serde(with = "time::serde::rfc3339")] pub OffsetDateTime);

impl From<KeyChanges> for Fields {
    fn from(c: KeyChanges) -> Self {
        Self {
            enabled: Some(c.enabled),
            permissions: c.permissions,
            description: c.description.into(),
            expires_at: Edit::from(
                c.expires_at
                    .try_map(|t| Ok::<_, ()>(Timestamp(t)))
                    .unwrap_or_default(),
            ),
            rate_limit: c.rate_limit.into(),
        }
    }
}

/// The fields of `fields` that would change `seen`.
pub(super) fn narrow(fields: Fields, seen: &KeyEntry) -> Fields {
    Fields {
        enabled: fields.enabled.filter(|on| *on != seen.enabled),
        permissions: fields.permissions.filter(|p| *p != seen.permissions),
        description: fields.description.unless_same(&seen.description),
        expires_at: fields
            .expires_at
            .unless_same(&seen.expires_at.map(Timestamp)),
        rate_limit: fields.rate_limit.unless_same(&seen.rate_limit),
    }
}
