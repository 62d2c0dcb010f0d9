//! The third security review's git-mode findings, each through a real server on a clone of
//! a real bare remote: a tenant's status tells nothing of another tenant, git's own words
//! never reach a client, commit text cannot forge history, and a commit cannot move a
//! tenant out of the clone.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::git_world::{World, keyward_on};
use crate::helpers::*;

/// The last commit on the remote's `main` that touched `tenant`'s file.
fn last_touch(world: &World, tenant: &str) -> String {
    git(
        &world.origin(),
        &[
            "log",
            "-1",
            "--format=%H",
            "main",
            "--",
            &format!("tenants/{tenant}/security.yml"),
        ],
    )
    .trim()
    .to_owned()
}

async fn status_json(app: &TestApp, tenant: &str) -> Value {
    let res = app.status(tenant).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn a_tenant_s_status_shows_nothing_of_another_tenant_s_git_activity() {
    // Arrange: ops commit to globex; then the remote's hook refuses every push.
    let world = World::new();
    world.ops_commit(
        "globex",
        |_| "apiKeys: []\n# globex's own edit\n".to_owned(),
        "globex edit by ops",
    );
    let clone = world.clone_for("server");
    let app = keyward_on(&clone, |_| {}).await;
    world.hook("#!/bin/sh\necho 'globex pushes are frozen' >&2\nexit 1\n");

    // Act: a write to globex is refused by the remote.
    let res = app.create_key("globex", json!({"name": "refused"})).await;
    assert_problem(res, 503, "remote_unavailable").await;

    // Assert: globex's status says so; acme's says nothing of it, and its heads are
    // acme's own last commit.
    let globex = status_json(&app, "globex").await;
    assert_eq!(
        globex["git"]["lastError"], "the remote refused the push (a protected branch or a hook)",
        "{globex}"
    );
    let acme = status_json(&app, "acme").await;
    let git_block = &acme["git"];
    assert_eq!(git_block["lastError"], Value::Null, "{acme}");
    assert_eq!(git_block["dropped"], json!([]), "{acme}");
    assert_eq!(git_block["rewritten"], json!([]), "{acme}");
    assert_eq!(git_block["unpushed"], 0, "{acme}");
    let acme_last = last_touch(&world, "acme");
    assert_ne!(acme_last, last_touch(&world, "globex"));
    assert_eq!(git_block["head"], acme_last.as_str(), "{acme}");
    assert_eq!(git_block["remoteHead"], acme_last.as_str(), "{acme}");
    let text = acme.to_string();
    for of_globex in ["globex", "refused", "frozen", "alice@example.com"] {
        assert!(!text.contains(of_globex), "{of_globex} in {acme}");
    }
}

/// Lines of a real server's log, read until one contains `needle` (or 20 s pass).
fn log_has(server: &mut Server, needle: &str) -> bool {
    if server.log.iter().any(|l| l.contains(needle)) {
        return true;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Ok(line) = server
        .lines
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
    {
        let found = line.contains(needle);
        server.log.push(line);
        if found {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn git_s_stderr_goes_to_the_log_and_never_to_a_client() {
    // Arrange: the remote's hook prints a secret-looking line and where it lives.
    let world = World::new();
    let clone = world.clone_for("server");
    let secret = "DEPLOY_TOKEN=ghp_0123456789abcdefSECRET";
    let remote_path = world.origin().display().to_string();
    world.hook(&format!(
        "#!/bin/sh\necho '{secret}' >&2\necho \"hook at $(pwd)\" >&2\nexit 1\n"
    ));
    let run = tempfile::tempdir().unwrap();
    let mut server = serve_process_with(
        run.path(),
        &[
            (
                "KEYWARD_TENANTS_DIR",
                clone.join("tenants").display().to_string(),
            ),
            ("KEYWARD_GIT__ENABLED", "true".into()),
            ("KEYWARD_GIT__PULL_INTERVAL_SECONDS", "1".into()),
        ],
    );
    let client = reqwest::Client::new();

    // Act: a write the hook refuses, then both tenants' status.
    let res = client
        .post(server.url("/api/acme/admin/apiKeys"))
        .bearer_auth(writer("acme"))
        .json(&json!({"name": "refused"}))
        .send()
        .await
        .unwrap();
    let answer_status = res.status();
    let answer = res.text().await.unwrap();
    let mut bodies = vec![answer.clone()];
    for tenant in ["acme", "globex"] {
        let res = client
            .get(server.url(&format!("/api/{tenant}/admin/status")))
            .bearer_auth(token(tenant, READ))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        bodies.push(res.text().await.unwrap());
    }

    // Assert: keyward's words to clients, git's in the log.
    assert_eq!(answer_status, 503, "{answer}");
    assert!(answer.contains("remote_unavailable"), "{answer}");
    for body in &bodies {
        for leak in [
            secret,
            "SECRET",
            remote_path.as_str(),
            "origin.git",
            "hook at",
        ] {
            assert!(!body.contains(leak), "{leak:?} reached a client: {body}");
        }
    }
    assert!(
        log_has(&mut server, secret),
        "the hook's text is not in the log"
    );
}

/// ops push a commit whose subject and author carry the separators of a `git log` format
/// with control characters, shaped as a forged record.
fn push_forging_commit(world: &World) -> String {
    let ops = world.ops();
    let forged_id = "f".repeat(40);
    let subject = format!(
        "Tidy\u{1e}\n{forged_id}\u{1f}mallory\u{1f}2001-01-01T00:00:00+00:00\u{1f}delete acme/deploy\u{1f}978307200\u{1e}"
    );
    let author = format!("ops\u{1f}\u{1e}{forged_id}\u{1f}mallory");
    git(&ops, &["pull", "--quiet", "--ff-only", "origin", "main"]);
    let file = ops.join("tenants/acme/security.yml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{text}# tidied\n")).unwrap();
    std::fs::write(ops.join("message"), &subject).unwrap();
    let out = std::process::Command::new("git")
        .current_dir(&ops)
        .env("GIT_AUTHOR_NAME", &author)
        .args([
            "commit",
            "--quiet",
            "--cleanup=verbatim",
            "-F",
            "message",
            "--",
            "tenants/acme/security.yml",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    std::fs::remove_file(ops.join("message")).unwrap();
    git(&ops, &["push", "--quiet", "origin", "HEAD:main"]);
    forged_id
}

#[tokio::test]
async fn commit_text_cannot_forge_history_entries() {
    // Arrange: a keyward write, then ops' commit with separators in its text.
    let world = World::new();
    let clone = world.clone_for("server");
    let app = keyward_on(&clone, |_| {}).await;
    app.new_key("acme", "from-api", &[]).await;
    let forged_id = push_forging_commit(&world);
    let tip = world.remote_head();
    eventually(
        "ops' commit is served",
        Duration::from_secs(10),
        || status_json(&app, "acme"),
        |s| s["git"]["head"] == tip.as_str(),
    )
    .await;

    // Act
    let res = app.history("acme", None).await;
    assert_eq!(res.status(), 200);
    let entries: Vec<Value> = res.json().await.unwrap();

    // Assert: exactly the real commits of acme's file, the forged one an `edit`.
    let real: Vec<String> = git(
        &world.origin(),
        &[
            "log",
            "--format=%H",
            "main",
            "--",
            "tenants/acme/security.yml",
        ],
    )
    .lines()
    .map(str::to_owned)
    .collect();
    let listed: Vec<&str> = entries
        .iter()
        .map(|e| e["commit"].as_str().unwrap())
        .collect();
    assert_eq!(listed, real, "{entries:#?}");
    assert!(
        entries
            .iter()
            .all(|e| e["commit"] != forged_id.as_str() && e["author"] != "mallory"),
        "{entries:#?}"
    );
    assert_eq!(entries[0]["action"], "edit", "{entries:#?}");
    assert_eq!(entries[1]["action"], "create", "{entries:#?}");
    assert_eq!(entries[1]["keyName"], "from-api", "{entries:#?}");
    let deletes = entries.iter().filter(|e| e["action"] == "delete").count();
    assert_eq!(deletes, 0, "{entries:#?}");
}

/// ops replace `path` (from the top of the tree) by a symlink to `target`, and push.
fn ops_link(world: &World, path: &str, target: &Path) {
    let ops = world.ops();
    git(&ops, &["pull", "--quiet", "--ff-only", "origin", "main"]);
    git(&ops, &["rm", "-r", "--quiet", path]);
    std::os::unix::fs::symlink(target, ops.join(path)).unwrap();
    git(&ops, &["add", path]);
    git(&ops, &["commit", "--quiet", "-m", &format!("link {path}")]);
    git(&ops, &["push", "--quiet", "origin", "main"]);
}

/// ops put `path` back as it was `commits_ago` commits before, and push.
fn ops_restore(world: &World, path: &str, commits_ago: usize) {
    let ops = world.ops();
    git(&ops, &["rm", "--quiet", path]);
    git(
        &ops,
        &["checkout", &format!("HEAD~{commits_ago}"), "--", path],
    );
    git(
        &ops,
        &["commit", "--quiet", "-m", &format!("restore {path}")],
    );
    git(&ops, &["push", "--quiet", "origin", "main"]);
}

async fn problem_of(app: &TestApp, tenant: &str) -> String {
    status_json(app, tenant).await["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_commit_that_links_a_tenant_out_of_the_clone_is_held_until_ops_fix_it() {
    // Arrange: acme has a key; outside the clone lies a file whose key is valid nowhere.
    let world = World::new();
    let clone = world.clone_for("server");
    let app = keyward_on(&clone, |_| {}).await;
    let inside = app.new_key("acme", "inside", &["orders:read"]).await;
    let spy = app.new_key("globex", "spy", &["*"]).await;
    let outside = world.root().join("outside");
    std::fs::create_dir_all(outside.join("acme")).unwrap();
    std::fs::write(outside.join("acme/security.yml"), world.on_remote("globex")).unwrap();
    std::fs::write(outside.join("security.yml"), world.on_remote("globex")).unwrap();
    assert_eq!(app.delete_key("globex", "spy").await.status(), 204);
    let before_outside = std::fs::read_to_string(outside.join("security.yml")).unwrap();

    // Act: ops turn acme's directory into a symlink out of the clone.
    ops_link(&world, "tenants/acme", &outside);

    // Assert: acme keeps its keys, the outside key never passes, and acme says why.
    eventually(
        "acme reports its directory as a link",
        Duration::from_secs(10),
        || problem_of(&app, "acme"),
        |m| m.contains("symlink"),
    )
    .await;
    assert_eq!(app.verdict("acme", &inside).await["valid"], true);
    assert_eq!(app.verdict("acme", &spy).await["valid"], false);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("keyward_reload_errors_total{tenant=\"acme\"}"),
        "{metrics}"
    );
    // A write is refused, and lands neither outside nor on the remote.
    let head = world.remote_head();
    let res = app
        .create_key("acme", json!({"name": "sneaky", "permissions": ["*"]}))
        .await;
    assert_problem(res, 409, "tenant_read_only").await;
    assert_eq!(
        std::fs::read_to_string(outside.join("security.yml")).unwrap(),
        before_outside
    );
    assert_eq!(world.remote_head(), head);
    // The work tree is not moved onto the link (it moves after 3 s of quiet).
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !clone
            .join("tenants/acme")
            .symlink_metadata()
            .unwrap()
            .is_symlink()
    );

    // Act: ops fix the remote.
    ops_restore(&world, "tenants/acme", 1);

    // Assert: acme serves again and takes writes.
    eventually(
        "acme is back in bounds",
        Duration::from_secs(10),
        || problem_of(&app, "acme"),
        String::is_empty,
    )
    .await;
    assert_eq!(app.verdict("acme", &inside).await["valid"], true);
    assert_eq!(
        app.create_key("acme", json!({"name": "after", "permissions": []}))
            .await
            .status(),
        201
    );

    // Act: now ops link the whole tenants directory out of the clone.
    ops_link(&world, "tenants", &outside);

    // Assert: every tenant keeps its keys and says why; writes are refused.
    eventually(
        "globex reports the tenants directory as a link",
        Duration::from_secs(10),
        || problem_of(&app, "globex"),
        |m| m.contains("symlink"),
    )
    .await;
    assert!(problem_of(&app, "acme").await.contains("symlink"));
    assert_eq!(app.verdict("acme", &inside).await["valid"], true);
    assert_eq!(app.verdict("acme", &spy).await["valid"], false);
    let res = app
        .create_key("acme", json!({"name": "sneaky", "permissions": ["*"]}))
        .await;
    assert_problem(res, 409, "tenant_read_only").await;
    assert_eq!(
        std::fs::read_to_string(outside.join("security.yml")).unwrap(),
        before_outside
    );
}
