use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn create_returns_the_token_once_and_stores_only_its_hash() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let res = app
        .create_key(
            "acme",
            json!({"name": "new-key", "permissions": ["orders:read"], "description": "for tests"}),
        )
        .await;

    // Assert
    assert_eq!(res.status(), 201);
    let h = res.headers().clone();
    assert_eq!(h["location"], "/api/acme/admin/apiKeys/new-key");
    assert_eq!(h["cache-control"], "no-store");
    assert!(h["etag"].to_str().unwrap().starts_with('"'));
    let body: Value = res.json().await.unwrap();
    let token = body["token"].as_str().unwrap();
    assert!(token.starts_with("kw_") && token.len() == 52, "{token}");
    assert_eq!(body["name"], "new-key");
    assert_eq!(body["enabled"], true);
    assert_eq!(body["permissions"], json!(["orders:read"]));
    assert_eq!(body["createdBy"], "alice@example.com");
    assert!(body["createdAt"].is_string());
    assert!(body["expiresAt"].is_null());
    assert!(body.get("hash").is_none());

    let file = app.read_file("acme");
    let hash = keyward::domain::KeyHash::of(token.as_bytes()).to_string();
    assert!(file.contains(&hash), "{file}");
    assert!(!file.contains(token));

    let get = app.get_key("acme", "new-key").await;
    assert_eq!(get.status(), 200);
    assert!(get.headers().get("etag").is_some());
    let got: Value = get.json().await.unwrap();
    assert!(got.get("token").is_none() && got.get("hash").is_none());
    assert_eq!(got["description"], "for tests");
}

#[tokio::test]
async fn list_is_sorted_by_name_and_never_shows_hashes() {
    let app = spawn_app().await;
    app.new_key("acme", "aaa-first", &[]).await;

    let res = app.list_keys("acme", Reader).await;

    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(
        !text.contains("sha256") && !text.contains("1111111111"),
        "{text}"
    );
    let body: Vec<Value> = serde_json::from_str(&text).unwrap();
    let names: Vec<_> = body.iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["aaa-first", "ci-deploy", "reporting"]);
    assert_eq!(body[2]["enabled"], false);
    for k in &body {
        for field in ["description", "createdAt", "createdBy", "expiresAt"] {
            assert!(
                k.get(field).is_some(),
                "{field} is present (null when absent)"
            );
        }
    }
}

#[tokio::test]
async fn create_then_delete_gives_back_the_original_file_byte_for_byte() {
    let app = spawn_app().await;
    app.new_key("acme", "temp", &["orders:read"]).await;
    assert_ne!(app.read_file("acme"), ACME_FILE);

    let res = app.delete_key("acme", "temp").await;

    assert_eq!(res.status(), 204);
    assert_eq!(app.read_file("acme"), ACME_FILE);
}

#[tokio::test]
async fn create_appends_one_entry_and_keeps_every_other_byte() {
    let app = spawn_app().await;

    app.new_key("acme", "appended", &[]).await;

    let after = app.read_file("acme");
    let (head, tail) = ACME_FILE.split_at(ACME_FILE.find("# other tools").unwrap());
    assert!(after.starts_with(head.trim_end_matches('\n')), "{after}");
    assert!(after.ends_with(tail), "{after}");
    assert!(after.contains("- name: appended"));
}

#[tokio::test]
async fn update_changes_only_the_given_fields_and_null_clears() {
    let app = spawn_app().await;
    app.create_key(
        "acme",
        json!({"name": "k", "permissions": ["a"], "description": "d", "expiresAt": "2099-01-01T00:00:00Z"}),
    )
    .await;

    let res = app
        .update_key("acme", "k", json!({"enabled": false, "description": null}))
        .await;

    assert_eq!(res.status(), 200);
    assert!(res.headers().get("etag").is_some());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["enabled"], false);
    assert_eq!(body["permissions"], json!(["a"]), "omitted: unchanged");
    assert!(body["description"].is_null(), "null: cleared");
    assert_eq!(body["expiresAt"], "2099-01-01T00:00:00Z");
    assert!(
        app.read_file("acme")
            .contains("users:\n  - alice   # admin\n")
    );
}

#[tokio::test]
async fn update_needs_enabled() {
    let app = spawn_app().await;
    let res = app
        .update_key("acme", "ci-deploy", json!({"permissions": []}))
        .await;
    let body = assert_problem(res, 400, "invalid_request").await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("enabled"), "{message}");
}

