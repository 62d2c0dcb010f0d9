//! keyward's benchmark: runs the release binary on generated data and prints one table.
//!
//! `bench/run.sh` builds everything and runs this; see BENCHMARKS.md. Needs `wrk`.
//! Every number is measured here, in one run, side by side; ratios matter more than the
//! absolute figures on a shared machine.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jsonwebtoken::{EncodingKey, Header, encode};

#[path = "bench_parts/fleet.rs"]
mod fleet;
use keyward::domain::{KeyHash, Token, TokenPrefix};
use serde_json::json;

const SECRET: &str = "bench-secret-bench-secret-bench-secret!!";

fn main() {
    let mut args = std::env::args().skip_while(|a| a != "--bare-actix").skip(1);
    if let (Some(port), Some(dir)) = (args.next(), args.next()) {
        bare_actix(
            port.parse().expect("--bare-actix PORT DIR"),
            Path::new(&dir),
        );
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let sections = [
        "throughput",
        "scale",
        "reload",
        "writes",
        "git",
        "fleet",
        "soak",
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    let unknown = args.iter().enumerate().find(|(i, a)| {
        let minutes = *i > 0 && args[i - 1] == "--minutes";
        let part = fleet::PARTS.iter().any(|(name, _)| name == a);
        !(sections.contains(&a.as_str()) || part || *a == "--quick" || *a == "--minutes" || minutes)
    });
    if let Some((_, arg)) = unknown {
        eprintln!(
            "unknown argument {arg:?}\nusage: bench [--quick] [{} | fleet-one | fleet-three | fleet-slow | fleet-history] [--minutes N]",
            sections.join(" | ")
        );
        std::process::exit(2);
    }
    let bin = std::env::var("KEYWARD_BIN").unwrap_or_else(|_| "target/release/keyward".into());
    // Servers run in temp dirs: the binary's path must not be relative.
    let bin = std::fs::canonicalize(&bin)
        .expect("build the server first: cargo build --release")
        .to_string_lossy()
        .into_owned();
    let mut out = String::new();
    writeln!(out, "| measurement | result | goal |").unwrap();
    writeln!(out, "|---|---|---|").unwrap();
    // `bench/run.sh throughput` (or scale, reload, writes) runs one section only.
    let only: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| sections.contains(a) || fleet::PARTS.iter().any(|(name, _)| name == a))
        .collect();
    let run = |name: &str| only.is_empty() || only.contains(&name);
    if run("throughput") {
        throughput(&bin, quick, &mut out);
    }
    if run("scale") {
        scale(&bin, quick, &mut out);
    }
    if run("reload") {
        reload_latency(&bin, quick, &mut out);
        reload_cost(&mut out);
    }
    if run("writes") {
        admin_writes(&bin, quick, &mut out);
    }
    if run("git") {
        git_mode(&bin, quick, &mut out);
    }
    // Not part of the default run: minutes long. `bench/run.sh fleet [--quick]`, or one
    // part of it: `bench/run.sh fleet-slow`.
    for (name, part) in fleet::PARTS {
        if only.contains(&"fleet") || only.contains(&name) {
            part(&bin, quick, &mut out);
        }
    }
    // Not part of the default run: minutes long. `bench/run.sh soak [--minutes N]`.
    if only.contains(&"soak") {
        soak(&bin, &mut out);
    }
    println!("\n{out}");
}

// ---------- the server as a process ----------

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(bin: &str, dir: &Path) -> (Server, Duration) {
    start_with(bin, dir, &[])
}

fn start_with(bin: &str, dir: &Path, env: &[(&str, String)]) -> (Server, Duration) {
    let port = free_port();
    let started = Instant::now();
    let child = Command::new(bin)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        // keyward refuses unknown KEYWARD_* settings: KEYWARD_BIN is the driver's own.
        .env_remove("KEYWARD_BIN")
        .env("KEYWARD_LISTEN", format!("127.0.0.1:{port}"))
        .env("KEYWARD_AUTH__HS256_SECRET", SECRET)
        // The 10,000-key tenant of the write benchmark is over the default API limit.
        .env("KEYWARD_MAX_KEYS_PER_TENANT", "1000000")
        // The shipped default log level (info): what users run.
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .spawn()
        .expect("the keyward binary runs (build it with cargo build --release)");
    let server = Server { child, port };
    let client = reqwest::blocking::Client::new();
    loop {
        if let Ok(r) = client.get(server.url("/readyz")).send()
            && r.status() == 200
        {
            return (server, started.elapsed());
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "server never got ready"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Server {
    /// Stops the server as ops do (SIGTERM) and waits until it has exited.
    fn stop(mut self) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("a pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
        let _ = self.child.wait();
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// CPU time (user + system) the server has used so far, in seconds: what a start costs
    /// whatever else the machine runs.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // The fields after the command name, which is in parentheses: utime is the 12th.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let ticks: f64 = after
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|t| t.parse::<f64>().unwrap())
            .sum();
        let hz = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .unwrap()
            .stdout;
        ticks
            / String::from_utf8(hz)
                .unwrap()
                .trim()
                .parse::<f64>()
                .unwrap()
    }

    fn rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        kb / 1024.0
    }
}

// ---------- data ----------

/// Filler hashes: any 32 random bytes (a fast RNG; these tokens are never used).
fn random_hash() -> String {
    let bytes: [u8; 32] = rand::random();
    KeyHash::of(&bytes).to_string()
}

fn prefix() -> TokenPrefix {
    TokenPrefix::parse("kw").unwrap()
}

/// A security.yml with `n` random keys, plus the given (name, token) keys.
fn file_text(n: usize, known: &[(String, String)]) -> String {
    file_text_limited(n, known, None)
}

/// A limit far above what wrk can ask of one key: it is checked on every request and never
/// refuses, so what it costs is all a run measures.
const NEVER_REFUSED: &str = "{requests: 1000000, perSeconds: 1}";

/// `file_text`, every key with `rate_limit` (a YAML flow mapping) when one is given.
fn file_text_limited(n: usize, known: &[(String, String)], rate_limit: Option<&str>) -> String {
    let limit = rate_limit.map_or(String::new(), |l| format!("\n    rateLimit: {l}"));
    let mut s = String::from("# generated for the benchmark\napiKeys:\n");
    for i in 0..n {
        writeln!(
            s,
            "  - name: key-{i}\n    hash: {}\n    permissions: [orders:read, orders:write]\n    createdAt: 2026-11-22T10:00:00Z{limit}",
            random_hash()
        )
        .unwrap();
    }
    for (name, token) in known {
        writeln!(
            s,
            "  - name: {name}\n    hash: {}\n    permissions: [orders:read]{limit}",
            KeyHash::of(token.as_bytes())
        )
        .unwrap();
    }
    s
}

/// The same keys and tenants as `dir`'s (generated again, so other hashes), each key with
/// a limit that never refuses.
fn write_limited_copy(dir: &Path, tenants: usize, per: usize, known: &[(String, String)]) {
    let text = file_text_limited(per - 1, known, Some(NEVER_REFUSED));
    write_tenant(dir, "bench", &text);
    for t in 1..tenants {
        let text = file_text_limited(per, &[], Some(NEVER_REFUSED));
        write_tenant(dir, &format!("tenant-{t:03}"), &text);
    }
}

/// The server built without the `rate-limits` feature (`bench/run.sh` builds it into its
/// own target directory): the same code but for the check verification skips.
fn bin_without_rate_limits() -> Option<String> {
    let bin = std::env::var("NO_RATE_LIMITS_BIN").ok()?;
    let bin = std::fs::canonicalize(bin).ok()?;
    Some(bin.to_string_lossy().into_owned())
}

fn write_tenant(dir: &Path, tenant: &str, text: &str) {
    let t = dir.join("tenants").join(tenant);
    std::fs::create_dir_all(&t).unwrap();
    std::fs::write(t.join("security.yml"), text).unwrap();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

// ---------- the baseline: a bare actix-web server ----------

/// `bench --bare-actix PORT DIR`: the smallest actix-web app doing what keyward's two verify
/// routes do, on the same files: `GET /auth/{tenant}` reads `X-API-Key`, hashes it, looks
/// it up, checks each `permission` of the query and answers 204 with three headers; `POST
/// /api/{tenant}/apiKeys/verify` does the same from a JSON body and answers JSON. No
/// middleware, no metrics, no expiry: what a hand-written handler costs.
fn bare_actix(port: u16, dir: &Path) {
    use std::collections::HashMap;

    use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
    use sha2::{Digest, Sha256};

    #[derive(serde::Deserialize)]
    struct File {
        #[serde(rename = "apiKeys")]
        api_keys: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        name: String,
        hash: String,
        #[serde(default)]
        permissions: Vec<String>,
    }
    type Keys = HashMap<String, HashMap<[u8; 32], Entry>>;

    #[derive(serde::Deserialize)]
    struct Verify {
        key: String,
        #[serde(default)]
        permissions: Vec<String>,
    }

    fn lookup<'a>(keys: &'a Keys, tenant: &str, key: &str) -> Option<&'a Entry> {
        let hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        keys.get(tenant)?.get(&hash)
    }

    async fn healthz() -> HttpResponse {
        HttpResponse::Ok().json(json!({"status": "ok"}))
    }

    async fn forward_auth(
        keys: web::Data<Keys>,
        req: HttpRequest,
        tenant: web::Path<String>,
    ) -> HttpResponse {
        let key = req
            .headers()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let Some(entry) = lookup(&keys, &tenant, key) else {
            return HttpResponse::Unauthorized().finish();
        };
        for (name, value) in form_urlencoded::parse(req.query_string().as_bytes()) {
            if name != "permission" {
                return HttpResponse::BadRequest().finish();
            }
            if !entry.permissions.iter().any(|p| *p == value) {
                return HttpResponse::Forbidden().finish();
            }
        }
        HttpResponse::NoContent()
            .insert_header(("x-keyward-tenant", tenant.as_str()))
            .insert_header(("x-keyward-key", entry.name.as_str()))
            .insert_header(("x-keyward-permissions", entry.permissions.join(" ")))
            .finish()
    }

    async fn verify(
        keys: web::Data<Keys>,
        tenant: web::Path<String>,
        body: web::Json<Verify>,
    ) -> HttpResponse {
        let found = lookup(&keys, &tenant, &body.key)
            .filter(|e| body.permissions.iter().all(|p| e.permissions.contains(p)));
        HttpResponse::Ok().json(match found {
            Some(e) => Answer::Valid {
                valid: true,
                name: &e.name,
                permissions: &e.permissions,
                expires_at: None,
            },
            None => Answer::Invalid {
                valid: false,
                code: "not_found",
            },
        })
    }

    /// The answer as a typed struct of borrowed fields: the fastest a hand-written handler
    /// writes it (a `json!` value would cost the twin an allocation per field).
    #[derive(serde::Serialize)]
    #[serde(untagged)]
    enum Answer<'a> {
        Valid {
            valid: bool,
            name: &'a str,
            permissions: &'a [String],
            #[serde(rename = "expiresAt")]
            expires_at: Option<&'a str>,
        },
        Invalid {
            valid: bool,
            code: &'static str,
        },
    }

    let mut keys = Keys::new();
    for tenant in std::fs::read_dir(dir.join("tenants")).expect("the tenants dir") {
        let tenant = tenant.unwrap();
        let text = std::fs::read_to_string(tenant.path().join("security.yml")).unwrap();
        let file: File = serde_yaml::from_str(&text).expect("a benchmark file");
        let entries = file
            .api_keys
            .into_iter()
            .map(|e| {
                let hex = e.hash.trim_start_matches("sha256:");
                let mut hash = [0u8; 32];
                for (i, b) in hash.iter_mut().enumerate() {
                    *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
                }
                (hash, e)
            })
            .collect();
        keys.insert(tenant.file_name().to_string_lossy().into_owned(), entries);
    }
    let keys = web::Data::new(keys);
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            App::new()
                .app_data(keys.clone())
                .route("/healthz", web::get().to(healthz))
                .route("/auth/{tenant}", web::get().to(forward_auth))
                .route("/api/{tenant}/apiKeys/verify", web::post().to(verify))
        })
        .bind(("127.0.0.1", port))
        .expect("the bare server binds")
        .run()
        .await
        .expect("the bare server runs");
    });
}

