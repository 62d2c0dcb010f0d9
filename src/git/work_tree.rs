//! The checked-out clone that people and deploy jobs share: the fast-forward that brings it
//! up to what is served, its uncommitted changes, its index, and a person's commit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::command::{run, run_bytes};
use super::{Author, DEFAULT_TIMEOUT, GitError, Repo};

/// How long keyward's fast-forward of the work tree may take.
const FAST_FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

impl Repo {
    /// Moves the checked-out branch, its index and the work tree forward to `commit`
    /// (`git merge --ff-only`): never backward or sideways, and never over an uncommitted
    /// edit. Used only when the clone has been quiet for a while (see `replication::sync`).
    /// Should it run out of time, the locks it took (and only those) are removed.
    pub fn fast_forward(&self, commit: &str, branch: &str) -> Result<(), GitError> {
        let locks = self.merge_locks(branch);
        let held_before: Vec<bool> = locks.iter().map(|l| l.exists()).collect();
        let merged = run(
            &self.top,
            &["merge", "--ff-only", "--quiet", "--no-stat", commit],
            &[],
            None,
            FAST_FORWARD_TIMEOUT,
        );
        if let Err(GitError::Timeout { .. }) = &merged {
            for (lock, before) in locks.iter().zip(held_before) {
                if !before {
                    let _ = std::fs::remove_file(lock);
                }
            }
        }
        merged.map(drop)
    }

    /// The lock files `git merge --ff-only` takes in the clone.
    pub fn merge_locks(&self, branch: &str) -> Vec<PathBuf> {
        let Some(dir) = self.git_dir() else {
            return Vec::new();
        };
        let mut locks: Vec<PathBuf> = [
            "index.lock",
            "HEAD.lock",
            "ORIG_HEAD.lock",
            "AUTO_MERGE.lock",
            "packed-refs.lock",
        ]
        .iter()
        .map(|f| dir.join(f))
        .collect();
        locks.push(dir.join(format!("refs/heads/{branch}.lock")));
        locks
    }

    /// Paths under `pathspec` with uncommitted changes (staged, unstaged or untracked).
    pub fn dirty(&self, pathspec: &str) -> Result<Vec<String>, GitError> {
        let out = self.git(&[
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--",
            pathspec,
        ])?;
        let mut paths = Vec::new();
        let mut fields = out.split('\0');
        while let Some(entry) = fields.next() {
            let Some(path) = entry.get(3..).filter(|p| !p.is_empty()) else {
                continue;
            };
            // A rename or copy is followed by its source's path, a field of its own.
            if entry.starts_with('R') || entry.starts_with('C') {
                fields.next();
            }
            paths.push(path.to_owned());
        }
        Ok(paths)
    }

    /// Commits exactly `path` as it is in the work tree, whatever else is staged; returns
    /// the new commit. For `keyward keys new --write`, a person's command.
    pub fn commit_path(
        &self,
        path: &str,
        subject: &str,
        body: &str,
        author: &Author,
    ) -> Result<String, GitError> {
        self.git(&["add", "--", path])?;
        let message = format!("{subject}\n\n{body}\n");
        run(
            &self.top,
            &[
                "commit",
                "--quiet",
                "--no-verify",
                "--only",
                "-m",
                &message,
                "--",
                path,
            ],
            &[
                ("GIT_AUTHOR_NAME", &author.name),
                ("GIT_AUTHOR_EMAIL", &author.email),
                ("GIT_COMMITTER_NAME", "keyward"),
                ("GIT_COMMITTER_EMAIL", "keyward@localhost"),
            ],
            None,
            DEFAULT_TIMEOUT,
        )?;
        self.head().ok_or_else(|| GitError::Failed {
            command: "commit".into(),
            stderr: "no HEAD after a commit".into(),
        })
    }
}

/// Every file staged in the index under `dir` (the directory git runs in), as staged, with
/// its path relative to `dir`: what a pre-commit hook must check (`keyward check
/// --staged`).
pub fn staged_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, GitError> {
    let git = |args: &[&str]| run_bytes(dir, args, &[], None, DEFAULT_TIMEOUT);
    let listed = git(&["ls-files", "-z", "--cached", "--full-name", "--", "."])?;
    let prefix = String::from_utf8_lossy(&git(&["rev-parse", "--show-prefix"])?)
        .trim_end()
        .to_owned();
    let mut files = Vec::new();
    for full in listed.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let full = String::from_utf8_lossy(full);
        let Some(rest) = full.strip_prefix(&prefix) else {
            continue;
        };
        let blob = git(&["show", &format!(":{full}")])?;
        files.push((rest.to_owned(), blob));
    }
    Ok(files)
}

/// Who runs a command, as git knows them in `dir`: `user.email`, else `user.name`.
pub fn user_identity(dir: &Path) -> Option<String> {
    ["user.email", "user.name"].iter().find_map(|key| {
        run(dir, &["config", key], &[], None, DEFAULT_TIMEOUT)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    })
}
