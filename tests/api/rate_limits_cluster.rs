//! Rate limits held across replicas: three real keyward processes sharing one real
//! `redis-server` (`usage.redis_url`, `usage.replicas: 3`), hammered through all three. With
//! Redis up the cluster admits at most the limit per window; with Redis killed each replica
//! admits at most its share; with Redis back the shared ledger takes over again. A key
//! without a limit never touches Redis, and verifies with Redis gone.
//!
//! Counts are per fixed window of the limit (aligned to the Unix epoch, as keyward's are),
//! from the client's clock: clients send nothing within `QUIET` of a window's edge, so an
//! answer is sent and received within one window, certainly in it. One that straddles an
//! edge all the same (an answer slower than `QUIET`) may be in either, and is counted in
//! both for an upper bound. Nothing here asserts on how long anything took.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::*;

/// Imported keys (no `kw_` prefix): hashed and looked up like any token.
const LIMITED: &str = "cluster-test-key-limited-to-sixty-per-five-seconds";
const OPEN: &str = "cluster-test-key-without-a-limit";

const LIMIT: usize = 60;
const PER_SECONDS: u64 = 5;
const REPLICAS: usize = 3;
/// This replica's share while Redis is down.
const SHARE: usize = LIMIT / REPLICAS;
/// keyward's lease for this limit and replica count (a tenth of the limit over the
/// replicas, at least 1): what the replicas may hold unused at a window's end.
const LEASE: usize = 2;
const CLIENTS_PER_REPLICA: usize = 3;
/// Between two requests of one client: about 1,000 requests a second in all, at most.
const PAUSE: Duration = Duration::from_millis(8);
const DEADLINE: Duration = Duration::from_secs(20);
/// No request is sent this close to a window's edge.
const QUIET: f64 = 0.25;

fn sha256_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn acme_file() -> String {
    format!(
        "apiKeys:\n  - name: limited\n    hash: sha256:{}\n    rateLimit: {{requests: {LIMIT}, perSeconds: {PER_SECONDS}}}\n  - name: open\n    hash: sha256:{}\n",
        sha256_hex(LIMITED),
        sha256_hex(OPEN)
    )
}

/// A replica in a directory of its own, holding the same keys as every other.
fn replica(redis_url: &str) -> (tempfile::TempDir, Server) {
    let dir = tenants_with(&[("acme", &acme_file())]);
    let server = serve_process_with(
        dir.path(),
        &[
            ("KEYWARD_USAGE__REDIS_URL", redis_url.to_owned()),
            ("KEYWARD_USAGE__REPLICAS", REPLICAS.to_string()),
        ],
    );
    (dir, server)
}

