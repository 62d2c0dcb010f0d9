//! Git mode with real git: a bare `origin.git`, an ops clone that commits and pushes, and
//! keyward on clones of its own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::git_world::{World, keyward_on};
use crate::helpers::*;

fn entry(name: &str, digit: char) -> String {
    format!(
        "  - name: {name}\n    hash: sha256:{}\n",
        digit.to_string().repeat(64)
    )
}

/// `text` with a key added at the top of its `apiKeys` list.
fn with_key(text: &str, name: &str, digit: char) -> String {
    text.replacen(
        "apiKeys:\n",
        &format!("apiKeys:\n{}", entry(name, digit)),
        1,
    )
}

fn clean(repo: &Path) {
    let status = git(repo, &["status", "--porcelain"]);
    assert!(status.is_empty(), "the clone is not clean:\n{status}");
    let git_dir = repo.join(".git");
    for leftover in ["rebase-merge", "rebase-apply", "MERGE_HEAD", "index.lock"] {
        assert!(!git_dir.join(leftover).exists(), "{leftover} left behind");
    }
}

#[tokio::test]
async fn every_api_write_is_one_commit_by_its_principal_on_the_remote_and_the_clone_stays_clean() {
    let world = World::new();
    let clone = world.clone_for("server");
    let app = keyward_on(&clone, |_| {}).await;

    let token = app.new_key("acme", "deploy", &["orders:read"]).await;
    let res = app
        .update_key("acme", "deploy", json!({"enabled": false}))
        .await;
    assert_eq!(res.status(), 200);
    let res = app.rotate_key("acme", "deploy", None).await;
    assert_eq!(res.status(), 200);
    let res = app.delete_key("acme", "deploy").await;
    assert_eq!(res.status(), 204);

    let log = world.remote_log();
    let ours: Vec<&str> = log.lines().take(4).collect();
    assert_eq!(
        ours,
        [
            "alice@example.com|alice@example.com|keyward|delete acme/deploy",
            "alice@example.com|alice@example.com|keyward|rotate acme/deploy",
            "alice@example.com|alice@example.com|keyward|update acme/deploy",
            "alice@example.com|alice@example.com|keyward|create acme/deploy",
        ],
        "{log}"
    );
    let origin = world.root().join("origin.git");
    let touched = git(&origin, &["show", "--name-only", "--format=", "main~3"]);
    assert_eq!(touched.trim(), "tenants/acme/security.yml");
    let messages = git(&origin, &["log", "--format=%B", "main"]);
    assert!(messages.contains("Request-Id: "), "{messages}");
    assert!(!messages.contains(&token) && !messages.contains("sha256:"));
    clean(&clone);
    // The deploy job's own pull works on the clone.
    git(&clone, &["pull", "--quiet", "--ff-only"]);
}

#[tokio::test]
async fn ops_commits_reach_keyward_and_keyward_s_writes_reach_ops() {
    let world = World::new();
    let clone = world.clone_for("server");
    let app = keyward_on(&clone, |_| {}).await;

    world.ops_commit(
        "globex",
        |_| format!("apiKeys:\n{}", entry("from-ops", '7')),
        "Add from-ops",
    );
    let key_list = eventually(
        "the ops commit is served",
        Duration::from_secs(10),
        || app.list_keys("globex", Reader),
        |r| r.status() == 200,
    )
    .await;
    let _ = key_list;
    eventually(
        "the ops key is listed",
        Duration::from_secs(10),
        || async { app.list_names("globex").await },
        |names| names.contains(&"from-ops".to_owned()),
    )
    .await;

    app.new_key("globex", "from-api", &[]).await;
    git(&world.ops(), &["pull", "--quiet", "--ff-only"]);
    let text = std::fs::read_to_string(world.ops().join("tenants/globex/security.yml")).unwrap();
    assert!(
        text.contains("name: from-ops") && text.contains("name: from-api"),
        "{text}"
    );
    clean(&clone);
}