fn start_bare(dir: &Path) -> Server {
    let port = free_port();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--bare-actix", &port.to_string()])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the driver runs itself");
    let server = Server { child, port };
    let client = reqwest::blocking::Client::new();
    let started = Instant::now();
    while client.get(server.url("/healthz")).send().is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "bare server never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    server
}

// ---------- 1, 2: throughput with wrk ----------

struct Wrk {
    rps: f64,
    p99_ms: f64,
    non2xx: u64,
    requests: u64,
    /// The server's CPU time per request, in µs (measured in pinned runs only).
    cpu_us: f64,
}

/// How a wrk run shares the machine with the server it loads.
#[derive(Clone, Copy)]
enum Placement {
    /// Wherever the scheduler puts them: what a deployment sees, and on two cores the
    /// noisiest (three busy threads on two cores; one round's bare app ran 190k req/s and
    /// the next 129k).
    Shared,
    /// The server's threads on core 0, one wrk thread on core 1: each server gets one core
    /// to itself, so a round measures what a request costs, not where the threads landed.
    Pinned,
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Whether this machine can run `Placement::Pinned`: two cores and `taskset`.
fn can_pin() -> bool {
    num_cpus() >= 2
        && Command::new("taskset")
            .arg("-V")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// Moves every thread of the server onto `cpus` (a taskset list: "0", or "0-1" to free it).
fn place(server: &Server, cpus: &str) {
    let ok = Command::new("taskset")
        .args(["-a", "-c", "-p", cpus, &server.child.id().to_string()])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "taskset moves the server's threads");
}

/// A wrk run against `server`, placed as `placement` says; a pinned run also measures the
/// server's CPU time per request.
fn load(
    server: &Server,
    path: &str,
    placement: Placement,
    header: Option<&str>,
    script: Option<&Path>,
    seconds: u32,
) -> Wrk {
    match placement {
        Placement::Shared => wrk(&server.url(path), seconds, header, script),
        Placement::Pinned => {
            let before = server.cpu_seconds();
            let mut w = wrk_with(
                &["taskset", "-c", "1", "wrk", "-t1", "-c32"],
                &server.url(path),
                seconds,
                header,
                script,
            );
            w.cpu_us = (server.cpu_seconds() - before) * 1e6 / w.requests.max(1) as f64;
            w
        }
    }
}

fn wrk(url: &str, seconds: u32, header: Option<&str>, script: Option<&Path>) -> Wrk {
    wrk_with(&["wrk", "-t2", "-c64"], url, seconds, header, script)
}

/// wrk run by `command` (its program, arguments and thread and connection counts).
fn wrk_with(
    command: &[&str],
    url: &str,
    seconds: u32,
    header: Option<&str>,
    script: Option<&Path>,
) -> Wrk {
    let mut cmd = Command::new(command[0]);
    cmd.args(&command[1..]);
    cmd.args([&format!("-d{seconds}s"), "--latency"]);
    if let Some(h) = header {
        cmd.args(["-H", h]);
    }
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    let out = cmd
        .arg(url)
        .output()
        .expect("wrk is installed (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |prefix: &str| -> Option<String> {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .map(|l| l[prefix.len()..].trim().to_owned())
    };
    let duration_ms = |s: String| -> f64 {
        let s = s.split_whitespace().next().unwrap_or("0");
        if let Some(v) = s.strip_suffix("us") {
            v.parse::<f64>().unwrap_or(0.0) / 1000.0
        } else if let Some(v) = s.strip_suffix("ms") {
            v.parse().unwrap_or(0.0)
        } else if let Some(v) = s.strip_suffix('s') {
            v.parse::<f64>().unwrap_or(0.0) * 1000.0
        } else {
            0.0
        }
    };
    Wrk {
        rps: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0),
        p99_ms: field("99%").map(duration_ms).unwrap_or(0.0),
        non2xx: field("Non-2xx or 3xx responses:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        requests: text
            .lines()
            .find(|l| l.contains(" requests in "))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0),
        cpu_us: 0.0,
    }
}

