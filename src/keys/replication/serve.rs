//! A commit's tenant files into the index. git mode serves commits, not the work tree: a
//! deploy job's `git reset --hard` to an older commit, or a hand edit in the clone, never
//! changes what keyward answers. Only files whose blob changed are read and parsed again,
//! and nothing a commit holds is followed out of its tree: a tenant directory or a
//! `security.yml` that is a symlink (or a submodule) in git is not read, and neither is a
//! tenants directory that is one, or sits below one. Such a tenant keeps its last keys and
//! says why in its status, the metrics and the log, until a commit puts it back in bounds.

use std::collections::HashMap;

use super::Engine;
use crate::domain::{FileProblem, TenantId};
use crate::git::GitError;
use crate::keys::publish::Reloaded;
use crate::store::FILE_NAME;

/// What the index holds: a commit, and the tenant files it had.
#[derive(Default)]
pub(super) struct Served {
    pub commit: Option<String>,
    files: HashMap<TenantId, FileAt>,
}

impl Served {
    pub fn tenants(&self) -> impl Iterator<Item = &TenantId> {
        self.files.keys()
    }
}

/// A tenant's file in a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FileAt {
    /// The tenant directory has no `security.yml`: a tenant with no keys.
    Missing,
    Blob(String),
    /// A symlink or a submodule where the file should be.
    Refused,
    /// A symlink or a submodule where the tenant's directory, or one above it, should be.
    Moved,
}

impl Engine {
    /// Serves `commit`: loads the tenant files that differ from what is served, drops the
    /// tenants it does not have. Blocking (git).
    pub(super) fn serve(&mut self, commit: &str) -> Result<(), GitError> {
        if self.served.commit.as_deref() == Some(commit) {
            return Ok(());
        }
        let listing = self.repo.files(commit, &self.prefix)?;
        // A tenants directory that is a link lists as that one entry; one below a link, as
        // nothing.
        let outside = match listing.len() {
            0 | 1 if !self.prefix.is_empty() => self.repo.link_on_path(commit, &self.prefix)?,
            _ => None,
        };
        let files = match &outside {
            Some(link) => {
                tracing::warn!(commit, path = %link, "the commit makes the tenants directory a symlink or a submodule; keyward does not follow it, and every tenant keeps its last keys");
                self.served
                    .files
                    .keys()
                    .map(|t| (t.clone(), FileAt::Moved))
                    .collect()
            }
            None => tenant_files(&listing, &self.prefix),
        };
        if self.served.commit.is_none() && outside.is_none() {
            // The first commit served: a tenant it lacks is gone, and so is its snapshot.
            self.publisher.serve_commits();
            self.publisher.forget_all_but(files.keys());
        }
        let changed: Vec<(&TenantId, &FileAt)> = files
            .iter()
            .filter(|(t, f)| self.served.files.get(*t) != Some(*f))
            .collect();
        let blobs: Vec<String> = changed
            .iter()
            .filter_map(|(_, f)| match f {
                FileAt::Blob(oid) => Some(oid.clone()),
                _ => None,
            })
            .collect();
        let mut contents = self.repo.read_blobs(&blobs)?.into_iter();
        let new: Vec<TenantId> = changed
            .iter()
            .filter(|(t, _)| !self.served.files.contains_key(*t))
            .map(|(t, _)| (*t).clone())
            .collect();
        self.publisher.index.add_tenants(&new);
        for (tenant, file) in &changed {
            let blob;
            let content = match file {
                FileAt::Missing => Ok(Some(&b""[..])),
                FileAt::Blob(_) => {
                    blob = contents.next().flatten();
                    match &blob {
                        Some(b) => Ok(Some(b.as_slice())),
                        None => Err(problem("security.yml could not be read from git")),
                    }
                }
                FileAt::Refused => Err(problem(
                    "security.yml is a symlink or a submodule in git; keyward does not follow it",
                )),
                FileAt::Moved => Err(problem(
                    "the tenant's directory, or one above it, is a symlink or a submodule in git; keyward does not follow it",
                )),
            };
            let reloaded = self.publisher.load_content(tenant, content);
            self.log(tenant, reloaded);
        }
        let gone: Vec<TenantId> = self
            .served
            .files
            .keys()
            .filter(|t| !files.contains_key(*t))
            .cloned()
            .collect();
        for tenant in gone {
            let reloaded = self.publisher.load_content(&tenant, Ok(None));
            self.log(&tenant, reloaded);
        }
        self.served = Served {
            commit: Some(commit.to_owned()),
            files,
        };
        self.publish_view();
        Ok(())
    }

