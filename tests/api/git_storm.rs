//! Git mode's promises under ops' force-pushes and several writers (README, "Git mode"):
//! real `keyward` processes on their own clones of one bare remote.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::git_truth::{Replica, until};
use crate::git_world::World;
use crate::helpers::*;

/// `git <args>` in `dir`, which may fail: its output, or its error output.
fn try_git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

// ---- a push built before a force-push ----

/// ops drop the last two commits of the remote, wherever `hide_remote` put it.
fn ops_force_back_at(world: &World, remote: &Path) {
    let (ops, remote) = (world.ops(), remote.to_str().unwrap());
    git(&ops, &["fetch", "--quiet", remote, "main"]);
    git(
        &ops,
        &[
            "push",
            "--quiet",
            "--force",
            remote,
            "FETCH_HEAD~2:refs/heads/main",
        ],
    );
}

#[tokio::test]
async fn an_async_write_built_on_the_tip_a_force_push_removed_never_pushes_the_removed_commits_back()
 {
    // Arrange: three creates through A, pushed; A does not pull on its own meanwhile.
    let world = World::new();
    let a = Replica::start(
        &world,
        "async",
        &[("KEYWARD_GIT__PULL_INTERVAL_SECONDS", "60")],
    )
    .await;
    for name in ["kept", "gone-1", "gone-2"] {
        assert_eq!(a.api.create("acme", name).await.status(), 201);
    }
    until(
        "A's creates reach the remote",
        Instant::now() + Duration::from_secs(10),
        || async { world.remote_names("acme").contains("gone-2") },
    )
    .await;
    let removed: Vec<String> = git(&world.origin(), &["rev-list", "-2", "main"])
        .lines()
        .map(str::to_owned)
        .collect();

    // Act: while A cannot reach the remote, it takes a write on the tip it knows, and ops
    // drop the last two commits; then the remote is back.
    world.hide_remote();
    assert_eq!(a.api.create("globex", "after").await.status(), 201);
    ops_force_back_at(&world, &world.moved());
    world.restore_remote();

    // Assert: the write lands on the new tip, and the removed commits stay removed.
    until(
        "A's write reaches the remote",
        Instant::now() + Duration::from_secs(15),
        || async { world.remote_subjects()[0] == "create globex/after" },
    )
    .await;
    for commit in &removed {
        assert!(
            try_git(
                &world.origin(),
                &["merge-base", "--is-ancestor", commit, "main"]
            )
            .is_err(),
            "{commit}, removed by the force-push, is on main again: {:?}",
            world.remote_subjects()
        );
    }
    let names = world.remote_names("acme");
    assert!(
        names.contains("kept") && !names.contains("gone-1"),
        "{names:?}"
    );
    let status = a.api.status("acme").await;
    let rewritten: BTreeSet<&str> = status["git"]["rewritten"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["keyName"].as_str().unwrap())
        .collect();
    assert_eq!(rewritten, BTreeSet::from(["gone-1", "gone-2"]), "{status}");
}