/// Goals 1 and 4 of the performance work, each pair alternated in one run: keyward's verify
/// routes against the bare app of the same shape, refused keys against accepted ones, and
/// verification while its tenant's file is rewritten 10 times a second against quiet.
fn throughput(bin: &str, quick: bool, out: &mut String) {
    let (tenants, per) = if quick { (10, 100) } else { (100, 1_000) };
    let dir = tempfile::tempdir().unwrap();
    let token = Token::generate(&prefix()).expose().to_owned();
    // Well-formed (its checksum is right) but in no file: refused after the lookup.
    let unknown = Token::generate(&prefix()).expose().to_owned();
    let bench_file = file_text(per - 1, &[("gateway".into(), token.clone())]);
    write_tenant(dir.path(), "bench", &bench_file);
    for t in 1..tenants {
        write_tenant(dir.path(), &format!("tenant-{t:03}"), &file_text(per, &[]));
    }
    let (server, _) = start(bin, dir.path());
    let bare = start_bare(dir.path());
    // What rate limits cost: (a) the same files (no limits) served by a build without the
    // feature, (b) every key limited, served by this build.
    let unfeatured = bin_without_rate_limits().map(|b| start(&b, dir.path()).0);
    let limited_dir = tempfile::tempdir().unwrap();
    write_limited_copy(
        limited_dir.path(),
        tenants,
        per,
        &[("gateway".into(), token.clone())],
    );
    let (limited, _) = start(bin, limited_dir.path());
    // (c) every key limited, with `lastUsedAt` and the limits shared through a real Redis.
    let redis = RedisServer::start();
    let redis_dir = tempfile::tempdir().unwrap();
    write_limited_copy(
        redis_dir.path(),
        tenants,
        per,
        &[("gateway".into(), token.clone())],
    );
    let on_redis = redis.as_ref().map(|r| {
        let url = format!("redis://127.0.0.1:{}/", r.port);
        start_with(bin, redis_dir.path(), &[("KEYWARD_USAGE__REDIS_URL", url)]).0
    });
    let mut limit_cost: [(Vec<Wrk>, Vec<Wrk>); 3] = Default::default();
    let script = dir.path().join("verify.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = '{}'\n",
            json!({"key": token, "permissions": ["orders:read"]})
        ),
    )
    .unwrap();
    let secs = if quick { 2 } else { 5 };
    let rounds = if quick { 1 } else { 5 };
    let (accepted, refused) = (
        format!("X-API-Key: {token}"),
        format!("X-API-Key: {unknown}"),
    );
    let fwd = "/auth/bench?permission=orders:read";
    let json_path = "/api/bench/apiKeys/verify";
    let file = dir.path().join("tenants/bench/security.yml");
    let reloads_before = reloads(&server, "bench");
    let mut runs: [Vec<Wrk>; 6] = Default::default();
    let mut pinned: [Vec<Wrk>; 4] = Default::default();
    let pin = can_pin();
    let mut rewrites = 0;
    // Alternated, so the machine's noise hits every kind alike.
    for _ in 0..rounds {
        let shared = Placement::Shared;
        runs[0].push(load(&bare, fwd, shared, Some(&accepted), None, secs));
        runs[1].push(load(&server, fwd, shared, Some(&accepted), None, secs));
        runs[2].push(load(&bare, json_path, shared, None, Some(&script), secs));
        runs[3].push(load(&server, json_path, shared, None, Some(&script), secs));
        runs[4].push(load(&server, fwd, shared, Some(&refused), None, secs));
        let (w, n) = while_rewriting(&file, &bench_file, || {
            load(&server, fwd, shared, Some(&accepted), None, secs)
        });
        runs[5].push(w);
        rewrites += n;
        if pin {
            let (at, all) = ("0", format!("0-{}", num_cpus() - 1));
            place(&bare, at);
            place(&server, at);
            let p = Placement::Pinned;
            pinned[0].push(load(&bare, fwd, p, Some(&accepted), None, secs));
            pinned[1].push(load(&server, fwd, p, Some(&accepted), None, secs));
            pinned[2].push(load(&bare, json_path, p, None, Some(&script), secs));
            pinned[3].push(load(&server, json_path, p, None, Some(&script), secs));
            place(&bare, &all);
            place(&server, &all);
        }
        // Each against this build with no limits, run right after it, placed alike (pinned
        // when the machine allows).
        for (i, other) in [unfeatured.as_ref(), Some(&limited), on_redis.as_ref()]
            .into_iter()
            .enumerate()
        {
            let Some(other) = other else { continue };
            let placement = if pin {
                place(other, "0");
                place(&server, "0");
                Placement::Pinned
            } else {
                Placement::Shared
            };
            let (theirs, ours) = &mut limit_cost[i];
            theirs.push(load(other, fwd, placement, Some(&accepted), None, secs));
            ours.push(load(&server, fwd, placement, Some(&accepted), None, secs));
            if pin {
                let all = format!("0-{}", num_cpus() - 1);
                place(other, &all);
                place(&server, &all);
            }
        }
    }
    let reloaded = reloads(&server, "bench") - reloads_before;
    let [
        bare_fwd,
        fwd_runs,
        bare_json,
        json_runs,
        refused_runs,
        busy_runs,
    ] = &runs;
    let rps = |w: &Wrk| w.rps;
    let p99 = |w: &Wrk| w.p99_ms;
    ratio_row(
        out,
        "forward-auth `GET /auth/{t}?permission=`, req/s: keyward vs the bare app",
        fwd_runs,
        bare_fwd,
        rps,
        "≥ 0.95",
    );
    ratio_row(
        out,
        "forward-auth p99, ms: keyward vs the bare app",
        fwd_runs,
        bare_fwd,
        p99,
        "≤ 1.2",
    );
    ratio_row(
        out,
        "JSON `POST /api/{t}/apiKeys/verify`, req/s: keyward vs the bare app",
        json_runs,
        bare_json,
        rps,
        "≥ 0.95",
    );
    ratio_row(
        out,
        "JSON verify p99, ms: keyward vs the bare app",
        json_runs,
        bare_json,
        p99,
        "≤ 1.2",
    );
    ratio_row(
        out,
        "forward-auth, req/s: a flood of unknown keys (401) vs accepted keys",
        refused_runs,
        fwd_runs,
        rps,
        "≥ 1.0",
    );
    ratio_row(
        out,
        &format!(
            "forward-auth, req/s: its tenant's {per}-key file rewritten 10×/s ({rewrites} rewrites, {reloaded} reloads) vs quiet"
        ),
        busy_runs,
        fwd_runs,
        rps,
        "≥ 0.95",
    );
    if pin {
        let [bare_fwd, fwd_runs, bare_json, json_runs] = &pinned;
        let per_cpu_second = |w: &Wrk| 1e6 / w.cpu_us;
        for (label, ours, theirs) in [
            ("forward-auth", fwd_runs, bare_fwd),
            ("JSON verify", json_runs, bare_json),
        ] {
            ratio_row(
                out,
                &format!(
                    "{label}, pinned (server on core 0, wrk on core 1), req/s: keyward vs the bare app"
                ),
                ours,
                theirs,
                rps,
                "≥ 0.95",
            );
            ratio_row(
                out,
                &format!(
                    "{label}, pinned, requests per CPU-second of the server: keyward vs the bare app"
                ),
                ours,
                theirs,
                per_cpu_second,
                "≥ 0.95",
            );
        }
    }
    rate_limit_rows(out, &limit_cost, unfeatured.is_some(), pin);
    let accepted_non2xx: u64 = [
        fwd_runs,
        json_runs,
        busy_runs,
        &limit_cost[1].0,
        &limit_cost[2].0,
    ]
    .iter()
    .flat_map(|r| r.iter())
    .map(|w| w.non2xx)
    .sum();
    writeln!(
        out,
        "| keyward, accepted keys: non-2xx responses | {accepted_non2xx} | 0 |"
    )
    .unwrap();
    eprintln!("throughput done");
}

