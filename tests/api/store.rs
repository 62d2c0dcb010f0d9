//! The file rules: invalid files are never overwritten, read-only files are never written,
//! flow-style YAML is edited in place, unknown tenants are never created, symlinks never
//! cross a tenant's boundary, and a file's content never leaves it.

use std::os::unix::fs::symlink;

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn an_invalid_file_refuses_writes_and_is_left_as_it_is() {
    let app = spawn_app().await;
    let broken = "apiKeys:\n  - name: a\n    hash: not-a-hash\n";
    std::fs::write(app.file("globex"), broken).unwrap();

    let res = app.create_key("globex", json!({"name": "b"})).await;

    let body = assert_problem(res, 409, "tenant_file_invalid").await;
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("3:11: apiKeys[0]") && detail.contains("hash"),
        "{detail}"
    );
    assert_eq!(app.read_file("globex"), broken);
}

#[tokio::test]
async fn a_symlinked_file_is_read_only() {
    let app = spawn_app().await;
    // A ConfigMap mount: the file is a link into the tenant's own `..data`. (A link that
    // leads outside the tenant directory is not read at all: see hardening.rs.)
    let data = app.tenants().join("globex/..data");
    std::fs::create_dir_all(&data).unwrap();
    let real = data.join("security.yml");
    std::fs::write(&real, "apiKeys: []\n").unwrap();
    symlink("..data/security.yml", app.file("globex")).unwrap();

    let res = app.create_key("globex", json!({"name": "b"})).await;

    assert_problem(res, 409, "tenant_read_only").await;
    assert_eq!(std::fs::read_to_string(&real).unwrap(), "apiKeys: []\n");
}

#[tokio::test]
async fn read_only_mode_refuses_every_write() {
    let app = spawn_app_with(|s| s.read_only = true).await;
    let res = app.create_key("acme", json!({"name": "b"})).await;
    assert_problem(res, 409, "tenant_read_only").await;
    let res = app
        .client
        .delete(app.keys_url("acme") + "/ci-deploy")
        .bearer_auth(writer("acme"))
        .send()
        .await
        .unwrap();
    assert_problem(res, 409, "tenant_read_only").await;
    assert_eq!(app.read_file("acme"), ACME_FILE);
}