#[tokio::test]
async fn a_push_refused_as_behind_is_replayed_on_the_new_head_and_a_taken_name_is_409() {
    let world = World::new();
    let clone = world.clone_for("server");
    // No pulls of its own: the remote moves behind keyward's back.
    let app = keyward_on(&clone, |s| s.git.pull_interval_seconds = 0).await;
    world.ops_commit("acme", |t| with_key(&t, "ops-new", '5'), "ops add a key");

    app.new_key("acme", "api-new", &[]).await;
    let remote = world.on_remote("acme");
    assert!(
        remote.contains("name: ops-new") && remote.contains("name: api-new"),
        "{remote}"
    );
    assert!(
        remote.contains("# acme's keys; ops edit this file in git."),
        "comments survive"
    );

    // The same name, taken upstream first.
    world.ops_commit("acme", |t| with_key(&t, "taken", '6'), "ops take a name");
    let res = app.create_key("acme", json!({"name": "taken"})).await;
    assert_problem(res, 409, "key_exists").await;
    let remote = world.on_remote("acme");
    assert_eq!(remote.matches("name: taken").count(), 1, "{remote}");
    // A key deleted upstream: the update gets the answer it would have got there.
    world.ops_commit(
        "acme",
        |t| t.replace(&entry("ops-new", '5'), ""),
        "ops remove ops-new",
    );
    let res = app
        .update_key("acme", "ops-new", json!({"enabled": false}))
        .await;
    assert_problem(res, 404, "key_not_found").await;
    clean(&clone);
}

#[tokio::test]
async fn an_unreachable_remote_keeps_nothing_of_the_write_and_answers_503() {
    let world = World::new();
    let clone = world.clone_for("server");
    let app = keyward_on(&clone, |s| s.git.pull_interval_seconds = 0).await;
    let before = std::fs::read_to_string(clone.join("tenants/acme/security.yml")).unwrap();
    let head = git(&clone, &["rev-parse", "HEAD"]);
    git(
        &clone,
        &["remote", "set-url", "origin", "/nowhere/origin.git"],
    );

    let res = app.create_key("acme", json!({"name": "lost"})).await;

    let retry = res.headers().get("retry-after").cloned();
    let problem = assert_problem(res, 503, "remote_unavailable").await;
    assert!(retry.is_some());
    // git's own words (which name the remote's path) stay in the log.
    assert!(
        !problem.to_string().contains("nowhere") && !problem.to_string().contains("fatal"),
        "{problem}"
    );
    assert_eq!(
        git(&clone, &["rev-parse", "HEAD"]),
        head,
        "the commit is undone"
    );
    assert_eq!(
        std::fs::read_to_string(clone.join("tenants/acme/security.yml")).unwrap(),
        before
    );
    clean(&clone);
    assert!(!app.list_names("acme").await.contains(&"lost".to_owned()));
    let status: Value = app.status("acme").await.json().await.unwrap();
    let last_error = status["git"]["lastError"].as_str().unwrap_or_default();
    assert_eq!(last_error, "the remote cannot be reached", "{status}");
}

#[tokio::test]
async fn two_replicas_converge_and_a_same_name_race_has_one_winner() {
    let world = World::new();
    let (a_dir, b_dir) = (world.clone_for("a"), world.clone_for("b"));
    let a = keyward_on(&a_dir, |_| {}).await;
    let b = keyward_on(&b_dir, |_| {}).await;

    let token = a.new_key("acme", "from-a", &[]).await;
    // Within the poll's deadline; how fast is measured by `bench/run.sh git`, not here.
    b.eventually_valid("acme", &token, true).await;

    let (ra, rb) = tokio::join!(
        a.create_key("acme", json!({"name": "race"})),
        b.create_key("acme", json!({"name": "race"}))
    );
    let mut statuses = [ra.status().as_u16(), rb.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [201, 409]);
    assert_eq!(world.on_remote("acme").matches("name: race").count(), 1);
    clean(&a_dir);
    clean(&b_dir);
}

