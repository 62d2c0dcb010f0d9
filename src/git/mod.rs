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

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a git command may take unless its caller gives it a bound of its own.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long keyward's fast-forward of the work tree may take.
const FAST_FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

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
/// Where `git fast-import` leaves the last batch of commits.
const SCRATCH_REF: &str = "refs/keyward/scratch";

/// Settings keyward's own git commands rely on, whatever the global configuration says.
const CONFIG: &[&str] = &[
    "core.hooksPath=/dev/null",
    "commit.gpgsign=false",
    "core.autocrlf=false",
    "core.fsmonitor=false",
    "user.useConfigOnly=false",
    "advice.detachedHead=false",
    "gc.auto=0",
    "maintenance.auto=false",
    "fetch.writeCommitGraph=false",
    "fetch.recurseSubmodules=false",
];

/// Why a git command did not do its job. Typed, so a caller keeps it as the `source` of
/// its own error and the log shows the whole chain; git's stderr is kept apart (`stderr`),
/// for the log only.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git is not installed or cannot be run")]
    Missing(#[source] std::io::Error),
    #[error("`git {command}` took longer than {}s and was stopped", .limit.as_secs())]
    Timeout { command: String, limit: Duration },
    /// git's own words stay in the logs: they can name paths, URLs and file content.
    #[error("`git {command}` failed")]
    Failed { command: String, stderr: String },
}

impl GitError {
    /// What git printed, for the log only (never for a client).
    pub fn stderr(&self) -> &str {
        match self {
            Self::Failed { stderr, .. } => stderr,
            _ => "",
        }
    }
}

/// Why a fetch or a push did not do its job. The texts are keyward's, never git's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    #[error("the remote has commits keyward does not have")]
    NotFastForward,
    #[error("the remote cannot be reached")]
    Unreachable,
    #[error("the remote refused the push (a protected branch or a hook)")]
    Refused,
    /// A push that failed late or ran out of time: it may still land.
    #[error("the remote did not answer in time")]
    Unknown,
}

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

/// One commit for `git fast-import`: one file's new content on top of the previous one.
#[derive(Debug, Clone)]
pub struct NewCommit<'a> {
    pub author: &'a Author,
    /// Seconds since the epoch.
    pub time: i64,
    pub message: &'a str,
    pub path: &'a str,
    pub content: &'a [u8],
}

/// One file of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    pub path: String,
    /// `100644`, `100755`, `120000` (a symlink), `160000` (a submodule).
    pub mode: String,
    pub oid: String,
}

/// A commit as `git log` gives it.
#[derive(Debug, Clone)]
pub struct LoggedCommit {
    pub id: String,
    pub author: String,
    /// The author date, strict ISO 8601.
    pub date: String,
    /// The committer date, seconds since the epoch.
    pub time: i64,
    pub committer: String,
    pub subject: String,
    pub body: String,
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

    /// The URL keyward pushes to. Pushing to the URL rather than the remote's name leaves
    /// the remote-tracking branch to ops' own fetches.
    pub fn push_url(&self, remote: &str) -> Option<String> {
        self.git(&["remote", "get-url", "--push", remote])
            .ok()
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
    }

    /// Is `ancestor` an ancestor of (or equal to) `of`?
    pub fn is_ancestor(&self, ancestor: &str, of: &str) -> bool {
        self.git(&["merge-base", "--is-ancestor", ancestor, of])
            .is_ok()
    }

    /// The commits reachable from `tip` and not from `old`: one `git rev-list`, where a
    /// question per commit would spawn a process each. With `old` unknown here, every
    /// commit reachable from `tip`.
    pub fn commits_since(
        &self,
        tip: &str,
        old: Option<&str>,
    ) -> Result<std::collections::HashSet<String>, GitError> {
        let list = |args: &[&str]| {
            self.git(args)
                .map(|out| out.lines().map(str::to_owned).collect())
        };
        match old {
            Some(old) => list(&["rev-list", tip, &format!("^{old}"), "--"])
                .or_else(|_| list(&["rev-list", tip, "--"])),
            None => list(&["rev-list", tip, "--"]),
        }
    }

