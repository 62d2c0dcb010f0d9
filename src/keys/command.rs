//! What a caller asks the keys service to do, already validated: the HTTP layer turns
//! request bodies into these (`TryFrom`), so the service never sees raw input.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use crate::domain::{Description, KeyName, Permissions, Subject, TenantId};

/// A field of an update: leave it, clear it (`null`), or set it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Patch<T> {
    /// Absent from the request.
    #[default]
    Keep,
    /// `null` in the request.
    Clear,
    Set(T),
}

impl<T> Patch<T> {
    /// Applies the patch to `current`.
    pub fn apply(self, current: &mut Option<T>) {
        match self {
            Self::Keep => {}
            Self::Clear => *current = None,
            Self::Set(v) => *current = Some(v),
        }
    }

    /// Converts a set value, keeping `Keep` and `Clear` as they are.
    pub fn try_map<U, E>(self, f: impl FnOnce(T) -> Result<U, E>) -> Result<Patch<U>, E> {
        Ok(match self {
            Self::Keep => Patch::Keep,
            Self::Clear => Patch::Clear,
            Self::Set(v) => Patch::Set(f(v)?),
        })
    }
}

/// With `#[serde(default)]`: an absent field is `Keep`, `null` is `Clear`.
impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            None => Self::Clear,
            Some(v) => Self::Set(v),
        })
    }
}

/// Who is asking: a JWT holder, or an API key acting on its own tenant.
#[derive(Debug, Clone)]
pub struct Actor {
    pub tenant: TenantId,
    /// What `createdBy` and the logs record: the JWT `sub`, or `apikey:<name>`.
    pub subject: Option<Subject>,
    /// Set when the caller is an API key: what it holds bounds what it may hand out.
    pub key: Option<KeyLimits>,
    /// The request's id, for the commit a write makes in git mode.
    pub request_id: Option<String>,
    /// The request's `Idempotency-Key`, scoped: a write that carries one is made once.
    pub idempotency: Option<super::idempotency::IdempotencyTag>,
}

/// What an API key acting as an admin holds: it can never give more of either.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyLimits {
    pub permissions: Permissions,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

impl KeyLimits {
    /// No escalation: a key cannot hand out a permission it does not hold itself.
    pub fn may_grant(limits: Option<&Self>, wanted: &Permissions) -> bool {
        limits.is_none_or(|k| k.permissions.covers_all(wanted))
    }

    /// Lifetime is a privilege too: a key that expires cannot leave a key living longer
    /// than itself, or forever.
    pub fn may_give_lifetime(limits: Option<&Self>, expires_at: Option<OffsetDateTime>) -> bool {
        match limits.and_then(|k| k.expires_at) {
            None => true,
            Some(own) => expires_at.is_some_and(|t| t <= own),
        }
    }
}

impl Actor {
    /// The name the logs give the actor (never a secret).
    pub fn name(&self) -> &str {
        self.subject.as_ref().map_or("unknown", |s| s.as_str())
    }

    /// No escalation: an API key cannot hand out (or take control of a key holding) a
    /// permission it does not hold itself.
    pub fn may_grant(&self, wanted: &Permissions) -> bool {
        KeyLimits::may_grant(self.key.as_ref(), wanted)
    }

    /// Lifetime is a privilege too: an API key that expires cannot leave a key (its own
    /// included) living longer than itself, or forever.
    pub fn may_give_lifetime(&self, expires_at: Option<OffsetDateTime>) -> bool {
        KeyLimits::may_give_lifetime(self.key.as_ref(), expires_at)
    }
}

/// `If-Match`: `*`, or the entity tags the caller last saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum IfMatch {
    Any,
    Tags(Vec<String>),
}

impl IfMatch {
    /// Parses a header value; one that is not visible ASCII matches no entry.
    pub fn parse(header: &[u8]) -> Self {
        let Ok(text) = std::str::from_utf8(header) else {
            return Self::Tags(Vec::new());
        };
        let tags: Vec<&str> = text.split(',').map(str::trim).collect();
        if tags.contains(&"*") {
            return Self::Any;
        }
        Self::Tags(tags.into_iter().map(str::to_owned).collect())
    }

    /// RFC 9110 strong comparison: a weak tag never matches.
    pub fn accepts(&self, etag: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Tags(tags) => tags.iter().any(|t| t == etag),
        }
    }
}

/// A new key.
#[derive(Debug, Clone)]
pub struct CreateKey {
    pub name: KeyName,
    pub enabled: bool,
    pub permissions: Permissions,
    pub description: Option<Description>,
    pub expires_at: Option<OffsetDateTime>,
}

/// What an update changes; `enabled` is always set.
#[derive(Debug, Clone)]
pub struct KeyChanges {
    pub enabled: bool,
    /// None: unchanged.
    pub permissions: Option<Permissions>,
    pub description: Patch<Description>,
    pub expires_at: Patch<OffsetDateTime>,
}

/// Which key a change is about, and the version of it the caller saw.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: KeyName,
    pub if_match: Option<IfMatch>,
}

/// A new token for a key; the old one keeps working for `grace`.
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    pub grace: Duration,
}

impl Rotation {
    /// Longest grace period a rotation may give the old token: 30 days.
    pub const MAX_GRACE: Duration = Duration::from_secs(2_592_000);
}
