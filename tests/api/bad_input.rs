//! Every bad input: a problem+json error, nothing written, no panic; the HTTP layer's own
//! refusals (a malformed or slow head, a trickled body) included.

use serde_json::{Value, json};

use crate::helpers::*;

async fn post_raw(
    app: &TestApp,
    tenant: &str,
    ct: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    app.client
        .post(app.keys_url(tenant))
        .bearer_auth(writer(tenant))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn invalid_fields_are_named_in_errors_and_nothing_is_written() {
    let app = spawn_app().await;
    let cases = [
        (json!({"name": "bad name"}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(129)}), "name"),
        (
            json!({"name": "ok", "permissions": ["has space"]}),
            "permissions[0]",
        ),
        (
            json!({"name": "ok", "permissions": ["a", "a"]}),
            "permissions",
        ),
        (json!({"name": "ok", "permissions": [""]}), "permissions[0]"),
        (
            json!({"name": "ok", "description": "x".repeat(1025)}),
            "description",
        ),
        (
            json!({"name": "ok", "description": "bell\u{7}"}),
            "description",
        ),
        (json!({"name": "ok", "expiresAt": "tomorrow"}), "expiresAt"),
        (
            json!({"name": "ok", "expiresAt": "2001-01-01T00:00:00Z"}),
            "expiresAt",
        ),
    ];
    for (body, field) in cases {
        let res = app.create_key("acme", body.clone()).await;
        let problem = assert_problem(res, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    assert_eq!(app.read_file("acme"), ACME_FILE);
}

#[tokio::test]
async fn unknown_fields_and_wrong_types_are_invalid_requests() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({"name": "ok", "hash": "sha256:00"}), "hash"),
        (json!({"name": "ok", "enabled": "yes"}), "enabled"),
        (json!({"name": 5}), "name"),
        (json!({"name": "ok", "permissions": "a"}), "permissions"),
        (json!(["name"]), ""),
    ] {
        let res = app.create_key("acme", body.clone()).await;
        let problem = assert_problem(res, 400, "invalid_request").await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    assert_eq!(app.read_file("acme"), ACME_FILE);
}

#[tokio::test]
async fn malformed_json_wrong_media_type_and_oversized_bodies() {
    let app = spawn_app().await;

    let res = post_raw(&app, "acme", "application/json", "{\"name\": ").await;
    assert_problem(res, 400, "invalid_request").await;

    let res = post_raw(&app, "acme", "text/plain", "{\"name\": \"x\"}").await;
    assert_problem(res, 415, "unsupported_media_type").await;

    let huge = format!(
        "{{\"name\": \"x\", \"description\": \"{}\"}}",
        "a".repeat(70_000)
    );
    let res = post_raw(&app, "acme", "application/json", huge).await;
    assert_problem(res, 413, "payload_too_large").await;

    assert_eq!(app.read_file("acme"), ACME_FILE);
}

