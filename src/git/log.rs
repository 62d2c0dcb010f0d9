//! A branch's history: `git log` read field by field, the commits between two tips, who
//! descends from whom, and the commit-graph that keeps path-limited logs fast.

use std::time::Duration;

use super::command::run;
use super::{DEFAULT_TIMEOUT, GitError, Repo};

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

    /// The first parent of `commit`.
    pub fn parent(&self, commit: &str) -> Option<String> {
        self.rev(&format!("{commit}^1"))
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
}