async fn usage_status(server: &Server) -> Value {
    let res = reqwest::Client::new()
        .get(server.url("/api/acme/admin/status"))
        .bearer_auth(token("acme", READ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["usage"].clone()
}

async fn eventually_rate_limits(server: &Server, mode: &str) -> Value {
    eventually(
        &format!("usage.rateLimits = {mode}"),
        DEADLINE,
        || usage_status(server),
        |u| u["rateLimits"] == mode,
    )
    .await
}

/// Verifications admitted by replicas deciding alone, summed over `servers`.
async fn admitted_alone(servers: &[&Server]) -> f64 {
    let mut total = 0.0;
    for server in servers {
        total += sample(
            &server.metrics().await,
            "keyward_rate_limit_admitted_alone_total",
        )
        .unwrap_or(0.0);
    }
    total
}

/// How many times Redis has run `command` since it started.
fn redis_calls(redis: &RedisServer, command: &str) -> u64 {
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut conn)
        .unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

fn redis_keys(redis: &RedisServer, pattern: &str) -> Vec<String> {
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("KEYS").arg(pattern).query(&mut conn).unwrap()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn window_of(t: f64) -> u64 {
    (t / PER_SECONDS as f64) as u64
}

/// Sleeps until the next window starts; that window.
async fn next_window() -> u64 {
    let next = window_of(unix_now()) + 1;
    let wait = (next * PER_SECONDS) as f64 - unix_now();
    tokio::time::sleep(Duration::from_secs_f64(wait.max(0.0))).await;
    next
}

#[derive(Debug, Clone, Copy)]
struct Hit {
    replica: usize,
    sent: f64,
    received: f64,
    allowed: bool,
}

/// Admissions in `window` (of `replica`, or all): those certainly in it, and those that
/// may be (adding the ones that straddle its edges).
fn admitted(hits: &[Hit], window: u64, replica: Option<usize>) -> (usize, usize) {
    let ours = hits
        .iter()
        .filter(|h| h.allowed && replica.is_none_or(|r| h.replica == r));
    let certain = ours
        .clone()
        .filter(|h| window_of(h.sent) == window && window_of(h.received) == window)
        .count();
    let possible = ours
        .filter(|h| window_of(h.sent) <= window && window_of(h.received) >= window)
        .count();
    (certain, possible)
}

/// `CLIENTS_PER_REPLICA` clients per server verifying `key` through `/auth/acme` until the
/// end of window `last`; every answer is 204 or 429.
async fn hammer(servers: &[&Server], key: &str, last: u64) -> Vec<Hit> {
    let until = ((last + 1) * PER_SECONDS) as f64;
    let mut clients = Vec::new();
    for (replica, server) in servers.iter().enumerate() {
        for _ in 0..CLIENTS_PER_REPLICA {
            let (url, key) = (server.url("/auth/acme"), key.to_owned());
            clients.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut hits = Vec::new();
                loop {
                    let sent = unix_now();
                    if sent >= until - QUIET {
                        return hits;
                    }
                    let into = sent.rem_euclid(PER_SECONDS as f64);
                    let quiet_for = if into < QUIET {
                        QUIET - into
                    } else if into > PER_SECONDS as f64 - QUIET {
                        PER_SECONDS as f64 - into + QUIET
                    } else {
                        0.0
                    };
                    if quiet_for > 0.0 {
                        tokio::time::sleep(Duration::from_secs_f64(quiet_for)).await;
                        continue;
                    }
                    let res = client
                        .get(&url)
                        .header("x-api-key", &key)
                        .send()
                        .await
                        .unwrap();
                    let received = unix_now();
                    let status = res.status().as_u16();
                    assert!(status == 204 || status == 429, "{status}");
                    hits.push(Hit {
                        replica,
                        sent,
                        received,
                        allowed: status == 204,
                    });
                    tokio::time::sleep(PAUSE).await;
                }
            }));
        }
    }
    let mut hits = Vec::new();
    for client in clients {
        hits.extend(client.await.unwrap());
    }
    hits
}

fn rate(hits: &[Hit]) -> f64 {
    let first = hits.iter().map(|h| h.sent).fold(f64::MAX, f64::min);
    let last = hits.iter().map(|h| h.received).fold(0.0, f64::max);
    hits.len() as f64 / (last - first)
}