    /// Points `name` at `commit` (or deletes it).
    pub fn set_ref(&self, name: &str, commit: Option<&str>) -> Result<(), GitError> {
        match commit {
            Some(c) => self.git(&["update-ref", name, c]).map(drop),
            None => self.git(&["update-ref", "-d", name]).map(drop),
        }
    }

    /// Fetches the remote branch into the ref `into` and returns its commit. No `FETCH_HEAD`
    /// is written and no remote-tracking branch is touched: a deploy job's `git pull` on
    /// the same clone reads and writes those.
    pub fn fetch_into(
        &self,
        remote: &str,
        branch: &str,
        into: &str,
        limit: Duration,
    ) -> Result<String, RemoteError> {
        let refspec = format!("+refs/heads/{branch}:{into}");
        let fetched = run(
            &self.top,
            &[
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                "--refmap=",
                remote,
                &refspec,
            ],
            &[],
            None,
            limit,
        );
        match fetched {
            Ok(_) => self.rev(into).ok_or(RemoteError::Unreachable),
            Err(e) => {
                // git's words name the remote and carry its hooks' text: for ops, not clients.
                tracing::warn!(remote, stderr = e.stderr(), "git fetch failed");
                Err(match e {
                    GitError::Timeout { .. } => RemoteError::Unknown,
                    _ => RemoteError::Unreachable,
                })
            }
        }
    }

    /// The remote branch's commit as the remote says it now, without fetching.
    pub fn remote_tip(&self, remote: &str, branch: &str, limit: Duration) -> Option<String> {
        let out = run(
            &self.top,
            &[
                "ls-remote",
                "--heads",
                remote,
                &format!("refs/heads/{branch}"),
            ],
            &[],
            None,
            limit,
        )
        .ok()?;
        out.split_whitespace().next().map(str::to_owned)
    }

    /// Pushes `commit` as the remote's `branch`, never forced.
    pub fn push(
        &self,
        url: &str,
        commit: &str,
        branch: &str,
        limit: Duration,
    ) -> Result<(), RemoteError> {
        let refspec = format!("{commit}:refs/heads/{branch}");
        let pushed = run(
            &self.top,
            &["push", "--quiet", url, &refspec],
            &[],
            None,
            limit,
        );
        match pushed {
            Ok(_) => Ok(()),
            Err(GitError::Timeout { .. }) => Err(RemoteError::Unknown),
            Err(e) => {
                // git's words name the remote and carry its hooks' text: for ops, not clients.
                tracing::warn!(url, stderr = e.stderr(), "git push failed");
                Err(match &e {
                    GitError::Failed { stderr, .. } => classify_push(stderr),
                    _ => RemoteError::Unreachable,
                })
            }
        }
    }

