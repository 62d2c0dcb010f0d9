//! git mode's plumbing: the `git` command line, run without a shell, with a timeout on every
//! call, no prompts, and the settings keyward relies on passed per call (ops' global
//! configuration may sign commits, run hooks or convert line endings; keyward's commits do
//! none of that). Ops' SSH keys, credential helpers and known_hosts work unchanged.

mod journal;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub use journal::{Journal, Pending, PendingChange};

/// How long one git command may take before it is killed.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Settings keyward's own git commands rely on, whatever the global configuration says.
const CONFIG: &[&str] = &[
    "core.hooksPath=/dev/null",
    "commit.gpgsign=false",
    "core.autocrlf=false",
    "core.fsmonitor=false",
    "user.useConfigOnly=false",
    "advice.detachedHead=false",
];

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git is not installed or cannot be run: {0}")]
    Missing(std::io::Error),
    #[error("`git {command}` took longer than {}s and was stopped", TIMEOUT.as_secs())]
    Timeout { command: String },
    #[error("`git {command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
}

/// Why a push did not land.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("the remote has commits keyward does not have")]
    NotFastForward,
    #[error("the remote cannot be reached: {0}")]
    Unreachable(String),
    #[error("the remote refused the push: {0}")]
    Refused(String),
}

/// A work tree keyward commits to: `git -C <toplevel> ...`.
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
        let out = run(dir, &["rev-parse", "--show-toplevel"], &[])?;
        Ok(Self {
            top: PathBuf::from(out.trim_end()),
        })
    }

    pub fn top(&self) -> &Path {
        &self.top
    }

    /// Runs `git args` in the work tree; stdout on success.
    pub fn run(&self, args: &[&str]) -> Result<String, GitError> {
        run(&self.top, args, &[])
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Result<String, GitError> {
        run(&self.top, args, env)
    }

    /// The commit `rev` names, if any.
    pub fn rev(&self, rev: &str) -> Option<String> {
        self.run(&[
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

    /// Is `ancestor` an ancestor of (or equal to) `of`?
    pub fn is_ancestor(&self, ancestor: &str, of: &str) -> bool {
        self.run(&["merge-base", "--is-ancestor", ancestor, of])
            .is_ok()
    }

    /// Paths under `pathspec` with uncommitted changes (staged, unstaged or untracked).
    pub fn dirty(&self, pathspec: &str) -> Result<Vec<String>, GitError> {
        let out = self.run(&[
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--",
            pathspec,
        ])?;
        Ok(out
            .split('\0')
            .filter(|l| l.len() > 3)
            .map(|l| l[3..].to_owned())
            .collect())
    }

    /// Commits exactly `path` as it is in the work tree, whatever else is staged; returns
    /// the new commit.
    pub fn commit_path(
        &self,
        path: &str,
        subject: &str,
        body: &str,
        author: &Author,
    ) -> Result<String, GitError> {
        self.run(&["add", "--", path])?;
        let message = format!("{subject}\n\n{body}\n");
        self.run_env(
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
        )?;
        self.head().ok_or_else(|| GitError::Failed {
            command: "commit".into(),
            stderr: "no HEAD after a commit".into(),
        })
    }

    /// Moves the branch and the work tree to `rev`, keeping uncommitted changes that do not
    /// collide (`git reset --keep`): keyward never throws away an edit it did not make.
    pub fn reset_keep(&self, rev: &str) -> Result<(), GitError> {
        self.run(&["reset", "--quiet", "--keep", rev]).map(drop)
    }

    /// Puts `paths` back as they are in HEAD (keyward's own unfinished write after a crash).
    pub fn restore(&self, paths: &[String]) -> Result<(), GitError> {
        if paths.is_empty() {
            return Ok(());
        }
        let mut args = vec!["checkout", "--quiet", "HEAD", "--"];
        args.extend(paths.iter().map(String::as_str));
        self.run(&args).map(drop)
    }

    pub fn fetch(&self, remote: &str, branch: &str) -> Result<(), PushError> {
        self.run(&["fetch", "--quiet", "--no-tags", remote, branch])
            .map(drop)
            .map_err(|e| PushError::Unreachable(short(&e)))
    }

    /// The remote branch as last fetched.
    pub fn remote_head(&self, remote: &str, branch: &str) -> Option<String> {
        self.rev(&format!("refs/remotes/{remote}/{branch}"))
    }

    pub fn push(&self, remote: &str, branch: &str) -> Result<(), PushError> {
        let result = run(
            &self.top,
            &[
                "push",
                "--quiet",
                remote,
                &format!("HEAD:refs/heads/{branch}"),
            ],
            &[],
        );
        match result {
            Ok(_) => {
                // Keep the remote-tracking branch in step without another fetch.
                let _ = self.run(&["fetch", "--quiet", "--no-tags", remote, branch]);
                Ok(())
            }
            Err(GitError::Failed { stderr, .. }) => Err(classify_push(&stderr)),
            Err(e) => Err(PushError::Unreachable(short(&e))),
        }
    }

    /// Is this a shallow clone (its history cut short)?
    pub fn is_shallow(&self) -> bool {
        self.run(&["rev-parse", "--is-shallow-repository"])
            .is_ok_and(|s| s.trim() == "true")
    }

    /// The git directory (`.git`, or where a worktree's lives).
    pub fn git_dir(&self) -> Option<PathBuf> {
        let dir = self.run(&["rev-parse", "--absolute-git-dir"]).ok()?;
        Some(PathBuf::from(dir.trim_end()))
    }
}

fn classify_push(stderr: &str) -> PushError {
    let s = stderr.to_ascii_lowercase();
    // A ref that moved while the remote took our push is the same race as a refused one.
    let moved = s.contains("cannot lock ref") || s.contains("failed to update ref");
    if moved
        || s.contains("non-fast-forward")
        || s.contains("fetch first")
        || s.contains("[rejected]")
    {
        PushError::NotFastForward
    } else if s.contains("[remote rejected]") || s.contains("protected branch") {
        PushError::Refused(first_line(stderr))
    } else {
        PushError::Unreachable(first_line(stderr))
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no answer")
        .chars()
        .take(200)
        .collect()
}

fn short(e: &GitError) -> String {
    match e {
        GitError::Failed { stderr, .. } => first_line(stderr),
        other => other.to_string(),
    }
}

/// Runs git in `dir` with keyward's settings, no prompts and a timeout.
fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<String, GitError> {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(dir);
    for c in CONFIG {
        cmd.args(["-c", c]);
    }
    cmd.args(args)
        // No prompts: git's own, and ssh's through git's askpass. Ops' ssh settings
        // (GIT_SSH_COMMAND, core.sshCommand, ~/.ssh/config) are left as they are.
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let command = args.first().copied().unwrap_or_default().to_owned();
    let mut child = cmd.spawn().map_err(GitError::Missing)?;
    let (mut stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let mut err = String::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_string(&mut out);
        }
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_string(&mut err);
        }
        (out, err)
    });
    let deadline = std::time::Instant::now() + TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(GitError::Timeout { command });
            }
        }
    };
    let (out, err) = reader.join().unwrap_or_default();
    if status.success() {
        Ok(out)
    } else {
        Err(GitError::Failed {
            command,
            stderr: err.trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_refusals_are_told_apart() {
        assert!(matches!(
            classify_push(" ! [rejected]        HEAD -> main (fetch first)\nerror: failed to push"),
            PushError::NotFastForward
        ));
        assert!(matches!(
            classify_push(" ! [remote rejected] HEAD -> main (protected branch hook declined)"),
            PushError::Refused(_)
        ));
        assert!(matches!(
            classify_push("fatal: '/nowhere' does not appear to be a git repository"),
            PushError::Unreachable(_)
        ));
    }
}