#[tokio::test]
async fn flow_style_files_are_edited_in_flow_style() {
    let app = spawn_app().await;
    let flow = "apiKeys: [{name: a, hash: \"sha256:3333333333333333333333333333333333333333333333333333333333333333\"}]  # flow\nother: 1\n";
    std::fs::write(app.file("globex"), flow).unwrap();

    app.new_key("globex", "b", &["x:read"]).await;
    let after = app.read_file("globex");
    assert!(
        after.starts_with("apiKeys: [{name: a, hash: \"sha256:3333"),
        "{after}"
    );
    assert!(after.ends_with("]  # flow\nother: 1\n"), "{after}");
    assert_eq!(app.list_names("globex").await, ["a", "b"]);

    let res = app
        .client
        .delete(app.keys_url("globex") + "/b")
        .bearer_auth(writer("globex"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.read_file("globex"), flow);
}

#[tokio::test]
async fn an_empty_flow_list_becomes_a_block_list_and_comes_back() {
    let app = spawn_app().await;
    let empty = "# nothing yet\napiKeys: []\n";
    std::fs::write(app.file("globex"), empty).unwrap();

    app.new_key("globex", "only", &[]).await;
    assert!(app.read_file("globex").contains("\n  - name: only\n"));
    let res = app
        .client
        .delete(app.keys_url("globex") + "/only")
        .bearer_auth(writer("globex"))
        .send()
        .await
        .unwrap();

    assert_eq!(res.status(), 204);
    assert_eq!(app.read_file("globex"), empty);
}

#[tokio::test]
async fn comments_after_flow_items_survive_create_update_and_delete() {
    // Found by a saved fuzz input: the end of a flow item ran on over its line's comment,
    // so a create answered 500 and an update dropped the comment.
    let app = spawn_app().await;
    let h = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
    let flow = format!("apiKeys: [ # open\n  {{name: a, hash: {h}}} # the only one\n] # close\n");
    std::fs::write(app.file("globex"), &flow).unwrap();

    app.new_key("globex", "b", &[]).await;
    let res = app
        .client
        .put(app.keys_url("globex") + "/a")
        .bearer_auth(writer("globex"))
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let after = app.read_file("globex");
    for comment in ["# open\n", "# the only one\n", "# close\n"] {
        assert!(after.contains(comment), "{comment:?} lost:\n{after}");
    }

    for name in ["b", "a"] {
        let res = app
            .client
            .delete(app.keys_url("globex") + "/" + name)
            .bearer_auth(writer("globex"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
    }
    let after = app.read_file("globex");
    assert!(
        after.contains("# open") && after.contains("# close"),
        "{after}"
    );
}

const ONE_KEY: &str = "apiKeys:\n  - name: a\n    hash: sha256:3333333333333333333333333333333333333333333333333333333333333333\n";

#[tokio::test]
async fn a_valid_file_the_editor_cannot_edit_is_409_unsupported_and_left_as_it_is() {
    let app = spawn_app().await;
    for text in [
        // The loader takes these; the surgical editor will not touch them.
        "apiKeys: [\n]\n",
        "base: &keys []\napiKeys: *keys\n",
        // Line breaks YAML 1.1 knows and the editor's YAML 1.2 parser does not.
        &format!("{ONE_KEY}# one\r# two\n"),
        &format!("{ONE_KEY}# one\u{2028}# two\n"),
        // A byte order mark after the start: YAML 1.1 reads it as part of the key.
        &format!("\u{feff}\u{feff}{ONE_KEY}"),
        // An anchor name that ends earlier for one parser than for the other.
        &format!("meta: &a:b x\n{ONE_KEY}"),
    ] {
        std::fs::write(app.file("globex"), text).unwrap();
        let res = app.create_key("globex", json!({"name": "b"})).await;
        let body = assert_problem(res, 409, "tenant_file_unsupported").await;
        assert!(
            body["detail"].as_str().unwrap().contains("by hand"),
            "{body}"
        );
        assert_eq!(app.read_file("globex"), text);
    }
}

#[tokio::test]
async fn an_alias_bomb_beside_the_keys_is_never_expanded_and_the_file_never_written() {
    let app = spawn_app().await;
    let bomb = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/regressions/loader/alias-bomb.yml"),
    )
    .unwrap();
    std::fs::write(app.file("globex"), &bomb).unwrap();

    let res = app.create_key("globex", json!({"name": "b"})).await;

    assert_problem(res, 409, "tenant_file_unsupported").await;
    assert_eq!(app.read_file("globex"), bomb);
}

#[tokio::test]
async fn an_invalid_files_problem_names_the_position_and_kind_never_the_content() {
    let app = spawn_app().await;
    let broken = "apiKeys:\n  - name: a\n    hash: sha256:3333333333333333333333333333333333333333333333333333333333333333\n    DB_PASSWORD: hunter2-secret\n";
    std::fs::write(app.file("globex"), broken).unwrap();

    let res = app.create_key("globex", json!({"name": "b"})).await;

    let body = assert_problem(res, 409, "tenant_file_invalid").await;
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("4:5: apiKeys[0]: unknown field in a key entry"),
        "{detail}"
    );
    let all = body.to_string();
    assert!(
        !all.contains("DB_PASSWORD") && !all.contains("hunter2"),
        "{all}"
    );
}

#[tokio::test]
async fn a_symlinked_tenant_never_aliases_another_tenant_nor_reaches_outside() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("security.yml"), "apiKeys: []\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tenants = dir.path().join("tenants");
    std::fs::create_dir_all(tenants.join("acme")).unwrap();
    std::fs::write(tenants.join("acme/security.yml"), ACME_FILE).unwrap();
    std::os::unix::fs::symlink("acme", tenants.join("alias")).unwrap();
    std::os::unix::fs::symlink(outside.path(), tenants.join("escape")).unwrap();
    let app = spawn_app_on(dir, |_| {}).await;
    let key = app.new_key("acme", "real", &[]).await;

    assert_eq!(app.verdict("acme", &key).await["valid"], true);
    assert_eq!(
        app.verdict("alias", &key).await["valid"],
        false,
        "acme's key at /alias"
    );
    for tenant in ["alias", "escape"] {
        let res = app
            .client
            .post(app.keys_url(tenant))
            .bearer_auth(writer(tenant))
            .json(&json!({"name": "planted"}))
            .send()
            .await
            .unwrap();
        assert_problem(res, 404, "tenant_not_found").await;
    }
    assert_eq!(
        std::fs::read_to_string(outside.path().join("security.yml")).unwrap(),
        "apiKeys: []\n",
        "nothing written outside tenants_dir"
    );
    assert!(!app.read_file("acme").contains("planted"));
}

