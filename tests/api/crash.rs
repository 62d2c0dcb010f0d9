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