/// What rate limits cost on forward-auth: (a) this build vs one without the feature, no
/// limits configured; (b) every key limited vs none, this build; (c) the same with the
/// limits and `lastUsedAt` shared through a real Redis. `limit_cost[i]` holds the
/// other server's runs, then this build's on the plain files.
fn rate_limit_rows(
    out: &mut String,
    limit_cost: &[(Vec<Wrk>, Vec<Wrk>); 3],
    featured: bool,
    pin: bool,
) {
    let placed = if pin { "pinned" } else { "shared cores" };
    let rps = |w: &Wrk| w.rps;
    let [(unfeatured, plain), (limited, plain_b), (on_redis, plain_c)] = limit_cost;
    if featured {
        ratio_row(
            out,
            &format!(
                "forward-auth ({placed}), req/s, no limits configured: this build vs one built without `rate-limits`"
            ),
            plain,
            unfeatured,
            rps,
            "≥ 0.98",
        );
    } else {
        writeln!(
            out,
            "| forward-auth vs a build without `rate-limits` | not run (NO_RATE_LIMITS_BIN unset; bench/run.sh sets it) | ≥ 0.98 |"
        )
        .unwrap();
    }
    ratio_row(
        out,
        &format!("forward-auth ({placed}), req/s: every key limited (never refused) vs no limits"),
        limited,
        plain_b,
        rps,
        "≥ 0.85",
    );
    if on_redis.is_empty() {
        writeln!(
            out,
            "| forward-auth, every key limited, on Redis | not run (no `redis-server`) | ≥ 0.7 |"
        )
        .unwrap();
    } else {
        ratio_row(
            out,
            &format!(
                "forward-auth ({placed}), req/s: every key limited, limits and lastUsedAt shared through a real Redis, vs no limits"
            ),
            on_redis,
            plain_c,
            rps,
            "≥ 0.7",
        );
    }
}

