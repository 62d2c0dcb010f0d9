//! The file rules: invalid files are never overwritten, read-only files are never written,
//! flow-style YAML is edited in place, unknown tenants are never created.

use std::os::unix::fs::symlink;

use serde_json::json;

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
