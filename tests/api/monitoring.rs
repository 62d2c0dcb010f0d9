//! `/metrics` as Prometheus tooling reads it: `promtool` (Debian's `prometheus` package)
//! and Python's `prometheus_client` parsers, against a real server.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::helpers::*;

pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0";

/// Whether `promtool` is here; under CI its absence is a failure.
pub fn promtool_available() -> bool {
    tool_available(
        Command::new("promtool").arg("--version"),
        "promtool",
        "apt-get install -y prometheus",
    )
}

/// Whether Python's `prometheus_client` is here; under CI its absence is a failure.
fn python_client_available() -> bool {
    tool_available(
        Command::new("python3").args(["-c", "import prometheus_client"]),
        "prometheus_client",
        "python3 -m pip install prometheus-client",
    )
}

fn tool_available(probe: &mut Command, name: &str, install: &str) -> bool {
    let found = probe
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found || std::env::var_os("CI").is_none(),
        "CI must install {name} (see .ci/run)"
    );
    if !found {
        eprintln!("SKIPPED: {name} is missing: `{install}` to run this test");
    }
    found
}

/// `/metrics` asked for with `accept` (none: no `Accept` header): its content type and body.
pub async fn scrape(app: &TestApp, accept: Option<&str>) -> (String, String) {
    let mut req = reqwest::Client::new().get(app.url("/metrics"));
    if let Some(accept) = accept {
        req = req.header("accept", accept);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    (content_type, res.text().await.unwrap())
}

/// Runs `args` with `input` on its standard input: its exit status's success, and its output.
pub fn run_with_input(program: &str, args: &[&str], input: &str) -> (bool, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Each family's type as `prometheus_client` parses `exposition` (`openmetrics` or the
/// classic parser), by family name.
fn parsed_types(parser: &str, exposition: &str) -> BTreeMap<String, String> {
    const SCRIPT: &str = r#"
import json, sys
if sys.argv[1] == "openmetrics":
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
else:
    from prometheus_client.parser import text_string_to_metric_families
families = text_string_to_metric_families(sys.stdin.read())
print(json.dumps({f.name: f.type for f in families}))
"#;
    let (ok, out) = run_with_input("python3", &["-c", SCRIPT, parser], exposition);
    assert!(
        ok,
        "the {parser} parser refused /metrics: {out}\n{exposition}"
    );
    serde_json::from_str(&out).unwrap()
}

/// Traffic that gives every family of the application a sample: requests, verifications,
/// a key, a reload error.
async fn traffic(app: &TestApp) {
    let token = app.new_key("acme", "m", &[]).await;
    app.verify("acme", json!({"key": token})).await;
    app.verify("acme", json!({"key": "kw_bad"})).await;
    std::fs::write(app.file("globex"), "apiKeys: [\n").unwrap();
    eventually(
        "a reload error counted",
        std::time::Duration::from_secs(5),
        || app.metrics(),
        |text| text.contains("keyward_reload_errors_total{"),
    )
    .await;
}

/// The types every family must parse as, whichever the format.
const FAMILIES: [(&str, &str); 6] = [
    ("http_requests", "counter"),
    ("http_request_duration_seconds", "histogram"),
    ("keyward_verify", "counter"),
    ("keyward_reloads", "counter"),
    ("keyward_reload_errors", "counter"),
    ("keyward_keys", "gauge"),
];

#[tokio::test]
async fn promtool_accepts_the_classic_text_format() {
    if !promtool_available() {
        return;
    }
    let app = spawn_app().await;
    traffic(&app).await;

    let (content_type, text) = scrape(&app, None).await;

    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let (ok, out) = run_with_input("promtool", &["check", "metrics"], &text);
    assert!(ok, "promtool check metrics: {out}\n{text}");
}

#[tokio::test]
async fn python_reads_each_format_with_its_own_parser_and_every_type_right() {
    if !python_client_available() {
        return;
    }
    let app = spawn_app().await;
    traffic(&app).await;

    let (classic_type, classic) = scrape(&app, Some("text/plain")).await;
    let (openmetrics_type, openmetrics) = scrape(&app, Some(OPENMETRICS)).await;

    assert!(classic_type.starts_with("text/plain; version=0.0.4"));
    assert!(openmetrics_type.starts_with("application/openmetrics-text; version=1.0.0"));
    for (parser, text) in [("classic", &classic), ("openmetrics", &openmetrics)] {
        let types = parsed_types(parser, text);
        for (family, want) in FAMILIES {
            assert_eq!(
                types.get(family).map(String::as_str),
                Some(want),
                "{parser}: {family} in {types:?}"
            );
        }
    }
}
