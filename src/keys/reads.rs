//! The read flow: a tenant's keys, one key, a page of them, the tenant's status and its
//! git history. Reads come from the index (loading a tenant that appeared since the last
//! scan) and never take the store's lock; they are apart from the writes so that what a
//! read may touch is visible at a glance.

use std::sync::Arc;

use time::OffsetDateTime;

use super::Error;
use super::command::KeyFilter;
use super::service::{Service, blocking};
use crate::domain::{KeyEntry, KeyName, PresentedKey, TenantId, TokenPrefix};
use crate::index::{Holding, TenantKeys};
use crate::store::FileProblem;

/// A key as stored, with when it was last used.
#[derive(Debug, Clone)]
pub struct KeyState {
    pub entry: Arc<KeyEntry>,
    pub last_used: Option<OffsetDateTime>,
}

/// One page of a list.
#[derive(Debug)]
pub struct Page {
    pub keys: Vec<KeyState>,
    /// The last name of this page, when more keys follow.
    pub next: Option<KeyName>,
}

/// What the status endpoint says about one tenant's file.
#[derive(Debug, Clone)]
pub struct TenantStatus {
    pub keys: usize,
    pub keys_from: KeysFrom,
    pub problem: Option<FileProblem>,
    pub read_only: bool,
    pub loaded_at: Option<OffsetDateTime>,
    pub checked_at: OffsetDateTime,
}

/// Where the keys a tenant serves come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysFrom {
    /// The tenant's file, as last loaded valid (or no file: no keys).
    File,
    /// The last-good copy saved in `state_dir`: the file was invalid when keyward
    /// started, and has not been valid since.
    LastGood { saved_at: Option<OffsetDateTime> },
}

impl Service {
    /// A tenant's keys, loading the tenant first if it appeared since the last scan.
    pub async fn keys(&self, tenant: &TenantId) -> Result<Arc<TenantKeys>, Error> {
        if let Some(keys) = self.index.keys(tenant) {
            return Ok(keys);
        }
        if self.git.is_some() {
            // git mode serves commits: a tenant the served one lacks is not there.
            return Err(Error::TenantNotFound);
        }
        let (publisher, t) = (self.publisher.clone(), tenant.clone());
        blocking(move || Ok(publisher.load(&t)?)).await?;
        self.index.keys(tenant).ok_or(Error::TenantNotFound)
    }

    /// One page of a tenant's keys in name order, filtered; `next` is where the following
    /// page starts after, when there is one.
    pub async fn list(&self, tenant: &TenantId, filter: &KeyFilter) -> Result<Page, Error> {
        let keys = self.keys(tenant).await?;
        let now = self.clock.now();
        let mut matching = keys.iter().filter(|k| {
            let e = &k.entry;
            filter.after.as_ref().is_none_or(|a| &e.name > a)
                && filter
                    .name_contains
                    .as_deref()
                    .is_none_or(|q| e.name.as_str().contains(q))
                && filter.enabled.is_none_or(|on| e.enabled == on)
                && filter.expired.is_none_or(|x| e.is_expired(now) == x)
        });
        let limit = filter.limit.unwrap_or(usize::MAX);
        let keys: Vec<KeyState> = matching
            .by_ref()
            .take(limit)
            .map(|k| KeyState {
                entry: k.entry.clone(),
                last_used: k.last_used(),
            })
            .collect();
        let more = matching.next().is_some();
        let next = more
            .then(|| keys.last().map(|k| k.entry.name.clone()))
            .flatten();
        Ok(Page { keys, next })
    }

    pub async fn key(&self, tenant: &TenantId, name: &KeyName) -> Result<KeyState, Error> {
        let keys = self.keys(tenant).await?;
        let key = keys.get(name).ok_or(Error::KeyNotFound)?;
        Ok(KeyState {
            entry: key.entry.clone(),
            last_used: key.last_used(),
        })
    }

    /// The key of `tenant` that holds `token` (current, or in its grace period), and which
    /// token it is. Not a use of the key: nothing is touched or counted.
    pub async fn lookup(
        &self,
        tenant: &TenantId,
        token: &PresentedKey,
    ) -> Result<(KeyState, Holding), Error> {
        let keys = self.keys(tenant).await?;
        let (key, holding) = keys
            .holder(token.hash(), self.clock.now())
            .ok_or(Error::TokenNotHeld)?;
        let state = KeyState {
            entry: key.entry.clone(),
            last_used: key.last_used(),
        };
        Ok((state, holding))
    }

    /// The prefix of the tokens this server issues.
    pub fn token_prefix(&self) -> &TokenPrefix {
        &self.prefix
    }

    pub async fn status(&self, tenant: &TenantId) -> Result<TenantStatus, Error> {
        let keys = self.keys(tenant).await?;
        let health = self.store.health(tenant).ok_or(Error::TenantNotFound)?;
        let on_last_good = self.publisher.on_last_good.lock().get(tenant).copied();
        Ok(TenantStatus {
            keys: keys.len(),
            keys_from: match on_last_good {
                None => KeysFrom::File,
                Some(saved_at) => KeysFrom::LastGood { saved_at },
            },
            problem: health.problem,
            read_only: health.read_only || self.store.is_read_only(),
            loaded_at: health.loaded_at,
            checked_at: health.checked_at,
        })
    }

    /// Git mode: the tenant's git status, about that tenant only.
    pub async fn git_status(&self, tenant: &TenantId) -> Option<super::GitStatus> {
        let git = self.git.clone()?;
        let t = tenant.clone();
        blocking(move || Ok(git.status(&t))).await.ok()
    }

    /// One page of the tenant's file history from git. At most `HISTORY_AT_ONCE` run at
    /// once: past that, `Busy` (a reader cannot pin the CPUs with many).
    pub async fn history(
        &self,
        tenant: &TenantId,
        key: Option<KeyName>,
        limit: usize,
        cursor: Option<super::HistoryCursor>,
    ) -> Result<super::History, Error> {
        let git = self.git.clone().ok_or(Error::NotGitMode)?;
        if !self.tenant_exists(tenant) {
            return Err(Error::TenantNotFound);
        }
        let slot = self
            .history_slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Error::Busy)?;
        let t = tenant.clone();
        blocking(move || {
            let _slot = slot;
            git.history(&t, key.as_ref(), limit, cursor)
        })
        .await
    }
}