#[tokio::test]
async fn if_match_with_a_stale_etag_is_refused_and_nothing_is_written() {
    let app = spawn_app().await;
    let get = app.get_key("acme", "ci-deploy").await;
    let etag = get.headers()["etag"].to_str().unwrap().to_owned();
    // An ops edit in git changes the entry behind the dashboard's back.
    let edited = ACME_FILE.replace("[orders:read, orders:write]", "[orders:read]");
    std::fs::write(app.file("acme"), &edited).unwrap();

    let put = app
        .update_key_as(
            "acme",
            "ci-deploy",
            json!({"enabled": false}),
            Writer,
            Some(&etag),
        )
        .await;
    assert_problem(put, 412, "precondition_failed").await;
    assert_eq!(app.read_file("acme"), edited);
    let delete = app
        .delete_key_as("acme", "ci-deploy", Writer, Some(&etag))
        .await;
    assert_problem(delete, 412, "precondition_failed").await;
    assert_eq!(app.read_file("acme"), edited);
}

#[tokio::test]
async fn if_match_with_the_current_etag_succeeds() {
    let app = spawn_app().await;
    let get = app.get_key("acme", "ci-deploy").await;
    let etag = get.headers()["etag"].to_str().unwrap().to_owned();

    let res = app
        .update_key_as(
            "acme",
            "ci-deploy",
            json!({"enabled": false}),
            Writer,
            Some(&etag),
        )
        .await;

    assert_eq!(res.status(), 200);
    assert_ne!(res.headers()["etag"].to_str().unwrap(), etag);
}

#[tokio::test]
async fn creating_an_existing_name_is_a_conflict() {
    let app = spawn_app().await;
    let res = app.create_key("acme", json!({"name": "ci-deploy"})).await;
    assert_problem(res, 409, "key_exists").await;
    assert_eq!(app.read_file("acme"), ACME_FILE);
}

#[tokio::test]
async fn missing_keys_are_404_for_get_put_and_delete() {
    let app = spawn_app().await;
    let res = app.get_key("acme", "nope").await;
    assert_problem(res, 404, "key_not_found").await;
    let res = app
        .update_key("acme", "nope", json!({"enabled": true}))
        .await;
    assert_problem(res, 404, "key_not_found").await;
    let res = app.delete_key("acme", "nope").await;
    assert_problem(res, 404, "key_not_found").await;
}

