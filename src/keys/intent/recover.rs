//! A write a force-push removed, read back from the commits: what ops reapply on the file
//! as it is now, and which of a key's tokens a rewrite brought back to life.

use time::OffsetDateTime;

use super::{Edit, Fields, Intent, Timestamp, Verb, What, narrow};
use crate::domain::{KeyHash, KeyName, SecurityFile, TenantId};

/// The write `after` made to key `key` of a tenant whose file was `before`, by meaning:
/// how ops reapply a write that a force-push removed, on whatever the file is now.
pub fn recover(
    verb: Verb,
    tenant: TenantId,
    key: KeyName,
    actor: String,
    before: &SecurityFile,
    after: &SecurityFile,
) -> Option<Intent> {
    let was = before.find(&key).map(|(_, e)| e);
    let is = after.find(&key).map(|(_, e)| e);
    let what = match (was, is) {
        (None, Some(entry)) => What::Create {
            entry: entry.clone(),
            max_keys: usize::MAX,
        },
        (Some(_), None) => What::Delete { if_match: None },
        (Some(was), Some(is)) if was.hash != is.hash => What::Rotate {
            if_match: None,
            hash: is.hash,
            hint: is.hint.clone(),
            rotated_at: is.rotated_at,
            grace_until: is
                .previous_hashes
                .iter()
                .find(|p| p.hash == was.hash)
                .map(|p| p.expires_at),
        },
        (Some(_), Some(_)) if verb == Verb::EndGrace => What::EndGrace { if_match: None },
        (Some(was), Some(is)) if verb == Verb::Revoke => {
            let gone = was
                .previous_hashes
                .iter()
                .find(|p| !is.previous_hashes.iter().any(|q| q.hash == p.hash))?;
            What::Revoke { hash: gone.hash }
        }
        (Some(was), Some(is)) => What::Update {
            if_match: None,
            fields: narrow(
                Fields {
                    enabled: Some(is.enabled),
                    permissions: Some(is.permissions.clone()),
                    description: is.description.clone().map_or(Edit::Clear, Edit::Set),
                    expires_at: is
                        .expires_at
                        .map_or(Edit::Clear, |t| Edit::Set(Timestamp(t))),
                    rate_limit: is.rate_limit.map_or(Edit::Clear, Edit::Set),
                },
                was,
            ),
            narrowed: true,
        },
        (None, None) => return None,
    };
    Some(Intent {
        tenant,
        key,
        actor,
        request_id: None,
        idempotency: None,
        reapplies: None,
        limits: None,
        what,
    })
}

/// The hashes of `key` that `file` accepts as valid now: its current one and its previous
/// ones still in their grace period, if the key is enabled and not expired.
pub fn live_hashes(file: &SecurityFile, key: &KeyName, now: OffsetDateTime) -> Vec<KeyHash> {
    let Some((_, e)) = file.find(key) else {
        return Vec::new();
    };
    if !e.enabled || e.is_expired(now) {
        return Vec::new();
    }
    std::iter::once(e.hash)
        .chain(
            e.previous_hashes
                .iter()
                .filter(|p| p.expires_at > now)
                .map(|p| p.hash),
        )
        .collect()
}
