//! The binary itself: `check`, `keys new`, `hash`, and `serve` as a real process (JSON
//! logs that never carry a secret, SIGHUP, graceful SIGTERM).

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

#[test]
fn check_passes_valid_files_and_points_at_each_problem() {
    let dir = tenants_with(&[
        ("acme", ACME_FILE),
        ("bad", "apiKeys:\n  - name: a\n    hash: sha256:00\n"),
        ("worse", "apiKeys: [\n"),
    ]);
    let out = keyward()
        .args(["check", "--tenants"])
        .arg(dir.path().join("tenants"))
        .output()
        .unwrap();

    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].contains("tenants/bad/security.yml:3:11: apiKeys[0]"),
        "{stdout}"
    );
    assert!(lines[1].contains("tenants/worse/security.yml:"), "{stdout}");

    std::fs::remove_dir_all(dir.path().join("tenants/bad")).unwrap();
    std::fs::remove_dir_all(dir.path().join("tenants/worse")).unwrap();
    let ok = keyward()
        .args(["check", "--tenants"])
        .arg(dir.path().join("tenants"))
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn hash_prints_the_sha256_of_stdin() {
    let mut child = keyward()
        .arg("hash")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"test\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    );
}

#[test]
fn keys_new_prints_a_token_and_its_entry_or_appends_it_surgically() {
    let out = keyward()
        .args([
            "keys",
            "new",
            "--name",
            "ci",
            "--permissions",
            "orders:read,orders:write",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.lines().next().unwrap().rsplit(' ').next().unwrap();
    assert!(token.starts_with("kw_"), "{stdout}");
    let yaml = stdout.split_once('\n').unwrap().1;
    let file = keyward::store::SecurityFile::parse(yaml).unwrap();
    assert_eq!(
        file.keys[0].hash,
        keyward::domain::KeyHash::of(token.as_bytes())
    );
    assert_eq!(
        file.keys[0].permissions.as_strs(),
        ["orders:read", "orders:write"]
    );

    let dir = tenants_with(&[("acme", ACME_FILE)]);
    let out = keyward()
        .args([
            "keys",
            "new",
            "--name",
            "ops-made",
            "--tenant",
            "acme",
            "--write",
            "--tenants",
        ])
        .arg(dir.path().join("tenants"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.path().join("tenants/acme/security.yml")).unwrap();
    assert!(text.contains("  - name: ops-made\n"));
    assert!(text.ends_with("# other tools' settings\nusers:\n  - alice   # admin\n"));
}

#[test]
fn every_command_explains_itself() {
    for args in [
        &["--help"][..],
        &["check", "--help"],
        &["keys", "new", "--help"],
        &["hash", "--help"],
        &["serve", "--help"],
    ] {
        let out = keyward().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8(out.stdout).unwrap().contains("Usage:"),
            "{args:?}"
        );
    }
}

#[tokio::test]
async fn a_served_process_logs_json_without_secrets_rescans_on_sighup_and_stops_gracefully_on_sigterm()
 {
    let dir = tenants_with(&[("acme", ACME_FILE)]);
    let mut server = serve_process(dir.path());
    let base = server.url("");
    let client = reqwest::Client::new();
    let admin = writer("acme");
    let created: Value = client
        .post(format!("{base}/api/acme/admin/apiKeys"))
        .bearer_auth(&admin)
        .json(&json!({"name": "proc"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(server.valid("acme", &token).await);

    server.signal(rustix::process::Signal::HUP);
    server.wait_for("SIGHUP: rescanning");
    server.signal(rustix::process::Signal::TERM);
    let status = tokio::task::spawn_blocking(move || {
        let status = server.child.wait().unwrap();
        while let Ok(line) = server.lines.recv_timeout(Duration::from_millis(200)) {
            server.log.push(line);
        }
        (status, std::mem::take(&mut server.log))
    })
    .await
    .unwrap();

    let (status, log) = status;
    assert!(status.success(), "{status:?}");
    let all = log.join("\n");
    for secret in [token.as_str(), &admin, SECRET, "sha256:"] {
        assert!(!all.contains(secret), "a secret reached the log:\n{all}");
    }
    assert!(
        all.contains("\"request_id\""),
        "one span per request with a request id:\n{all}"
    );
    let saved = std::fs::read_to_string(dir.path().join("state/last_used.json")).unwrap();
    assert!(
        saved.contains("\"proc\""),
        "last uses are flushed at shutdown: {saved}"
    );
}

#[test]
fn keys_sharing_a_hash_across_tenants_are_warned_about_by_name_never_by_hash() {
    let hash = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    let globex = format!("apiKeys:\n  - name: copied\n    hash: {hash}\n");
    let dir = tenants_with(&[("acme", ACME_FILE), ("globex", &globex)]);
    let mut server = serve_process(dir.path());

    // Logged during the initial load, before `serve` saw "keyward ready".
    let warning: Value = server
        .log
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| {
            v["message"]
                .as_str()
                .unwrap_or_default()
                .contains("same hash")
        })
        .expect("a warning at start-up");
    let fields = &warning;
    let pair = [
        (fields["tenant"].as_str(), fields["key"].as_str()),
        (
            fields["other_tenant"].as_str(),
            fields["other_key"].as_str(),
        ),
    ];
    assert!(
        pair.contains(&(Some("acme"), Some("ci-deploy")))
            && pair.contains(&(Some("globex"), Some("copied"))),
        "{warning}"
    );

    // A tenant that appears later is checked on its reload.
    let initech = dir.path().join("tenants/initech");
    std::fs::create_dir(&initech).unwrap();
    std::fs::write(
        initech.join("security.yml"),
        format!("apiKeys:\n  - name: again\n    hash: {hash}\n"),
    )
    .unwrap();
    let warning = server.wait_for("same hash as a key of another tenant");
    assert_eq!(warning["tenant"], "initech", "{warning}");
    assert_eq!(warning["key"], "again");
    assert!(
        !server.log.join("\n").contains("1111111111"),
        "no hash in the log"
    );
}

#[test]
fn a_bad_configuration_stops_start_up_with_exit_code_2_and_one_clear_line() {
    let dir = tenants_with(&[("acme", ACME_FILE)]);
    std::fs::create_dir(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/keyward.yml"),
        "listen: 127.0.0.1:0\nmax_body_byte: 1\n",
    )
    .unwrap();
    let out = keyward().current_dir(dir.path()).output().unwrap();

    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr.matches("unknown field `max_body_byte`").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.starts_with("keyward: cannot read configuration: "),
        "{stderr}"
    );
}

#[test]
fn a_large_start_up_load_is_logged_in_one_line_a_small_one_per_tenant() {
    let files: Vec<(String, String)> = (0..70)
        .map(|i| {
            let hash = format!("sha256:{i:064x}");
            (
                format!("t{i:02}"),
                format!("apiKeys:\n  - name: k\n    hash: {hash}\n"),
            )
        })
        .collect();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(t, f)| (t.as_str(), f.as_str()))
        .collect();
    let large = serve_process(tenants_with(&files).path());
    let small = serve_process(tenants_with(&files[..2]).path());

    let messages = |server: &Server| -> Vec<Value> {
        server
            .log
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| {
                v["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("tenant"))
            })
            .collect()
    };
    let large = messages(&large);
    assert_eq!(large.len(), 1, "{large:?}");
    assert_eq!(large[0]["message"], "tenants loaded");
    assert_eq!(
        (&large[0]["loaded"], &large[0]["tenants"], &large[0]["keys"]),
        (&json!(70), &json!(70), &json!(70))
    );
    let small = messages(&small);
    let mut tenants: Vec<&str> = small
        .iter()
        .filter(|v| v["message"] == "tenant loaded")
        .filter_map(|v| v["tenant"].as_str())
        .collect();
    tenants.sort();
    assert_eq!(tenants, ["t00", "t01"], "{small:?}");
}

/// `keyward check` on `files`: its exit code and everything it printed (stdout, stderr).
fn check(files: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tenants_with(files);
    let out = keyward()
        .args(["check", "--tenants"])
        .arg(dir.path().join("tenants"))
        .output()
        .unwrap();
    let printed = String::from_utf8(out.stdout).unwrap() + &String::from_utf8(out.stderr).unwrap();
    (out.status.code(), printed)
}

/// The problem `check` printed for `tenant`: what follows `<tenant>/security.yml:`.
fn problem_of<'a>(printed: &'a str, tenant: &str) -> &'a str {
    let file = format!("tenants/{tenant}/security.yml:");
    printed
        .lines()
        .find_map(|l| l.split_once(&file).map(|(_, problem)| problem))
        .unwrap_or_else(|| panic!("no problem for {tenant}:\n{printed}"))
}