    /// Writes `commits` in order, the first on `parent`, with `git fast-import` (one
    /// process for all of them, no index, no work tree); returns their ids.
    pub fn commit_all(
        &self,
        parent: &str,
        commits: &[NewCommit<'_>],
    ) -> Result<Vec<String>, GitError> {
        if commits.is_empty() {
            return Ok(Vec::new());
        }
        let mut stream = Vec::new();
        stream.extend_from_slice(b"feature done\n");
        for (i, c) in commits.iter().enumerate() {
            let mark = i + 1;
            let from = if i == 0 {
                parent.to_owned()
            } else {
                format!(":{i}")
            };
            let who = format!(
                "{} <{}> {} +0000",
                sanitize(&c.author.name),
                sanitize(&c.author.email),
                c.time
            );
            let _ = write!(
                stream,
                "commit {SCRATCH_REF}\nmark :{mark}\nauthor {who}\ncommitter keyward <keyward@localhost> {} +0000\ndata {}\n{}\nfrom {from}\nM 100644 inline {}\ndata {}\n",
                c.time,
                c.message.len(),
                c.message,
                c.path,
                c.content.len()
            );
            stream.extend_from_slice(c.content);
            let _ = write!(stream, "\nget-mark :{mark}\n");
        }
        stream.extend_from_slice(b"done\n");
        let out = run(
            &self.top,
            &["fast-import", "--quiet", "--force", "--cat-blob-fd=1"],
            &[],
            Some(stream),
            DEFAULT_TIMEOUT,
        )?;
        let ids: Vec<String> = out.lines().map(|l| l.trim().to_owned()).collect();
        if ids.len() != commits.len() || ids.iter().any(|id| id.len() < 40) {
            return Err(GitError::Failed {
                command: "fast-import".into(),
                stderr: "it did not name every commit it made".into(),
            });
        }
        Ok(ids)
    }

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

    /// Commits reachable from `tip` and not from any of `not`, newest first, touching
    /// `path` when one is given; at most `max`, and none older than `since` (`git log
    /// --since`) when given.
    pub fn log(
        &self,
        tip: &str,
        not: &[&str],
        path: Option<&str>,
        max: Option<usize>,
        since: Option<&str>,
    ) -> Result<Vec<LoggedCommit>, GitError> {
        let max = max.map(|m| format!("--max-count={m}"));
        let since = since.map(|s| format!("--since={s}"));
        let mut args = vec!["log", "-z", LOG_FORMAT];
        args.extend(max.as_deref());
        args.extend(since.as_deref());
        args.push(tip);
        if !not.is_empty() {
            args.push("--not");
            args.extend_from_slice(not);
        }
        args.push("--");
        args.extend(path);
        parse_log(&self.git(&args)?)
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

    /// Which of `commits` change a line of `path` that matches `pattern` (`git log -G`),
    /// diffing those commits only.
    pub fn touching_lines(
        &self,
        commits: &[&str],
        pattern: &str,
        path: &str,
    ) -> Result<Vec<String>, GitError> {
        if commits.is_empty() {
            return Ok(Vec::new());
        }
        let mut input = commits.join("\n").into_bytes();
        input.push(b'\n');
        let g = format!("-G{pattern}");
        let out = run(
            &self.top,
            &[
                "log",
                "--no-walk=unsorted",
                "--stdin",
                "--format=%H",
                &g,
                "--",
                path,
            ],
            &[],
            Some(input),
            DEFAULT_TIMEOUT,
        )?;
        Ok(out
            .lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect())
    }

    /// The first parent of `commit`.
    pub fn parent(&self, commit: &str) -> Option<String> {
        self.rev(&format!("{commit}^1"))
    }

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

    /// Writes git's commit-graph with changed-path Bloom filters, which let a path-limited
    /// `git log` skip the commits that did not touch the path without reading them. Slow on
    /// a large history: run it off every request's way.
    pub fn write_commit_graph(&self) -> Result<(), GitError> {
        run(
            &self.top,
            &[
                "commit-graph",
                "write",
                "--reachable",
                "--changed-paths",
                "--no-progress",
            ],
            &[],
            None,
            Duration::from_secs(600),
        )
        .map(drop)
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

/// `git log -z` with one NUL-terminated field each: git ends a commit's text at its first
/// NUL, so no subject, body or name can hold one, and commit text cannot shift a field or
/// start a record. (Printable separators such as `%x1f` can be typed into a subject.)
const LOG_FORMAT: &str = "--format=%H%x00%an%x00%aI%x00%ct%x00%cn%x00%s%x00%b";
const LOG_FIELDS: usize = 7;

/// Reads `git log -z` output in `LOG_FORMAT`: every record exactly `LOG_FIELDS` fields (the
/// last ended by `-z`'s own NUL), each starting with a commit id; anything else is refused
/// whole rather than read with its fields out of place.
fn parse_log(out: &str) -> Result<Vec<LoggedCommit>, GitError> {
    let malformed = || GitError::Failed {
        command: "log".into(),
        stderr: "its output is not one record of fields per commit".into(),
    };
    let mut fields: Vec<&str> = out.split('\0').collect();
    // The terminator after the last record leaves one empty piece behind it.
    if fields.last() == Some(&"") {
        fields.pop();
    }
    if !fields.len().is_multiple_of(LOG_FIELDS) {
        return Err(malformed());
    }
    fields
        .chunks_exact(LOG_FIELDS)
        .map(|f| {
            // Between records git puts the NUL only: the next id follows at once.
            let id = f[0].trim_start_matches('\n');
            let hex = id.len() >= 40 && id.bytes().all(|b| b.is_ascii_hexdigit());
            let time = f[3].parse().map_err(|_| malformed())?;
            if !hex {
                return Err(malformed());
            }
            Ok(LoggedCommit {
                id: id.to_owned(),
                author: f[1].to_owned(),
                date: f[2].to_owned(),
                time,
                committer: f[4].to_owned(),
                subject: f[5].to_owned(),
                body: f[6].trim().to_owned(),
            })
        })
        .collect()
}

/// A name or address as fast-import takes it: no angle brackets or line breaks.
fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '<' | '>' | '\n' | '\r' | '\0'))
        .collect()
}

fn classify_push(stderr: &str) -> RemoteError {
    let s = stderr.to_ascii_lowercase();
    // A ref that moved while the remote took our push is the same race as a refused one.
    let moved = s.contains("cannot lock ref") || s.contains("failed to update ref");
    if moved
        || s.contains("non-fast-forward")
        || s.contains("fetch first")
        || s.contains("[rejected]")
    {
        RemoteError::NotFastForward
    } else if s.contains("[remote rejected]") || s.contains("protected branch") {
        RemoteError::Refused
    } else if s.contains("does not appear to be a git repository")
        || s.contains("could not read from remote repository")
        || s.contains("could not resolve host")
        || s.contains("connection refused")
        || s.contains("repository not found")
        || s.contains("authentication failed")
    {
        // Said before any object was sent: the push did not happen.
        RemoteError::Unreachable
    } else {
        RemoteError::Unknown
    }
}

/// Runs git in `dir` with keyward's settings, no prompts and a time limit; stdout on
/// success.
fn run(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<Vec<u8>>,
    limit: Duration,
) -> Result<String, GitError> {
    run_bytes(dir, args, env, stdin, limit).map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn run_bytes(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<Vec<u8>>,
    limit: Duration,
) -> Result<Vec<u8>, GitError> {
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
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a timeout kills git and everything it started (ssh, a
        // local remote's receive-pack and its hooks).
        .process_group(0);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let command = args.first().copied().unwrap_or_default().to_owned();
    let mut child = cmd.spawn().map_err(GitError::Missing)?;
    let feeder = stdin.and_then(|input| {
        let mut pipe = child.stdin.take()?;
        Some(std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        }))
    });
    let (mut stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
    let err_reader = std::thread::spawn(move || {
        let mut err = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut err);
        }
        err
    });
    let out_reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut out);
        }
        out
    });
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_micros(200);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(5));
            }
            _ => {
                kill_group(child.id());
                let _ = child.kill();
                let _ = child.wait();
                return Err(GitError::Timeout { command, limit });
            }
        }
    };
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if status.success() {
        Ok(out)
    } else {
        Err(GitError::Failed {
            command,
            stderr: String::from_utf8_lossy(&err).trim().to_owned(),
        })
    }
}

