//! Hot reload: every way ops change files, through the real watcher and real files.
//! Waits are generous polls; latency is measured by the benchmark, not asserted here.

use std::path::Path;
use std::time::Duration;

use keyward::domain::KeyHash;
use serde_json::{Value, json};

use crate::helpers::*;

/// A file whose keys are the given plaintext strings (hash of each, by hand).
fn file_with(keys: &[&str]) -> String {
    let mut text = String::from("# hand-edited\napiKeys:\n");
    for k in keys {
        text.push_str(&format!(
            "  - name: {k}\n    hash: {}\n",
            KeyHash::of(k.as_bytes())
        ));
    }
    text
}

fn rename_save(path: &Path, text: &str) {
    let tmp = path.with_file_name(".security.yml.swp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn an_in_place_write_is_picked_up() {
    let app = spawn_app().await;
    std::fs::write(app.file("globex"), file_with(&["alpha"])).unwrap();
    app.eventually_valid("globex", "alpha", true).await;
}

#[tokio::test]
async fn an_editor_rename_save_twice_in_a_row_is_picked_up_each_time() {
    let app = spawn_app().await;
    rename_save(&app.file("globex"), &file_with(&["one"]));
    app.eventually_valid("globex", "one", true).await;

    rename_save(&app.file("globex"), &file_with(&["two"]));

    app.eventually_valid("globex", "two", true).await;
    app.eventually_valid("globex", "one", false).await;
}

#[tokio::test]
async fn delete_then_recreate_is_picked_up() {
    let app = spawn_app().await;
    std::fs::write(app.file("globex"), file_with(&["old"])).unwrap();
    app.eventually_valid("globex", "old", true).await;

    std::fs::remove_file(app.file("globex")).unwrap();
    app.eventually_valid("globex", "old", false).await;
    std::fs::write(app.file("globex"), file_with(&["new"])).unwrap();

    app.eventually_valid("globex", "new", true).await;
}

#[tokio::test]
async fn git_checkout_of_another_version_is_picked_up() {
    let app = spawn_app().await;
    let dir = app.tenants();
    git(&dir, &["init", "-q"]);
    git(&dir, &["config", "user.email", "ops@example.com"]);
    git(&dir, &["config", "user.name", "ops"]);
    std::fs::write(app.file("globex"), file_with(&["version-a"])).unwrap();
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-qm", "A"]);
    let a = git(&dir, &["rev-parse", "HEAD"]).trim().to_owned();
    std::fs::write(app.file("globex"), file_with(&["version-b"])).unwrap();
    git(&dir, &["commit", "-qam", "B"]);
    app.eventually_valid("globex", "version-b", true).await;

    git(&dir, &["checkout", "-q", &a, "--", "."]);
    app.eventually_valid("globex", "version-a", true).await;
    app.eventually_valid("globex", "version-b", false).await;

    git(&dir, &["checkout", "-q", "HEAD", "--", "."]);
    app.eventually_valid("globex", "version-b", true).await;
    app.eventually_valid("globex", "version-a", false).await;
}

#[tokio::test]
async fn a_new_tenant_directory_is_picked_up_and_a_removed_one_stops_working() {
    let app = spawn_app().await;
    let dir = app.tenants().join("initech");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("security.yml"), file_with(&["tps"])).unwrap();
    app.eventually_valid("initech", "tps", true).await;

    std::fs::remove_dir_all(&dir).unwrap();

    app.eventually_valid("initech", "tps", false).await;
    assert_eq!(app.verdict("initech", "tps").await["code"], "not_found");
}

#[tokio::test]
async fn a_kubernetes_configmap_data_symlink_swap_is_picked_up() {
    use std::os::unix::fs::symlink;
    let app = spawn_app().await;
    let cm = app.tenants().join("cm");
    std::fs::create_dir_all(cm.join("..2026_01_01")).unwrap();
    std::fs::write(cm.join("..2026_01_01/security.yml"), file_with(&["first"])).unwrap();
    symlink("..2026_01_01", cm.join("..data")).unwrap();
    symlink("..data/security.yml", cm.join("security.yml")).unwrap();
    app.eventually_valid("cm", "first", true).await;

    // What kubelet does: a new timestamped dir, a temp link, renamed over `..data`.
    std::fs::create_dir_all(cm.join("..2026_01_02")).unwrap();
    std::fs::write(cm.join("..2026_01_02/security.yml"), file_with(&["second"])).unwrap();
    symlink("..2026_01_02", cm.join("..data_tmp")).unwrap();
    std::fs::rename(cm.join("..data_tmp"), cm.join("..data")).unwrap();

    app.eventually_valid("cm", "second", true).await;
    app.eventually_valid("cm", "first", false).await;
    let res = app.create_key("cm", json!({"name": "x"})).await;
    assert_problem(res, 409, "tenant_read_only").await;
}

