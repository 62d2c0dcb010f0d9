//! Git mode at fleet scale (`bench/run.sh fleet`): replicas on their own clones of one
//! local bare remote, writing at once; a remote that hangs; history at scale.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Server, admin_token, file_text, git, ms, percentile, start_with, write_tenant};

/// A bare remote with `tenants` tenants of `keys` keys each, and a directory to clone in.
struct Remote {
    dir: tempfile::TempDir,
}

impl Remote {
    fn new(tenants: usize, keys: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git(
            root,
            &["init", "--quiet", "--bare", "-b", "main", "origin.git"],
        );
        git(root, &["clone", "--quiet", "origin.git", "seed"]);
        let seed = root.join("seed");
        for t in 0..tenants {
            write_tenant(&seed, &format!("t{t}"), &file_text(keys, &[]));
        }
        ops_commit(&seed, "seed");
        Self { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A keyward replica on a clone of its own.
    fn replica(&self, bin: &str, name: &str, push: &str, extra: &[(&str, String)]) -> Server {
        let root = self.root();
        git(root, &["clone", "--quiet", "origin.git", name]);
        let mut env = vec![
            ("KEYWARD_GIT__ENABLED", "true".to_owned()),
            ("KEYWARD_GIT__PUSH", push.to_owned()),
            ("KEYWARD_GIT__PULL_INTERVAL_SECONDS", "1".to_owned()),
            (
                "KEYWARD_STATE_DIR",
                root.join(format!("state-{name}")).display().to_string(),
            ),
        ];
        env.extend(extra.iter().cloned());
        start_with(bin, &root.join(name), &env).0
    }

    /// A `pre-receive` hook that holds every push `seconds`.
    fn slow(&self, seconds: f64) {
        let hook = self.root().join("origin.git/hooks/pre-receive");
        std::fs::write(&hook, format!("#!/bin/sh\nsleep {seconds}\n")).unwrap();
        let ok = Command::new("chmod").arg("+x").arg(&hook).status().unwrap();
        assert!(ok.success());
    }

    fn fast(&self) {
        let _ = std::fs::remove_file(self.root().join("origin.git/hooks/pre-receive"));
    }
}

fn ops_commit(repo: &Path, message: &str) {
    let who = ["-c", "user.email=ops@example.com", "-c", "user.name=ops"];
    git(repo, &[&who[..], &["add", "."]].concat());
    git(
        repo,
        &[&who[..], &["commit", "--quiet", "-m", message]].concat(),
    );
    git(repo, &["push", "--quiet", "origin", "main"]);
}

/// What one writer saw.
#[derive(Default)]
struct Tally {
    ok: usize,
    refused: Vec<u16>,
    latencies: Vec<Duration>,
}

/// A writer's steady mix on its own keys of its tenant: create 35%, update 25%, rotate
/// 20%, delete 20%. Every answer but 2xx is a refusal: no other writer touches its keys.
fn mix_writer(url: &str, tenant: &str, me: &str, until: Instant) -> Tally {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let jwt = admin_token();
    let mut tally = Tally::default();
    let mut live: Vec<String> = Vec::new();
    let mut next = 0u64;
    let base = format!("{url}/api/{tenant}/admin/apiKeys");
    while Instant::now() < until {
        let roll = rand::random_range(0..100);
        let t0 = Instant::now();
        let res = if live.is_empty() || roll < 35 {
            next += 1;
            let name = format!("{me}-{next}");
            let r = client
                .post(&base)
                .bearer_auth(&jwt)
                .json(&json!({"name": name}))
                .send();
            if r.as_ref().is_ok_and(|r| r.status() == 201) {
                live.push(name);
            }
            r
        } else {
            let i = rand::random_range(0..live.len());
            let key = format!("{base}/{}", live[i]);
            if roll < 60 {
                client
                    .put(&key)
                    .bearer_auth(&jwt)
                    .json(&json!({"enabled": true, "description": format!("d{next}")}))
                    .send()
            } else if roll < 80 {
                client
                    .post(format!("{key}/rotate"))
                    .bearer_auth(&jwt)
                    .send()
            } else {
                let r = client.delete(&key).bearer_auth(&jwt).send();
                if r.as_ref().is_ok_and(|r| r.status() == 204) {
                    live.swap_remove(i);
                }
                r
            }
        };
        let status = res.map(|r| r.status().as_u16()).unwrap_or(0);
        if (200..300).contains(&status) {
            tally.ok += 1;
            tally.latencies.push(t0.elapsed());
        } else {
            tally.refused.push(status);
        }
    }
    tally
}

/// A person's script on their own clone: fetch, edit one tenant's file as text, commit,
/// push; up to 8 tries. True when the edit was pushed.
fn person_edits(clone: &Path, n: usize) -> bool {
    for _ in 0..8 {
        let fetched = Command::new("git")
            .arg("-C")
            .arg(clone)
            .args(["fetch", "--quiet", "origin"])
            .status()
            .is_ok_and(|s| s.success());
        if !fetched {
            continue;
        }
        git(clone, &["reset", "--quiet", "--hard", "origin/main"]);
        let file = clone.join("tenants/t0/security.yml");
        let mut text = std::fs::read_to_string(&file).unwrap();
        text.push_str(&format!("# edited by a person, {n}\n"));
        std::fs::write(&file, text).unwrap();
        let who = [
            "-c",
            "user.email=person@example.com",
            "-c",
            "user.name=person",
        ];
        git(
            clone,
            &[&who[..], &["commit", "--quiet", "-am", "a person's edit"]].concat(),
        );
        let pushed = Command::new("git")
            .arg("-C")
            .arg(clone)
            .args(["push", "--quiet", "origin", "HEAD:main"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if pushed {
            return true;
        }
    }
    false
}

/// One part of the fleet benchmark: (binary, quick, table).
type Part = fn(&str, bool, &mut String);

/// The fleet benchmark's parts, each runnable alone (`bench/run.sh fleet-slow`).
pub const PARTS: [(&str, Part); 4] = [
    ("fleet-one", one_replica_many_writers),
    ("fleet-three", three_replicas),
    ("fleet-slow", slow_remote),
    ("fleet-history", history_at_scale),
];

/// One replica, 32 writers, sync: acknowledged writes per second, five rounds.
fn one_replica_many_writers(bin: &str, quick: bool, out: &mut String) {
    let remote = Remote::new(20, 100);
    let server = remote.replica(bin, "one", "sync", &[]);
    let secs = if quick { 3 } else { 8 };
    let mut rates = Vec::new();
    for round in 0..5 {
        let until = Instant::now() + Duration::from_secs(secs);
        let tallies: Vec<Tally> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..32)
                .map(|w| {
                    let url = server.url("");
                    s.spawn(move || {
                        mix_writer(
                            &url,
                            &format!("t{}", w % 20),
                            &format!("r{round}w{w}"),
                            until,
                        )
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let ok: usize = tallies.iter().map(|t| t.ok).sum();
        let refused: usize = tallies.iter().map(|t| t.refused.len()).sum();
        let rate = ok as f64 / secs as f64;
        eprintln!(
            "fleet: one replica, 32 writers, round {round}: {rate:.0} acknowledged writes/s, {refused} refused"
        );
        rates.push(rate);
    }
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    writeln!(
        out,
        "| git sync, one replica, 32 writers (mix over 20 tenants): acknowledged writes/s, median of 5 rounds (rounds {}) | **{:.0}** | ≥ 200 |",
        rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", "),
        sorted[2]
    )
    .unwrap();
}

/// Three replicas, four writers each, sync, with a person pushing by hand every 5 s.
fn three_replicas(bin: &str, quick: bool, out: &mut String) {
    let remote = Remote::new(20, 100);
    let servers: Vec<Server> = (0..3)
        .map(|r| remote.replica(bin, &format!("r{r}"), "sync", &[]))
        .collect();
    git(remote.root(), &["clone", "--quiet", "origin.git", "person"]);
    let person = remote.root().join("person");
    let secs = if quick { 20 } else { 120 };
    let until = Instant::now() + Duration::from_secs(secs);
    let edits = AtomicUsize::new(0);
    let pushed = AtomicUsize::new(0);
    let per_replica: Vec<Vec<Tally>> = std::thread::scope(|s| {
        let (edits, pushed, person) = (&edits, &pushed, &person);
        s.spawn(move || {
            let mut n = 0;
            while Instant::now() + Duration::from_secs(5) < until {
                std::thread::sleep(Duration::from_secs(5));
                n += 1;
                edits.fetch_add(1, Ordering::Relaxed);
                if person_edits(person, n) {
                    pushed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let handles: Vec<Vec<_>> = servers
            .iter()
            .enumerate()
            .map(|(r, server)| {
                (0..4)
                    .map(|w| {
                        let url = server.url("");
                        s.spawn(move || {
                            let tenant = format!("t{}", (r * 4 + w) % 20);
                            mix_writer(&url, &tenant, &format!("r{r}w{w}"), until)
                        })
                    })
                    .collect()
            })
            .collect();
        handles
            .into_iter()
            .map(|hs| hs.into_iter().map(|h| h.join().unwrap()).collect())
            .collect()
    });
    let oks: Vec<usize> = per_replica
        .iter()
        .map(|ts| ts.iter().map(|t| t.ok).sum())
        .collect();
    let refused: usize = per_replica.iter().flatten().map(|t| t.refused.len()).sum();
    let total: usize = oks.iter().sum::<usize>() + refused;
    let mut latencies: Vec<Duration> = per_replica
        .iter()
        .flatten()
        .flat_map(|t| t.latencies.iter().copied())
        .collect();
    latencies.sort();
    let codes: Vec<u16> = per_replica
        .iter()
        .flatten()
        .flat_map(|t| t.refused.iter().copied())
        .collect();
    eprintln!("fleet: three replicas, refusals by status: {codes:?}");
    let (lo, hi) = (
        *oks.iter().min().unwrap_or(&0),
        *oks.iter().max().unwrap_or(&0),
    );
    writeln!(
        out,
        "| git sync, three replicas by four writers, {secs} s: writes refused while the remote is healthy | **{refused} of {total} ({:.2}%)** | < 1% |",
        100.0 * refused as f64 / total.max(1) as f64
    )
    .unwrap();
    writeln!(
        out,
        "| the same: acknowledged writes per replica (fairness: most / least) | {} (**{:.1}×**) | within 3× |",
        oks.iter().map(ToString::to_string).collect::<Vec<_>>().join(" / "),
        hi as f64 / lo.max(1) as f64
    )
    .unwrap();
    writeln!(
        out,
        "| the same: acknowledged writes/s in all; latency p50 / p99 | {:.0}; {} / **{}** | p99 < 1 s |",
        oks.iter().sum::<usize>() as f64 / secs as f64,
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99))
    )
    .unwrap();
    writeln!(
        out,
        "| the same: a person's fetch-edit-commit-push (8 tries) every 5 s, pushed | **{} of {}** | ≥ 9 of 10 |",
        pushed.load(Ordering::Relaxed),
        edits.load(Ordering::Relaxed)
    )
    .unwrap();
}

/// A remote whose hook holds every push: async writes must not wait for it, and reads
/// must not wait for anything git does.
fn slow_remote(bin: &str, quick: bool, out: &mut String) {
    let remote = Remote::new(20, 100);
    let asynchronous = remote.replica(bin, "async", "async", &[]);
    let sync = remote.replica(
        bin,
        "sync",
        "sync",
        &[("KEYWARD_GIT__PUSH_TIMEOUT_SECONDS", "30".to_owned())],
    );
    remote.slow(if quick { 3.0 } else { 10.0 });
    let secs = if quick { 6 } else { 20 };
    let until = Instant::now() + Duration::from_secs(secs);
    let reads: Mutex<Vec<(String, Duration)>> = Mutex::default();
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        // A sync write that hangs in the hook, again and again.
        let sync_url = sync.url("");
        s.spawn(move || mix_writer(&sync_url, "t19", "hang", until));
        let reads = &reads;
        let (sync_ref, async_ref) = (&sync, &asynchronous);
        s.spawn(move || {
            let client = reqwest::blocking::Client::new();
            let jwt = admin_token();
            while Instant::now() < until {
                for (what, server, path) in [
                    ("status", sync_ref, "/api/t0/admin/status"),
                    ("healthz", sync_ref, "/healthz"),
                    ("readyz", sync_ref, "/readyz"),
                    ("list", sync_ref, "/api/t0/admin/apiKeys"),
                    ("history", sync_ref, "/api/t0/admin/history"),
                    ("status (async)", async_ref, "/api/t0/admin/status"),
                ] {
                    let t0 = Instant::now();
                    let ok = client
                        .get(server.url(path))
                        .bearer_auth(&jwt)
                        .send()
                        .is_ok_and(|r| r.status().is_success());
                    assert!(ok, "{what} failed while the remote hung");
                    reads.lock().unwrap().push((what.to_owned(), t0.elapsed()));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let handles: Vec<_> = (0..4)
            .map(|w| {
                let url = asynchronous.url("");
                s.spawn(move || mix_writer(&url, &format!("t{w}"), &format!("a{w}"), until))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    remote.fast();
    let mut latencies: Vec<Duration> = tallies
        .iter()
        .flat_map(|t| t.latencies.iter().copied())
        .collect();
    latencies.sort();
    let refused: usize = tallies.iter().map(|t| t.refused.len()).sum();
    writeln!(
        out,
        "| git async, every push held {} s by the remote's hook, 4 writers: write latency p50 / p99 / max ({} writes, {refused} refused) | {} / {} / **{}** | max < 1 s |",
        if quick { 3 } else { 10 },
        latencies.len(),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap_or(&Duration::ZERO))
    )
    .unwrap();
    let reads = reads.into_inner().unwrap();
    let mut by_kind: Vec<(String, Duration)> = Vec::new();
    for (what, t) in &reads {
        match by_kind.iter_mut().find(|(w, _)| w == what) {
            Some((_, max)) => *max = (*max).max(*t),
            None => by_kind.push((what.clone(), *t)),
        }
    }
    writeln!(
        out,
        "| the same, a sync write hanging in the hook meanwhile: slowest read of {} (status, healthz, readyz, list, history) | {} | < 100 ms |",
        reads.len(),
        by_kind
            .iter()
            .map(|(w, t)| format!("{w} {}", ms(*t)))
            .collect::<Vec<_>>()
            .join(", ")
    )
    .unwrap();
}

/// History at 1,000 tenants of 1,000 keys and 20,000 commits, built with `git
/// fast-import`: a tenant's history and one key's, each timed over alternating rounds.
fn history_at_scale(bin: &str, quick: bool, out: &mut String) {
    let (tenants, keys, commits) = if quick {
        (100, 100, 2_000)
    } else {
        (1_000, 1_000, 20_000)
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(
        root,
        &["init", "--quiet", "--bare", "-b", "main", "origin.git"],
    );
    let built = Instant::now();
    build_history(&root.join("origin.git"), tenants, keys, commits);
    git(root, &["clone", "--quiet", "origin.git", "replica"]);
    eprintln!(
        "fleet: history repository built and cloned in {:?}",
        built.elapsed()
    );
    let env = vec![
        ("KEYWARD_GIT__ENABLED", "true".to_owned()),
        ("KEYWARD_GIT__PULL_INTERVAL_SECONDS", "3600".to_owned()),
        (
            "KEYWARD_STATE_DIR",
            root.join("state").display().to_string(),
        ),
    ];
    let server = start_with(bin, &root.join("replica"), &env).0;
    // The worker writes the commit-graph with changed-path filters in the background.
    let graph = root.join("replica/.git/objects/info/commit-graph");
    let waited = Instant::now();
    while !graph.exists() && waited.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("fleet: commit-graph ready after {:?}", waited.elapsed());
    let client = reqwest::blocking::Client::new();
    let jwt = admin_token();
    let timed = |path: &str| {
        let t0 = Instant::now();
        let res = client
            .get(server.url(path))
            .bearer_auth(&jwt)
            .send()
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let _: Value = res.json().unwrap();
        t0.elapsed()
    };
    let (mut whole, mut one) = (Vec::new(), Vec::new());
    for round in 0..5 {
        let t = format!("t{}", round * 7 % tenants);
        whole.push(timed(&format!("/api/{t}/admin/history")));
        one.push(timed(&format!("/api/{t}/admin/history?keyName=k-{t}-3")));
        eprintln!(
            "fleet: history round {round}: {:?} / keyName {:?}",
            whole[round], one[round]
        );
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[2]
    };
    writeln!(
        out,
        "| history at {tenants} tenants × {keys} keys, {commits} commits: a tenant's first page / `?keyName=`, median of 5 | **{} / {}** | < 100 / < 150 ms |",
        ms(median(&mut whole)),
        ms(median(&mut one))
    )
    .unwrap();
}

/// `commits` commits into `bare` with one `git fast-import` stream: the first holds every
/// tenant's file; each next one adds a key to one tenant, as keyward's creates do.
fn build_history(bare: &Path, tenants: usize, keys: usize, commits: usize) {
    let mut child = Command::new("git")
        .arg("-C")
        .arg(bare)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = std::io::BufWriter::new(child.stdin.take().unwrap());
    let mut files: Vec<String> = (0..tenants)
        .map(|t| {
            let mut text = String::from("apiKeys:\n");
            for k in 0..keys {
                let _ = write!(
                    text,
                    "  - name: k-t{t}-{k}\n    hash: {}\n",
                    hex_of(t * keys + k)
                );
            }
            text
        })
        .collect();
    let mut time = 1_700_000_000u64;
    // Each commit continues the branch from the one before it in the stream.
    let commit = |w: &mut dyn std::io::Write, subject: &str, author: &str, time: u64| {
        let message = format!("{subject}\n");
        write!(
            w,
            "commit refs/heads/main\nauthor {author} <{author}@example.com> {time} +0000\ncommitter keyward <keyward@localhost> {time} +0000\ndata {}\n{message}",
            message.len()
        )
        .unwrap();
    };
    commit(&mut stdin, "seed", "ops", time);
    for (t, text) in files.iter().enumerate() {
        write!(
            stdin,
            "M 100644 inline tenants/t{t}/security.yml\ndata {}\n{text}\n",
            text.len()
        )
        .unwrap();
    }
    for c in 1..commits {
        time += 1;
        let t = c % tenants;
        let name = format!("n{c}");
        let _ = write!(
            files[t],
            "  - name: {name}\n    hash: {}\n",
            hex_of(tenants * keys + c)
        );
        commit(&mut stdin, &format!("create t{t}/{name}"), "alice", time);
        write!(
            stdin,
            "M 100644 inline tenants/t{t}/security.yml\ndata {}\n{}\n",
            files[t].len(),
            files[t]
        )
        .unwrap();
    }
    drop(stdin);
    assert!(child.wait().unwrap().success(), "fast-import failed");
}

fn hex_of(n: usize) -> String {
    format!("sha256:{n:064x}")
}
