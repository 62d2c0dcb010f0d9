//! The admin write flow: create, update, rotate, end grace, delete, revoke. Each turns
//! a command into an `Intent`, has it applied (in git mode by the replication worker, else
//! by the store on a blocking thread) and publishes the new version before answering, so
//! the caller reads its own write.

use std::sync::Arc;

use time::OffsetDateTime;

use super::Error;
use super::command::{Actor, CreateKey, KeyChanges, Rotation, Target};
use super::intent::{Intent, What, check_can_grant, check_lifetime};
use super::reads::KeyState;
use super::service::{Service, blocking};
use crate::domain::{FieldError, KeyEntry, KeyHash, KeyName, Token};

/// A key and its new token: shown once, never stored.
#[derive(Debug)]
pub struct Issued {
    pub key: KeyState,
    pub token: Token,
    /// A rotation's answer: when the grace tokens it ended would have ended.
    pub ended_grace: Vec<OffsetDateTime>,
}

/// A create, update or rotation whose entry is not in the file it wrote: a bug, never input.
const MISSING_ENTRY: Error = Error::Store(crate::store::StoreError::EditMismatch);

impl Service {
    pub async fn create(&self, actor: &Actor, cmd: CreateKey) -> Result<Issued, Error> {
        self.check_expiry(cmd.expires_at)?;
        check_can_grant(actor.key.as_ref(), &cmd.permissions)?;
        check_lifetime(actor.key.as_ref(), cmd.expires_at)?;
        let token = Token::generate(&self.prefix);
        let entry = KeyEntry {
            name: cmd.name,
            hash: token.hash(),
            hint: Some(token.hint()),
            enabled: cmd.enabled,
            permissions: cmd.permissions,
            description: cmd.description,
            created_at: Some(self.clock.now_seconds()),
            created_by: actor.subject.clone(),
            rotated_at: None,
            expires_at: cmd.expires_at,
            previous_hashes: Vec::new(),
        };
        let name = entry.name.clone();
        let what = What::Create {
            entry,
            max_keys: self.max_keys,
        };
        let entry = self.write(self.intent(actor, &name, what)).await;
        let entry = match entry {
            Ok(entry) => entry.ok_or(MISSING_ENTRY)?,
            Err(e) => return Err(with_token(e, token)),
        };
        tracing::info!(actor = actor.name(), key = %entry.name, "key created");
        Ok(Issued {
            key: self.state_of(actor, entry),
            token,
            ended_grace: Vec::new(),
        })
    }

    pub async fn update(
        &self,
        actor: &Actor,
        target: Target,
        changes: KeyChanges,
    ) -> Result<KeyState, Error> {
        if let crate::keys::Patch::Set(t) = changes.expires_at {
            self.check_expiry(Some(t))?;
        }
        if let Some(p) = &changes.permissions {
            check_can_grant(actor.key.as_ref(), p)?;
        }
        let what = What::Update {
            if_match: target.if_match,
            fields: changes.into(),
            narrowed: false,
        };
        let entry = self
            .write(self.intent(actor, &target.name, what))
            .await?
            .ok_or(MISSING_ENTRY)?;
        tracing::info!(actor = actor.name(), key = %entry.name, "key updated");
        Ok(self.state_of(actor, entry))
    }

    /// A new token for the key; the old one keeps working for the grace period, never
    /// beyond the key's own expiry.
    pub async fn rotate(
        &self,
        actor: &Actor,
        target: Target,
        rotation: Rotation,
    ) -> Result<Issued, Error> {
        let grace = rotation.grace;
        // The key as this server serves it now: what the rotation ended is told against it.
        let before = self
            .index
            .keys(&actor.tenant)
            .and_then(|keys| Some(keys.get(&target.name)?.entry.clone()));
        let token = Token::generate(&self.prefix);
        let what = What::Rotate {
            if_match: target.if_match,
            hash: token.hash(),
            hint: Some(token.hint()),
            rotated_at: Some(self.clock.now_seconds()),
            grace_until: (!grace.is_zero()).then(|| self.clock.now_seconds() + grace),
        };
        let entry = self.write(self.intent(actor, &target.name, what)).await;
        let entry = match entry {
            Ok(entry) => entry.ok_or(MISSING_ENTRY)?,
            Err(e) => return Err(with_token(e, token)),
        };
        let ended_grace = ended_grace(before.as_deref(), &entry, self.clock.now());
        tracing::info!(actor = actor.name(), key = %entry.name, grace_seconds = grace.as_secs(),
            ended_grace_tokens = ended_grace.len(), "key rotated");
        Ok(Issued {
            key: self.state_of(actor, entry),
            token,
            ended_grace,
        })
    }

