//! `/metrics` as Prometheus tooling reads it: `promtool` (Debian's `prometheus` package)
//! and Python's `prometheus_client` parsers, against a real server.

use std::collections::{BTreeMap, BTreeSet};
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
const FAMILIES: [(&str, &str); 9] = [
    ("http_requests", "counter"),
    ("keyward_verify_duration_seconds", "histogram"),
    ("process_cpu_seconds", "counter"),
    ("process_open_fds", "gauge"),
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
    // The build is an info metric where the format has the type, a gauge of 1 where not.
    for (parser, text, build) in [
        ("classic", &classic, ("keyward_build_info", "gauge")),
        ("openmetrics", &openmetrics, ("keyward_build", "info")),
    ] {
        let types = parsed_types(parser, text);
        for (family, want) in FAMILIES.into_iter().chain([build]) {
            assert_eq!(
                types.get(family).map(String::as_str),
                Some(want),
                "{parser}: {family} in {types:?}"
            );
        }
    }
}

/// The value of the sample `series` (a name with its labels, as written), if there is one.
pub fn value(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

fn git_head_of_this_checkout() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[tokio::test]
async fn the_standard_process_and_build_metrics_and_verify_latency_are_exported() {
    let app = spawn_app().await;
    let token = app.new_key("acme", "m", &[]).await;
    for key in [token.as_str(), "kw_bad", "imported-key"] {
        app.verify("acme", json!({"key": key})).await;
    }

    let text = app.metrics().await;

    let positive = |series: &str| {
        let v = value(&text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"));
        assert!(v > 0.0, "{series} is {v}");
        v
    };
    positive("process_cpu_seconds_total");
    positive("process_resident_memory_bytes");
    let open = positive("process_open_fds");
    assert!(positive("process_max_fds") >= open);
    let started = positive("process_start_time_seconds");
    assert!(started <= now() as f64 + 1.0, "started {started}");
    let commit = git_head_of_this_checkout().unwrap_or_else(|| "unknown".into());
    let build = format!(
        "keyward_build_info{{version=\"{}\",commit=\"{commit}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(value(&text, &build), Some(1.0), "{build} in:\n{text}");
    // Three checks, whatever their outcome: one in eight on each worker is timed, the
    // first of each included, so one to three are; each is within the last bucket.
    let timed = value(&text, "keyward_verify_duration_seconds_count").unwrap_or_default();
    assert!((1.0..=3.0).contains(&timed), "{timed} timed:\n{text}");
    assert_eq!(
        value(&text, "keyward_verify_duration_seconds_bucket{le=\"+Inf\"}"),
        Some(timed),
        "{text}"
    );
    assert!(text.contains("# TYPE keyward_verify_duration_seconds histogram\n"));
    // Without git mode there is no replica to be behind.
    assert!(!text.contains("keyward_git_last_pull"), "{text}");
}

#[tokio::test]
async fn git_mode_exports_unpushed_writes_last_pull_and_push_and_push_durations() {
    let world = crate::git_world::World::new();
    let clone = world.clone_for("server");
    let origin = world.origin();
    let app = crate::git_world::keyward_on(&clone, |s| {
        s.git.push = keyward::config::PushMode::Async;
    })
    .await;
    let before = now() as f64 - 1.0;
    let pulled = eventually(
        "a first pull",
        std::time::Duration::from_secs(20),
        || app.metrics(),
        |t| value(t, "keyward_git_last_pull_success_timestamp_seconds").is_some_and(|v| v > 0.0),
    )
    .await;
    assert!(value(&pulled, "keyward_git_last_pull_success_timestamp_seconds").unwrap() >= before);

    // The remote is away: the writes wait here.
    git(
        &clone,
        &["remote", "set-url", "origin", "/nowhere/origin.git"],
    );
    app.new_key("acme", "one", &[]).await;
    app.new_key("acme", "two", &[]).await;
    let waiting = app.metrics().await;
    assert_eq!(
        value(&waiting, "keyward_git_unpushed_writes"),
        Some(2.0),
        "{waiting}"
    );
    assert_eq!(
        value(&waiting, "keyward_git_last_push_success_timestamp_seconds"),
        Some(0.0)
    );

    // It is back: they land, and the push is timed.
    git(
        &clone,
        &["remote", "set-url", "origin", origin.to_str().unwrap()],
    );
    let landed = eventually(
        "the writes reach the remote",
        std::time::Duration::from_secs(20),
        || app.metrics(),
        |t| value(t, "keyward_git_unpushed_writes") == Some(0.0),
    )
    .await;
    assert!(value(&landed, "keyward_git_last_push_success_timestamp_seconds").unwrap() >= before);
    let pushes = value(&landed, "keyward_git_push_duration_seconds_count").unwrap();
    assert!(pushes >= 1.0, "{landed}");
    assert!(world.remote_names("acme").contains("two"));
    if promtool_available() {
        let (ok, out) = run_with_input("promtool", &["check", "metrics"], &landed);
        assert!(ok, "promtool check metrics: {out}\n{landed}");
    }
}

const INVALID_ACME: &str = "keyward_tenant_file_invalid{tenant=\"acme\"}";
const ACME_ON_LAST_GOOD: &str = "keyward_tenant_serving_last_good{tenant=\"acme\"}";

/// `/metrics` once `series` has `want` (`None`: once it is gone).
async fn metrics_once(app: &TestApp, series: &str, want: Option<f64>) -> String {
    eventually(
        &format!("{series} at {want:?}"),
        std::time::Duration::from_secs(10),
        || app.metrics(),
        |t| value(t, series) == want,
    )
    .await
}

#[tokio::test]
async fn a_broken_tenant_file_is_flagged_until_it_is_fixed_and_a_removed_tenant_has_no_series() {
    let app = spawn_app().await;
    let good = app.read_file("acme");
    let loaded = app.metrics().await;
    assert_eq!(value(&loaded, INVALID_ACME), Some(0.0), "{loaded}");
    assert_eq!(value(&loaded, ACME_ON_LAST_GOOD), Some(0.0), "{loaded}");

    std::fs::write(app.file("acme"), "apiKeys: [\n").unwrap();
    let broken = metrics_once(&app, INVALID_ACME, Some(1.0)).await;
    // It keeps the keys of the file's previous version, not a copy from state_dir.
    assert_eq!(value(&broken, ACME_ON_LAST_GOOD), Some(0.0), "{broken}");

    // The same broken content written again is read as unchanged: still broken.
    let unchanged = "keyward_reloads_total{tenant=\"acme\",outcome=\"unchanged\"}";
    let before = value(&broken, unchanged).unwrap_or(0.0);
    std::fs::write(app.file("acme"), "apiKeys: [\n").unwrap();
    let again = eventually(
        "the rewrite read as unchanged",
        std::time::Duration::from_secs(10),
        || app.metrics(),
        |t| value(t, unchanged).is_some_and(|n| n > before),
    )
    .await;
    assert_eq!(value(&again, INVALID_ACME), Some(1.0), "{again}");

    std::fs::write(app.file("acme"), good).unwrap();
    metrics_once(&app, INVALID_ACME, Some(0.0)).await;

    std::fs::remove_dir_all(app.tenants().join("acme")).unwrap();
    let removed = metrics_once(&app, INVALID_ACME, None).await;
    assert_eq!(value(&removed, ACME_ON_LAST_GOOD), None, "{removed}");
}

#[tokio::test]
async fn a_restart_on_a_broken_file_reports_the_tenant_served_from_its_last_good_copy() {
    let app = spawn_app().await;
    app.new_key("acme", "survivor", &[]).await;
    let dir = app.stop().await;
    let file = dir.path().join("tenants/acme/security.yml");
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, good.replace("apiKeys:", "apiKeys: [")).unwrap();

    let app = spawn_app_on(dir, |_| {}).await;

    let text = app.metrics().await;
    assert_eq!(value(&text, ACME_ON_LAST_GOOD), Some(1.0), "{text}");
    assert_eq!(value(&text, INVALID_ACME), Some(1.0), "{text}");

    std::fs::write(&file, good).unwrap();
    let fixed = metrics_once(&app, ACME_ON_LAST_GOOD, Some(0.0)).await;
    assert_eq!(value(&fixed, INVALID_ACME), Some(0.0), "{fixed}");
}

/// A file the repository ships under `deploy/`.
fn deployed(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

/// Runs `promtool args` in `deploy/prometheus`: its success and its output.
fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(deployed("prometheus"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    if !promtool_available() {
        return;
    }

    let (checked, check) = promtool(&["check", "rules", "keyward-rules.yml"]);
    let (tested, test) = promtool(&["test", "rules", "keyward-rules.test.yml"]);

    assert!(checked, "promtool check rules: {check}");
    assert!(tested, "promtool test rules: {test}");
}

/// The names in a PromQL expression that look like keyward's metrics: every identifier
/// (a run of letters, digits, `_` and `:`) starting `keyward_`, `http_` or `process_`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| {
            ["keyward_", "http_", "process_"]
                .iter()
                .any(|p| w.starts_with(p))
        })
        .map(str::to_owned)
        .collect()
}

/// Every alert's expression in the rules file.
fn rule_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(deployed("prometheus/keyward-rules.yml")).unwrap();
    let rules: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let groups = rules["groups"].as_sequence().unwrap();
    groups
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap())
        .map(|r| r["expr"].as_str().unwrap().to_owned())
        .collect()
}