#[tokio::test]
async fn history_comes_from_git_log_with_ops_commits_and_filters_by_key() {
    let world = World::new();
    let clone = world.clone_for("server");
    let app = keyward_on(&clone, |_| {}).await;
    app.new_key("acme", "hist", &[]).await;
    app.update_key("acme", "hist", json!({"enabled": false}))
        .await;
    world.ops_commit(
        "acme",
        |t| t.replace("enabled: false\n", "enabled: false # off\n"),
        "ops tidy",
    );
    eventually(
        "the ops commit is pulled",
        Duration::from_secs(10),
        || async { git(&clone, &["log", "--format=%s", "-1"]) },
        |s| s.trim() == "ops tidy",
    )
    .await;

    let all: Vec<Value> = app.history("acme", None).await.json().await.unwrap();
    let actions: Vec<&str> = all.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["edit", "update", "create", "edit"], "{all:?}");
    assert_eq!(all[1]["keyName"], "hist");
    assert_eq!(all[1]["author"], "alice@example.com");
    let only: Vec<Value> = app
        .history("acme", Some("hist"))
        .await
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = only.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["update", "create"], "{only:?}");

    // An ops commit that adds a line naming a key is in that key's history.
    world.ops_commit("acme", |t| with_key(&t, "by-ops", '6'), "ops add a key");
    let by_ops = eventually(
        "the ops key's history",
        Duration::from_secs(10),
        || async {
            app.history("acme", Some("by-ops"))
                .await
                .json::<Vec<Value>>()
                .await
                .unwrap()
        },
        |h| !h.is_empty(),
    )
    .await;
    assert_eq!(by_ops.len(), 1, "{by_ops:?}");
    assert_eq!(by_ops[0]["action"], "edit");
}

#[tokio::test]
async fn the_webhook_pulls_on_a_valid_signature_and_does_nothing_otherwise() {
    use hmac::{Hmac, Mac};
    let world = World::new();
    let clone = world.clone_for("server");
    let secret = "webhook-secret-0123456789";
    let app = keyward_on(&clone, |s| {
        s.git.pull_interval_seconds = 0;
        s.git.webhook_secret = Some(secret.to_owned().into());
    })
    .await;
    world.ops_commit(
        "globex",
        |_| format!("apiKeys:\n{}", entry("hooked", '8')),
        "Add hooked",
    );
    let body = br#"{"ref":"refs/heads/main"}"#;
    let hook = |headers: Vec<(&'static str, String)>| {
        let mut req = app.client.post(app.url("/hooks/git")).body(body.to_vec());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };

    for bad in [
        vec![],
        vec![("X-Hub-Signature-256", format!("sha256={}", "0".repeat(64)))],
        vec![("X-Gitlab-Token", "webhook-secret-0123456780".to_owned())],
    ] {
        assert_problem(hook(bad).await.unwrap(), 401, "invalid_token").await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !app.list_names("globex")
            .await
            .contains(&"hooked".to_owned()),
        "no pull yet"
    );

    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let sig: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let res = hook(vec![("X-Hub-Signature-256", format!("sha256={sig}"))])
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    eventually(
        "the webhook's pull is served",
        Duration::from_secs(10),
        || async { app.list_names("globex").await },
        |names| names.contains(&"hooked".to_owned()),
    )
    .await;
    let gitlab = hook(vec![("X-Gitlab-Token", secret.to_owned())])
        .await
        .unwrap();
    assert_eq!(gitlab.status(), 202);
}

#[tokio::test]
async fn start_up_refuses_a_clone_it_cannot_serve_and_says_what_to_do() {
    let world = World::new();
    let build = |clone: PathBuf| async move {
        let state = tempfile::tempdir().unwrap();
        let mut s = settings_for(state.path());
        s.tenants_dir = clone.join("tenants");
        s.git.enabled = true;
        keyward::startup::Application::build(s)
            .await
            .err()
            .map(|e| format!("{e:#}"))
    };

    let plain = world.root().join("plain/tenants");
    std::fs::create_dir_all(&plain).unwrap();
    let err = build(world.root().join("plain")).await.expect("refused");
    assert!(err.contains("inside a git work tree"), "{err}");

    let no_remote = world.clone_for("no-remote");
    git(&no_remote, &["remote", "remove", "origin"]);
    let err = build(no_remote).await.expect("refused");
    assert!(err.contains("no remote \"origin\""), "{err}");

    let other_branch = world.clone_for("other-branch");
    git(&other_branch, &["checkout", "--quiet", "-b", "feature"]);
    let err = build(other_branch).await.expect("refused");
    assert!(err.contains("not on git.branch"), "{err}");
}

