//! A body that does not have the expected shape is refused by naming the field and the type
//! it needs, never by quoting what was sent: a token pasted into the wrong field must not
//! come back in the answer or reach the log.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

/// Every run of 8 characters of `secret`: none may appear where a secret must not.
fn parts_of(secret: &str) -> Vec<&str> {
    (0..=secret.len() - 8).map(|i| &secret[i..i + 8]).collect()
}

fn assert_holds_no_part_of(text: &str, secret: &str, what: &str) {
    for part in parts_of(secret) {
        assert!(
            !text.contains(part),
            "{what} holds {part:?} of the token:\n{text}"
        );
    }
}

/// A bad body sent to an admin route, and the field and words its error must name.
struct Case {
    method: reqwest::Method,
    path: &'static str,
    body: Value,
    field: &'static str,
    names: &'static str,
}

fn cases(token: &str) -> Vec<Case> {
    use reqwest::Method;
    let keys = "/api/acme/admin/apiKeys";
    let key = "/api/acme/admin/apiKeys/ci-deploy";
    let rotate = "/api/acme/admin/apiKeys/ci-deploy/rotate";
    let case = |method: &Method, path, body, field, names| Case {
        method: method.clone(),
        path,
        body,
        field,
        names,
    };
    vec![
        case(
            &Method::POST,
            keys,
            json!({"name": "x", "permissions": token}),
            "permissions",
            "array",
        ),
        case(
            &Method::POST,
            keys,
            json!({"name": "x", "enabled": token}),
            "enabled",
            "boolean",
        ),
        case(
            &Method::POST,
            keys,
            json!({"name": "x", "permissions": ["a", {"k": token}]}),
            "permissions[1]",
            "string",
        ),
        case(
            &Method::POST,
            keys,
            json!({"name": "x", token: true}),
            "?",
            "unknown field",
        ),
        case(
            &Method::PUT,
            key,
            json!({"enabled": token}),
            "enabled",
            "boolean",
        ),
        case(
            &Method::PUT,
            key,
            json!({"enabled": true, "permissions": token}),
            "permissions",
            "array",
        ),
        case(
            &Method::POST,
            rotate,
            json!({"gracePeriodSeconds": token}),
            "gracePeriodSeconds",
            "number",
        ),
    ]
}

#[tokio::test]
async fn a_token_in_a_wrongly_typed_field_is_neither_answered_nor_logged() {
    let dir = tenants_with(&[("acme", ACME_FILE)]);
    let mut server = serve_process(dir.path());
    let client = reqwest::Client::new();
    let created = client
        .post(server.url("/api/acme/admin/apiKeys"))
        .bearer_auth(writer("acme"))
        .json(&json!({"name": "pasted"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let token = created.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    for case in cases(&token) {
        let res = client
            .request(case.method.clone(), server.url(case.path))
            .bearer_auth(writer("acme"))
            .json(&case.body)
            .send()
            .await
            .unwrap();

        let problem = assert_problem(res, 400, "invalid_request").await;
        let text = problem.to_string();
        assert_holds_no_part_of(&text, &token, "the answer");
        let error = &problem["errors"][0];
        assert_eq!(error["field"], case.field, "{text}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains(case.names),
            "{} wanted in {text}",
            case.names
        );
    }

    // A write after the refusals: once its line is logged, so are theirs.
    let marker = client
        .post(server.url("/api/acme/admin/apiKeys"))
        .bearer_auth(writer("acme"))
        .json(&json!({"name": "marker"}))
        .send()
        .await
        .unwrap();
    assert_eq!(marker.status(), 201);
    let log = tokio::task::spawn_blocking(move || {
        while server.wait_for("key created")["key"] != "marker" {}
        while let Ok(line) = server.lines.recv_timeout(Duration::from_millis(200)) {
            server.log.push(line);
        }
        server.log.join("\n")
    })
    .await
    .unwrap();
    // A refusal is counted, not logged one line each: should a line come back, it holds
    // no part of the token either.
    assert_holds_no_part_of(&log, &token, "the log");
}

#[tokio::test]
async fn a_body_is_exactly_one_json_value() {
    let app = spawn_app().await;
    let before = app.read_file("acme");

    let res = app
        .client
        .post(app.keys_url("acme"))
        .bearer_auth(writer("acme"))
        .header("Content-Type", "application/json")
        .body(r#"{"name":"a"}{"name":"b","permissions":["*"]}"#)
        .send()
        .await
        .unwrap();

    assert_problem(res, 400, "invalid_request").await;
    assert_eq!(app.read_file("acme"), before);
}