fn dashboard() -> serde_json::Value {
    let text = std::fs::read_to_string(deployed("grafana/keyward.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every string under `key` anywhere in `value`.
fn strings_under(value: &serde_json::Value, key: &str, found: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(fields) => {
            for (k, v) in fields {
                match v.as_str() {
                    Some(s) if k == key => found.push(s.to_owned()),
                    _ => strings_under(v, key, found),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings_under(v, key, found)),
        _ => {}
    }
}

/// The PromQL of every panel's queries.
fn panel_exprs(dashboard: &serde_json::Value) -> Vec<String> {
    let mut exprs = Vec::new();
    strings_under(&dashboard["panels"], "expr", &mut exprs);
    exprs
}

/// The template variables' queries (Grafana's `label_values(...)`, not PromQL).
fn variable_queries(dashboard: &serde_json::Value) -> Vec<String> {
    let mut queries = Vec::new();
    strings_under(&dashboard["templating"], "definition", &mut queries);
    queries
}

/// A panel's query as Prometheus receives it once Grafana has filled its variables in.
fn as_prometheus_gets_it(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$job", ".*")
        .replace("$instance", ".*")
        .replace("$tenant", ".*")
}

#[test]
fn the_dashboard_queries_prometheus_through_its_variables_and_every_query_parses() {
    if !promtool_available() {
        return;
    }
    let dashboard = dashboard();
    let exprs = panel_exprs(&dashboard);
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let variable = |name: &str| variables.iter().find(|v| v["name"] == name).cloned();

    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 39);
    let source = variable("datasource").expect("a datasource variable");
    assert_eq!(
        (source["type"].as_str(), source["query"].as_str()),
        (Some("datasource"), Some("prometheus"))
    );
    let tenant = variable("tenant").expect("a tenant variable");
    assert!(tenant["definition"].as_str().unwrap().contains("tenant)"));
    let mut sources = Vec::new();
    strings_under(&dashboard["panels"], "uid", &mut sources);
    assert!(
        sources.iter().all(|uid| uid == "${datasource}"),
        "{sources:?}"
    );
    assert!(exprs.len() > 20, "{exprs:?}");
    // Each query is made a recording rule, so that promtool parses it as Prometheus would.
    let rules = json!({"groups": [{"name": "dashboard", "rules": exprs.iter().enumerate()
        .map(|(i, e)| json!({"record": format!("keyward:dashboard:{i}"), "expr": as_prometheus_gets_it(e)}))
        .collect::<Vec<_>>()}]});
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-rules.yml");
    std::fs::write(&file, serde_yaml::to_string(&rules).unwrap()).unwrap();
    let (ok, out) = promtool(&["check", "rules", file.to_str().unwrap()]);
    assert!(ok, "a dashboard query does not parse: {out}");
}

/// The sample names of an exposition (`x_bucket`, `x_total`, a gauge's own name).
fn sample_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn every_metric_the_rules_and_the_dashboard_use_is_exported_by_a_git_mode_server() {
    let world = crate::git_world::World::new();
    world.ops_commit_at(
        &world.origin(),
        "globex",
        |_| "apiKeys: [\n".into(),
        "Break globex",
    );
    let clone = world.clone_for("server");
    let app = crate::git_world::keyward_on(&clone, |_| {}).await;
    let token = app.new_key("acme", "m", &[]).await;
    app.verify("acme", json!({"key": token})).await;
    eventually(
        "a pull, a push and the broken tenant seen",
        std::time::Duration::from_secs(20),
        || app.metrics(),
        |t| {
            value(t, "keyward_git_last_pull_success_timestamp_seconds").is_some_and(|v| v > 0.0)
                && value(t, "keyward_git_unpushed_writes") == Some(0.0)
                && value(t, "keyward_tenant_file_invalid{tenant=\"globex\"}") == Some(1.0)
        },
    )
    .await;
    let dashboard = dashboard();
    let used: BTreeSet<String> = rule_exprs()
        .iter()
        .chain(&panel_exprs(&dashboard))
        .chain(&variable_queries(&dashboard))
        .flat_map(|e| metric_names(e))
        .collect();

    // Prometheus asks for OpenMetrics first; other scrapers get the classic format.
    for accept in [None, Some(OPENMETRICS)] {
        let (_, text) = scrape(&app, accept).await;
        let exported = sample_names(&text);
        let missing: Vec<_> = used.difference(&exported).collect();
        assert!(
            missing.is_empty(),
            "{accept:?}: {missing:?} not in:\n{text}"
        );
    }
    assert!(
        used.contains("keyward_tenant_serving_last_good"),
        "{used:?}"
    );
    assert!(
        used.contains("keyward_git_push_duration_seconds_bucket"),
        "{used:?}"
    );
}
