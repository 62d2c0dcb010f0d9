//! git mode's plumbing: every `git` command line keyward runs is here. Each runs without a
//! shell, with no prompts, with a timeout after which it is killed with its children, and
//! with the settings keyward relies on passed per call (ops' global configuration may sign
//! commits, run hooks, convert line endings or start a gc; keyward's commands do none of
//! that). Ops' SSH keys, credential helpers and known_hosts work unchanged.
//!
//! keyward never moves the checked-out branch or writes `.git/index` while it takes writes:
//! it fetches into a ref of its own (`refs/keyward/remote`), builds commits with `git
//! fast-import` (no index at all), and pushes commit ids. Only [`Repo::fast_forward`], which
//! brings the work tree up to what is served, touches the branch, and only forward.
//!
//! By job: [`command`] runs git; [`remote`] fetches and pushes; [`commit`] builds keyward's
//! commits; [`tree`] reads what a commit holds; [`log`] reads history; [`work_tree`] is the
//! shared clone's checkout and index; [`error`] says why a command failed.

mod command;
mod commit;
mod error;
mod log;
mod remote;
mod tree;
mod work_tree;

use std::path::{Path, PathBuf};
use std::time::Duration;

use command::run;
pub use commit::NewCommit;
pub use error::{GitError, RemoteError};
pub use log::LoggedCommit;
pub use tree::TreeFile;
pub use work_tree::{staged_files, user_identity};

/// How long a git command may take unless its caller gives it a bound of its own.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The ref keyward fetches the remote branch into: never the remote-tracking branch a
/// deploy job's `git fetch` or `git pull` updates, so the two never race on a ref lock.
pub const REMOTE_REF: &str = "refs/keyward/remote";
/// Where a fetch lands first: `REMOTE_REF` follows only once what the new tip removed (a
/// force-push) has been reported, so a crash in between reports it at the next start.
pub const FETCHED_REF: &str = "refs/keyward/fetched";
/// keyward's own commits not on the remote yet (`async` mode, or no remote at all).
pub const LOCAL_REF: &str = "refs/keyward/local";
/// The commits a replay under way has made so far (`async` mode), kept from `git gc`.
pub const REPLAY_REF: &str = "refs/keyward/replay";

/// A work tree keyward reads and commits to: `git -C <toplevel> ...`.
#[derive(Debug, Clone)]
pub struct Repo {
    top: PathBuf,
}

/// Who made a change, as the commit's author.
#[derive(Debug, Clone)]
pub struct Author {
    pub name: String,
    pub email: String,
}

impl Author {
    /// A principal as a commit author: a `sub` that looks like an address is its email.
    pub fn of(principal: &str) -> Self {
        let email = if principal.contains('@') && !principal.starts_with("apikey:") {
            principal.to_owned()
        } else {
            String::new()
        };
        Self {
            name: principal.to_owned(),
            email,
        }
    }
}

impl Repo {
    /// The work tree that holds `dir`.
    pub fn discover(dir: &Path) -> Result<Self, GitError> {
        let out = run(
            dir,
            &["rev-parse", "--show-toplevel"],
            &[],
            None,
            DEFAULT_TIMEOUT,
        )?;
        Ok(Self {
            top: PathBuf::from(out.trim_end()),
        })
    }

    pub fn top(&self) -> &Path {
        &self.top
    }

    fn git(&self, args: &[&str]) -> Result<String, GitError> {
        run(&self.top, args, &[], None, DEFAULT_TIMEOUT)
    }

    /// The commit `rev` names, if any.
    pub fn rev(&self, rev: &str) -> Option<String> {
        self.git(&[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ])
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
    }

    pub fn head(&self) -> Option<String> {
        self.rev("HEAD")
    }

    /// The branch checked out (None: a detached HEAD).
    pub fn current_branch(&self) -> Option<String> {
        self.git(&["symbolic-ref", "--quiet", "--short", "HEAD"])
            .ok()
            .map(|b| b.trim().to_owned())
            .filter(|b| !b.is_empty())
    }

    /// Points `name` at `commit` (or deletes it).
    pub fn set_ref(&self, name: &str, commit: Option<&str>) -> Result<(), GitError> {
        match commit {
            Some(c) => self.git(&["update-ref", name, c]).map(drop),
            None => self.git(&["update-ref", "-d", name]).map(drop),
        }
    }

    /// Is this a shallow clone (its history cut short)?
    pub fn is_shallow(&self) -> bool {
        self.git(&["rev-parse", "--is-shallow-repository"])
            .is_ok_and(|s| s.trim() == "true")
    }

    /// The git directory (`.git`, or where a worktree's lives).
    pub fn git_dir(&self) -> Option<PathBuf> {
        let dir = self.git(&["rev-parse", "--absolute-git-dir"]).ok()?;
        Some(PathBuf::from(dir.trim_end()))
    }
}
