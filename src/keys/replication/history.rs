//! A tenant's file history from `git log` on the served commit, newest first: keyward's
//! commits by their verb and key, ops' own commits as `edit`s. It reads refs and objects
//! only, so it never waits on the worker or a push.

use super::file_path;
use crate::domain::{KeyName, TenantId};
use crate::git::Repo;
use crate::keys::Error;
use crate::keys::intent::Verb;

/// A tenant's history from git.
#[derive(Debug)]
pub struct History {
    pub entries: Vec<HistoryEntry>,
    /// The clone's history is cut short (`git clone --depth`): older commits exist.
    pub shallow: bool,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub commit: String,
    pub author: String,
    pub date: String,
    /// `create`, `update`, `rotate`, `delete`, `revoke`, or `edit` (not keyward's commit).
    pub action: String,
    pub key_name: Option<String>,
}

pub(super) fn history(
    repo: &Repo,
    prefix: &str,
    tip: &str,
    tenant: &TenantId,
    key: Option<&KeyName>,
) -> Result<History, Error> {
    let path = file_path(prefix, tenant);
    const FORMAT: &str = "--format=%H%x1f%an%x1f%aI%x1f%s%x1e";
    let log = |extra: &[&str]| -> Result<Vec<HistoryEntry>, Error> {
        let mut args = vec!["log", FORMAT];
        args.extend_from_slice(extra);
        args.extend([tip, "--", path.as_str()]);
        let out = repo.run_log(&args).map_err(|e| {
            tracing::error!(error = %e, stderr = e.stderr(), "git log failed");
            Error::Git("the history cannot be read".into())
        })?;
        Ok(out
            .split('\u{1e}')
            .filter_map(|r| parse_log_record(r, tenant))
            .collect())
    };
    let mut entries = log(&[])?;
    if let Some(key) = key {
        // keyward's commits name the key; an ops commit counts when its diff touches a
        // line naming it.
        let pattern = format!(
            "name:[[:space:]]*['\"]?{}(['\"[:space:]#]|$)",
            regex_escape(key.as_str())
        );
        let touched: Vec<String> = log(&["-G", &pattern])?
            .into_iter()
            .map(|e| e.commit)
            .collect();
        entries.retain(|e| match &e.key_name {
            Some(k) => k == key.as_str(),
            None => touched.contains(&e.commit),
        });
    }
    Ok(History {
        entries,
        shallow: repo.is_shallow(),
    })
}

fn parse_log_record(record: &str, tenant: &TenantId) -> Option<HistoryEntry> {
    let mut parts = record.trim_matches(['\n', '\r']).split('\u{1f}');
    let commit = parts.next()?.trim().to_owned();
    if commit.is_empty() {
        return None;
    }
    let author = parts.next()?.to_owned();
    let date = parts.next()?.to_owned();
    let subject = parts.next().unwrap_or_default();
    let ours = subject.split_once(' ').and_then(|(verb, rest)| {
        let (t, key) = rest.split_once('/')?;
        (Verb::parse(verb).is_some() && t == tenant.as_str() && KeyName::parse(key).is_ok())
            .then(|| (verb.to_owned(), key.to_owned()))
    });
    let (action, key_name) = match ours {
        Some((verb, key)) => (verb, Some(key)),
        None => ("edit".to_owned(), None),
    };
    Some(HistoryEntry {
        commit,
        author,
        date,
        action,
        key_name,
    })
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = matches!(c, '.' | '-' | '[' | ']' | '\\' | '*' | '^' | '$');
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

    #[test]
    fn log_records_tell_keyward_s_commits_from_ops_edits() {
        let acme = TenantId::parse("acme").unwrap();
        let ours = parse_log_record(
            "\nabc\u{1f}alice\u{1f}2026-11-28T10:00:00+00:00\u{1f}create acme/ci-deploy",
            &acme,
        )
        .unwrap();
        assert_eq!(
            (ours.action.as_str(), ours.key_name.as_deref()),
            ("create", Some("ci-deploy"))
        );
        let theirs = parse_log_record(
            "def\u{1f}bob\u{1f}2026-11-28T10:00:00+00:00\u{1f}Rotate keys for Q4",
            &acme,
        )
        .unwrap();
        assert_eq!((theirs.action.as_str(), theirs.key_name), ("edit", None));
        let other_tenant =
            parse_log_record("ghi\u{1f}bob\u{1f}d\u{1f}create globex/x", &acme).unwrap();
        assert_eq!(other_tenant.action, "edit");
    }
}
