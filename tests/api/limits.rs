//! What a hostile client meets at the edges: malformed requests pipelined behind good ones,
//! more idle connections than the server has descriptors, clients that never read their
//! answers, and a webhook secret too short to keep anyone out.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    ACME_FILE, SECRET, Server, eventually, keyward, spawn_app, started, tenants_with, token, writer,
};

/// `keyward serve` in `dir` with `settings`, its descriptors limited to `nofile`
/// (soft, hard) from its first instruction on, as `ulimit -n` in its shell would.
pub(crate) fn serve_limited(dir: &Path, settings: &[(&str, String)], nofile: (u64, u64)) -> Server {
    let mut command = keyward();
    command
        .current_dir(dir)
        .envs(settings.iter().map(|(k, v)| (*k, v.as_str())))
        .env("KEYWARD_LISTEN", "127.0.0.1:0")
        .env("KEYWARD_LOG_FORMAT", "json")
        .env("KEYWARD_AUTH__HS256_SECRET", SECRET)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
    // SAFETY: setrlimit is async-signal-safe, and nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let limit = rustix::process::Rlimit {
                current: Some(nofile.0),
                maximum: Some(nofile.1),
            };
            rustix::process::setrlimit(rustix::process::Resource::Nofile, limit)?;
            Ok(())
        });
    }
    started(command.spawn().unwrap())
}

/// One line of `/proc/<pid>/status` (`VmRSS`, say), in kB.
fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The soft and hard `nofile` limits of a process, from `/proc/<pid>/limits`.
fn nofile_of(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut numbers = line.split_whitespace().skip(3);
    (
        numbers.next().unwrap().to_owned(),
        numbers.next().unwrap().to_owned(),
    )
}

/// A key entry whose hash is that of `token`.
fn entry(name: &str, token: &str, description: &str) -> String {
    let hash = hex(&Sha256::digest(token.as_bytes()));
    format!("  - name: {name}\n    hash: sha256:{hash}\n    description: {description}\n")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_malformed_request_pipelined_behind_a_valid_one_is_answered_with_a_problem() {
    let app = spawn_app().await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();

    // Both in one write: the server reads them in one go and answers both in one buffer.
    conn.write_all(
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection after the malformed request")
        .unwrap();

    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (first, rest) = answer.split_once("\r\n\r\n").expect("a first answer");
    assert!(first.starts_with("HTTP/1.1 200 OK"), "{answer}");
    let first_len: usize = first
        .lines()
        .find_map(|l| {
            l.to_lowercase()
                .strip_prefix("content-length: ")?
                .parse()
                .ok()
        })
        .expect("a sized first answer");
    let second = &rest[first_len..];
    let (head, body) = second.split_once("\r\n\r\n").expect("a second answer");
    let head = head.to_lowercase();
    assert!(head.starts_with("http/1.1 400 "), "{answer}");
    assert!(
        head.contains("content-type: application/problem+json"),
        "{answer}"
    );
    let body: Value = serde_json::from_str(body).expect("a problem body");
    assert_eq!(body["code"], "invalid_request");
    assert_eq!(body["status"], 400);
}

#[test]
fn a_webhook_secret_under_16_bytes_stops_start_up_with_the_reason() {
    for short in ["\"\"", "x", "fifteen-bytes!!"] {
        let dir = tenants_with(&[("acme", ACME_FILE)]);
        std::fs::create_dir(dir.path().join("config")).unwrap();
        std::fs::write(
            dir.path().join("config/keyward.yml"),
            format!("listen: 127.0.0.1:0\ngit:\n  webhook_secret: {short}\n"),
        )
        .unwrap();

        let mut child = keyward()
            .current_dir(dir.path())
            .env("KEYWARD_AUTH__HS256_SECRET", SECRET)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let exited = (0..300).find_map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            child.try_wait().unwrap()
        });
        if exited.is_none() {
            let _ = child.kill();
        }
        let out = child.wait_with_output().unwrap();

        assert!(
            exited.is_some_and(|s| !s.success()),
            "{short}: started anyway"
        );
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.contains("`git.webhook_secret` must be at least 16 bytes"),
            "{short}: {stderr}"
        );
    }
}