#[test]
fn check_points_at_a_line_that_is_not_yaml_and_never_prints_it() {
    let text = "apiKeys:\n  - name: a\n    hash: sha256:1111111111111111111111111111111111111111111111111111111111111111\nDB_PASSWORD=hunter2-secret\nusers: []\n";

    let (code, printed) = check(&[("acme", text)]);

    assert_eq!(code, Some(1), "{printed}");
    assert_eq!(problem_of(&printed, "acme"), "4:1: not valid YAML");
    assert!(!printed.contains("hunter2-secret"), "{printed}");
}

#[test]
fn check_points_at_a_bad_hash_value_and_never_prints_it() {
    let text =
        "# keys\napiKeys:\n  - name: a\n    enabled: true\n    hash: \"not-a-hash-secret-xyz\"\n";

    let (code, printed) = check(&[("acme", text)]);

    assert_eq!(code, Some(1), "{printed}");
    let problem = problem_of(&printed, "acme");
    assert!(
        problem.starts_with("5:11: apiKeys[0].hash: invalid hash"),
        "{printed}"
    );
    assert!(!printed.contains("secret-xyz"), "{printed}");
}

#[test]
fn check_points_at_a_repeated_field_a_repeated_name_and_a_repeated_hash() {
    let h1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    let h2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    let field = format!("apiKeys:\n  - name: a\n    hash: {h1}\n    name: secret-field\n");
    let name = format!(
        "apiKeys:\n  - name: secret-name\n    hash: {h1}\n  # again\n  - name: secret-name\n    hash: {h2}\n"
    );
    let hash = format!("apiKeys:\n  - name: a\n    hash: {h1}\n  - name: b\n    hash: {h1}\n");

    let (code, printed) = check(&[("field", &field), ("name", &name), ("hash", &hash)]);

    assert_eq!(code, Some(1), "{printed}");
    assert_eq!(
        problem_of(&printed, "field"),
        "4:5: apiKeys[0].name: duplicate field"
    );
    assert_eq!(
        problem_of(&printed, "name"),
        "5:11: apiKeys[1].name: duplicate key name (first used by apiKeys[0])"
    );
    assert_eq!(
        problem_of(&printed, "hash"),
        "5:11: apiKeys[1].hash: duplicate hash (also used by apiKeys[0])"
    );
    assert!(!printed.contains("secret"), "{printed}");
}