    /// Every token a rotation left in its grace period stops working now (the owner's early
    /// end to a grace period, say after a leak).
    pub async fn end_grace(&self, actor: &Actor, target: Target) -> Result<KeyState, Error> {
        let what = What::EndGrace {
            if_match: target.if_match,
        };
        let entry = self
            .write(self.intent(actor, &target.name, what))
            .await?
            .ok_or(MISSING_ENTRY)?;
        tracing::info!(actor = actor.name(), key = %entry.name, "grace tokens ended");
        Ok(self.state_of(actor, entry))
    }

    pub async fn delete(&self, actor: &Actor, target: Target) -> Result<(), Error> {
        let what = What::Delete {
            if_match: target.if_match,
        };
        self.write(self.intent(actor, &target.name, what)).await?;
        tracing::info!(actor = actor.name(), key = %target.name, "key deleted");
        Ok(())
    }

    /// The calling key revokes itself: with its current token, its entry is removed from
    /// the file; with a previous token still in its grace period, only that previous hash
    /// is (an old token cannot kill its replacement). `hash` is the presented token's.
    pub async fn revoke(&self, actor: &Actor, name: KeyName, hash: KeyHash) -> Result<(), Error> {
        self.write(self.intent(actor, &name, What::Revoke { hash }))
            .await?;
        tracing::info!(actor = actor.name(), key = %name, "key revoked itself");
        Ok(())
    }

    fn intent(&self, actor: &Actor, key: &KeyName, what: What) -> Intent {
        Intent {
            tenant: actor.tenant.clone(),
            key: key.clone(),
            actor: actor.name().to_owned(),
            request_id: actor.request_id.clone(),
            idempotency: actor.idempotency.clone(),
            reapplies: None,
            limits: actor.key.clone(),
            what,
        }
    }

    fn check_expiry(&self, expires_at: Option<OffsetDateTime>) -> Result<(), Error> {
        match expires_at {
            Some(t) if t <= self.clock.now() => Err(Error::Validation(vec![FieldError::new(
                "expiresAt",
                "must be in the future",
            )])),
            _ => Ok(()),
        }
    }

    fn state_of(&self, actor: &Actor, entry: KeyEntry) -> KeyState {
        let last_used = self
            .index
            .keys(&actor.tenant)
            .and_then(|keys| keys.get(&entry.name)?.last_used());
        KeyState {
            entry: Arc::new(entry),
            last_used,
        }
    }

    /// Applies one write and publishes the new version before the caller is answered
    /// (read-your-writes): in git mode through the worker (commit, push), else on a
    /// blocking thread inside the request's span. Returns the created or replaced entry
    /// (None for a delete).
    async fn write(&self, mut intent: Intent) -> Result<Option<KeyEntry>, Error> {
        if let Some(git) = &self.git {
            return Ok(git.write(intent).await?.entry);
        }
        let (publisher, clock) = (self.publisher.clone(), self.clock.clone());
        let written = blocking(move || {
            let tenant = intent.tenant.clone();
            let written = publisher
                .store
                .write(&tenant, |file| intent.decide(file, clock.now()))?;
            publisher.publish(&tenant, &written.version);
            Ok(written)
        })
        .await?;
        Ok(written.entry)
    }
}

/// The ends of the grace tokens `before` had running at `now` that `after` no longer has.
fn ended_grace(
    before: Option<&KeyEntry>,
    after: &KeyEntry,
    now: OffsetDateTime,
) -> Vec<OffsetDateTime> {
    let Some(before) = before else {
        return Vec::new();
    };
    let mut ended: Vec<OffsetDateTime> = before
        .previous_hashes
        .iter()
        .filter(|p| p.expires_at > now)
        .filter(|p| !after.previous_hashes.iter().any(|q| q.hash == p.hash))
        .map(|p| p.expires_at)
        .collect();
    ended.sort();
    ended
}

/// An answer left unknown keeps the token it would have given, for a retry to give it.
fn with_token(e: Error, token: Token) -> Error {
    match e {
        Error::OutcomeUnknown(mut u) => {
            u.issued = u.key.take().map(|key| Issued {
                key,
                token,
                ended_grace: Vec::new(),
            });
            Error::OutcomeUnknown(u)
        }
        e => e,
    }
}