#[tokio::test]
async fn an_uncommitted_hand_edit_in_the_clone_is_not_served_and_is_left_alone() {
    let world = World::new();
    let clone = world.clone_for("server");
    let file = clone.join("tenants/acme/security.yml");
    let edited = with_key(ACME_FILE, "by-hand", '7');
    std::fs::write(&file, &edited).unwrap();

    let app = keyward_on(&clone, |_| {}).await;

    // git mode serves commits: the edit is not a key until it is committed and pushed.
    assert!(!app.list_names("acme").await.contains(&"by-hand".to_owned()));
    app.new_key("acme", "after", &[]).await;
    assert!(world.on_remote("acme").contains("name: after"));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        edited,
        "the edit is kept"
    );
}

#[tokio::test]
async fn at_restart_only_the_locks_a_killed_git_of_keyward_s_left_are_removed() {
    let world = World::new();
    let clone = world.clone_for("server");
    let app = keyward_on(&clone, |_| {}).await;
    let state = app.dir.path().join("state");
    let dir = app.stop().await;
    let stale = |path: &Path| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "").unwrap();
        // Left a minute ago (a younger lock may be a live git's).
        let ok = std::process::Command::new("touch")
            .args(["-d", "1 minute ago"])
            .arg(path)
            .status()
            .unwrap();
        assert!(ok.success());
    };
    // A lock on keyward's own ref, and index.lock of a git that is not keyward's.
    stale(&clone.join(".git/refs/keyward/local.lock"));
    stale(&clone.join(".git/index.lock"));
    let tenants = clone.join("tenants");
    let app = spawn_app_on(dir, move |s| {
        s.tenants_dir = tenants.clone();
        s.git.enabled = true;
    })
    .await;

    assert!(!clone.join(".git/refs/keyward/local.lock").exists());
    assert!(
        clone.join(".git/index.lock").exists(),
        "someone else's lock is theirs"
    );
    // keyward needs neither the index nor the branch to take a write.
    app.new_key("acme", "after", &[]).await;
    assert!(world.on_remote("acme").contains("name: after"));

    // Killed while moving the work tree forward: its marker says the locks are keyward's.
    let dir = app.stop().await;
    stale(&state.join("git/fast-forward-running"));
    stale(&clone.join(".git/refs/heads/main.lock"));
    let tenants = clone.join("tenants");
    let _app = spawn_app_on(dir, move |s| {
        s.tenants_dir = tenants;
        s.git.enabled = true;
    })
    .await;
    assert!(!clone.join(".git/index.lock").exists());
    assert!(!clone.join(".git/refs/heads/main.lock").exists());
    assert!(!state.join("git/fast-forward-running").exists());
    clean(&clone);
}

#[tokio::test]
async fn async_mode_acknowledges_at_once_pushes_when_it_can_and_drops_what_no_longer_applies() {
    let world = World::new();
    let clone = world.clone_for("server");
    let origin = world.root().join("origin.git");
    let app = keyward_on(&clone, |s| {
        s.git.push = keyward::config::PushMode::Async;
        s.git.pull_interval_seconds = 1;
    })
    .await;
    git(
        &clone,
        &["remote", "set-url", "origin", "/nowhere/origin.git"],
    );

    // Acknowledged on the local commit, though the remote is away.
    let early = app.new_key("acme", "early", &[]).await;
    app.new_key("acme", "contested", &[]).await;
    let status: Value = app.status("acme").await.json().await.unwrap();
    assert_eq!(status["git"]["unpushed"], 2, "{status}");
    assert_eq!(app.verdict("acme", &early).await["valid"], true);
    // Meanwhile ops take one of the names upstream.
    world.ops_commit(
        "acme",
        |t| with_key(&t, "contested", '4'),
        "ops take contested",
    );

    git(
        &clone,
        &["remote", "set-url", "origin", origin.to_str().unwrap()],
    );
    let status = eventually(
        "keyward's writes reach the remote",
        Duration::from_secs(20),
        || async { app.status("acme").await.json::<Value>().await.unwrap() },
        |s| s["git"]["unpushed"] == 0,
    )
    .await;

    let remote = world.on_remote("acme");
    assert!(remote.contains("name: early"), "{remote}");
    assert_eq!(remote.matches("name: contested").count(), 1, "{remote}");
    let dropped = &status["git"]["dropped"][0];
    assert_eq!(dropped["keyName"], "contested", "{status}");
    assert_eq!(dropped["verb"], "create");
    assert_eq!(dropped["actor"], "alice@example.com");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("keyward_git_dropped_writes_total 1"),
        "{metrics}"
    );
    clean(&clone);
}

