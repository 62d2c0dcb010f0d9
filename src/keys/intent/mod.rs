//! A write by meaning: what a request asked for, decided against a tenant's file as it is
//! when the write is applied. The same decision runs the first time, when git mode decides
//! a write again on a new remote head, when it replays a journalled write, and when ops
//! reapply a write a force-push removed; so a write never carries a stale copy of an entry
//! over someone else's change.

mod fields;
mod recover;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use fields::narrow;
pub use fields::{Edit, Fields, Timestamp};
pub use recover::{live_hashes, recover};

use super::Error;
use super::command::{IfMatch, KeyLimits};
use super::etag;
use crate::domain::{
    KeyEntry, KeyHash, KeyName, Permissions, PreviousHash, SecurityFile, TenantId, TokenHint,
};
use crate::store::Change;

/// What an API write does, as its commit subject names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    Create,
    Update,
    Rotate,
    Delete,
    Revoke,
    /// The owner ends the grace period of every token a rotation replaced.
    #[serde(rename = "end-grace")]
    EndGrace,
}

impl Verb {
    pub const ALL: [Verb; 6] = [
        Self::Create,
        Self::Update,
        Self::Rotate,
        Self::Delete,
        Self::Revoke,
        Self::EndGrace,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Rotate => "rotate",
            Self::Delete => "delete",
            Self::Revoke => "revoke",
            Self::EndGrace => "end-grace",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// One write to one key of one tenant, with who asked for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Intent {
    pub tenant: TenantId,
    pub key: KeyName,
    /// The principal (JWT `sub`, or `apikey:<name>`): the commit's author.
    pub actor: String,
    pub request_id: Option<String>,
    /// The request's `Idempotency-Key`, scoped: a commit trailer, so that no replica
    /// applies the write twice.
    #[serde(default)]
    pub idempotency: Option<super::idempotency::IdempotencyTag>,
    /// The commit this write applies again (`keyward git reapply`), for its trailer.
    #[serde(default)]
    pub reapplies: Option<String>,
    /// What an API-key caller holds: it bounds what the write may give, on every head.
    pub limits: Option<KeyLimits>,
    pub what: What,
}

/// The change itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum What {
    Create {
        entry: KeyEntry,
        max_keys: usize,
    },
    /// Only the fields the request changed: once decided, a field whose requested value
    /// equals the entry the request saw is dropped, so a replay never sets it back.
    Update {
        if_match: Option<IfMatch>,
        fields: Fields,
        narrowed: bool,
    },
    Rotate {
        if_match: Option<IfMatch>,
        hash: KeyHash,
        /// The new token's public hint (absent from journals written before hints).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hint: Option<TokenHint>,
        /// When the rotation was asked for: the same on every head it is decided on.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "time::serde::rfc3339::option"
        )]
        rotated_at: Option<OffsetDateTime>,
        /// When the old token stops working (None: at once).
        #[serde(with = "time::serde::rfc3339::option")]
        grace_until: Option<OffsetDateTime>,
    },
    Delete {
        if_match: Option<IfMatch>,
    },
    /// A calling key revokes itself: the entry if `hash` is its current token's, else that
    /// previous hash only.
    Revoke {
        hash: KeyHash,
    },
    /// Every token a rotation left in its grace period stops working.
    EndGrace {
        if_match: Option<IfMatch>,
    },
}

/// The most tokens a key keeps in their grace period: each is a live credential, and a
/// loop of rotations must not leave hundreds of them.
pub const MAX_GRACE_TOKENS: usize = 5;

impl Intent {
    pub fn verb(&self) -> Verb {
        match self.what {
            What::Create { .. } => Verb::Create,
            What::Update { .. } => Verb::Update,
            What::Rotate { .. } => Verb::Rotate,
            What::Delete { .. } => Verb::Delete,
            What::Revoke { .. } => Verb::Revoke,
            What::EndGrace { .. } => Verb::EndGrace,
        }
    }

