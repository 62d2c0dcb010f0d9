//! The README's nginx snippet, taken from README.md as it stands and run in a real nginx in
//! front of a real upstream: it must be safe and work verbatim (bar its addresses).

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

/// The first ```nginx block of README.md.
fn readme_snippet() -> String {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("```nginx\n")
        .expect("README has an nginx block")
        + 9;
    let len = readme[start..].find("```").unwrap();
    readme[start..start + len].to_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An upstream that answers every request with the headers it received, as JSON.
async fn echo_upstream(hits: Arc<AtomicUsize>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            hits.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let headers: BTreeMap<String, String> = text
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
                    .collect();
                let body = serde_json::to_string(&headers).unwrap();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    port
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nginx_binary() -> Option<&'static str> {
    let found = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    assert!(
        found.is_some() || std::env::var_os("CI").is_none(),
        "CI must install nginx (see .ci/run)"
    );
    if found.is_none() {
        eprintln!("SKIPPED: the nginx test: `apt-get install nginx-light` to run it");
    }
    found
}

#[tokio::test]
async fn the_readme_nginx_snippet_authenticates_strips_and_fails_closed() {
    let Some(nginx) = nginx_binary() else {
        return;
    };
    let app = spawn_app().await;
    let keyward = app.address.trim_start_matches("http://").to_owned();
    let read = app.new_key("acme", "reader", &["orders:read"]).await;
    let write_only = app.new_key("acme", "writer-only", &["orders:write"]).await;
    let other_tenant = app.new_key("globex", "theirs", &["orders:read"]).await;
    let hits = Arc::new(AtomicUsize::new(0));
    let upstream = echo_upstream(hits.clone()).await;
    let port = free_port();

    let snippet = readme_snippet()
        .replace("127.0.0.1:8080", &keyward)
        .replace("127.0.0.1:9000", &format!("127.0.0.1:{upstream}"))
        .replace("127.0.0.1:8000", &format!("127.0.0.1:{port}"));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    std::fs::write(dir.path().join("snippet.conf"), snippet).unwrap();
    std::fs::write(
        dir.path().join("nginx.conf"),
        format!(
            // One process, so that killing it leaves no worker behind.
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             include {d}/snippet.conf;\n}}\n"
        ),
    )
    .unwrap();
    let _nginx = Nginx(
        Command::new(nginx)
            .args(["-p", &d.to_string(), "-c", &format!("{d}/nginx.conf")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let _ = eventually(
        "nginx listens",
        Duration::from_secs(10),
        || client.get(format!("{base}/healthz")).send(),
        |r| r.is_ok(),
    )
    .await;
    let call = |key: Option<&str>| {
        let mut req = client
            .get(format!("{base}/orders/42"))
            // A client trying to claim an identity, and to pass its key on.
            .header("X-Keyward-Tenant", "globex")
            .header("X-Keyward-Key", "admin")
            .header("X-Keyward-Permissions", "*");
        if let Some(k) = key {
            req = req.header("X-API-Key", k);
        }
        req.send()
    };

    let ok = call(Some(&read)).await.unwrap();
    assert_eq!(ok.status(), 200);
    let seen: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(seen["x-keyward-tenant"], "acme", "{seen}");
    assert_eq!(seen["x-keyward-key"], "reader", "{seen}");
    assert_eq!(seen["x-keyward-permissions"], "orders:read", "{seen}");
    assert!(
        seen.get("x-api-key").is_none(),
        "the key went upstream: {seen}"
    );
    let served = hits.load(Ordering::SeqCst);

    for key in [None, Some("kw_not-a-real-key"), Some(other_tenant.as_str())] {
        assert_eq!(call(key).await.unwrap().status(), 401, "{key:?}");
    }
    assert_eq!(call(Some(&write_only)).await.unwrap().status(), 403);

    app.handle.stop(true).await;
    assert_eq!(call(Some(&read)).await.unwrap().status(), 500);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        served,
        "no refused request reached the upstream"
    );
}