/// A real `redis-server` on a free loopback port, keeping nothing on disk; stopped by its
/// PID when dropped. None where it is not installed.
struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    fn start() -> Option<Self> {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .ok()?;
        let redis = Self {
            child,
            port,
            _dir: dir,
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server never listened"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(redis)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One row: the mean of `f` over `ours` and `theirs`, and the ratio of each round's pair
/// (run one after the other). The headline ratio is the median round's: on a shared
/// machine one round in five can be hit by something else entirely (p99 ratios of 7× and
/// 0.2× in one run), and the mean of ratios would be that round's.
fn ratio_row(
    out: &mut String,
    label: &str,
    ours: &[Wrk],
    theirs: &[Wrk],
    f: fn(&Wrk) -> f64,
    goal: &str,
) {
    let mean = |v: &[Wrk]| v.iter().map(f).sum::<f64>() / v.len() as f64;
    let ratios: Vec<f64> = ours.iter().zip(theirs).map(|(a, b)| f(a) / f(b)).collect();
    let mut sorted = ratios.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let rounds: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    let (a, b) = (mean(ours), mean(theirs));
    let digits = if a < 100.0 { 2 } else { 0 };
    writeln!(
        out,
        "| {label} | {a:.digits$} vs {b:.digits$}: median ratio **{median:.2}** (rounds {}) | {goal} |",
        rounds.join(", ")
    )
    .unwrap();
}

/// Runs `measure` while another thread replaces `file` by rename 10 times a second (as an
/// editor or git would), alternating two versions that both hold every key. Returns the
/// result and how many rewrites were made.
fn while_rewriting<T>(file: &Path, text: &str, measure: impl FnOnce() -> T) -> (T, u64) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, file, text) = (stop.clone(), file.to_owned(), text.to_owned());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let tmp = file.with_file_name(".security.yml.tmp");
                std::fs::write(&tmp, format!("{text}# rewrite {n}\n")).unwrap();
                std::fs::rename(&tmp, &file).unwrap();
                n += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            n
        })
    };
    let result = measure();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    (result, writer.join().unwrap())
}

