//! A tenant's file history from `git log` on the served commit, newest first: keyward's
//! commits by their verb and key, ops' own commits as `edit`s. It reads refs and objects
//! only, so it never waits on the worker or a push. Paged: a cursor names the commit the
//! first page was read from and how many entries came before, so pages stay stable while
//! new commits arrive, and a page costs the commits up to its end, all of them commits
//! that touched the tenant's file (git's changed-path Bloom filters, which keyward keeps
//! current, skip the others without reading them).

use super::file_path;
use crate::domain::{KeyName, TenantId};
use crate::git::{LoggedCommit, Repo};
use crate::keys::intent::Verb;
use crate::keys::{Error, GitFailure};

/// One page of a tenant's history from git.
#[derive(Debug)]
pub struct History {
    pub entries: Vec<HistoryEntry>,
    /// The clone's history is cut short (`git clone --depth`): older commits exist.
    pub shallow: bool,
    /// Where the next page starts, when there is one.
    pub next: Option<HistoryCursor>,
}

/// Which page: `offset` entries into the history of `tip`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryCursor {
    pub tip: String,
    pub offset: usize,
}

impl HistoryCursor {
    /// The most entries a cursor may skip.
    const MAX_OFFSET: usize = 1_000_000;

    pub fn encode(&self) -> String {
        format!("{}.{}", self.tip, self.offset)
    }

    pub fn parse(s: &str) -> Option<Self> {
        let (tip, offset) = s.split_once('.')?;
        let hex = (40..=64).contains(&tip.len()) && tip.bytes().all(|b| b.is_ascii_hexdigit());
        let offset: usize = offset.parse().ok().filter(|o| *o <= Self::MAX_OFFSET)?;
        hex.then(|| Self {
            tip: tip.to_ascii_lowercase(),
            offset,
        })
    }
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub commit: String,
    pub author: String,
    #[schema(format = DateTime)]
    pub date: String,
    /// `create`, `update`, `rotate`, `delete`, `revoke`, or `edit` (not keyward's commit).
    pub action: String,
    #[schema(required = true)]
    pub key_name: Option<String>,
}

pub(super) fn history(
    repo: &Repo,
    prefix: &str,
    served: &str,
    tenant: &TenantId,
    key: Option<&KeyName>,
    limit: usize,
    cursor: Option<HistoryCursor>,
) -> Result<History, Error> {
    let path = file_path(prefix, tenant);
    let (tip, offset) = match cursor {
        Some(c) if repo.rev(&c.tip).is_some() => (c.tip, c.offset),
        Some(_) => {
            return Err(Error::Validation(vec![crate::domain::FieldError::new(
                "cursor",
                "not a cursor this server can page from",
            )]));
        }
        None => (served.to_owned(), 0),
    };
    let want = offset + limit + 1;
    let log = |max: Option<usize>| -> Result<Vec<(i64, HistoryEntry)>, Error> {
        let commits = repo
            .log(&tip, &[], Some(&path), max, None)
            .map_err(git_failed)?;
        Ok(commits.into_iter().map(|c| entry_of(c, tenant)).collect())
    };
    let entries = match key {
        None => log(Some(want))?,
        Some(key) => {
            // Every commit that touched the tenant's file (git's changed-path filters find
            // them without reading the others). keyward's commits name their key in the
            // subject; only ops' commits are diffed, for a line naming it.
            let all = log(None)?;
            let edits: Vec<&str> = all
                .iter()
                .filter(|(_, e)| e.key_name.is_none())
                .map(|(_, e)| e.commit.as_str())
                .collect();
            let named = format!(
                "name:[[:space:]]*['\"]?{}(['\"[:space:]#]|$)",
                regex_escape(key.as_str())
            );
            let touched: std::collections::HashSet<String> = repo
                .touching_lines(&edits, &named, &path)
                .map_err(git_failed)?
                .into_iter()
                .collect();
            all.into_iter()
                .filter(|(_, e)| match &e.key_name {
                    Some(k) => k == key.as_str(),
                    None => touched.contains(&e.commit),
                })
                .collect()
        }
    };
    let more = entries.len() > offset + limit;
    let entries: Vec<HistoryEntry> = entries
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|(_, e)| e)
        .collect();
    Ok(History {
        next: more.then(|| HistoryCursor {
            tip,
            offset: offset + limit,
        }),
        entries,
        shallow: repo.is_shallow(),
    })
}

fn git_failed(e: crate::git::GitError) -> Error {
    tracing::error!(error = %e, stderr = e.stderr(), "git log failed");
    GitFailure::History(std::sync::Arc::new(e)).into()
}

/// A commit as a history entry: keyward's own name their verb and key in the subject.
fn entry_of(commit: LoggedCommit, tenant: &TenantId) -> (i64, HistoryEntry) {
    let ours = commit.subject.split_once(' ').and_then(|(verb, rest)| {
        let (t, key) = rest.split_once('/')?;
        (Verb::parse(verb).is_some() && t == tenant.as_str() && KeyName::parse(key).is_ok())
            .then(|| (verb.to_owned(), key.to_owned()))
    });
    let (action, key_name) = match ours {
        Some((verb, key)) => (verb, Some(key)),
        None => ("edit".to_owned(), None),
    };
    (
        commit.time,
        HistoryEntry {
            commit: commit.id,
            author: commit.author,
            date: commit.date,
            action,
            key_name,
        },
    )
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = matches!(
                c,
                '.' | '-'
                    | '['
                    | ']'
                    | '\\'
                    | '*'
                    | '^'
                    | '$'
                    | '+'
                    | '?'
                    | '('
                    | ')'
                    | '|'
                    | '{'
                    | '}'
            );
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(id: &str, subject: &str) -> LoggedCommit {
        LoggedCommit {
            id: id.into(),
            author: "alice".into(),
            date: "2026-11-28T10:00:00+00:00".into(),
            time: 1,
            committer: "keyward".into(),
            subject: subject.into(),
            body: String::new(),
        }
    }

    #[test]
    fn commits_tell_keyward_s_writes_from_ops_edits() {
        let acme = TenantId::parse("acme").unwrap();
        let (_, ours) = entry_of(commit("abc", "create acme/ci-deploy"), &acme);
        assert_eq!(
            (ours.action.as_str(), ours.key_name.as_deref()),
            ("create", Some("ci-deploy"))
        );
        let (_, theirs) = entry_of(commit("def", "Rotate keys for Q4"), &acme);
        assert_eq!((theirs.action.as_str(), theirs.key_name), ("edit", None));
        let (_, other_tenant) = entry_of(commit("ghi", "create globex/x"), &acme);
        assert_eq!(other_tenant.action, "edit");
    }

    #[test]
    fn a_cursor_reads_back_as_given_and_nothing_else_is_one() {
        let c = HistoryCursor {
            tip: "a".repeat(40),
            offset: 50,
        };
        assert_eq!(HistoryCursor::parse(&c.encode()), Some(c));
        for bad in [
            "",
            "x.1",
            &format!("{}.-1", "a".repeat(40)),
            &format!("{}.99999999", "a".repeat(40)),
        ] {
            assert_eq!(HistoryCursor::parse(bad), None, "{bad}");
        }
    }
}
