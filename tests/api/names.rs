//! Key names `.` and `..`: URL-normalizing clients fold them away, so a key named that way
//! could never be read, edited, rotated or deleted by name. They are refused everywhere.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

const DOT_NAMES: [&str; 2] = [".", ".."];

/// `text` with an entry named `name` where `# reporting job` was (line 8 of ACME_FILE).
fn with_key_named(text: &str, name: &str) -> String {
    text.replace(
        "  # reporting job\n",
        &format!(
            "  - name: '{name}'\n    hash: sha256:{}\n\n  # reporting job\n",
            "3".repeat(64)
        ),
    )
}

#[tokio::test]
async fn creating_a_key_named_dot_or_dot_dot_is_an_invalid_name_and_writes_nothing() {
    let app = spawn_app().await;

    for name in DOT_NAMES {
        let res = app.create_key("acme", json!({"name": name})).await;

        let problem = assert_problem(res, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], "name", "{problem}");
    }
    assert_eq!(app.read_file("acme"), ACME_FILE);
    assert_eq!(app.list_names("acme").await, ["ci-deploy", "reporting"]);
}

#[tokio::test]
async fn a_file_naming_a_key_dot_dot_is_invalid_and_the_tenant_keeps_its_last_good_keys() {
    let app = spawn_app().await;
    let token = app.new_key("acme", "live", &[]).await;
    let before = app.read_file("acme");

    for name in DOT_NAMES {
        std::fs::write(app.file("acme"), with_key_named(&before, name)).unwrap();
        let status: Value = eventually(
            "acme's status invalid",
            Duration::from_secs(5),
            || async { app.status("acme").await.json::<Value>().await.unwrap() },
            |status| status["valid"] == false,
        )
        .await;

        assert_eq!(status["error"]["line"], 8, "{status}");
        let message = status["error"]["message"].as_str().unwrap();
        assert!(message.contains("invalid key name"), "{message}");
        assert_eq!(app.verdict("acme", &token).await["valid"], true);
        let res = app.create_key("acme", json!({"name": "later"})).await;
        assert_problem(res, 409, "tenant_file_invalid").await;

        // Fixed again, before the next name is tried.
        std::fs::write(app.file("acme"), &before).unwrap();
        eventually(
            "acme's status valid",
            Duration::from_secs(5),
            || async { app.status("acme").await.json::<Value>().await.unwrap() },
            |status| status["valid"] == true,
        )
        .await;
    }
}

#[test]
fn check_refuses_a_key_named_dot_or_dot_dot_by_its_line() {
    for name in DOT_NAMES {
        let dir = tenants_with(&[("acme", &with_key_named(ACME_FILE, name))]);

        let out = keyward()
            .args(["check", "--tenants"])
            .arg(dir.path().join("tenants"))
            .output()
            .unwrap();

        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}: {stdout}");
        let line = stdout
            .lines()
            .find(|l| l.contains("tenants/acme/security.yml:"))
            .unwrap_or_else(|| panic!("{name}: no problem printed:\n{stdout}"));
        assert!(
            line.ends_with("security.yml:8:11: apiKeys[1].name: invalid key name (expected 1 to 128 characters of A-Z a-z 0-9 . _ -, not . or ..)"),
            "{name}: {line}"
        );
    }
}

#[test]
fn keys_new_refuses_a_key_named_dot_or_dot_dot() {
    for name in DOT_NAMES {
        let out = keyward()
            .args(["keys", "new", &format!("--name={name}")])
            .output()
            .unwrap();

        assert_ne!(out.status.code(), Some(0), "{name}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            !stdout.contains("kw_"),
            "{name}: a token was printed: {stdout}"
        );
    }
}