/// The server's count of reloads of `tenant`, from `/metrics`.
fn reloads(server: &Server, tenant: &str) -> u64 {
    let text = reqwest::blocking::get(server.url("/metrics"))
        .and_then(|r| r.text())
        .unwrap_or_default();
    keyward::metrics::tenant_total(&text, "keyward_reloads_total", tenant)
}

// ---------- 3: scale ----------

fn scale(bin: &str, quick: bool, out: &mut String) {
    let (tenants, per) = if quick { (1_000, 100) } else { (10_000, 100) };
    let dir = tempfile::tempdir().unwrap();
    eprintln!("generating {} keys in {tenants} tenants...", tenants * per);
    for t in 0..tenants {
        write_tenant(dir.path(), &format!("tenant-{t:05}"), &file_text(per, &[]));
    }
    // Cold: state_dir (`state/` in the server's directory) is empty, every file is parsed
    // and its last-good snapshot written (after /readyz). Warm: after a SIGTERM, the same
    // files again, unchanged, so each tenant's snapshot is decoded instead.
    let keys = tenants * per;
    for (kind, goal) in [("cold", "< 3 s"), ("warm", "< 1 s")] {
        let (server, ready) = start(bin, dir.path());
        let (rss, cpu) = (server.rss_mb(), server.cpu_seconds());
        server.stop();
        writeln!(
            out,
            "| {kind} start-up to /readyz, {keys} keys in {tenants} tenants (CPU time) | {:.2} s ({cpu:.2} s) | {goal} |",
            ready.as_secs_f64()
        )
        .unwrap();
        writeln!(
            out,
            "| resident memory at /readyz, {kind} start | {rss:.0} MB | < 300 MB |"
        )
        .unwrap();
    }
    eprintln!("scale done");
}

// ---------- 4: reload latency ----------

fn reload_latency(bin: &str, quick: bool, out: &mut String) {
    let dir = tempfile::tempdir().unwrap();
    let base = file_text(1000, &[]);
    write_tenant(dir.path(), "ops", &base);
    let (server, _) = start(bin, dir.path());
    let client = reqwest::blocking::Client::new();
    let path = dir.path().join("tenants/ops/security.yml");
    let edits = if quick { 20 } else { 100 };
    let mut lat = Vec::new();
    for i in 0..edits {
        let token = Token::generate(&prefix()).expose().to_owned();
        let text = format!(
            "{base}  - name: probe-{i}\n    hash: {}\n",
            KeyHash::of(token.as_bytes())
        );
        let t0 = Instant::now();
        if i % 2 == 0 {
            std::fs::write(&path, &text).unwrap();
        } else {
            let tmp = path.with_file_name(".security.yml.swp");
            std::fs::File::create(&tmp)
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        }
        loop {
            let v: serde_json::Value = client
                .post(server.url("/api/ops/apiKeys/verify"))
                .json(&json!({"key": token}))
                .send()
                .unwrap()
                .json()
                .unwrap();
            if v["valid"] == true {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "edit {i} never took effect"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        lat.push(t0.elapsed());
        std::thread::sleep(Duration::from_millis(150));
    }
    lat.sort();
    writeln!(
        out,
        "| reload latency, {edits} edits of a 1,000-key file (in place / rename): p50 / p99 | {} / {} | p99 < 500 ms |",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99))
    )
    .unwrap();
    eprintln!("reload latency done");
}

/// The CPU cost of re-reading one 10,000-key file (parse + index build), in process.
fn reload_cost(out: &mut String) {
    let dir = tempfile::tempdir().unwrap();
    write_tenant(dir.path(), "big", &file_text(10_000, &[]));
    let store = keyward::store::Store::new(dir.path().join("tenants"), false);
    let tenant = keyward::domain::TenantId::parse("big").unwrap();
    let mut times = Vec::new();
    for i in 0..10 {
        // A different byte each time, so the unchanged-content shortcut does not apply.
        let path = dir.path().join("tenants/big/security.yml");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(&format!("# {i}\n"));
        std::fs::write(&path, text).unwrap();
        let t0 = Instant::now();
        let keyward::store::Loaded::Valid(version) = store.load(&tenant).unwrap() else {
            panic!("the file did not load");
        };
        keyward::index::TenantKeys::build(&version.file, None, &Default::default());
        times.push(t0.elapsed());
    }
    times.sort();
    writeln!(
        out,
        "| reload of one 10,000-key file (parse + index swap), median | {} | — |",
        ms(percentile(&times, 0.5))
    )
    .unwrap();
}

// ---------- 5: admin writes ----------

