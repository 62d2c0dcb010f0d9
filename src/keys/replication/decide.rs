//! Writes decided by meaning on one base commit, each on the file as the writes before it
//! left it, and each that changes a file made its own commit with `git fast-import`.
//! Shared by the worker's batches, a replay and `keyward git reapply`.

use std::collections::HashMap;

use time::OffsetDateTime;

use super::file_path;
use crate::domain::{KeyEntry, TenantId};
use crate::git::{Author, GitError, NewCommit, Repo};
use crate::keys::Error;
use crate::keys::intent::Intent;
use crate::store::Store;

/// The trailer of a commit `keyward git reapply` made.
pub(super) const REAPPLIES: &str = "Reapplies: ";

/// One write decided on a base: its commit (None: the file did not change) and its entry.
pub(super) struct Decided {
    pub commit: Option<String>,
    pub entry: Option<KeyEntry>,
}

/// Writes decided in order on one base, and the commit the last one left.
pub(super) struct Built {
    pub tip: String,
    pub outcomes: Vec<Result<Decided, Error>>,
}

/// Decides each of `intents` on `base`, in order, each on the file as the ones before it
/// left it, and commits the ones that change a file (one commit each, by its principal).
/// Shared by the worker, a replay and `keyward git reapply`.
#[allow(clippy::too_many_arguments)]
pub(in crate::keys) fn build(
    repo: &Repo,
    store: &Store,
    prefix: &str,
    base: &str,
    intents: &mut [&mut Intent],
    now: OffsetDateTime,
    applied: Option<&HashMap<String, String>>,
    known: Option<&mut Texts>,
) -> Result<Built, GitError> {
    let mut scratch = Texts::default();
    let known = known.unwrap_or(&mut scratch);
    if known.commit.as_deref() != Some(base) {
        // What another writer changed since is read again; the rest is as it was.
        let changed = known
            .commit
            .as_deref()
            .and_then(|old| repo.changed_paths(old, base, prefix).ok());
        match changed {
            Some(paths) => {
                for path in paths {
                    let rel = if prefix.is_empty() {
                        path.as_str()
                    } else {
                        path.strip_prefix(prefix)
                            .and_then(|r| r.strip_prefix('/'))
                            .unwrap_or(&path)
                    };
                    if let Some(tenant) =
                        rel.split('/').next().and_then(|t| TenantId::parse(t).ok())
                    {
                        known.files.remove(&tenant);
                    }
                }
            }
            None => known.files.clear(),
        }
        known.commit = Some(base.to_owned());
    }
    let texts = &mut known.files;
    let mut outcomes = Vec::with_capacity(intents.len());
    let mut made: Vec<(usize, Author, String, String, String)> = Vec::new();
    for (i, intent) in intents.iter_mut().enumerate() {
        // A write whose Idempotency-Key is in the history already is not applied again.
        if let Some(tag) = &intent.idempotency
            && let Some(body) = applied.and_then(|a| a.get(&tag.scope))
        {
            outcomes.push(Err(if *body == tag.body {
                Error::AppliedElsewhere
            } else {
                Error::IdempotencyKeyReused
            }));
            continue;
        }
        let tenant = intent.tenant.clone();
        if !texts.contains_key(&tenant) {
            let text = tenant_text(repo, prefix, base, &tenant)?;
            texts.insert(tenant.clone(), text);
        }
        let text = match texts.get(&tenant) {
            Some(Ok(t)) => t.clone(),
            Some(Err(why)) => {
                outcomes.push(Err(why.error()));
                continue;
            }
            None => unreachable!("inserted above"),
        };
        let edit = store.edit(&tenant, &text, |file| intent.decide(file, now));
        match edit {
            Ok(edit) => {
                if edit.text != text {
                    let path = file_path(prefix, &tenant);
                    let message = message(intent);
                    made.push((
                        i,
                        Author::of(&intent.actor),
                        message,
                        path,
                        edit.text.clone(),
                    ));
                    texts.insert(tenant, Ok(edit.text));
                }
                outcomes.push(Ok(Decided {
                    commit: None,
                    entry: edit.entry,
                }));
            }
            Err(e) => outcomes.push(Err(e)),
        }
    }
    let time = now.unix_timestamp();
    let commits: Vec<NewCommit<'_>> = made
        .iter()
        .map(|(_, author, message, path, text)| NewCommit {
            author,
            time,
            message,
            path,
            content: text.as_bytes(),
        })
        .collect();
    let ids = repo.commit_all(base, &commits)?;
    let tip = ids.last().cloned().unwrap_or_else(|| base.to_owned());
    for ((i, ..), id) in made.iter().zip(ids) {
        if let Ok(d) = &mut outcomes[*i] {
            d.commit = Some(id);
        }
    }
    // The texts now are those of the tip.
    known.commit = Some(tip.clone());
    Ok(Built { tip, outcomes })
}

