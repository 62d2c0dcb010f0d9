//! Crash safety: SIGKILL a real server in the middle of concurrent creates, again and again.
//! Every create that was answered 201 must be in the file, and the file must never be torn.

use std::time::Duration;

use keyward::store::SecurityFile;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_concurrent_creates_never_loses_an_acknowledged_write_or_tears_the_file() {
    let dir = tenants_with(&[("acme", ACME_FILE)]);
    let file = dir.path().join("tenants/acme/security.yml");
    let mut acknowledged: Vec<String> = Vec::new();

    for round in 0..8u64 {
        let path = dir.path().to_owned();
        let server = tokio::task::spawn_blocking(move || serve_process(&path))
            .await
            .unwrap();
        let url = server.url("/api/acme/admin/apiKeys");
        let writers = create_until_gone(&url, round, 8);
        tokio::time::sleep(Duration::from_millis(150 + (round * 53) % 250)).await;
        server.signal(rustix::process::Signal::KILL);
        let mut server = server;
        tokio::task::spawn_blocking(move || server.child.wait().unwrap())
            .await
            .unwrap();
        for w in writers {
            acknowledged.extend(w.await.unwrap());
        }

        let text = std::fs::read_to_string(&file).unwrap();
        let parsed = SecurityFile::parse(&text).expect("the file is never torn");
        for name in &acknowledged {
            let name = keyward::domain::KeyName::parse(name).unwrap();
            assert!(
                parsed.find(&name).is_some(),
                "acknowledged {name} lost in round {round}"
            );
        }
        assert!(text.starts_with("# acme's keys; ops edit this file in git.\napiKeys:\n"));
    }
    assert!(
        acknowledged.len() > 40,
        "only {} creates were acknowledged",
        acknowledged.len()
    );
}

#[tokio::test]
async fn temp_files_left_by_a_killed_writer_are_removed_once_stale() {
    let dir = tenants_with(&[("acme", ACME_FILE)]);
    let acme = dir.path().join("tenants/acme");
    let stale = acme.join(".security.yml.AbC123.tmp");
    let fresh = acme.join(".security.yml.XyZ789.tmp");
    let foreign = acme.join("notes.tmp");
    for f in [&stale, &fresh, &foreign] {
        std::fs::write(f, "half a write").unwrap();
    }
    for f in [&stale, &foreign] {
        let ok = std::process::Command::new("touch")
            .args(["-d", "2 minutes ago"])
            .arg(f)
            .status()
            .unwrap();
        assert!(ok.success());
    }

    let _app = spawn_app_on(dir, |_| {}).await;

    eventually(
        "a stale temp file of ours is removed",
        Duration::from_secs(10),
        || async { stale.exists() },
        |exists| !exists,
    )
    .await;
    assert!(
        fresh.exists(),
        "a fresh one may belong to another live process"
    );
    assert!(foreign.exists(), "other files are never touched");
}