    /// The change this write makes to `file` now, or the answer it gets on this file.
    /// An update is narrowed the first time it is decided (see [`What::Update`]).
    pub fn decide(&mut self, file: &SecurityFile, now: OffsetDateTime) -> Result<Change, Error> {
        let limits = self.limits.as_ref();
        match &mut self.what {
            What::Create { entry, max_keys } => {
                if file.find(&entry.name).is_some() {
                    return Err(Error::KeyExists);
                }
                if file.keys.len() >= *max_keys {
                    return Err(Error::KeyLimit(*max_keys));
                }
                Ok(Change::Create(entry.clone()))
            }
            What::Update {
                if_match,
                fields,
                narrowed,
            } => {
                let current = target(file, &self.key, if_match.as_ref(), limits)?;
                if !*narrowed {
                    *fields = narrow(std::mem::take(fields), current);
                    *narrowed = true;
                }
                let mut next = current.clone();
                if let Some(on) = fields.enabled {
                    next.enabled = on;
                }
                if let Some(p) = &fields.permissions {
                    next.permissions = p.clone();
                }
                fields.description.apply(&mut next.description);
                let mut expires = next.expires_at.map(Timestamp);
                fields.expires_at.apply(&mut expires);
                next.expires_at = expires.map(|t| t.0);
                fields.rate_limit.apply(&mut next.rate_limit);
                check_lifetime(limits, next.expires_at)?;
                // Grace periods that are over have no reason to stay in the file.
                next.previous_hashes.retain(|p| p.expires_at > now);
                Ok(Change::Replace(next))
            }
            What::Rotate {
                if_match,
                hash,
                hint,
                rotated_at,
                grace_until,
            } => {
                let current = target(file, &self.key, if_match.as_ref(), limits)?;
                let mut next = current.clone();
                if next.hash == *hash {
                    // Already rotated to this token (its own write, applied once).
                    return Ok(Change::Replace(next));
                }
                // A new token is a new lifetime for whoever holds it.
                check_lifetime(limits, next.expires_at)?;
                rotate_grace(&mut next, *grace_until, now);
                next.hash = *hash;
                // The old token's hint would now name a token that is not the current one.
                next.hint = hint.clone();
                next.rotated_at = *rotated_at;
                Ok(Change::Replace(next))
            }
            What::Delete { if_match } => {
                target(file, &self.key, if_match.as_ref(), limits)?;
                Ok(Change::Delete(self.key.clone()))
            }
            What::EndGrace { if_match } => {
                let mut next = target(file, &self.key, if_match.as_ref(), limits)?.clone();
                next.previous_hashes.clear();
                Ok(Change::Replace(next))
            }
            What::Revoke { hash } => {
                let (_, entry) = file.find(&self.key).ok_or(Error::KeyNotFound)?;
                if entry.hash == *hash {
                    return Ok(Change::Delete(self.key.clone()));
                }
                if !entry.previous_hashes.iter().any(|p| p.hash == *hash) {
                    return Err(Error::KeyNotFound);
                }
                let mut next = entry.clone();
                next.previous_hashes.retain(|p| p.hash != *hash);
                Ok(Change::Replace(next))
            }
        }
    }
}

/// Moves `entry`'s current hash to its grace tokens until `grace_until` (never beyond the
/// key's expiry). Without a grace period, every earlier grace token ends too: a rotation
/// "stop the old token now" is how an owner answers a leak, whichever token leaked. Past
/// `MAX_GRACE_TOKENS`, the oldest (first rotated out, first in the list) end.
fn rotate_grace(entry: &mut KeyEntry, grace_until: Option<OffsetDateTime>, now: OffsetDateTime) {
    let Some(grace_until) = grace_until else {
        entry.previous_hashes.clear();
        return;
    };
    entry.previous_hashes.retain(|p| p.expires_at > now);
    let until = entry
        .expires_at
        .map_or(grace_until, |expiry| grace_until.min(expiry));
    if until > now {
        entry.previous_hashes.push(PreviousHash {
            hash: entry.hash,
            expires_at: until,
        });
    }
    let over = entry.previous_hashes.len().saturating_sub(MAX_GRACE_TOKENS);
    entry.previous_hashes.drain(..over);
}

