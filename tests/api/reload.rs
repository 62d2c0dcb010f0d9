//! Hot reload: every way ops change files, through the real watcher and real files.
//! Waits are generous polls; latency is measured by the benchmark, not asserted here.

use std::path::Path;
use std::process::Command;
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

/// Polls until `key` is (or is not) valid for `tenant`; panics after 5 s.
async fn eventually(app: &TestApp, tenant: &str, key: &str, valid: bool) {
    for _ in 0..100 {
        if app.verdict(tenant, key).await["valid"] == valid {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{tenant}/{key} never became valid={valid}");
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
    eventually(&app, "globex", "alpha", true).await;
}

#[tokio::test]
async fn an_editor_rename_save_twice_in_a_row_is_picked_up_each_time() {
    let app = spawn_app().await;
    rename_save(&app.file("globex"), &file_with(&["one"]));
    eventually(&app, "globex", "one", true).await;

    rename_save(&app.file("globex"), &file_with(&["two"]));

    eventually(&app, "globex", "two", true).await;
    eventually(&app, "globex", "one", false).await;
}

#[tokio::test]
async fn delete_then_recreate_is_picked_up() {
    let app = spawn_app().await;
    std::fs::write(app.file("globex"), file_with(&["old"])).unwrap();
    eventually(&app, "globex", "old", true).await;

    std::fs::remove_file(app.file("globex")).unwrap();
    eventually(&app, "globex", "old", false).await;
    std::fs::write(app.file("globex"), file_with(&["new"])).unwrap();

    eventually(&app, "globex", "new", true).await;
}

#[tokio::test]
async fn git_checkout_of_another_version_is_picked_up() {
    let app = spawn_app().await;
    let dir = app.tenants();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(&dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    git(&["init", "-q"]);
    git(&["config", "user.email", "ops@example.com"]);
    git(&["config", "user.name", "ops"]);
    std::fs::write(app.file("globex"), file_with(&["version-a"])).unwrap();
    git(&["add", "-A"]);
    git(&["commit", "-qm", "A"]);
    let a = git(&["rev-parse", "HEAD"]).trim().to_owned();
    std::fs::write(app.file("globex"), file_with(&["version-b"])).unwrap();
    git(&["commit", "-qam", "B"]);
    eventually(&app, "globex", "version-b", true).await;

    git(&["checkout", "-q", &a, "--", "."]);
    eventually(&app, "globex", "version-a", true).await;
    eventually(&app, "globex", "version-b", false).await;

    git(&["checkout", "-q", "HEAD", "--", "."]);
    eventually(&app, "globex", "version-b", true).await;
    eventually(&app, "globex", "version-a", false).await;
}

#[tokio::test]
async fn a_new_tenant_directory_is_picked_up_and_a_removed_one_stops_working() {
    let app = spawn_app().await;
    let dir = app.tenants().join("initech");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("security.yml"), file_with(&["tps"])).unwrap();
    eventually(&app, "initech", "tps", true).await;

    std::fs::remove_dir_all(&dir).unwrap();

    eventually(&app, "initech", "tps", false).await;
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
    eventually(&app, "cm", "first", true).await;

    // What kubelet does: a new timestamped dir, a temp link, renamed over `..data`.
    std::fs::create_dir_all(cm.join("..2026_01_02")).unwrap();
    std::fs::write(cm.join("..2026_01_02/security.yml"), file_with(&["second"])).unwrap();
    symlink("..2026_01_02", cm.join("..data_tmp")).unwrap();
    std::fs::rename(cm.join("..data_tmp"), cm.join("..data")).unwrap();

    eventually(&app, "cm", "second", true).await;
    eventually(&app, "cm", "first", false).await;
    let res = app.create_key("cm", json!({"name": "x"})).await;
    assert_problem(res, 409, "tenant_read_only").await;
}

#[tokio::test]
async fn an_invalid_file_keeps_the_last_good_keys_shows_its_error_and_recovers() {
    let app = spawn_app().await;
    std::fs::write(app.file("globex"), file_with(&["good"])).unwrap();
    eventually(&app, "globex", "good", true).await;

    std::fs::write(
        app.file("globex"),
        "apiKeys:\n  - name: broken\n    hash: nope\n",
    )
    .unwrap();
    let mut status = json!(null);
    for _ in 0..100 {
        status = app.status("globex").await.json().await.unwrap();
        if status["valid"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert_eq!(status["valid"], false, "{status}");
    assert_eq!(status["error"]["line"], 2, "{status}");
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
    eventually(&app, "globex", "fixed", true).await;
    let status: Value = app.status("globex").await.json().await.unwrap();
    assert_eq!(status["valid"], true, "{status}");
    assert!(status["error"].is_null());
}

#[tokio::test]
async fn verification_never_fails_while_the_file_is_rewritten_in_a_loop() {
    let app = spawn_app().await;
    std::fs::write(app.file("globex"), file_with(&["stable"])).unwrap();
    eventually(&app, "globex", "stable", true).await;

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
