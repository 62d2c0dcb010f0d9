//! The README's nginx snippet, taken from README.md as it stands and run in a real nginx in
//! front of a real upstream: it must be safe and work verbatim (bar its addresses).

use std::process::Command;

use crate::gateway::{Gateway, Upstream, free_port, installed, wait_until_listening};
use keyward::clock::Clock;

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

#[tokio::test]
async fn the_readme_nginx_snippet_authenticates_strips_and_fails_closed() {
    let Some(nginx) = installed(
        "nginx",
        &["/usr/sbin/nginx", "/usr/bin/nginx"],
        "apt-get install nginx-light",
    ) else {
        return;
    };
    // A manual clock: the limited key's allowance comes back only when the test says so.
    let clock = Clock::manual(time::macros::datetime!(2030-01-01 00:00 UTC));
    let app = spawn_app_with_clock(clock, |_| {}).await;
    let keyward = app.address.trim_start_matches("http://").to_owned();
    let read = app.new_key("acme", "reader", &["orders:read"]).await;
    let write_only = app.new_key("acme", "writer-only", &["orders:write"]).await;
    let other_tenant = app.new_key("globex", "theirs", &["orders:read"]).await;
    let limited = app
        .create_key(
            "acme",
            serde_json::json!({"name": "limited", "permissions": ["orders:read"],
                "rateLimit": {"requests": 1, "perSeconds": 60}}),
        )
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let upstream = Upstream::start().await;
    let port = free_port();

    let snippet = readme_snippet()
        .replace("127.0.0.1:8080", &keyward)
        .replace("127.0.0.1:9000", &format!("127.0.0.1:{}", upstream.port))
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
    let _nginx = Gateway::spawn(Command::new(nginx).args([
        "-p",
        &d.to_string(),
        "-c",
        &format!("{d}/nginx.conf"),
    ]));
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_until_listening("nginx", &base).await;
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
    let served = upstream.hits();

    for key in [None, Some("kw_not-a-real-key"), Some(other_tenant.as_str())] {
        assert_eq!(call(key).await.unwrap().status(), 401, "{key:?}");
    }
    assert_eq!(call(Some(&write_only)).await.unwrap().status(), 403);

    let within = call(Some(&limited)).await.unwrap();
    assert_eq!(within.status(), 200);
    assert_eq!(within.headers()["ratelimit"], r#""key";r=0;t=60"#);
    let before = upstream.hits();
    let over = call(Some(&limited)).await.unwrap();
    assert_eq!(over.status(), 429, "over its limit: 429, not 403 or 500");
    assert_eq!(over.headers()["retry-after"], "60");
    assert_eq!(over.headers()["ratelimit-policy"], r#""key";q=1;w=60"#);
    assert_eq!(
        upstream.hits(),
        before,
        "an over-limit request stops at nginx"
    );
    let plain = call(Some(&write_only)).await.unwrap();
    assert_eq!(plain.status(), 403, "a plain 403 stays 403");
    assert!(plain.headers().get("retry-after").is_none());

    app.handle.stop(true).await;
    assert_eq!(call(Some(&read)).await.unwrap().status(), 500);
    assert_eq!(
        upstream.hits(),
        served + 1,
        "no refused request reached the upstream (the limited key's one request did)"
    );
}