/// The entry an update, rotation or deletion is about, as it is in the file now: it must
/// exist, match `If-Match` when one was sent, and not hold more than an API-key caller holds.
fn target<'a>(
    file: &'a SecurityFile,
    name: &KeyName,
    if_match: Option<&IfMatch>,
    limits: Option<&KeyLimits>,
) -> Result<&'a KeyEntry, Error> {
    let (_, current) = file.find(name).ok_or(Error::KeyNotFound)?;
    if let Some(m) = if_match
        && !m.accepts(&etag(current))
    {
        return Err(Error::PreconditionFailed);
    }
    check_can_grant(limits, &current.permissions)?;
    Ok(current)
}

pub(super) fn check_can_grant(
    limits: Option<&KeyLimits>,
    wanted: &Permissions,
) -> Result<(), Error> {
    if KeyLimits::may_grant(limits, wanted) {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "an API key cannot grant a permission it does not hold",
        ))
    }
}

pub(super) fn check_lifetime(
    limits: Option<&KeyLimits>,
    expires_at: Option<OffsetDateTime>,
) -> Result<(), Error> {
    if KeyLimits::may_give_lifetime(limits, expires_at) {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "an API key that expires cannot give a key a later expiry than its own, or none",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Description;

    const FILE: &str = "\
apiKeys:
  - name: a
    hash: sha256:1111111111111111111111111111111111111111111111111111111111111111
    description: old
";

    fn update(fields: Fields) -> Intent {
        Intent {
            tenant: TenantId::parse("acme").unwrap(),
            key: KeyName::parse("a").unwrap(),
            actor: "alice".into(),
            request_id: None,
            idempotency: None,
            reapplies: None,
            limits: None,
            what: What::Update {
                if_match: None,
                fields,
                narrowed: false,
            },
        }
    }

    #[test]
    fn a_replayed_update_sets_only_the_fields_its_request_changed() {
        let seen = SecurityFile::parse(FILE).unwrap();
        let now = OffsetDateTime::now_utc();
        // The request sends `enabled: true` (unchanged) and a new description.
        let mut intent = update(Fields {
            enabled: Some(true),
            description: Edit::Set(Description::parse("new").unwrap()),
            ..Fields::default()
        });
        intent.decide(&seen, now).unwrap();

        // Ops disabled the key on the remote meanwhile; the replay keeps that.
        let theirs = SecurityFile::parse(
            &FILE.replace("description: old", "enabled: false\n    description: old"),
        )
        .unwrap();
        let Change::Replace(next) = intent.decide(&theirs, now).unwrap() else {
            panic!("an update replaces the entry");
        };
        assert!(!next.enabled);
        assert_eq!(next.description.unwrap().as_str(), "new");
    }

    #[test]
    fn a_journal_written_before_hints_still_reads_and_its_writes_still_apply() {
        // As the journal spelt them then (a variant's fields keep their Rust names).
        let rotate = format!(
            r#"{{"tenant":"acme","key":"a","actor":"alice","requestId":null,"limits":null,
                "what":{{"kind":"rotate","if_match":null,"hash":"sha256:{}","grace_until":null}}}}"#,
            "3".repeat(64)
        );
        let create = format!(
            r#"{{"tenant":"acme","key":"b","actor":"alice","requestId":null,"limits":null,
                "what":{{"kind":"create","max_keys":10,"entry":{{"name":"b","hash":"{}"}}}}}}"#,
            "2".repeat(64)
        );
        let file = SecurityFile::parse(FILE).unwrap();
        let now = OffsetDateTime::now_utc();
        for json in [rotate, create] {
            let mut intent: Intent = serde_json::from_str(&json).unwrap();
            let (Change::Replace(entry) | Change::Create(entry)) =
                intent.decide(&file, now).unwrap()
            else {
                panic!("a rotation replaces, a create creates");
            };
            assert_eq!((entry.hint, entry.rotated_at), (None, None));
        }
    }

    #[test]
    fn the_journal_keeps_an_intent_as_it_was() {
        let mut intent = update(Fields {
            enabled: Some(false),
            expires_at: Edit::Clear,
            ..Fields::default()
        });
        intent
            .decide(
                &SecurityFile::parse(FILE).unwrap(),
                OffsetDateTime::now_utc(),
            )
            .unwrap();
        let json = serde_json::to_string(&intent).unwrap();
        let back: Intent = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }
}