fn kill_group(pid: u32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_records_are_fields_between_nuls_and_anything_else_is_refused() {
        let id = "a".repeat(40);
        let other = "b".repeat(40);
        let out = format!(
            "{id}\0ops\u{1f}x\0d\x001\0ops\0s\u{1e}{other}\0body\n\0\n{other}\0a\0d\x002\0c\0s\0\0"
        );
        let log = parse_log(&out).unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].subject, format!("s\u{1e}{other}"));
        assert_eq!((log[1].id.as_str(), log[1].time), (other.as_str(), 2));
        assert!(parse_log(&format!("{id}\0a\0d\x001\0c\0s\0")).is_err());
        assert!(parse_log("not-an-id\0a\0d\x001\0c\0s\0\0").is_err());
        assert!(parse_log("").unwrap().is_empty());
    }

    #[test]
    fn push_refusals_are_told_apart() {
        assert_eq!(
            classify_push(" ! [rejected]        HEAD -> main (fetch first)\nerror: failed to push"),
            RemoteError::NotFastForward
        );
        assert_eq!(
            classify_push(" ! [remote rejected] HEAD -> main (protected branch hook declined)"),
            RemoteError::Refused
        );
        assert_eq!(
            classify_push("fatal: '/nowhere' does not appear to be a git repository"),
            RemoteError::Unreachable
        );
        assert_eq!(
            classify_push("error: RPC failed; curl 56 Recv failure: Connection reset by peer"),
            RemoteError::Unknown
        );
    }
}