#[tokio::test]
async fn sighup_pulls_at_once() {
    let world = World::new();
    let clone = world.clone_for("server");
    let app = keyward_on(&clone, |s| s.git.pull_interval_seconds = 0).await;
    world.ops_commit(
        "globex",
        |_| format!("apiKeys:\n{}", entry("hup", '3')),
        "Add hup",
    );

    let pid = rustix::process::Pid::from_raw(std::process::id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();

    eventually(
        "the pull SIGHUP asked for is served",
        Duration::from_secs(10),
        || async { app.list_names("globex").await },
        |names| names.contains(&"hup".to_owned()),
    )
    .await;
}

#[tokio::test]
async fn a_shallow_clone_s_history_says_it_is_cut_short() {
    let world = World::new();
    let origin = format!("file://{}", world.root().join("origin.git").display());
    git(
        world.root(),
        &["clone", "--quiet", "--depth", "1", &origin, "shallow"],
    );
    let app = keyward_on(&world.root().join("shallow"), |s| {
        s.git.pull_interval_seconds = 0;
    })
    .await;

    let res = app.history("acme", None).await;

    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["keyward-history"], "shallow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_any_point_of_a_write_leaves_a_clean_clone_and_loses_no_acknowledged_write() {
    let world = World::new();
    let clone = world.clone_for("server");
    let state = world.root().join("state");
    let settings = vec![
        ("KEYWARD_GIT__ENABLED", "true".to_owned()),
        ("KEYWARD_GIT__PULL_INTERVAL_SECONDS", "1".to_owned()),
        ("KEYWARD_STATE_DIR", state.display().to_string()),
    ];
    let mut acknowledged: Vec<String> = Vec::new();

    for round in 0..6u64 {
        let (path, settings) = (clone.clone(), settings.clone());
        let server = tokio::task::spawn_blocking(move || serve_process_with(&path, &settings))
            .await
            .unwrap();
        let url = server.url("/api/acme/admin/apiKeys");
        let writers = create_until_gone(&url, round, 3);
        // Somewhere in the middle of journalling, writing, committing or pushing.
        tokio::time::sleep(Duration::from_millis(400 + (round * 97) % 400)).await;
        server.signal(rustix::process::Signal::KILL);
        let mut server = server;
        tokio::task::spawn_blocking(move || server.child.wait().unwrap())
            .await
            .unwrap();
        for w in writers {
            acknowledged.extend(w.await.unwrap());
        }
    }

    // A last start repairs what the last kill left; then a write works again.
    let server = tokio::task::spawn_blocking(move || serve_process_with(&clone, &settings))
        .await
        .unwrap();
    let res = reqwest::Client::new()
        .post(server.url("/api/acme/admin/apiKeys"))
        .bearer_auth(writer("acme"))
        .json(&json!({"name": "after-the-storm"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let remote = world.on_remote("acme");
    assert!(
        acknowledged.len() >= 3,
        "too few writes to tell: {acknowledged:?}"
    );
    for name in &acknowledged {
        assert!(
            remote.contains(&format!("name: {name}\n")),
            "acknowledged {name} is not on the remote"
        );
    }
    clean(&world.root().join("server"));
}

#[tokio::test]
async fn an_update_that_changes_nothing_makes_no_commit() {
    let world = World::new();
    let clone = world.clone_for("server");
    let app = keyward_on(&clone, |_| {}).await;
    app.new_key("acme", "same", &[]).await;
    let head = git(&clone, &["rev-parse", "HEAD"]);

    let res = app
        .update_key("acme", "same", json!({"enabled": true}))
        .await;

    assert_eq!(res.status(), 200);
    assert_eq!(git(&clone, &["rev-parse", "HEAD"]), head);
    clean(&clone);
}

#[tokio::test]
async fn rotations_raced_on_two_replicas_keep_both_tokens_working_through_the_grace() {
    let world = World::new();
    let (a_dir, b_dir) = (world.clone_for("a"), world.clone_for("b"));
    let a = keyward_on(&a_dir, |_| {}).await;
    let b = keyward_on(&b_dir, |s| {
        s.git.pull_interval_seconds = 0;
        s.git.webhook_secret = Some("webhook-secret-0123456789".to_owned().into());
    })
    .await;
    let first = a.new_key("acme", "shared", &[]).await;
    // B learns of the key once, then pulls no more.
    let pulled = b
        .client
        .post(b.url("/hooks/git"))
        .header("X-Gitlab-Token", "webhook-secret-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(pulled.status(), 202);
    b.eventually_valid("acme", &first, true).await;
    let grace = Some(json!({"gracePeriodSeconds": 3600}));

    let ra = a.rotate_key("acme", "shared", grace.clone()).await;
    assert_eq!(ra.status(), 200);
    let token_a = ra.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // B decides its rotation on a head without A's; its push is refused and it is decided
    // again on the new head: a rotation of A's key, not a return of the old entry.
    let rb = b.rotate_key("acme", "shared", grace).await;
    assert_eq!(rb.status(), 200);
    let token_b = rb.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    a.eventually_valid("acme", &token_b, true).await;
    assert_eq!(
        a.verdict("acme", &token_a).await["valid"],
        true,
        "A's acknowledged token lives through B's grace"
    );
    let remote = world.on_remote("acme");
    assert_eq!(remote.matches("name: shared").count(), 1);
    clean(&a_dir);
    clean(&b_dir);
}

#[tokio::test]
async fn without_a_remote_writes_are_commits_and_nothing_waits_to_be_pushed() {
    let world = World::new();
    let clone = world.clone_for("server");
    let app = keyward_on(&clone, |s| s.git.remote = None).await;
    let origin_before = world.remote_log();

    app.new_key("acme", "local", &[]).await;
    app.new_key("acme", "local-2", &[]).await;

    // The checked-out branch follows once the clone is quiet.
    let subjects = eventually(
        "the branch has both commits",
        Duration::from_secs(10),
        || async { git(&clone, &["log", "--format=%s", "-2"]) },
        |s| s.starts_with("create acme/local-2"),
    )
    .await;
    assert_eq!(
        subjects.lines().collect::<Vec<_>>(),
        ["create acme/local-2", "create acme/local"]
    );
    assert_eq!(world.remote_log(), origin_before, "nothing pushed");
    let status: Value = app.status("acme").await.json().await.unwrap();
    assert_eq!(status["git"]["unpushed"], 0, "{status}");
    clean(&clone);
}

#[tokio::test]
async fn an_async_write_retried_after_a_restart_with_its_idempotency_key_is_not_applied_again() {
    let world = World::new();
    let clone = world.clone_for("server");
    let tenants = clone.join("tenants");
    let app = keyward_on(&clone, |s| {
        s.git.push = keyward::config::PushMode::Async;
    })
    .await;
    git(
        &clone,
        &["remote", "set-url", "origin", "/nowhere/origin.git"],
    );
    let create = |app: &TestApp| {
        app.client
            .post(app.keys_url("acme"))
            .bearer_auth(writer("acme"))
            .header("Idempotency-Key", "once-only")
            .json(&json!({"name": "once"}))
            .send()
    };
    assert_eq!(create(&app).await.unwrap().status(), 201);

    // Restarted with the write journalled and unpushed: the answers kept in memory are gone.
    let dir = app.stop().await;
    let app = spawn_app_on(dir, move |s| {
        s.tenants_dir = tenants;
        s.git.enabled = true;
        s.git.push = keyward::config::PushMode::Async;
    })
    .await;
    let again = create(&app).await.unwrap();

    assert_eq!(again.status(), 201);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["code"], "token_issued_elsewhere", "{body}");
    let served = app.list_names("acme").await;
    assert_eq!(served.iter().filter(|n| *n == "once").count(), 1);
    let status: Value = app.status("acme").await.json().await.unwrap();
    assert_eq!(status["git"]["unpushed"], 1, "applied once: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_comes_in_pages_that_link_to_the_next_and_a_crowd_is_told_to_wait() {
    let world = World::new();
    let clone = world.clone_for("server");
    let app = keyward_on(&clone, |_| {}).await;
    for i in 0..5 {
        app.new_key("acme", &format!("page-{i}"), &[]).await;
    }
    app.update_key("acme", "page-3", json!({"enabled": false}))
        .await;
    let reader = token("acme", READ);
    let get = |url: String| app.client.get(url).bearer_auth(&reader).send();

    // Every entry once, newest first, two at a time, following Link: rel="next".
    let mut url = app.url("/api/acme/admin/history?limit=2");
    let mut seen = Vec::new();
    loop {
        let res = get(url.clone()).await.unwrap();
        assert_eq!(res.status(), 200);
        let next = res
            .headers()
            .get("link")
            .map(|l| l.to_str().unwrap().to_owned());
        let page: Vec<Value> = res.json().await.unwrap();
        assert!(page.len() <= 2);
        seen.extend(
            page.into_iter()
                .map(|e| e["commit"].as_str().unwrap().to_owned()),
        );
        let Some(next) = next else { break };
        let path = next
            .strip_prefix('<')
            .and_then(|l| l.split_once(">; rel=\"next\""))
            .unwrap()
            .0;
        url = app.url(path);
    }
    let all: Vec<Value> = app.history("acme", None).await.json().await.unwrap();
    let all: Vec<String> = all
        .iter()
        .map(|e| e["commit"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, all, "pages cover the history once, in order");
    assert_eq!(all.len(), 7, "six writes and the first commit");
    let key_pages: Vec<Value> = get(app.url("/api/acme/admin/history?keyName=page-3&limit=1"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(key_pages.len(), 1);
    assert_eq!(key_pages[0]["action"], "update");

    for bad in ["limit=0", "limit=501", "cursor=nope", "limits=2"] {
        let res = get(app.url(&format!("/api/acme/admin/history?{bad}")))
            .await
            .unwrap();
        assert!(matches!(res.status().as_u16(), 400 | 422), "{bad}");
    }

    // Many at once: each is answered, the ones past the limit with 429 and Retry-After.
    let crowd: Vec<_> = (0..40)
        .map(|_| {
            let (client, url, reader) = (
                app.client.clone(),
                app.url("/api/acme/admin/history?keyName=page-3"),
                reader.clone(),
            );
            tokio::spawn(async move { client.get(url).bearer_auth(reader).send().await.unwrap() })
        })
        .collect();
    for answer in crowd {
        let res = answer.await.unwrap();
        match res.status().as_u16() {
            200 => {}
            429 => {
                assert!(res.headers().contains_key("retry-after"));
                assert_problem(res, 429, "too_many_requests").await;
            }
            other => panic!("history answered {other}"),
        }
    }
}

/// A `pre-receive` hook on the bare remote that holds the first push for `seconds`,
/// leaving `held` while it does and `released` after.
fn slow_remote(world: &World, seconds: u32) -> (PathBuf, PathBuf) {
    let (held, released) = (world.root().join("held"), world.root().join("released"));
    let hook = world.root().join("origin.git/hooks/pre-receive");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\n[ -e '{r}' ] && exit 0\ntouch '{}'\nsleep {seconds}\ntouch '{r}'\n",
            held.display(),
            r = released.display()
        ),
    )
    .unwrap();
    let ok = std::process::Command::new("chmod")
        .args(["+x"])
        .arg(&hook)
        .status()
        .unwrap();
    assert!(ok.success());
    (held, released)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_push_holds_up_no_async_write_and_no_read() {
    let world = World::new();
    let clone = world.clone_for("server");
    let app = keyward_on(&clone, |s| {
        s.git.push = keyward::config::PushMode::Async;
        s.git.push_timeout_seconds = 30;
    })
    .await;
    let (held, released) = slow_remote(&world, 8);
    let first = app.new_key("acme", "first", &[]).await;
    eventually(
        "the push reaches the remote's hook",
        Duration::from_secs(10),
        || async { held.exists() },
        |h| *h,
    )
    .await;

    // While that push hangs: a write is taken, and every read answers.
    let second = app.new_key("acme", "second", &[]).await;
    assert_eq!(app.verdict("acme", &second).await["valid"], true);
    assert_eq!(app.verdict("acme", &first).await["valid"], true);
    assert_eq!(app.status("acme").await.status(), 200);
    assert_eq!(app.history("acme", None).await.status(), 200);
    assert_eq!(app.get_key("acme", "first").await.status(), 200);
    let healthz = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(healthz.status(), 200);
    assert!(!released.exists(), "the push was still out for all of it");

    // Then both go out.
    eventually(
        "both writes reach the remote",
        Duration::from_secs(30),
        || async { world.on_remote("acme") },
        |f| f.contains("name: first") && f.contains("name: second"),
    )
    .await;
}

#[tokio::test]
async fn async_if_match_puts_on_two_replicas_answer_200_and_the_one_that_loses_is_dropped_and_reported()
 {
    let world = World::new();
    let (a_dir, b_dir) = (world.clone_for("a"), world.clone_for("b"));
    let slow_pulls = |s: &mut keyward::config::Settings| {
        s.git.push = keyward::config::PushMode::Async;
        s.git.pull_interval_seconds = 60;
    };
    let a = keyward_on(&a_dir, slow_pulls).await;
    let b = keyward_on(&b_dir, slow_pulls).await;
    let etag = |res: &reqwest::Response| res.headers()["etag"].to_str().unwrap().to_owned();
    let seen = etag(&a.get_key("acme", "ci-deploy").await);
    assert_eq!(seen, etag(&b.get_key("acme", "ci-deploy").await));
    let put = |app: &TestApp, description: &str| {
        app.client
            .put(app.key_url("acme", "ci-deploy"))
            .bearer_auth(writer("acme"))
            .header("If-Match", seen.clone())
            .json(&json!({"enabled": true, "description": description}))
            .send()
    };

    assert_eq!(put(&a, "from A").await.unwrap().status(), 200);
    eventually(
        "A's update reaches the remote",
        Duration::from_secs(10),
        || async { world.on_remote("acme") },
        |f| f.contains("from A"),
    )
    .await;
    // B has not fetched A's update: async acknowledges what B knows.
    assert_eq!(put(&b, "from B").await.unwrap().status(), 200);

    // B's replay on the remote's tip finds the key changed since the ETag it was given.
    let status = eventually(
        "B reports its update as dropped",
        Duration::from_secs(15),
        || async { b.status("acme").await.json::<Value>().await.unwrap() },
        |s| {
            s["git"]["dropped"]
                .as_array()
                .is_some_and(|d| !d.is_empty())
        },
    )
    .await;
    let dropped = &status["git"]["dropped"][0];
    assert_eq!(dropped["verb"], "update", "{status}");
    assert_eq!(dropped["keyName"], "ci-deploy", "{status}");
    assert!(world.on_remote("acme").contains("from A"));
    assert!(!world.on_remote("acme").contains("from B"));
    assert!(
        b.metrics()
            .await
            .contains("keyward_git_dropped_writes_total 1"),
    );
}

#[tokio::test]
async fn history_on_a_server_not_in_git_mode_is_404_and_says_why() {
    // Arrange: a plain files server.
    let app = spawn_app().await;

    // Act
    let res = app.history("acme", None).await;

    // Assert: the service's own words, not a route's "no such resource".
    let body = assert_problem(res, 404, "not_found").await;
    assert_eq!(body["detail"], "this server is not in git mode", "{body}");
}
