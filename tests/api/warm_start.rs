//! The warm start: a restart whose files have not changed decodes each tenant's last-good
//! snapshot (`state_dir/last-good/<tenant>.snapshot`) instead of parsing its YAML. A
//! snapshot that is damaged, truncated, of another format version or of other content is
//! never used: the file is parsed, and wins.
//!
//! Whether a tenant's keys came from its snapshot is what its "tenant loaded" log line says
//! (`from_snapshot`); what it serves is checked through the API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use keyward::domain::KeyHash;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::*;

/// Byte ranges of the snapshot header (src/last_good.rs).
const VERSION: std::ops::Range<usize> = 8..12;
const SOURCE: std::ops::Range<usize> = 12..44;

const ACME_TOKEN: &str = "acme-imported-key-0001";
const GLOBEX_TOKEN: &str = "globex-imported-key-0001";

/// Every field a key can have, so a snapshot that lost or changed one shows in the list.
fn acme_file() -> String {
    format!(
        "\
apiKeys:
  - name: deploy
    hash: {}
    permissions: [orders:read, 'orders:*']
    description: \"two\\nlines\"
    createdAt: 2026-11-22T10:00:00+02:00
    createdBy: alice@example.com
    expiresAt: 2099-01-01T00:00:00.5Z
    previousHashes:
      - hash: sha256:3333333333333333333333333333333333333333333333333333333333333333
        expiresAt: 2099-01-01T00:00:00Z
  - name: reporting
    hash: sha256:1111111111111111111111111111111111111111111111111111111111111111
    enabled: false
    permissions: [orders:read, 'orders:*']
  - name: bare
    hash: 2222222222222222222222222222222222222222222222222222222222222222
users: [alice]
",
        KeyHash::of(ACME_TOKEN.as_bytes())
    )
}

fn globex_file(name: &str) -> String {
    format!(
        "apiKeys:\n  - name: {name}\n    hash: {}\n",
        KeyHash::of(GLOBEX_TOKEN.as_bytes())
    )
}

/// A running keyward and, for each tenant it loaded, whether from its snapshot.
struct Started {
    server: Server,
    from_snapshot: BTreeMap<String, bool>,
}

fn start(dir: &Path) -> Started {
    let server = serve_process(dir);
    let from_snapshot = logged(&server, "tenant loaded")
        .map(|v| {
            let tenant = v["tenant"].as_str().unwrap().to_owned();
            (tenant, v["from_snapshot"].as_bool().expect("from_snapshot"))
        })
        .collect();
    Started {
        server,
        from_snapshot,
    }
}

/// The start-up log lines (up to "keyward ready") whose message contains `needle`.
fn logged<'a>(server: &'a Server, needle: &'a str) -> impl Iterator<Item = Value> + 'a {
    server
        .log
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(move |v| v["message"].as_str().is_some_and(|m| m.contains(needle)))
}

impl Started {
    /// Stops keyward as ops do (SIGTERM) and waits: it finishes writing its snapshots.
    fn stop(mut self) {
        self.server.signal(rustix::process::Signal::TERM);
        assert!(self.server.child.wait().unwrap().success());
    }