#[tokio::test]
async fn idle_connections_beyond_the_cap_stop_neither_a_write_nor_a_reload() {
    // Arrange: 64 descriptors in all, at most 16 of them for connections, and a watcher
    // that alone can see the edit below (no rescan during the test).
    let dir = tenants_with(&[("acme", ACME_FILE)]);
    let server = serve_limited(
        dir.path(),
        &[
            ("KEYWARD_MAX_CONNECTIONS", "16".into()),
            ("KEYWARD_REQUEST_TIMEOUT_SECONDS", "2".into()),
            ("KEYWARD_RESCAN_INTERVAL_SECONDS", "3600".into()),
        ],
        (64, 64),
    );
    let pid = server.child.id();
    let addr = format!("127.0.0.1:{}", server.port);
    let at_rest = open_descriptors(pid);

    // Act: 100 connections that never send a byte, held open to the end; once the server
    // holds as many as it takes, ops edit the file and an admin writes.
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    eventually(
        "the idle connections are accepted",
        Duration::from_secs(30),
        || async { open_descriptors(pid) },
        |open| *open >= at_rest + 16,
    )
    .await;
    let edited_token = "a-key-ops-added-during-the-flood-0123456789";
    let file = dir.path().join("tenants/acme/security.yml");
    let text = std::fs::read_to_string(&file).unwrap();
    let added = text.replacen(
        "apiKeys:\n",
        &format!("apiKeys:\n{}", entry("ops-added", edited_token, "added")),
        1,
    );
    std::fs::write(&file, added).unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let reloaded = eventually(
        "the edit made during the flood is served",
        Duration::from_secs(60),
        || async {
            let res = client
                .post(server.url("/api/acme/apiKeys/verify"))
                .json(&json!({"key": edited_token}))
                .send()
                .await;
            match res {
                Ok(r) => r.json::<Value>().await.ok(),
                Err(_) => None,
            }
        },
        |v| v.as_ref().is_some_and(|v| v["valid"] == true),
    )
    .await;
    let created = client
        .post(server.url("/api/acme/admin/apiKeys"))
        .bearer_auth(writer("acme"))
        .json(&json!({"name": "during-the-flood"}))
        .send()
        .await
        .expect("the write is answered");

    // Assert
    assert_eq!(reloaded.unwrap()["valid"], true);
    assert_eq!(created.status(), 201, "{:?}", created.text().await);
    drop(idle);
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn the_soft_descriptor_limit_is_raised_to_the_hard_one_at_start_up() {
    let dir = tenants_with(&[("acme", ACME_FILE)]);
    let server = serve_limited(dir.path(), &[], (256, 4096));

    assert_eq!(
        nofile_of(server.child.id()),
        ("4096".to_owned(), "4096".to_owned())
    );
}

/// A tenant with `keys` keys, each with a long description: a large list answer.
fn big_tenant(keys: usize) -> String {
    let mut text = String::from("apiKeys:\n");
    for i in 0..keys {
        text.push_str(&entry(
            &format!("key-{i:05}"),
            &format!("token-of-key-{i}"),
            &"a description that makes every entry of the list a few hundred bytes long ".repeat(2),
        ));
    }
    text
}

#[tokio::test]
async fn clients_that_never_read_pin_no_more_than_the_cap_s_worth_of_answers() {
    // Arrange: a list answer of about a megabyte, at most 12 connections at once, and a
    // write timeout of one second.
    let dir = tenants_with(&[("big", &big_tenant(4000))]);
    let cap = 12;
    let server = serve_limited(
        dir.path(),
        &[
            ("KEYWARD_MAX_CONNECTIONS", cap.to_string()),
            ("KEYWARD_WRITE_TIMEOUT_SECONDS", "1".into()),
        ],
        (1024, 1024),
    );
    let pid = server.child.id();
    let admin = token("big", "tenant.apiKey:read");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let list = client
        .get(server.url("/api/big/admin/apiKeys"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let answer_kb = list.len() as u64 / 1024;
    assert!(answer_kb > 800, "a large answer: {answer_kb} kB");
    let baseline_kb = proc_status_kb(pid, "VmRSS");
    // Each connection holds at most its answer twice (serialised, then copied into the
    // connection's write buffer) plus the buffer's slack: three answers' worth.
    let bound_kb = baseline_kb + cap as u64 * 3 * answer_kb + 16 * 1024;

    // Act: ten times the cap of clients that ask for the list and never read a byte, with
    // receive buffers too small to take the answer off the server's hands.
    let request = format!(
        "GET /api/big/admin/apiKeys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\r\n"
    );
    let mut stalled = Vec::new();
    for _ in 0..cap * 10 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut conn = socket
            .connect(format!("127.0.0.1:{}", server.port).parse().unwrap())
            .await
            .unwrap();
        conn.write_all(request.as_bytes()).await.unwrap();
        stalled.push(conn);
    }
    // Until every one of them was answered, the server's memory is sampled, and it must
    // still answer a client that reads.
    let mut peak_kb = 0;
    let answered = eventually(
        "every stalled client answered",
        Duration::from_secs(180),
        || {
            peak_kb = peak_kb.max(proc_status_kb(pid, "VmRSS"));
            let client = client.clone();
            let url = server.url("/metrics");
            async move { client.get(url).send().await.unwrap().text().await.unwrap() }
        },
        |metrics| list_answers(metrics) > cap * 10,
    )
    .await;

    // Assert
    assert!(list_answers(&answered) > cap * 10);
    assert!(
        peak_kb <= bound_kb,
        "resident memory peaked at {peak_kb} kB, over {bound_kb} kB \
         ({baseline_kb} kB at rest, answers of {answer_kb} kB, cap {cap})"
    );
    drop(stalled);
}

/// How many list answers `/metrics` counts.
fn list_answers(metrics: &str) -> usize {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("http_requests_total{")
                && l.contains("route=\"/api/{tenantId}/admin/apiKeys\"")
                && l.contains("method=\"GET\"")
                && l.contains("status=\"200\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as usize
}