#[tokio::test]
async fn a_limit_holds_across_three_replicas_and_each_takes_its_share_while_redis_is_down() {
    if !redis_available() {
        return;
    }
    let mut redis = RedisServer::start();
    let (_dirs, mut servers): (Vec<_>, Vec<_>) =
        (0..REPLICAS).map(|_| replica(&redis.url())).unzip();
    for server in &servers {
        let usage = eventually_rate_limits(server, "shared").await;
        assert_eq!(usage["replicas"], REPLICAS);
    }
    let all: Vec<&Server> = servers.iter().collect();

    // Shared: two whole windows through all three replicas.
    let alone_before = admitted_alone(&all).await;
    let first = next_window().await;
    let hits = hammer(&all, LIMITED, first + 1).await;
    let alone = (admitted_alone(&all).await - alone_before) as usize;
    println!(
        "shared: {} requests at {:.0}/s through {REPLICAS} replicas; admitted alone (Redis slow): {alone}",
        hits.len(),
        rate(&hits)
    );
    for window in [first, first + 1] {
        let (certain, possible) = admitted(&hits, window, None);
        let each: Vec<_> = (0..REPLICAS)
            .map(|r| admitted(&hits, window, Some(r)).1)
            .collect();
        println!(
            "  window {window}: {certain} admitted ({possible} at most), by replica {each:?}; limit {LIMIT}"
        );
        assert!(
            possible <= LIMIT + alone,
            "window {window}: {possible} admitted, limit {LIMIT}"
        );
        assert!(
            possible >= LIMIT - REPLICAS * (LEASE - 1),
            "window {window}: only {possible} admitted of {LIMIT}"
        );
    }
    let entries = redis_keys(&redis, "keyward:rate:*");
    assert!(
        entries
            .iter()
            .all(|e| e.starts_with(&format!("keyward:rate:acme/limited:{LIMIT}/{PER_SECONDS}:"))),
        "{entries:?}"
    );

    // Redis down: each replica its share, and says so.
    redis.kill();
    for server in &mut servers {
        let usage = eventually_rate_limits(server, "perReplica").await;
        assert_eq!(usage["connected"], false);
        let text = eventually(
            "the metric says limits are per replica",
            DEADLINE,
            || server.metrics(),
            |t| sample(t, "keyward_rate_limit_per_replica") == Some(1.0),
        )
        .await;
        assert_eq!(sample(&text, "keyward_usage_store_up"), Some(0.0));
        let warning = server.wait_for("cannot reach Redis");
        assert_eq!(warning["level"], "WARN");
        assert!(
            warning["message"]
                .as_str()
                .unwrap()
                .contains("divided by usage.replicas"),
            "{warning}"
        );
    }
    let all: Vec<&Server> = servers.iter().collect();
    let window = next_window().await;
    let hits = hammer(&all, LIMITED, window).await;
    println!(
        "Redis down: {} requests at {:.0}/s",
        hits.len(),
        rate(&hits)
    );
    for replica in 0..REPLICAS {
        let (certain, possible) = admitted(&hits, window, Some(replica));
        println!(
            "  replica {replica}, window {window}: {certain} admitted ({possible} at most); share {SHARE}"
        );
        assert!(possible <= SHARE, "replica {replica}: {possible} > {SHARE}");
        assert!(
            possible >= SHARE,
            "replica {replica}: only {possible} of {SHARE}"
        );
    }

    // Redis back: the shared ledger again, so one replica alone may take the whole limit.
    redis.restart();
    for server in &servers {
        eventually_rate_limits(server, "shared").await;
        let text = eventually(
            "the metric says limits are shared",
            DEADLINE,
            || server.metrics(),
            |t| sample(t, "keyward_rate_limit_per_replica") == Some(0.0),
        )
        .await;
        assert_eq!(sample(&text, "keyward_usage_store_up"), Some(1.0));
    }
    let alone_before = admitted_alone(&all).await;
    let window = next_window().await;
    let hits = hammer(&all[..1], LIMITED, window).await;
    let alone = (admitted_alone(&all).await - alone_before) as usize;
    let (certain, possible) = admitted(&hits, window, None);
    println!(
        "Redis back, one replica: {certain} admitted ({possible} at most) in window {window}; admitted alone: {alone}"
    );
    assert!(possible > SHARE, "the ledger is shared again: {possible}");
    assert!(possible <= LIMIT + alone, "{possible} > {LIMIT}");
    assert!(!redis_keys(&redis, "keyward:rate:*").is_empty());
    for server in &mut servers {
        server.wait_for("Redis is reachable again");
        let lines = |needle: &str| server.log.iter().filter(|l| l.contains(needle)).count();
        assert_eq!(lines("cannot reach Redis"), 1, "{:#?}", server.log);
    }
}

#[tokio::test]
async fn a_key_without_a_limit_never_touches_redis_and_verifies_with_redis_stopped() {
    if !redis_available() {
        return;
    }
    let mut redis = RedisServer::start();
    let (_dir, server) = replica(&redis.url());
    eventually_rate_limits(&server, "shared").await;
    let client = reqwest::Client::new();
    let verify = |key: &'static str| {
        client
            .get(server.url("/auth/acme"))
            .header("x-api-key", key)
            .send()
    };

    let before = redis_calls(&redis, "incrby");
    for _ in 0..20 {
        let res = verify(OPEN).await.unwrap();
        assert_eq!(res.status(), 204);
        assert!(res.headers().get("ratelimit").is_none());
    }
    assert_eq!(redis_calls(&redis, "incrby"), before, "the open key");
    // The count does see a limited key's lease being taken.
    assert_eq!(verify(LIMITED).await.unwrap().status(), 204);
    assert!(redis_calls(&redis, "incrby") > before, "the limited key");

    redis.kill();
    eventually_rate_limits(&server, "perReplica").await;
    for _ in 0..20 {
        assert_eq!(verify(OPEN).await.unwrap().status(), 204);
    }
}
