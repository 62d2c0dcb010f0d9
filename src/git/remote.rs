//! The trips to the remote: fetch into keyward's own ref, ask for the remote's tip, push a
//! commit by id only from the tip it was built on, and what a refused push's words mean.

use std::time::Duration;

use super::command::run;
use super::{GitError, RemoteError, Repo};

impl Repo {
    /// The URL keyward pushes to. Pushing to the URL rather than the remote's name leaves
    /// the remote-tracking branch to ops' own fetches.
    pub fn push_url(&self, remote: &str) -> Option<String> {
        self.git(&["remote", "get-url", "--push", remote])
            .ok()
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
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

    /// Pushes `commit`, built on `base`, as the remote's `branch`, only if the branch is
    /// still at `base`. A plain push would also take it from any older commit: after a
    /// force-push that only dropped commits, a commit built on the old tip is a
    /// fast-forward of the new one, and pushing it would bring back what ops removed.
    pub fn push(
        &self,
        url: &str,
        commit: &str,
        base: &str,
        branch: &str,
        limit: Duration,
    ) -> Result<(), RemoteError> {
        let refspec = format!("{commit}:refs/heads/{branch}");
        let lease = format!("--force-with-lease=refs/heads/{branch}:{base}");
        let pushed = run(
            &self.top,
            &["push", "--quiet", &lease, url, &refspec],
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_refusals_are_told_apart() {
        assert_eq!(
            classify_push(" ! [rejected]        HEAD -> main (fetch first)\nerror: failed to push"),
            RemoteError::NotFastForward
        );
        assert_eq!(
            classify_push(
                " ! [rejected]        0123abc -> main (stale info)\nerror: failed to push"
            ),
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
