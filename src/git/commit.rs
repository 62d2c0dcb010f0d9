//! keyward's own commits, built with `git fast-import`: no index, no work tree, one process
//! for a whole batch.

use std::io::Write;

use super::command::run;
use super::{Author, DEFAULT_TIMEOUT, GitError, Repo};

/// Where `git fast-import` leaves the last batch of commits.
const SCRATCH_REF: &str = "refs/keyward/scratch";

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

impl Repo {
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
}

/// A name or address as fast-import takes it: no angle brackets or line breaks.
fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '<' | '>' | '\n' | '\r' | '\0'))
        .collect()
}