#[tokio::test]
async fn a_tenant_directory_without_a_file_has_no_keys_and_gets_a_0644_file() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app().await;
    assert!(app.list_names("globex").await.is_empty());

    app.new_key("globex", "first", &[]).await;

    let mode = std::fs::metadata(app.file("globex"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    assert_eq!(app.list_names("globex").await, ["first"]);
}

#[tokio::test]
async fn a_write_keeps_the_files_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app().await;
    std::fs::set_permissions(app.file("acme"), std::fs::Permissions::from_mode(0o640)).unwrap();

    app.new_key("acme", "perm", &[]).await;

    let mode = std::fs::metadata(app.file("acme"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
}

#[tokio::test]
async fn three_hundred_concurrent_creates_lose_nothing() {
    let app = spawn_app().await;
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let client = app.client.clone();
            let url = app.keys_url("acme");
            tokio::spawn(async move {
                client
                    .post(url)
                    .bearer_auth(writer("acme"))
                    .json(&json!({"name": format!("c{i:03}")}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }

    let file = keyward::store::SecurityFile::parse(&app.read_file("acme")).unwrap();
    assert_eq!(file.keys.len(), 302);
    assert_eq!(app.list_names("acme").await.len(), 302);
}

#[tokio::test]
async fn two_servers_sharing_one_directory_lose_no_write() {
    let first = spawn_app().await;
    let dir = first.dir.path().to_owned();
    let mut s = settings_for(&dir);
    s.listen = "127.0.0.1:0".into();
    let second = keyward::startup::Application::build(s).await.unwrap();
    let (second, _, _) = serve(second).await;
    let second_url = format!("{second}/api/acme/admin/apiKeys");

    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let client = first.client.clone();
            let url = if i % 2 == 0 {
                first.keys_url("acme")
            } else {
                second_url.clone()
            };
            tokio::spawn(async move {
                client
                    .post(url)
                    .bearer_auth(writer("acme"))
                    .json(&json!({"name": format!("shared{i:03}")}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }

    let file = keyward::store::SecurityFile::parse(&first.read_file("acme")).unwrap();
    assert_eq!(file.keys.len(), 102);
}

#[tokio::test]
async fn creates_stop_at_the_per_tenant_key_limit_and_nothing_is_written() {
    let app = spawn_app_with(|s| s.max_keys_per_tenant = 3).await;
    // acme starts with two keys.
    assert_eq!(
        app.create_key("acme", json!({"name": "third"}))
            .await
            .status(),
        201
    );
    let before = app.read_file("acme");

    let res = app.create_key("acme", json!({"name": "fourth"})).await;
    let body = assert_problem(res, 409, "key_limit_reached").await;
    assert!(body["detail"].as_str().unwrap().contains('3'), "{body}");
    assert_eq!(app.read_file("acme"), before);

    // Updates and deletes are not limited; a delete makes room again.
    let res = app.delete_key("acme", "third").await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.create_key("acme", json!({"name": "fourth"}))
            .await
            .status(),
        201
    );
}

/// The public hint a token gets: its prefix and its last four characters.
fn hint_of(token: &str) -> String {
    let (prefix, _) = token.split_once('_').unwrap();
    format!("{prefix}_...{}", &token[token.len() - 4..])
}

/// A field the view must send, `null` or not (absent is not the same as `null`).
fn field<'a>(view: &'a Value, name: &str) -> &'a Value {
    view.as_object()
        .unwrap()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {view}"))
}

#[tokio::test]
async fn create_writes_the_token_s_hint_to_the_file_and_shows_it() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let res = app.create_key("acme", json!({"name": "hinted"})).await;

    // Assert
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    let token = body["token"].as_str().unwrap();
    let hint = hint_of(token);
    assert_eq!(field(&body, "hint"), &json!(hint));
    assert!(field(&body, "rotatedAt").is_null());
    let text = app.read_file("acme");
    assert!(text.contains(&format!("hint: {hint}\n")), "{text}");
    assert!(!text.contains(token));
    let view: Value = app.get_key("acme", "hinted").await.json().await.unwrap();
    assert_eq!(field(&view, "hint"), &json!(hint));
}

#[tokio::test]
async fn rotate_replaces_the_hint_and_records_when_to_the_second() {
    // Arrange
    let clock = keyward::clock::Clock::manual(time::OffsetDateTime::now_utc());
    let app = spawn_app_with_clock(clock.clone(), |_| {}).await;
    let first = app.new_key("acme", "turning", &[]).await;
    clock.advance(std::time::Duration::from_millis(90_500));

    // Act
    let res = app.rotate_key("acme", "turning", None).await;

    // Assert
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let second = body["token"].as_str().unwrap();
    let rotated_at = clock
        .now()
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert_eq!(field(&body, "hint"), &json!(hint_of(second)));
    assert_eq!(field(&body, "rotatedAt"), &json!(rotated_at));
    let text = app.read_file("acme");
    assert!(
        text.contains(&format!("hint: {}\n", hint_of(second))),
        "{text}"
    );
    assert!(!text.contains(&hint_of(&first)) || hint_of(&first) == hint_of(second));
    assert!(
        text.contains(&format!("rotatedAt: {rotated_at}\n")),
        "{text}"
    );
    // The entry's lines keep their order: hint after hash, rotatedAt after createdBy.
    let entry = &text[text.find("name: turning").unwrap()..];
    let at = |field: &str| entry.find(field).unwrap();
    assert!(
        at("hash:") < at("hint:") && at("hint:") < at("enabled:"),
        "{entry}"
    );
    assert!(at("createdBy:") < at("rotatedAt:"), "{entry}");
}

#[tokio::test]
async fn updates_keep_the_hint_and_the_rotation_time() {
    // Arrange
    let app = spawn_app().await;
    app.new_key("acme", "kept", &[]).await;
    let rotated: Value = app
        .rotate_key("acme", "kept", None)
        .await
        .json()
        .await
        .unwrap();

    // Act
    let res = app
        .update_key(
            "acme",
            "kept",
            json!({"enabled": false, "description": "x"}),
        )
        .await;

    // Assert
    assert_eq!(res.status(), 200);
    let view: Value = res.json().await.unwrap();
    assert_eq!(field(&view, "hint"), field(&rotated, "hint"));
    assert_eq!(field(&view, "rotatedAt"), field(&rotated, "rotatedAt"));
    let text = app.read_file("acme");
    assert_eq!(text.matches("hint: ").count(), 1, "{text}");
    assert_eq!(text.matches("rotatedAt: ").count(), 1, "{text}");
}

#[tokio::test]
async fn a_key_written_without_a_hint_shows_null_for_it_and_its_rotation() {
    // Arrange: ACME_FILE's keys were written by ops, without either field.
    let app = spawn_app().await;

    // Act
    let view: Value = app.get_key("acme", "ci-deploy").await.json().await.unwrap();
    let list: Vec<Value> = app.list_keys("acme", Reader).await.json().await.unwrap();

    // Assert
    assert!(field(&view, "hint").is_null(), "{view}");
    assert!(field(&view, "rotatedAt").is_null(), "{view}");
    assert!(field(&list[0], "hint").is_null() && field(&list[0], "rotatedAt").is_null());
}

#[tokio::test]
async fn a_malformed_hint_in_the_file_is_a_file_problem_at_its_line_and_the_last_good_keys_stay() {
    // Arrange
    let app = spawn_app().await;
    let entry = |name: &str, extra: &str| {
        format!("  - name: {name}\n    hash: {}\n{extra}", "7".repeat(64))
    };
    std::fs::write(
        app.file("globex"),
        format!("apiKeys:\n{}", entry("good", "    hint: kw_...0eOu\n")),
    )
    .unwrap();
    eventually(
        "globex's good key is served",
        std::time::Duration::from_secs(5),
        || async { app.list_names("globex").await },
        |names| names == &["good".to_owned()],
    )
    .await;

    for (bad, line) in [
        ("    hint: kw_...sEcReT-VALUE\n", 4),
        ("    hint: kw_0eOu\n", 4),
        ("    enabled: true\n    rotatedAt: yesterday\n", 5),
    ] {
        // Act
        std::fs::write(
            app.file("globex"),
            format!("apiKeys:\n{}", entry("broken", bad)),
        )
        .unwrap();

        // Assert
        let status: Value = eventually(
            "globex's file is invalid",
            std::time::Duration::from_secs(5),
            || async { app.status("globex").await.json::<Value>().await.unwrap() },
            |s| s["valid"] == false && s["error"]["line"] == line,
        )
        .await;
        let message = status["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("hint") || message.contains("rotatedAt"),
            "{message}"
        );
        assert!(!message.contains("sEcReT"), "{message}");
        assert_eq!(app.list_names("globex").await, ["good"], "last good kept");
        let res = app.create_key("globex", json!({"name": "x"})).await;
        assert_problem(res, 409, "tenant_file_invalid").await;
        // Back to valid, so the next bad file is a change again.
        std::fs::write(
            app.file("globex"),
            format!("apiKeys:\n{}", entry("good", "    hint: kw_...0eOu\n")),
        )
        .unwrap();
        eventually(
            "globex's file is valid again",
            std::time::Duration::from_secs(5),
            || async { app.status("globex").await.json::<Value>().await.unwrap() },
            |s| s["valid"] == true,
        )
        .await;
    }
}

#[tokio::test]
async fn a_create_and_a_rotation_on_one_replica_show_the_same_hint_and_rotation_on_another() {
    // Arrange
    let world = crate::git_world::World::new();
    let a = crate::git_world::keyward_on(&world.clone_for("a"), |_| {}).await;
    let b = crate::git_world::keyward_on(&world.clone_for("b"), |_| {}).await;

    // Act
    let token = a.new_key("acme", "shared", &[]).await;
    let seen_on_b = |hint: String| {
        let b = &b;
        async move {
            eventually(
                "b serves a's write",
                std::time::Duration::from_secs(15),
                || async {
                    b.get_key("acme", "shared")
                        .await
                        .json::<Value>()
                        .await
                        .unwrap()
                },
                |view| view["hint"] == json!(hint),
            )
            .await
        }
    };
    let view = seen_on_b(hint_of(&token)).await;
    assert!(field(&view, "rotatedAt").is_null());
    let rotated: Value = a
        .rotate_key("acme", "shared", None)
        .await
        .json()
        .await
        .unwrap();
    let view = seen_on_b(hint_of(rotated["token"].as_str().unwrap())).await;

    // Assert
    assert_eq!(field(&view, "rotatedAt"), field(&rotated, "rotatedAt"));
    assert!(field(&view, "rotatedAt").is_string());
    let on_remote = world.on_remote("acme");
    assert!(on_remote.contains(&format!("hint: {}", view["hint"].as_str().unwrap())));
}

#[tokio::test]
async fn a_hint_or_rotation_time_cannot_be_set_through_a_request_body() {
    // Arrange
    let app = spawn_app().await;
    app.new_key("acme", "plain", &[]).await;
    let before = app.read_file("acme");

    // Act
    let create = app
        .create_key("acme", json!({"name": "forged", "hint": "kw_...AAAA"}))
        .await;
    let update = app
        .update_key(
            "acme",
            "plain",
            json!({"enabled": true, "rotatedAt": "2026-01-01T00:00:00Z"}),
        )
        .await;

    // Assert
    assert_eq!(create.status(), 400);
    assert_eq!(update.status(), 400);
    assert_eq!(app.read_file("acme"), before);
}

#[tokio::test]
async fn a_restart_serves_the_hint_and_rotation_time_it_had() {
    // Arrange: the restart reads the keys back from its last-good snapshot.
    let app = spawn_app().await;
    app.new_key("acme", "durable", &[]).await;
    let rotated: Value = app
        .rotate_key("acme", "durable", None)
        .await
        .json()
        .await
        .unwrap();
    let dir = app.stop().await;

    // Act
    let app = spawn_app_on(dir, |_| {}).await;

    // Assert
    let view: Value = app.get_key("acme", "durable").await.json().await.unwrap();
    assert_eq!(field(&view, "hint"), field(&rotated, "hint"));
    assert_eq!(field(&view, "rotatedAt"), field(&rotated, "rotatedAt"));
}