async fn status_of(app: &TestApp, tenant: &str) -> Value {
    app.status(tenant).await.json().await.unwrap()
}

#[tokio::test]
async fn an_invalid_file_keeps_the_last_good_keys_shows_its_error_and_recovers() {
    let app = spawn_app().await;
    std::fs::write(app.file("globex"), file_with(&["good"])).unwrap();
    app.eventually_valid("globex", "good", true).await;

    std::fs::write(
        app.file("globex"),
        "apiKeys:\n  - name: broken\n    hash: nope\n",
    )
    .unwrap();
    let status = eventually(
        "globex's status invalid",
        Duration::from_secs(5),
        || status_of(&app, "globex"),
        |status| status["valid"] == false,
    )
    .await;

    assert_eq!(status["valid"], false, "{status}");
    // The bad value itself (`hash: nope` is line 3), not the entry's first line.
    assert_eq!(status["error"]["line"], 3, "{status}");
    assert!(
        status["error"]["message"]
            .as_str()
            .unwrap()
            .contains("hash")
    );
    assert_eq!(
        app.verdict("globex", "good").await["valid"],
        true,
        "last good keys stay"
    );

    std::fs::write(app.file("globex"), file_with(&["fixed"])).unwrap();
    app.eventually_valid("globex", "fixed", true).await;
    let status = status_of(&app, "globex").await;
    assert_eq!(status["valid"], true, "{status}");
    assert!(status["error"].is_null());
}

#[tokio::test]
async fn verification_never_fails_while_the_file_is_rewritten_in_a_loop() {
    let app = spawn_app().await;
    std::fs::write(app.file("globex"), file_with(&["stable"])).unwrap();
    app.eventually_valid("globex", "stable", true).await;

    let path = app.file("globex");
    let writer = tokio::task::spawn_blocking(move || {
        for i in 0..200 {
            let keys: &[&str] = if i % 2 == 0 {
                &["stable", "extra"]
            } else {
                &["stable"]
            };
            if i % 4 < 2 {
                std::fs::write(&path, file_with(keys)).unwrap();
            } else {
                rename_save(&path, &file_with(keys));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let checkers: Vec<_> = (0..4)
        .map(|_| {
            let client = app.client.clone();
            let url = app.url("/api/globex/apiKeys/verify");
            tokio::spawn(async move {
                let mut checked = 0;
                let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
                while tokio::time::Instant::now() < deadline {
                    let res = client
                        .post(&url)
                        .json(&json!({"key": "stable"}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), 200);
                    let body: Value = res.json().await.unwrap();
                    assert_eq!(
                        body["valid"], true,
                        "a key in every version never fails: {body}"
                    );
                    checked += 1;
                }
                checked
            })
        })
        .collect();

    writer.await.unwrap();
    for c in checkers {
        assert!(c.await.unwrap() > 10);
    }
}

#[tokio::test]
async fn a_key_created_through_the_api_is_valid_at_once() {
    let app = spawn_app().await;
    let token = app.new_key("acme", "instant", &[]).await;
    assert_eq!(app.verdict("acme", &token).await["valid"], true);
}

/// The reloads counted for `tenant` in `/metrics`, whatever their outcome.
async fn reloads(app: &TestApp, tenant: &str) -> u64 {
    keyward::metrics::tenant_total(&app.metrics().await, "keyward_reloads_total", tenant)
}

#[tokio::test]
async fn a_reload_reading_the_file_does_not_trigger_another() {
    let app = spawn_app().await;
    std::fs::write(app.file("globex"), file_with(&["alpha"])).unwrap();
    app.eventually_valid("globex", "alpha", true).await;
    // Let the change's own reloads settle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let settled = reloads(&app, "globex").await;

    tokio::time::sleep(Duration::from_secs(2)).await;

    assert_eq!(
        reloads(&app, "globex").await,
        settled,
        "an idle server keeps reloading a file nobody changed"
    );
}
