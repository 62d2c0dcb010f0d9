//! What a commit holds: its files, their blobs, the links on a path, and the paths two
//! commits differ in. Read from git's objects, never from the work tree.

use super::command::run_bytes;
use super::{DEFAULT_TIMEOUT, GitError, Repo};

/// One file of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    pub path: String,
    /// `100644`, `100755`, `120000` (a symlink), `160000` (a submodule).
    pub mode: String,
    pub oid: String,
}

impl Repo {
    /// Every file under `prefix` in `commit` (`prefix` empty: the whole tree).
    pub fn files(&self, commit: &str, prefix: &str) -> Result<Vec<TreeFile>, GitError> {
        let mut args = vec!["ls-tree", "-r", "-z", "--full-tree", commit];
        if !prefix.is_empty() {
            args.extend(["--", prefix]);
        }
        let out = self.git(&args)?;
        Ok(out
            .split('\0')
            .filter_map(|line| {
                let (meta, path) = line.split_once('\t')?;
                let mut meta = meta.split(' ');
                let mode = meta.next()?.to_owned();
                let _kind = meta.next()?;
                let oid = meta.next()?.to_owned();
                Some(TreeFile {
                    path: path.to_owned(),
                    mode,
                    oid,
                })
            })
            .collect())
    }

    /// The first of `path` and the directories above it that `commit` holds as a symlink or
    /// a submodule, if any: what a checkout of `commit` would take out of the tree there.
    pub fn link_on_path(&self, commit: &str, path: &str) -> Result<Option<String>, GitError> {
        let mut ancestors = Vec::new();
        let mut at = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(part);
            ancestors.push(at.clone());
        }
        if ancestors.is_empty() {
            return Ok(None);
        }
        let mut args = vec!["ls-tree", "-z", "--full-tree", commit, "--"];
        args.extend(ancestors.iter().map(String::as_str));
        let out = self.git(&args)?;
        Ok(out
            .split('\0')
            .filter_map(|line| {
                let (meta, entry) = line.split_once('\t')?;
                let leaves = meta.starts_with("120000 ") || meta.starts_with("160000 ");
                (leaves && ancestors.iter().any(|a| a == entry)).then(|| entry.to_owned())
            })
            .min_by_key(String::len))
    }

    /// The contents of `objects` (blob ids, or `commit:path`), read by one `git cat-file
    /// --batch`; None for one that does not exist.
    pub fn read_blobs(&self, objects: &[String]) -> Result<Vec<Option<Vec<u8>>>, GitError> {
        if objects.is_empty() {
            return Ok(Vec::new());
        }
        let mut input = Vec::new();
        for o in objects {
            input.extend_from_slice(o.as_bytes());
            input.push(b'\n');
        }
        let out = run_bytes(
            &self.top,
            &["cat-file", "--batch"],
            &[],
            Some(input),
            DEFAULT_TIMEOUT,
        )?;
        let mut rest = out.as_slice();
        let mut blobs = Vec::with_capacity(objects.len());
        for _ in objects {
            let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                break;
            };
            let header = String::from_utf8_lossy(&rest[..nl]).into_owned();
            rest = &rest[nl + 1..];
            let mut parts = header.split(' ');
            let (_, kind, size) = (parts.next(), parts.next(), parts.next());
            match (kind, size.and_then(|s| s.parse::<usize>().ok())) {
                (Some("blob"), Some(size)) if rest.len() > size => {
                    blobs.push(Some(rest[..size].to_vec()));
                    rest = &rest[size + 1..];
                }
                (Some(_), Some(size)) if rest.len() > size => {
                    blobs.push(None);
                    rest = &rest[size + 1..];
                }
                _ => blobs.push(None),
            }
        }
        blobs.resize(objects.len(), None);
        Ok(blobs)
    }

    /// The paths under `prefix` whose content differs between two commits.
    pub fn changed_paths(
        &self,
        from: &str,
        to: &str,
        prefix: &str,
    ) -> Result<Vec<String>, GitError> {
        let mut args = vec![
            "diff-tree",
            "-r",
            "-z",
            "--name-only",
            "--no-commit-id",
            from,
            to,
        ];
        if !prefix.is_empty() {
            args.extend(["--", prefix]);
        }
        let out = self.git(&args)?;
        Ok(out
            .split('\0')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect())
    }
}