    fn log(&self, tenant: &TenantId, reloaded: Reloaded) {
        reloaded.record(tenant, &self.metrics);
    }
}

fn problem(message: &str) -> FileProblem {
    FileProblem {
        line: None,
        column: None,
        message: message.into(),
    }
}

/// The tenants of a listing of the tenants directory (paths from the top of the tree):
/// a directory with a valid tenant id, and its `security.yml`. Anything else is no tenant.
fn tenant_files(listing: &[crate::git::TreeFile], prefix: &str) -> HashMap<TenantId, FileAt> {
    let mut tenants = HashMap::new();
    for f in listing {
        let rel = if prefix.is_empty() {
            f.path.as_str()
        } else {
            match f
                .path
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('/'))
            {
                Some(r) => r,
                None => continue,
            }
        };
        // A tenant is a directory: a path with a tenant id and something below it. A link
        // in its place is a tenant held out of bounds, not one removed.
        let Some((dir, rest)) = rel.split_once('/') else {
            if leaves_tree(&f.mode)
                && let Ok(tenant) = TenantId::parse(rel)
            {
                tenants.insert(tenant, FileAt::Moved);
            }
            continue;
        };
        let Ok(tenant) = TenantId::parse(dir) else {
            continue;
        };
        let slot = tenants.entry(tenant).or_insert(FileAt::Missing);
        if rest == FILE_NAME {
            *slot = match f.mode.as_str() {
                "100644" | "100755" => FileAt::Blob(f.oid.clone()),
                _ => FileAt::Refused,
            };
        }
    }
    tenants
}

/// A symlink or a submodule: what a checkout would take out of the tree.
fn leaves_tree(mode: &str) -> bool {
    matches!(mode, "120000" | "160000")
}

/// Whether a checkout of `commit` would put a link where the tenants directory, a directory
/// above it, or a tenant's directory is: the work tree is then left where it is.
pub(super) fn out_of_bounds(
    repo: &crate::git::Repo,
    commit: &str,
    prefix: &str,
) -> Result<bool, GitError> {
    if repo.link_on_path(commit, prefix)?.is_some() {
        return Ok(true);
    }
    let listing = repo.files(commit, prefix)?;
    Ok(tenant_files(&listing, prefix)
        .values()
        .any(|f| *f == FileAt::Moved))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::TreeFile;

    fn file(path: &str, mode: &str) -> TreeFile {
        TreeFile {
            path: path.into(),
            mode: mode.into(),
            oid: format!("oid-of-{path}"),
        }
    }

    #[test]
    fn only_directories_named_as_tenants_are_tenants_and_links_are_held_not_followed() {
        let listing = [
            file("tenants/acme/security.yml", "100644"),
            file("tenants/globex/security.yml", "120000"),
            file("tenants/empty/.gitkeep", "100644"),
            file("tenants/linked", "120000"),
            file("tenants/module", "160000"),
            file("tenants/..data/acme/security.yml", "100644"),
            file("tenants/README.md", "100644"),
        ];
        let tenants = tenant_files(&listing, "tenants");
        let t = |s: &str| TenantId::parse(s).unwrap();
        assert_eq!(
            tenants.get(&t("acme")),
            Some(&FileAt::Blob("oid-of-tenants/acme/security.yml".into()))
        );
        assert_eq!(tenants.get(&t("globex")), Some(&FileAt::Refused));
        assert_eq!(tenants.get(&t("empty")), Some(&FileAt::Missing));
        assert_eq!(tenants.get(&t("linked")), Some(&FileAt::Moved));
        assert_eq!(tenants.get(&t("module")), Some(&FileAt::Moved));
        assert_eq!(tenants.len(), 5, "{tenants:?}");
    }
}