#[tokio::test]
async fn a_projected_volume_layout_is_served_read_only() {
    // What the kubelet makes: tenants/..2026_x/acme/security.yml, tenants/..data ->
    // ..2026_x, tenants/acme -> ..data/acme.
    let dir = tempfile::tempdir().unwrap();
    let tenants = dir.path().join("tenants");
    std::fs::create_dir_all(tenants.join("..2026_11_28/acme")).unwrap();
    std::fs::write(tenants.join("..2026_11_28/acme/security.yml"), ACME_FILE).unwrap();
    std::os::unix::fs::symlink("..2026_11_28", tenants.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/acme", tenants.join("acme")).unwrap();
    let app = spawn_app_on(dir, |_| {}).await;

    let list = app.list_keys("acme", Reader).await;
    assert_eq!(list.status(), 200);
    let names: Vec<Value> = list.json().await.unwrap();
    assert_eq!(names.len(), 2);
    let res = app.create_key("acme", json!({"name": "vanishing"})).await;
    assert_problem(res, 409, "tenant_read_only").await;
    let status: Value = app.status("acme").await.json().await.unwrap();
    assert_eq!(status["readOnly"], true, "{status}");
}

#[tokio::test]
async fn a_security_yml_linked_outside_its_tenant_is_never_read() {
    let secret = tempfile::tempdir().unwrap();
    let target = secret.path().join("id_rsa");
    std::fs::write(&target, "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tenants = dir.path().join("tenants");
    std::fs::create_dir_all(tenants.join("acme")).unwrap();
    std::os::unix::fs::symlink(&target, tenants.join("acme/security.yml")).unwrap();
    let app = spawn_app_on(dir, |_| {}).await;

    let status = app.status("acme").await.text().await.unwrap();
    assert!(status.contains("\"valid\":false"), "{status}");
    assert!(status.contains("outside its tenant directory"), "{status}");
    assert!(
        !status.contains("MIIEvQ") && !status.contains("PRIVATE"),
        "{status}"
    );
}

#[tokio::test]
async fn a_file_s_content_never_appears_in_a_status_or_an_error() {
    let app = spawn_app().await;
    std::fs::write(
        app.file("globex"),
        "apiKeys:\n  - name: a\n    hash: 1111111111111111111111111111111111111111111111111111111111111111\nDB_PASSWORD=hunter2-secret\n",
    )
    .unwrap();
    let mut status = Value::Null;
    for _ in 0..100 {
        status = app.status("globex").await.json().await.unwrap();
        if status["valid"] == false {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status["valid"], false, "{status}");
    assert!(status["error"]["line"].is_number(), "{status}");
    let write = app
        .create_key("globex", json!({"name": "x"}))
        .await
        .text()
        .await
        .unwrap();
    for text in [status.to_string(), write] {
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("DB_PASSWORD"), "{text}");
    }
}

#[tokio::test]
async fn a_tenant_on_a_read_only_filesystem_answers_409_not_500() {
    // Mounting a read-only filesystem needs root, which CI has.
    if !rustix::process::geteuid().is_root() && std::env::var_os("CI").is_none() {
        eprintln!("SKIPPED: the read-only filesystem test needs root (to mount a tmpfs)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tenants = dir.path().join("tenants");
    let acme = tenants.join("acme");
    std::fs::create_dir_all(&acme).unwrap();
    let mount = |args: &[&str]| {
        let ok = std::process::Command::new("mount")
            .args(args)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount {args:?} (the test needs root, as CI has)");
    };
    let acme_path = acme.to_str().unwrap().to_owned();
    mount(&["-t", "tmpfs", "-o", "size=1m", "tmpfs", &acme_path]);
    std::fs::write(acme.join("security.yml"), ACME_FILE).unwrap();
    mount(&["-o", "remount,ro", &acme_path]);
    let app = spawn_app_on(dir, |_| {}).await;

    let res = app.create_key("acme", json!({"name": "nope"})).await;

    let answer = assert_problem(res, 409, "tenant_read_only").await;
    let _ = std::process::Command::new("umount")
        .arg(&acme_path)
        .status();
    assert!(answer["detail"].is_string());
}