#[tokio::test]
async fn path_traversal_tenant_ids_are_not_found_and_touch_nothing() {
    let app = spawn_app().await;
    let all = jwt(json!({"exp": now() + 60, "scope": WRITE, "tenant_id": "*"}));
    for tenant in ["..", "%2e%2e", "..%2F..%2Fetc", ".hidden", "a%00b", "nope"] {
        let res = app
            .create_key_as(tenant, json!({"name": "evil"}), &all)
            .await;
        let status = res.status().as_u16();
        assert!(status == 404, "{tenant}: {status}");
    }
    let mut entries: Vec<_> = std::fs::read_dir(app.tenants())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        ["acme", "globex"],
        "no tenant directory was created"
    );
    assert!(!app.dir.path().join("evil").exists());
    assert_eq!(app.read_file("acme"), ACME_FILE);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_problem(res, 404, "not_found").await;
    let res = app
        .client
        .patch(app.keys_url("acme"))
        .bearer_auth(writer("acme"))
        .send()
        .await
        .unwrap();
    let allow = res.headers()["allow"].to_str().unwrap().to_owned();
    assert_eq!(allow, "GET, POST", "RFC 9110 wants the allowed methods");
    assert_problem(res, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn a_body_sent_a_byte_at_a_time_is_cut_off_with_a_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(|s| s.request_timeout_seconds = 1).await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    conn.write_all(
        b"POST /api/acme/apiKeys/verify HTTP/1.1\r\nHost: x\r\n\
          Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .await
    .unwrap();

    let mut answer = Vec::new();
    let read = async {
        // Keep trickling until the server gives up on us.
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            if conn.write_all(b" ").await.is_err() {
                break;
            }
            let mut buf = [0u8; 4096];
            match tokio::time::timeout(std::time::Duration::from_millis(10), conn.read(&mut buf))
                .await
            {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .expect("the server closed the connection");

    let text = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(text.starts_with("http/1.1 408"), "{text}");
    assert!(
        text.contains("content-type: application/problem+json"),
        "{text}"
    );
    assert!(text.contains("\"code\":\"request_timeout\""), "{text}");
}

#[tokio::test]
async fn a_body_that_never_comes_is_cut_off_with_a_408() {
    // The head alone: the body's timer is armed only at the handler's second poll, which
    // actix-http makes without waiting for anything; this fails (no answer) if it ever stops.
    let app = spawn_app_with(|s| s.request_timeout_seconds = 1).await;
    let answer = raw_exchange(
        &app,
        b"POST /api/acme/apiKeys/verify HTTP/1.1\r\nHost: x\r\n\
          Content-Type: application/json\r\nContent-Length: 10\r\n\r\n",
        std::time::Duration::ZERO,
    )
    .await;
    assert_raw_problem(&answer, 408, "request_timeout");
}

#[tokio::test]
async fn a_body_that_comes_in_pieces_is_read_whole() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(|s| s.request_timeout_seconds = 5).await;
    let token = app.new_key("acme", "svc", &["orders:read"]).await;
    let body = json!({"key": token, "permissions": ["orders:read"]}).to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let addr = app.address.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/acme/apiKeys/verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    // Past the first turn, so the rest comes while the body's timer runs.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    conn.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        conn.read_to_string(&mut answer),
    )
    .await
    .expect("the server answered")
    .unwrap();
    let (head, verdict) = answer.split_once("\r\n\r\n").expect("a whole answer");
    assert!(head.starts_with("HTTP/1.1 200 "), "{answer}");
    let verdict: Value = serde_json::from_str(verdict).unwrap();
    assert_eq!(verdict["valid"], true, "{answer}");
}

/// Sends raw bytes on a new connection and reads until the server closes it (10 s at most).
async fn raw_exchange(app: &TestApp, request: &[u8], pause: std::time::Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.address.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    conn.write_all(request).await.unwrap();
    tokio::time::sleep(pause).await;
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        conn.read_to_end(&mut answer),
    )
    .await
    .expect("the server closed the connection")
    .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

fn assert_raw_problem(answer: &str, status: u16, code: &str) {
    let (head, body) = answer.split_once("\r\n\r\n").expect("a whole answer");
    let head = head.to_lowercase();
    assert!(head.starts_with(&format!("http/1.1 {status} ")), "{answer}");
    assert!(
        head.contains("content-type: application/problem+json"),
        "{answer}"
    );
    let body: Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(body["code"], code);
    assert_eq!(body["status"], status);
}

#[tokio::test]
async fn the_http_layer_s_own_refusals_are_problems_too() {
    let app = spawn_app_with(|s| s.request_timeout_seconds = 1).await;
    let quick = std::time::Duration::ZERO;

    let malformed = raw_exchange(
        &app,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
        quick,
    )
    .await;
    assert_raw_problem(&malformed, 400, "invalid_request");

    let many: String = (0..200).map(|i| format!("X-H{i}: a\r\n")).collect();
    let huge = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    let too_large = raw_exchange(&app, huge.as_bytes(), quick).await;
    assert_raw_problem(&too_large, 431, "headers_too_large");

    // Half a head, then nothing: the head timer answers.
    let slow = raw_exchange(&app, b"GET /healthz HTTP/1.1\r\nHost:", quick).await;
    assert_raw_problem(&slow, 408, "request_timeout");

    // Ordinary answers pass untouched.
    let ok = raw_exchange(
        &app,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        quick,
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
}