    /// Every key of `tenant` as the admin API shows it.
    async fn keys(&self, tenant: &str) -> Value {
        let res = reqwest::Client::new()
            .get(self.server.url(&format!("/api/{tenant}/admin/apiKeys")))
            .bearer_auth(token(tenant, READ))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    async fn valid(&self, tenant: &str, key: &str) -> bool {
        self.server.valid(tenant, key).await
    }
}

fn snapshot(dir: &Path, tenant: &str) -> PathBuf {
    dir.join(format!("state/last-good/{tenant}.snapshot"))
}

fn from_snapshot(pairs: &[(&str, bool)]) -> BTreeMap<String, bool> {
    pairs.iter().map(|(t, s)| (t.to_string(), *s)).collect()
}

#[tokio::test]
async fn a_restart_with_unchanged_files_decodes_their_snapshots_and_serves_the_same_keys() {
    let dir = tenants_with(&[("acme", &acme_file()), ("globex", &globex_file("k"))]);
    let cold = start(dir.path());
    let (acme, globex) = (cold.keys("acme").await, cold.keys("globex").await);
    cold.stop();

    let warm = start(dir.path());

    assert_eq!(
        warm.from_snapshot,
        from_snapshot(&[("acme", true), ("globex", true)])
    );
    assert_eq!(warm.keys("acme").await, acme);
    assert_eq!(warm.keys("globex").await, globex);
    assert_eq!(acme.as_array().unwrap().len(), 3, "{acme}");
    assert!(warm.valid("acme", ACME_TOKEN).await);
    assert!(warm.valid("globex", GLOBEX_TOKEN).await);
    assert!(snapshot(dir.path(), "acme").exists());
    let in_tenant_dir: Vec<_> = std::fs::read_dir(dir.path().join("tenants/acme"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        in_tenant_dir,
        ["security.yml"],
        "nothing of keyward's in tenants_dir"
    );
}

#[tokio::test]
async fn a_start_with_many_tenants_counts_the_snapshots_it_decoded() {
    // Past 64 tenants the start-up logs one line for all of them.
    let files: Vec<(String, String)> = (0..70)
        .map(|i| (format!("t{i:02}"), globex_file(&format!("k{i}"))))
        .collect();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(t, f)| (t.as_str(), f.as_str()))
        .collect();
    let dir = tenants_with(&files);
    start(dir.path()).stop();
    std::fs::write(
        dir.path().join("tenants/t00/security.yml"),
        globex_file("changed"),
    )
    .unwrap();

    let warm = start(dir.path());

    let line = logged(&warm.server, "tenants loaded").next().unwrap();
    assert_eq!(line["loaded"], 70, "{line}");
    assert_eq!(
        line["from_snapshot"], 69,
        "all but the changed file: {line}"
    );
}

#[tokio::test]
async fn a_file_changed_while_the_server_was_stopped_wins_over_its_snapshot() {
    let dir = tenants_with(&[
        ("acme", &acme_file()),
        ("globex", &globex_file("only-in-snapshot")),
    ]);
    start(dir.path()).stop();
    std::fs::write(
        dir.path().join("tenants/globex/security.yml"),
        globex_file("in-the-file"),
    )
    .unwrap();

    let changed = start(dir.path());

    assert_eq!(
        changed.from_snapshot,
        from_snapshot(&[("acme", true), ("globex", false)])
    );
    assert_eq!(changed.keys("globex").await[0]["name"], "in-the-file");
    changed.stop();
    // The snapshot now follows the new file.
    let again = start(dir.path());
    assert!(again.from_snapshot["globex"]);
    assert_eq!(again.keys("globex").await[0]["name"], "in-the-file");
}

/// Each damage is applied to a snapshot of *other keys* whose header claims the current
/// file: were it trusted, the other keys would be served. A last case with only the claim
/// shows the others are refused for their damage alone.
#[tokio::test]
async fn a_damaged_truncated_or_other_version_snapshot_is_ignored_and_the_file_wins() {
    let dir = tenants_with(&[
        ("acme", &acme_file()),
        ("globex", &globex_file("only-in-snapshot")),
    ]);
    start(dir.path()).stop();
    let of_old = std::fs::read(snapshot(dir.path(), "globex")).unwrap();
    let file = dir.path().join("tenants/globex/security.yml");
    let new = globex_file("in-the-file");
    std::fs::write(&file, &new).unwrap();
    let mut claims_new = of_old.clone();
    claims_new[SOURCE].copy_from_slice(&Sha256::digest(new.as_bytes()));

    // A changed letter still decodes: only the payload digest can tell.
    let mut changed_name = claims_new.clone();
    let at = changed_name
        .windows(4)
        .position(|w| w == b"only")
        .expect("the key name in the payload");
    changed_name[at] = b'O';
    let truncated = claims_new[..claims_new.len() - 3].to_vec();
    let mut other_version = claims_new.clone();
    other_version[VERSION].copy_from_slice(&99u32.to_le_bytes());
    let mut not_a_snapshot = claims_new.clone();
    not_a_snapshot[..8].copy_from_slice(b"notakey!");
    let cases = [
        ("a changed byte", changed_name),
        ("truncated", truncated),
        ("another format version", other_version),
        ("not a snapshot", not_a_snapshot),
        ("empty", Vec::new()),
    ];
    for (what, bytes) in cases {
        std::fs::write(snapshot(dir.path(), "globex"), &bytes).unwrap();

        let started = start(dir.path());

        assert!(!started.from_snapshot["globex"], "{what}");
        assert_eq!(
            started.keys("globex").await[0]["name"],
            "in-the-file",
            "{what}"
        );
        let warning = logged(&started.server, "ignoring the last-good snapshot")
            .next()
            .unwrap_or_else(|| panic!("{what}: a warning"));
        assert_eq!(warning["tenant"], "globex", "{what}");
        let all = started.server.log.join("\n");
        assert!(
            !all.contains("sha256:") && !all.contains("only-in-snapshot"),
            "{what}: {all}"
        );
    }

    // Control: the same snapshot with only its claim is decoded, and serves the old keys.
    std::fs::write(snapshot(dir.path(), "globex"), &claims_new).unwrap();
    let trusted = start(dir.path());
    assert!(trusted.from_snapshot["globex"]);
    assert_eq!(trusted.keys("globex").await[0]["name"], "only-in-snapshot");
}

#[tokio::test]
async fn a_snapshot_of_other_content_is_ignored_without_a_warning() {
    let dir = tenants_with(&[("globex", &globex_file("k"))]);
    start(dir.path()).stop();
    let path = snapshot(dir.path(), "globex");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[SOURCE.start] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    let started = start(dir.path());

    assert!(!started.from_snapshot["globex"]);
    assert!(started.valid("globex", GLOBEX_TOKEN).await);
    assert!(
        logged(&started.server, "last-good").next().is_none(),
        "a file that changed is no damage"
    );
}

#[tokio::test]
async fn a_restart_with_a_broken_file_serves_the_last_valid_keys_and_says_so() {
    let app = spawn_app().await;
    let key = app.new_key("acme", "survivor", &["orders:read"]).await;
    let dir = app.stop().await;
    let file = dir.path().join("tenants/acme/security.yml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("apiKeys:", "apiKeys: [")).unwrap();

    let app = spawn_app_on(dir, |_| {}).await;

    assert_eq!(app.verdict("acme", &key).await["valid"], true);
    let status: Value = app.status("acme").await.json().await.unwrap();
    assert_eq!(status["valid"], false, "{status}");
    assert_eq!(status["keysFrom"], "lastGood", "{status}");
    assert!(status["lastGoodSavedAt"].is_string(), "{status}");
    assert_eq!(status["keys"], 3, "{status}");
    let kept = app.dir.path().join("state/last-good/acme.snapshot");
    assert!(kept.exists(), "kept in state_dir, not in tenants_dir");

    // Fixed by ops: the file is what is served again.
    std::fs::write(&file, text).unwrap();
    let status = eventually(
        "the fixed file is loaded",
        std::time::Duration::from_secs(10),
        || async { app.status("acme").await.json::<Value>().await.unwrap() },
        |s| s["valid"] == true,
    )
    .await;
    assert_eq!(status["keysFrom"], "file");
}