#[tokio::test]
async fn verification_logs_nothing_however_many_keys_are_refused_and_writes_name_their_actor() {
    let dir = tenants_with(&[("acme", ACME_FILE)]);
    let mut server = serve_process(dir.path());
    let base = server.url("");
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{base}/api/acme/admin/apiKeys"))
        .bearer_auth(writer("acme"))
        .json(&json!({"name": "audited"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let logged = tokio::task::spawn_blocking(move || {
        let line = server.wait_for("key created");
        (server, line)
    })
    .await
    .unwrap();
    let (server, line) = logged;
    assert_eq!(line["actor"], "alice@example.com", "{line}");
    assert_eq!(line["key"], "audited", "{line}");

    // A flood of refusals, on both verification routes and for every reason.
    for i in 0..200 {
        let bad = format!("kw_{i:043}");
        let res = client
            .get(format!("{base}/auth/acme?permission=orders:write"))
            .header("X-API-Key", &bad)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
        let res = client
            .post(format!("{base}/api/acme/apiKeys/verify"))
            .json(&json!({"key": format!("legacy-{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    client
        .get(format!("{base}/auth/acme"))
        .send()
        .await
        .unwrap();

    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"keyward_verify_total{code="malformed"} 201"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"keyward_verify_total{code="not_found"} 200"#),
        "{metrics}"
    );
    let quiet = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        while let Ok(line) = server.lines.recv_timeout(Duration::from_millis(500)) {
            lines.push(line);
        }
        lines
    })
    .await
    .unwrap();
    assert!(
        quiet.is_empty(),
        "refused verifications were logged: {quiet:#?}"
    );
}

#[test]
fn check_staged_checks_what_the_commit_will_hold_not_the_work_tree() {
    let dir = tenants_with(&[("acme", ACME_FILE)]);
    let repo = dir.path();
    git(repo, &["init", "-q"]);
    git(repo, &["add", "tenants"]);
    let file = repo.join("tenants/acme/security.yml");
    let staged_check = || {
        keyward()
            .current_dir(repo)
            .args(["check", "--tenants", "tenants", "--staged"])
            .output()
            .unwrap()
    };

    // A broken edit, not staged: the commit would hold the good file.
    std::fs::write(&file, "apiKeys: [\n").unwrap();
    assert!(staged_check().status.success());

    // Staged, then fixed in the work tree only: the commit would hold the broken file.
    git(repo, &["add", "tenants"]);
    std::fs::write(&file, ACME_FILE).unwrap();
    let out = staged_check();
    assert_eq!(out.status.code(), Some(1));
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(printed.contains("acme/security.yml:"), "{printed}");
    let plain = keyward()
        .current_dir(repo)
        .args(["check", "--tenants", "tenants"])
        .output()
        .unwrap();
    assert!(plain.status.success(), "the work tree itself is fine");
}

#[test]
fn keys_new_write_records_who_created_the_key() {
    let dir = tenants_with(&[("acme", ACME_FILE)]);
    let tenants = dir.path().join("tenants");
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["config", "user.email", "ops@example.com"]);
    let new = |name: &str, extra: &[&str]| {
        let out = keyward()
            .args(["keys", "new", "--name", name, "--tenant", "acme", "--write"])
            .arg("--tenants")
            .arg(&tenants)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };

    new("by-git", &[]);
    new("by-flag", &["--created-by", "carol@example.com"]);

    let file = keyward::store::SecurityFile::parse(
        &std::fs::read_to_string(tenants.join("acme/security.yml")).unwrap(),
    )
    .unwrap();
    let created_by = |name: &str| {
        let key = file.keys.iter().find(|k| k.name.as_str() == name).unwrap();
        key.created_by.as_ref().map(|s| s.as_str().to_owned())
    };
    assert_eq!(created_by("by-git").as_deref(), Some("ops@example.com"));
    assert_eq!(created_by("by-flag").as_deref(), Some("carol@example.com"));
    // In a work tree each write is a commit of that one file, by whoever made the key.
    let log = git(dir.path(), &["log", "--format=%an|%cn|%s"]);
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            "carol@example.com|keyward|create acme/by-flag",
            "ops@example.com|keyward|create acme/by-git"
        ]
    );
    let shown = git(dir.path(), &["show", "--name-only", "--format=", "HEAD"]);
    assert_eq!(shown.trim(), "tenants/acme/security.yml");
}