fn admin_token() -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    encode(
        &Header::default(),
        &json!({"sub": "bench", "exp": now + 3600, "scope": "tenant.apiKey:write", "tenant_id": "*"}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn admin_writes(bin: &str, quick: bool, out: &mut String) {
    let dir = tempfile::tempdir().unwrap();
    write_tenant(dir.path(), "small", &file_text(10, &[]));
    write_tenant(dir.path(), "large", &file_text(10_000, &[]));
    // Many other tenants, to show the cost does not grow with the whole index.
    for t in 0..if quick { 100 } else { 1000 } {
        write_tenant(dir.path(), &format!("other-{t}"), &file_text(100, &[]));
    }
    let (server, _) = start(bin, dir.path());
    let client = reqwest::blocking::Client::new();
    let jwt = admin_token();
    let n = if quick { 30 } else { 200 };
    for tenant in ["small", "large"] {
        let mut lat = Vec::new();
        for i in 0..n {
            let t0 = Instant::now();
            let res = client
                .post(server.url(&format!("/api/{tenant}/admin/apiKeys")))
                .bearer_auth(&jwt)
                .json(&json!({"name": format!("seq-{i}")}))
                .send()
                .unwrap();
            assert_eq!(res.status(), 201);
            lat.push(t0.elapsed());
        }
        lat.sort();
        let (keys, goal) = if tenant == "small" {
            ("10", "—")
        } else {
            ("10,000", "p50 < 50 ms")
        };
        writeln!(
            out,
            "| create-key latency, tenant with {keys} keys: p50 / p99 | {} / {} | {} |",
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99)),
            goal
        )
        .unwrap();
    }
    // Sustained creates with 16 concurrent clients.
    let secs = if quick { 2 } else { 5 };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let created = rt.block_on(async {
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        let tasks: Vec<_> = (0..16)
            .map(|c| {
                let client = client.clone();
                let url = server.url("/api/small/admin/apiKeys");
                let jwt = jwt.clone();
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while tokio::time::Instant::now() < deadline {
                        let res = client
                            .post(&url)
                            .bearer_auth(&jwt)
                            .json(&json!({"name": format!("c{c}-{n}")}))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(res.status(), 201);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total
    });
    writeln!(
        out,
        "| sustained creates, 16 concurrent clients, one tenant | {:.0} creates/s | — |",
        created as f64 / secs as f64
    )
    .unwrap();
    eprintln!("admin writes done");
}

/// Memory under mixed load with nobody scraping `/metrics`: forward-auth load (half of it
/// refused keys), admin creates and deletes, and ops rename-saving another tenant's file,
/// all at once for `--minutes N` (default 3). RSS is sampled every 10 s; after warm-up it
/// must stay flat.
fn soak(bin: &str, out: &mut String) {
    let minutes: u64 = std::env::args()
        .skip_while(|a| a != "--minutes")
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let token = Token::generate(&prefix()).expose().to_owned();
    write_tenant(
        dir.path(),
        "bench",
        &file_text(999, &[("gateway".into(), token.clone())]),
    );
    write_tenant(dir.path(), "admin", &file_text(100, &[]));
    write_tenant(dir.path(), "ops", &file_text(100, &[]));
    let (server, _) = start(bin, dir.path());
    let total = Duration::from_secs(minutes * 60);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    // Two wrk runs side by side: valid keys, and a flood of refused ones.
    let load = |key: String| {
        let url = server.url("/auth/bench?permission=orders:read");
        let secs = total.as_secs() as u32;
        std::thread::spawn(move || wrk(&url, secs, Some(&format!("X-API-Key: {key}")), None))
    };
    let valid = load(token.clone());
    let refused = load(Token::generate(&prefix()).expose().to_owned());

    let writer = {
        let (stop, url, jwt) = (
            stop.clone(),
            server.url("/api/admin/admin/apiKeys"),
            admin_token(),
        );
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            let (mut ok, mut failed) = (0u64, 0u64);
            for i in 0.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let name = format!("soak-{}", i % 50);
                let created = client
                    .post(&url)
                    .bearer_auth(&jwt)
                    .json(&json!({"name": name}))
                    .send();
                let deleted = client
                    .delete(format!("{url}/{name}"))
                    .bearer_auth(&jwt)
                    .send();
                for r in [created, deleted] {
                    match r {
                        Ok(r) if r.status().is_success() => ok += 1,
                        _ => failed += 1,
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (ok, failed)
        })
    };
    let editor = {
        let (stop, root) = (stop.clone(), dir.path().join("tenants/ops"));
        std::thread::spawn(move || {
            let mut saves = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // An editor's save: write a temp file, rename it over the original.
                let text = file_text(100, &[]);
                std::fs::write(root.join(".security.yml.swp"), text).unwrap();
                std::fs::rename(root.join(".security.yml.swp"), root.join("security.yml")).unwrap();
                saves += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            saves
        })
    };

    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < total {
        samples.push((started.elapsed().as_secs(), server.rss_mb()));
        std::thread::sleep(Duration::from_secs(10));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (valid, refused) = (valid.join().unwrap(), refused.join().unwrap());
    let (writes_ok, writes_failed) = writer.join().unwrap();
    let saves = editor.join().unwrap();
    let metrics = reqwest::blocking::get(server.url("/metrics"))
        .and_then(|r| r.text())
        .unwrap_or_default();
    let counted = |code: &str| -> String {
        let prefix = format!("keyward_verify_total{{code=\"{code}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or("0")
            .to_owned()
    };
    let rss: Vec<String> = samples
        .iter()
        .map(|(t, mb)| format!("{t}s {mb:.0}"))
        .collect();
    // Warm-up: the first minute. Growth after it, per minute.
    let after: Vec<&(u64, f64)> = samples.iter().filter(|(t, _)| *t >= 60).collect();
    let growth = match (after.first(), after.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) / ((b.0 - a.0) as f64 / 60.0),
        _ => 0.0,
    };
    writeln!(
        out,
        "| soak, {minutes} min, nobody scraping: RSS MB over time | {} | flat after warm-up |",
        rss.join(", ")
    )
    .unwrap();
    writeln!(
        out,
        "| soak: RSS growth after the first minute | {growth:+.2} MB/min | ≈ 0 |"
    )
    .unwrap();
    writeln!(
        out,
        "| soak: forward-auth req/s valid / refused (non-2xx of the valid run) | {:.0} / {:.0} ({}) | 0 errors |",
        valid.rps, refused.rps, valid.non2xx
    )
    .unwrap();
    writeln!(
        out,
        "| soak: admin writes ok / failed; ops saves | {writes_ok} / {writes_failed}; {saves} | 0 failed |"
    )
    .unwrap();
    writeln!(
        out,
        "| soak: verifications counted valid / not_found | {} / {} | — |",
        counted("valid"),
        counted("not_found")
    )
    .unwrap();
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "git {args:?}");
}

/// Git mode against a local bare remote: create latency with `sync` and `async` pushes
/// beside the same create without git mode; how fast a key created on one replica is
/// valid on another; and the writes per second one replica sustains.
fn git_mode(bin: &str, quick: bool, out: &mut String) {
    let n = if quick { 30 } else { 100 };
    let world = tempfile::tempdir().unwrap();
    let root = world.path();
    git(
        root,
        &["init", "--quiet", "--bare", "-b", "main", "origin.git"],
    );
    git(root, &["clone", "--quiet", "origin.git", "seed"]);
    let seed = root.join("seed");
    write_tenant(&seed, "bench", &file_text(100, &[]));
    for args in [
        &[
            "-c",
            "user.email=bench@example.com",
            "-c",
            "user.name=bench",
            "add",
            ".",
        ][..],
        &[
            "-c",
            "user.email=bench@example.com",
            "-c",
            "user.name=bench",
            "commit",
            "--quiet",
            "-m",
            "seed",
        ],
        &["push", "--quiet", "origin", "main"],
    ] {
        git(&seed, args);
    }
    let replica = |name: &str, push: &str, pull: u64| {
        git(root, &["clone", "--quiet", "origin.git", name]);
        let env = vec![
            ("KEYWARD_GIT__ENABLED", "true".to_owned()),
            ("KEYWARD_GIT__PUSH", push.to_owned()),
            ("KEYWARD_GIT__PULL_INTERVAL_SECONDS", pull.to_string()),
            (
                "KEYWARD_STATE_DIR",
                root.join(format!("state-{name}")).display().to_string(),
            ),
        ];
        start_with(bin, &root.join(name), &env).0
    };
    let plain_dir = tempfile::tempdir().unwrap();
    write_tenant(plain_dir.path(), "bench", &file_text(100, &[]));
    let (plain, _) = start(bin, plain_dir.path());
    let sync = replica("sync", "sync", 10);
    let asynchronous = replica("async", "async", 10);
    let client = reqwest::blocking::Client::new();
    let jwt = admin_token();
    let create = |server: &Server, name: &str| -> (Duration, u16) {
        let t0 = Instant::now();
        let status = client
            .post(server.url("/api/bench/admin/apiKeys"))
            .bearer_auth(&jwt)
            .json(&json!({"name": name}))
            .send()
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        (t0.elapsed(), status)
    };
    // Alternating, so the three see the same machine.
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    let mut failed = 0;
    for i in 0..n {
        for (k, server) in [&plain, &sync, &asynchronous].into_iter().enumerate() {
            let (t, status) = create(server, &format!("lat-{k}-{i}"));
            if status != 201 {
                failed += 1;
            }
            times[k].push(t);
        }
    }
    for t in &mut times {
        t.sort();
    }
    for (label, t) in [
        "no git mode",
        "git mode, push: sync",
        "git mode, push: async",
    ]
    .iter()
    .zip(&times)
    {
        writeln!(
            out,
            "| create latency, 100-key tenant, {label}: p50 / p99 | {} / {} | — |",
            ms(percentile(t, 0.5)),
            ms(percentile(t, 0.99))
        )
        .unwrap();
    }
    writeln!(out, "| git-mode creates not answered 201 | {failed} | 0 |").unwrap();
    drop(asynchronous);

    // Convergence: created on one replica, valid on the other.
    let other = replica("other", "sync", 1);
    let mut converge = Vec::new();
    for i in 0..n {
        let res = client
            .post(sync.url("/api/bench/admin/apiKeys"))
            .bearer_auth(&jwt)
            .json(&json!({"name": format!("conv-{i}")}))
            .send()
            .unwrap();
        let token = res.json::<serde_json::Value>().unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let t0 = Instant::now();
        loop {
            let valid = client
                .post(other.url("/api/bench/apiKeys/verify"))
                .json(&json!({"key": token}))
                .send()
                .and_then(|r| r.json::<serde_json::Value>())
                .is_ok_and(|v| v["valid"] == true);
            if valid || t0.elapsed() > Duration::from_secs(30) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        converge.push(t0.elapsed());
    }
    converge.sort();
    writeln!(
        out,
        "| convergence, create on replica A to valid on B (pull every 1 s), p50 / p99 over {n} keys | {} / {} | < 2,000 ms (interval + 1 s) |",
        ms(percentile(&converge, 0.5)),
        ms(percentile(&converge, 0.99))
    )
    .unwrap();
    drop(other);

    // Throughput: 8 clients creating for a few seconds on the sync replica.
    let secs = if quick { 3 } else { 10 };
    let deadline = Instant::now() + Duration::from_secs(secs);
    let done = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for w in 0..8 {
            let (done, jwt, url) = (&done, &jwt, sync.url("/api/bench/admin/apiKeys"));
            s.spawn(move || {
                let client = reqwest::blocking::Client::new();
                let mut i = 0;
                while Instant::now() < deadline {
                    let ok = client
                        .post(&url)
                        .bearer_auth(jwt)
                        .json(&json!({"name": format!("tp-{w}-{i}")}))
                        .send()
                        .is_ok_and(|r| r.status() == 201);
                    if ok {
                        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    i += 1;
                }
            });
        }
    });
    let rate = done.load(std::sync::atomic::Ordering::Relaxed) as f64 / secs as f64;
    writeln!(
        out,
        "| writes per second, one replica, git mode sync, 8 clients | {rate:.0} | — |"
    )
    .unwrap();
}