/// Tenant files' texts at one commit, as the last batch read or wrote them: a batch on the
/// tip the one before left reads no file from git again, and one on a tip another writer
/// moved reads only the files that writer changed.
#[derive(Default)]
pub(super) struct Texts {
    commit: Option<String>,
    files: HashMap<TenantId, Result<String, Unwritable>>,
}

/// Why a tenant's file in a commit cannot be written.
#[derive(Debug, Clone, Copy)]
pub(super) enum Unwritable {
    NoTenant,
    /// A symlink or a submodule in git.
    NotAFile,
    NotUtf8,
}

impl Unwritable {
    fn error(self) -> Error {
        use crate::store::StoreError;
        match self {
            Self::NoTenant => Error::TenantNotFound,
            Self::NotAFile => StoreError::ReadOnly.into(),
            Self::NotUtf8 => StoreError::Invalid(crate::domain::FileProblem {
                line: None,
                column: None,
                message: "file is not valid UTF-8".into(),
            })
            .into(),
        }
    }
}

/// A tenant's file at `base`: its text (none: empty), or why it cannot be written.
fn tenant_text(
    repo: &Repo,
    prefix: &str,
    base: &str,
    tenant: &TenantId,
) -> Result<Result<String, Unwritable>, GitError> {
    let dir = if prefix.is_empty() {
        tenant.to_string()
    } else {
        format!("{prefix}/{tenant}")
    };
    let files = repo.files(base, &dir)?;
    if files.is_empty() {
        // No tenant, or one below a link: held out of bounds, not absent.
        return Ok(Err(match repo.link_on_path(base, &dir)? {
            Some(_) => Unwritable::NotAFile,
            None => Unwritable::NoTenant,
        }));
    }
    if files.iter().any(|f| f.path == dir) {
        // The tenant's directory is itself a symlink or a submodule.
        return Ok(Err(Unwritable::NotAFile));
    }
    let path = file_path(prefix, tenant);
    let Some(file) = files.iter().find(|f| f.path == path) else {
        return Ok(Ok(String::new()));
    };
    if !matches!(file.mode.as_str(), "100644" | "100755") {
        return Ok(Err(Unwritable::NotAFile));
    }
    let blob = repo.read_blobs(std::slice::from_ref(&file.oid))?;
    let bytes = blob.into_iter().next().flatten().unwrap_or_default();
    Ok(String::from_utf8(bytes).map_err(|_| Unwritable::NotUtf8))
}

/// `<verb> <tenant>/<key>`, then the request id and the scoped idempotency key: never a
/// token, a hash or a JWT.
fn message(intent: &Intent) -> String {
    let mut m = format!(
        "{} {}/{}\n\n",
        intent.verb().as_str(),
        intent.tenant,
        intent.key
    );
    match &intent.request_id {
        Some(id) => m.push_str(&format!("Request-Id: {id}\n")),
        None => m.push_str("Made by keyward.\n"),
    }
    if let Some(tag) = &intent.idempotency {
        m.push_str(&tag.trailer());
        m.push('\n');
    }
    if let Some(old) = &intent.reapplies {
        m.push_str(&format!("{REAPPLIES}{old}\n"));
    }
    m
}
