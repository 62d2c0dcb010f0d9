//! `keyward git reapply`: ops apply again, by meaning, the acknowledged writes that a
//! rewrite of the remote's history removed (as the server reported them in
//! `state_dir/git/rewritten.json`), on the remote's tip as it is now, as commits like any
//! other, each by its first author with a `Reapplies: <old commit>` trailer. A write
//! already reapplied (its trailer is in the history) is not applied again, so running it
//! twice changes nothing. The servers follow the new commits on their next pull.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use time::OffsetDateTime;

use super::report;
use super::write::{REAPPLIES, build};
use crate::config::Settings;
use crate::git::{RemoteError, Repo};
use crate::keys::intent::Intent;
use crate::store::Store;

const SCRATCH: &str = "refs/keyward/reapply";
const ATTEMPTS: usize = 10;
/// How many commits are searched for writes already reapplied.
const SCAN: usize = 10_000;

/// Applies the reported writes again; prints one line per write.
pub fn reapply(settings: &Settings) -> anyhow::Result<()> {
    anyhow::ensure!(
        settings.git.enabled,
        "git mode is not enabled (git.enabled)"
    );
    let remote = settings
        .git
        .remote
        .as_deref()
        .context("git.remote is null: there is no remote to reapply writes on")?;
    let repo = Repo::discover(&settings.tenants_dir)
        .context("tenants_dir is not inside a git work tree")?;
    let prefix = prefix_of(&repo, &settings.tenants_dir)?;
    let reports = report::read(&report::rewritten_file(&settings.state_dir))
        .context("cannot read the report of rewritten writes in state_dir")?;
    let store = Store::new(settings.tenants_dir.clone(), false);
    let limit = Duration::from_secs(settings.git.push_timeout_seconds.max(1));
    let url = repo
        .push_url(remote)
        .with_context(|| format!("the clone has no remote {remote:?}"))?;
    for _ in 0..ATTEMPTS {
        let tip = repo
            .fetch_into(&url, &settings.git.branch, SCRATCH, limit)
            .map_err(|e| anyhow::anyhow!("cannot fetch from {remote}: {e}"))?;
        let done = reapplied(&repo, &tip)?;
        let mut todo: Vec<(String, Intent)> = reports
            .iter()
            .filter_map(|r| Some((r.commit.clone()?, r.intent.clone()?)))
            .filter(|(old, _)| !done.contains(old))
            .map(|(old, mut i)| {
                i.reapplies = Some(old.clone());
                (old, i)
            })
            .collect();
        if todo.is_empty() {
            println!("nothing to reapply");
            return Ok(());
        }
        let mut intents: Vec<&mut Intent> = todo.iter_mut().map(|(_, i)| i).collect();
        let built = build(
            &repo,
            &store,
            &prefix,
            &tip,
            &mut intents,
            OffsetDateTime::now_utc(),
            None,
            None,
        )?;
        if built.tip == tip {
            for ((old, i), outcome) in todo.iter().zip(&built.outcomes) {
                let why = outcome
                    .as_ref()
                    .err()
                    .map_or("it changes nothing".into(), |e| e.to_string());
                println!(
                    "skipped {} {}/{} (was {old}): {why}",
                    i.verb().as_str(),
                    i.tenant,
                    i.key
                );
            }
            return Ok(());
        }
        match repo.push(&url, &built.tip, &tip, &settings.git.branch, limit) {
            Ok(()) => {
                for ((old, i), outcome) in todo.iter().zip(&built.outcomes) {
                    match outcome {
                        Ok(d) if d.commit.is_some() => println!(
                            "reapplied {} {}/{} (was {old})",
                            i.verb().as_str(),
                            i.tenant,
                            i.key
                        ),
                        Ok(_) => println!(
                            "skipped {} {}/{} (was {old}): it changes nothing",
                            i.verb().as_str(),
                            i.tenant,
                            i.key
                        ),
                        Err(e) => println!(
                            "skipped {} {}/{} (was {old}): {e}",
                            i.verb().as_str(),
                            i.tenant,
                            i.key
                        ),
                    }
                }
                let _ = repo.set_ref(SCRATCH, None);
                return Ok(());
            }
            // Someone pushed meanwhile: decided again on their tip.
            Err(RemoteError::NotFastForward) => continue,
            Err(e) => anyhow::bail!("cannot push to {remote}: {e}"),
        }
    }
    anyhow::bail!("the remote kept moving; run it again")
}

/// The commits already reapplied: their `Reapplies:` trailers in the recent history.
fn reapplied(repo: &Repo, tip: &str) -> anyhow::Result<HashSet<String>> {
    let log = repo.log(tip, &[], None, Some(SCAN), None)?;
    Ok(log
        .iter()
        .flat_map(|c| c.body.lines())
        .filter_map(|l| l.strip_prefix(REAPPLIES))
        .map(|s| s.trim().to_owned())
        .collect())
}

fn prefix_of(repo: &Repo, tenants_dir: &Path) -> anyhow::Result<String> {
    let top = std::fs::canonicalize(repo.top())?;
    let tenants = std::fs::canonicalize(tenants_dir)?;
    Ok(tenants
        .strip_prefix(&top)
        .context("tenants_dir is not inside the work tree")?
        .to_string_lossy()
        .into_owned())
}
