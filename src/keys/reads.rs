//! The read flow: a tenant's keys, one key, a page of them, the tenant's status and its
//! git history. Reads come from the index (loading a tenant that appeared since the last
//! scan) and never take the store's lock; they are apart from the writes so that what a
//! read may touch is visible at a glance.

use std::sync::Arc;

use time::OffsetDateTime;

use super::Error;
use super::listing::{KeyFilter, ListPosition, SortField};
use super::service::{Service, blocking};
use crate::domain::{KeyEntry, KeyName, PresentedKey, TenantId, TokenPrefix};
use crate::index::{Holding, IndexedKey, TenantKeys};
use crate::store::{FileProblem, StoreError};

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
    /// Where this page ended, when more keys follow.
    pub next: Option<ListPosition>,
    /// How many keys pass the filters, on every page together.
    pub total: usize,
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

impl TenantStatus {
    /// Whether a caller may write to this tenant now: it holds the write scope here (as the
    /// write routes judge it), and the tenant is neither read-only nor invalid. The one rule
    /// behind every `canWrite` an answer shows.
    pub fn can_write(&self, holds_write_scope: bool) -> bool {
        holds_write_scope && self.problem.is_none() && !self.read_only
    }
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

    /// Every tenant there is, sorted: the tenants directory as the store lists it (its
    /// symlink boundaries applied, so nothing outside it), or in git mode the served commit's.
    pub async fn tenant_ids(&self) -> Result<Vec<TenantId>, Error> {
        if self.git.is_some() {
            let mut served = self.index.tenants();
            served.retain(|t| self.tenant_exists(t));
            return Ok(served);
        }
        let store = self.store.clone();
        blocking(move || Ok(store.list_tenants().map_err(StoreError::from)?.tenants)).await
    }

    /// One page of a tenant's keys in the filter's order, filtered; `next` is where the
    /// following page starts after, when there is one.
    pub async fn list(&self, tenant: &TenantId, filter: &KeyFilter) -> Result<Page, Error> {
        let keys = self.keys(tenant).await?;
        let now = self.clock.now();
        let matching = keys.iter().filter(|k| filter.admits(&k.entry, now));
        let limit = filter.limit.unwrap_or(usize::MAX);
        let (page, total, next) = if filter.order.field == SortField::Name {
            name_order_page(filter, matching, limit)
        } else {
            sorted_page(filter, matching, limit)
        };
        let keys = page
            .into_iter()
            .map(|k| KeyState {
                entry: k.entry.clone(),
                last_used: k.last_used(),
            })
            .collect();
        Ok(Page { keys, next, total })
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

/// A page of keys, how many matched in all, and where the page ended when more follow.
type PageOf<'a> = (Vec<&'a IndexedKey>, usize, Option<ListPosition>);

/// A page in name order: the index is sorted by name already, so one pass (backwards for a
/// descending order) counts the matches and keeps the page, with no sort.
fn name_order_page<'a>(
    filter: &KeyFilter,
    matching: impl DoubleEndedIterator<Item = &'a IndexedKey>,
    limit: usize,
) -> PageOf<'a> {
    let matching: Box<dyn Iterator<Item = &IndexedKey>> = if filter.order.descending {
        Box::new(matching.rev())
    } else {
        Box::new(matching)
    };
    let (mut page, mut total, mut more) = (Vec::new(), 0, false);
    for key in matching {
        total += 1;
        if !is_after(filter, key) {
            continue;
        }
        if page.len() < limit {
            page.push(key);
        } else {
            more = true;
        }
    }
    let next = page
        .last()
        .filter(|_| more)
        .map(|k| filter.order.position(&k.entry, None));
    (page, total, next)
}

/// A page in another order: the matches after the position are gathered, the first `limit`
/// of them selected (linear) and only those sorted.
fn sorted_page<'a>(
    filter: &KeyFilter,
    matching: impl Iterator<Item = &'a IndexedKey>,
    limit: usize,
) -> PageOf<'a> {
    let mut total = 0;
    let mut after: Vec<(ListPosition, &IndexedKey)> = matching
        .inspect(|_| total += 1)
        .map(|k| (filter.order.position(&k.entry, k.last_used()), k))
        .filter(|(at, _)| {
            filter
                .after
                .as_ref()
                .is_none_or(|a| filter.order.compare(at, a).is_gt())
        })
        .collect();
    let compare = |a: &(ListPosition, &IndexedKey), b: &(ListPosition, &IndexedKey)| {
        filter.order.compare(&a.0, &b.0)
    };
    let more = after.len() > limit;
    if more {
        after.select_nth_unstable_by(limit, compare);
        after.truncate(limit);
    }
    after.sort_unstable_by(compare);
    // The position the page was sorted by, not the key's use since: the next page starts
    // exactly where this one ended.
    let next = after.last().filter(|_| more).map(|(at, _)| at.clone());
    (after.into_iter().map(|(_, k)| k).collect(), total, next)
}

fn is_after(filter: &KeyFilter, key: &IndexedKey) -> bool {
    filter.after.as_ref().is_none_or(|a| {
        let at = filter.order.position(&key.entry, None);
        filter.order.compare(&at, a).is_gt()
    })
}
