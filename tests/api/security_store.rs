//! The third security review's findings about files on disk, through a real server: a
//! removed tenant's kept keys never serve a new tenant of its name, and a tracked file
//! named like keyward's temporary files is never deleted.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

async fn status_json(app: &TestApp, tenant: &str) -> (u16, Value) {
    let res = app.status(tenant).await;
    let code = res.status().as_u16();
    (code, res.json().await.unwrap_or(Value::Null))
}

/// Removes a tenant's directory and makes it again with a file that does not parse.
fn recreate_invalid(tenants: &Path, tenant: &str) {
    let dir = tenants.join(tenant);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("security.yml"), "apiKeys: [\n").unwrap();
}

#[tokio::test]
async fn a_removed_tenant_s_kept_keys_never_serve_a_new_tenant_of_its_name() {
    // Arrange: acme has a key, kept in state_dir as its last valid version.
    let dir = tenants_with(&[("acme", "apiKeys: []\n"), ("globex", "apiKeys: []\n")]);
    // New tenant directories are found by the rescan.
    let app = spawn_app_on(dir, |s| s.rescan_interval_seconds = 1).await;
    let old = app.new_key("acme", "old", &["*"]).await;
    assert_eq!(app.verdict("acme", &old).await["valid"], true);

    // Act: acme's directory is removed, and a new acme appears with a broken file.
    let snapshot = app
        .tenants()
        .parent()
        .unwrap()
        .join("state/last-good/acme.snapshot");
    assert!(snapshot.exists());
    std::fs::remove_dir_all(app.tenants().join("acme")).unwrap();
    app.eventually_valid("acme", &old, false).await;
    assert!(
        !snapshot.exists(),
        "the removed tenant's snapshot is deleted"
    );
    let tenants = app.tenants();
    std::fs::create_dir(tenants.join("acme")).unwrap();
    std::fs::write(tenants.join("acme/security.yml"), "apiKeys: [\n").unwrap();
    let (_, status) = eventually(
        "the new acme is seen, invalid",
        Duration::from_secs(10),
        || status_json(&app, "acme"),
        |(code, s)| *code == 200 && s["valid"] == false,
    )
    .await;

    // Assert: the old key is nothing to the new acme, while running and after a restart.
    assert_eq!(status["keys"], 0, "{status}");
    assert_eq!(status["keysFrom"], "file", "{status}");
    assert_eq!(app.verdict("acme", &old).await["valid"], false);
    let dir = app.stop().await;
    let app = spawn_app_on(dir, |_| {}).await;
    assert_eq!(app.verdict("acme", &old).await["valid"], false);
    let (_, status) = status_json(&app, "acme").await;
    assert_eq!(status["keys"], 0, "{status}");
}

#[tokio::test]
async fn a_tenant_recreated_while_keyward_is_down_never_serves_the_old_one_s_keys() {
    // Arrange
    let dir = tenants_with(&[("acme", "apiKeys: []\n")]);
    let app = spawn_app_on(dir, |_| {}).await;
    let old = app.new_key("acme", "old", &["*"]).await;
    let dir = app.stop().await;

    // Act: while keyward is down, acme is removed and made again, broken.
    recreate_invalid(&dir.path().join("tenants"), "acme");
    let app = spawn_app_on(dir, |_| {}).await;

    // Assert
    assert_eq!(app.verdict("acme", &old).await["valid"], false);
    let (_, status) = status_json(&app, "acme").await;
    assert_eq!(
        (&status["valid"], &status["keys"], &status["keysFrom"]),
        (&Value::Bool(false), &Value::from(0), &Value::from("file")),
        "{status}"
    );
}

#[tokio::test]
async fn a_file_named_like_keyward_s_temp_files_survives_writes_rescans_and_restarts() {
    // Arrange: ops keep a file whose name has the pattern keyward's temp files once had,
    // older than any write in progress could be.
    let dir = tenants_with(&[("acme", "apiKeys: []\n")]);
    let kept = dir.path().join("tenants/acme/.security.yml.AbC123.tmp");
    std::fs::write(&kept, "ops' own notes\n").unwrap();
    let old = std::process::Command::new("touch")
        .args(["-d", "2 minutes ago"])
        .arg(&kept)
        .status()
        .unwrap();
    assert!(old.success());

    // Act: a start-up, a write, a full rescan (SIGHUP's and the timer's), a restart.
    let app = spawn_app_on(dir, |s| s.rescan_interval_seconds = 1).await;
    app.new_key("acme", "k1", &[]).await;
    let dir = app.stop().await;
    let app = spawn_app_on(dir, |_| {}).await;
    app.new_key("acme", "k2", &[]).await;
    let dir = app.stop().await;

    // Assert: the file is as ops left it, and keyward's writes left no file behind.
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), "ops' own notes\n");
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("tenants/acme"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".security.yml.AbC123.tmp", "security.yml"]);
}
