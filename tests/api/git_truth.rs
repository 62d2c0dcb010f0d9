//! Git mode tells the truth (README, "Git mode"): real `keyward` processes on their own clones of a
//! real bare remote, an ops clone that commits, force-pushes and breaks things, and a
//! deploy job that pulls and resets keyward's clone while clients write. Nothing mocked.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{RequestBuilder, Response};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::git_world::World;
use crate::helpers::*;

// ---- a replica: a keyward process on its own clone ----

/// HTTP to one keyward, as acme's (or any tenant's) admin and as a gateway. Cheap to
/// clone into concurrent clients. Every request gives up after 20 s, so a hung server
/// fails a test instead of stalling it.
#[derive(Clone)]
pub(crate) struct Api {
    base: String,
    pub(crate) client: reqwest::Client,
}

impl Api {
    fn new(base: String) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Self { base, client }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn keys_url(&self, tenant: &str) -> String {
        self.url(&format!("/api/{tenant}/admin/apiKeys"))
    }

    /// POST a key as alice, the tenant's writer, with an `Idempotency-Key` if given.
    fn post_key(
        &self,
        tenant: &str,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> RequestBuilder {
        let req = self
            .client
            .post(self.keys_url(tenant))
            .bearer_auth(writer(tenant))
            .json(body);
        match idempotency_key {
            Some(k) => req.header("Idempotency-Key", k),
            None => req,
        }
    }

    fn delete_req(&self, tenant: &str, name: &str) -> RequestBuilder {
        self.client
            .delete(format!("{}/{name}", self.keys_url(tenant)))
            .bearer_auth(writer(tenant))
    }

    pub(crate) fn verify_req(&self, tenant: &str, key: &str) -> RequestBuilder {
        self.client
            .post(self.url(&format!("/api/{tenant}/apiKeys/verify")))
            .json(&json!({"key": key}))
    }

    pub(crate) async fn create(&self, tenant: &str, name: &str) -> Response {
        self.post_key(tenant, &json!({"name": name}), None)
            .send()
            .await
            .unwrap()
    }

    /// Creates a key, which must answer 201; returns its token.
    async fn new_key(&self, tenant: &str, name: &str) -> String {
        let res = self.create(tenant, name).await;
        assert_eq!(res.status(), 201, "creating {tenant}/{name}");
        let body: Value = res.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    async fn update(&self, tenant: &str, name: &str, body: Value) -> Response {
        self.client
            .put(format!("{}/{name}", self.keys_url(tenant)))
            .bearer_auth(writer(tenant))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn delete(&self, tenant: &str, name: &str) -> Response {
        self.delete_req(tenant, name).send().await.unwrap()
    }

    pub(crate) async fn get(&self, tenant: &str, path: &str) -> Response {
        self.client
            .get(self.url(&format!("/api/{tenant}{path}")))
            .bearer_auth(token(tenant, READ))
            .send()
            .await
            .unwrap()
    }

    /// Whether the gateway's check finds `key` valid for `tenant`.
    async fn valid(&self, tenant: &str, key: &str) -> bool {
        let res = self.verify_req(tenant, key).send().await.unwrap();
        assert_eq!(res.status(), 200, "verify on {}", self.base);
        res.json::<Value>().await.unwrap()["valid"] == true
    }

    async fn list_names(&self, tenant: &str) -> BTreeSet<String> {
        let res = self.get(tenant, "/admin/apiKeys").await;
        assert_eq!(res.status(), 200);
        let keys: Vec<Value> = res.json().await.unwrap();
        keys.iter()
            .map(|k| k["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// `GET /api/{tenant}/admin/status` as the tenant's reader.
    pub(crate) async fn status(&self, tenant: &str) -> Value {
        let res = self.get(tenant, "/admin/status").await;
        assert_eq!(res.status(), 200, "status of {tenant}");
        res.json().await.unwrap()
    }

    async fn metrics(&self) -> String {
        let res = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        res.text().await.unwrap()
    }
}

/// A `keyward serve` process in git mode on its own clone of the world's remote. Owns a
/// temp dir holding `clone/` (its work tree) and `state/` (its state dir, outside the
/// clone); the process is killed when the replica is dropped.
pub(crate) struct Replica {
    /// Declared first: dropped (killed) before its directories go.
    server: Server,
    pub(crate) api: Api,
    /// The settings it runs with, for a command run as it would be.
    env: Vec<(&'static str, String)>,
    dir: TempDir,
}

impl Replica {
    /// `push` is `sync` or `async`; `extra` overrides or adds `KEYWARD_*` settings (the pull
    /// interval is 1 s unless overridden).
    pub(crate) async fn start(world: &World, push: &str, extra: &[(&'static str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clone = dir.path().join("clone");
        let ok = Command::new("git")
            .args(["clone", "--quiet"])
            .arg(world.origin())
            .arg(&clone)
            .status()
            .unwrap();
        assert!(ok.success(), "cloning the remote");
        let mut env: Vec<(&'static str, String)> = vec![
            (
                "KEYWARD_TENANTS_DIR",
                clone.join("tenants").display().to_string(),
            ),
            (
                "KEYWARD_STATE_DIR",
                dir.path().join("state").display().to_string(),
            ),
            ("KEYWARD_GIT__ENABLED", "true".to_owned()),
            ("KEYWARD_GIT__PULL_INTERVAL_SECONDS", "1".to_owned()),
            ("KEYWARD_GIT__PUSH", push.to_owned()),
        ];
        for (key, value) in extra {
            env.retain(|(k, _)| k != key);
            env.push((key, (*value).to_owned()));
        }
        let (path, settings) = (dir.path().to_owned(), env.clone());
        let server = tokio::task::spawn_blocking(move || serve_process_with(&path, &settings))
            .await
            .unwrap();
        let api = Api::new(server.url(""));
        Self {
            server,
            api,
            env,
            dir,
        }
    }

    pub(crate) fn clone_dir(&self) -> PathBuf {
        self.dir.path().join("clone")
    }

    /// `keyward <args>` with this replica's settings and working directory.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = keyward();
        cmd.current_dir(self.dir.path())
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("KEYWARD_LOG_FORMAT", "json")
            .env("KEYWARD_AUTH__HS256_SECRET", SECRET);
        cmd
    }

    /// Waits (up to `within`) for a JSON log line of `level` whose message contains `needle`.
    async fn logged(&mut self, level: &str, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            while let Ok(line) = self.server.lines.try_recv() {
                self.server.log.push(line);
            }
            let found = self.server.log.iter().any(|line| {
                serde_json::from_str::<Value>(line).is_ok_and(|v| {
                    v["level"] == level && v["message"].as_str().is_some_and(|m| m.contains(needle))
                })
            });
            if found || Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The clone ends clean: nothing uncommitted, no lock, nothing half done. Polled for a
    /// few seconds, since keyward's own pull may be mid-way at the moment the test ends;
    /// read without taking git's optional index lock, so the check itself disturbs nothing.
    pub(crate) async fn assert_clean(&self) {
        let clone = self.clone_dir();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let problem = dirt(&clone);
            match problem {
                None => return,
                Some(p) if Instant::now() >= deadline => {
                    panic!("{} is not clean: {p}", clone.display())
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

/// What keeps `repo` from being clean, if anything.
fn dirt(repo: &Path) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["--no-optional-locks", "status", "--porcelain"])
        .output()
        .unwrap();
    if !out.status.success() {
        return Some(format!(
            "git status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if !out.stdout.is_empty() {
        return Some(format!(
            "git status --porcelain:\n{}",
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    let git_dir = repo.join(".git");
    ["index.lock", "rebase-merge", "rebase-apply", "MERGE_HEAD"]
        .into_iter()
        .find(|leftover| git_dir.join(leftover).exists())
        .map(|leftover| format!("{leftover} left behind"))
}

/// Runs `cmd` to its end, or kills it (by its own pid) and fails after `within`.
fn run_bounded(mut cmd: Command, within: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(within) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            panic!("{cmd:?} did not finish within {within:?}");
        }
    }
}

/// The sum of a metric's samples in Prometheus text, or None when it is not there.
pub(crate) fn metric(text: &str, name: &str) -> Option<f64> {
    let mut total = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        if series.split('{').next() == Some(name) {
            *total.get_or_insert(0.0) += value.parse::<f64>().unwrap();
        }
    }
    total
}

/// Waits until `probe` answers true, failing with `what` at `deadline`.
pub(crate) async fn until<F: std::future::Future<Output = bool>>(
    what: &str,
    deadline: Instant,
    probe: impl FnMut() -> F,
) {
    eventually(
        what,
        deadline.saturating_duration_since(Instant::now()),
        probe,
        |ok| *ok,
    )
    .await;
}

// ---- 1. a deploy job on keyward's clone ----

/// Where a key created through A stands, as its writer last heard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Answered 201: must verify valid from a second after it.
    Live,
    /// A delete is on its way: either answer is right for now.
    Deleting,
    /// Answered 204: must verify invalid from a second after it.
    Deleted,
}

#[derive(Clone, Debug)]
struct Tracked {
    token: String,
    phase: Phase,
    since: Instant,
}

/// The keys written through A, shared by its writers and the poller that checks them.
type Ledger = Arc<Mutex<HashMap<String, Tracked>>>;

#[derive(Default, Debug)]
struct Writes {
    created: BTreeSet<String>,
    deleted: BTreeSet<String>,
    /// 5xx answers and requests that got no answer.
    server_errors: Vec<String>,
    /// Any other answer than 201 to a create or 204 to a delete.
    unexpected: Vec<String>,
}

impl Writes {
    fn merge(&mut self, other: Writes) {
        self.created.extend(other.created);
        self.deleted.extend(other.deleted);
        self.server_errors.extend(other.server_errors);
        self.unexpected.extend(other.unexpected);
    }

    /// What must be on the remote: created and not since deleted.
    fn live(&self) -> BTreeSet<String> {
        self.created.difference(&self.deleted).cloned().collect()
    }
}

/// One client creating keys `<tag>-<i>` on acme until `until`, deleting the oldest of its
/// keys every third step, one step at most every 150 ms; tells `ledger` (if any) of each.
async fn write_until(api: Api, tag: String, until: Instant, ledger: Option<Ledger>) -> Writes {
    let mut writes = Writes::default();
    let mut mine: VecDeque<String> = VecDeque::new();
    for i in 0..1_000u32 {
        let step = Instant::now();
        if step >= until {
            break;
        }
        let deleting = if i % 3 == 2 { mine.pop_front() } else { None };
        if let Some(name) = deleting {
            if let Some(l) = &ledger {
                let mut l = l.lock().unwrap();
                let t = l.get_mut(&name).unwrap();
                t.phase = Phase::Deleting;
                t.since = Instant::now();
            }
            match api.delete_req("acme", &name).send().await {
                Ok(res) if res.status() == 204 => {
                    if let Some(l) = &ledger {
                        let mut l = l.lock().unwrap();
                        let t = l.get_mut(&name).unwrap();
                        t.phase = Phase::Deleted;
                        t.since = Instant::now();
                    }
                    writes.deleted.insert(name);
                }
                Ok(res) => {
                    let status = res.status();
                    let what = format!("DELETE {name}: {status} {}", res.text().await.unwrap());
                    if status.is_server_error() {
                        writes.server_errors.push(what);
                    } else {
                        writes.unexpected.push(what);
                    }
                }
                Err(e) => writes.server_errors.push(format!("DELETE {name}: {e}")),
            }
        } else {
            let name = format!("{tag}-{i}");
            match api
                .post_key("acme", &json!({"name": name}), None)
                .send()
                .await
            {
                Ok(res) if res.status() == 201 => {
                    let answered = Instant::now();
                    let body: Value = res.json().await.unwrap();
                    if let Some(l) = &ledger {
                        l.lock().unwrap().insert(
                            name.clone(),
                            Tracked {
                                token: body["token"].as_str().unwrap().to_owned(),
                                phase: Phase::Live,
                                since: answered,
                            },
                        );
                    }
                    writes.created.insert(name.clone());
                    mine.push_back(name);
                }
                Ok(res) => {
                    let status = res.status();
                    let what = format!("POST {name}: {status} {}", res.text().await.unwrap());
                    if status.is_server_error() {
                        writes.server_errors.push(what);
                    } else {
                        writes.unexpected.push(what);
                    }
                }
                Err(e) => writes.server_errors.push(format!("POST {name}: {e}")),
            }
        }
        tokio::time::sleep_until((step + Duration::from_millis(150)).into()).await;
    }
    writes
}

#[derive(Default, Debug)]
struct Watch {
    sweeps: usize,
    checks: usize,
    /// The first broken promise of each key that broke one.
    violations: BTreeMap<String, String>,
}

/// Checks every key of `ledger` on A, a sweep at most every 100 ms, until `stop`: a key
/// answered 201 more than a second ago must verify valid, one answered 204 more than a
/// second ago invalid. A verdict only counts if its key's phase did not change while it
/// was asked (its writer may have started a delete in the meantime).
async fn watch_ledger(api: Api, ledger: Ledger, stop: Arc<AtomicBool>) -> Watch {
    let grace = Duration::from_secs(1);
    let mut watch = Watch::default();
    for _ in 0..10_000 {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let sweep = Instant::now();
        let snapshot: Vec<(String, Tracked)> = ledger
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, t)| t.phase != Phase::Deleting)
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect();
        for (name, seen) in snapshot {
            let asked = Instant::now();
            let valid = match api.verify_req("acme", &seen.token).send().await {
                Ok(res) if res.status() == 200 => {
                    res.json::<Value>().await.unwrap()["valid"] == true
                }
                Ok(res) => {
                    let what = format!("verify answered {}", res.status());
                    watch.violations.entry(name).or_insert(what);
                    continue;
                }
                Err(e) => {
                    watch
                        .violations
                        .entry(name)
                        .or_insert(format!("verify: {e}"));
                    continue;
                }
            };
            watch.checks += 1;
            let expected = seen.phase == Phase::Live;
            let age = asked.duration_since(seen.since);
            if valid != expected && age > grace {
                let unchanged = ledger
                    .lock()
                    .unwrap()
                    .get(&name)
                    .is_some_and(|now| now.phase == seen.phase && now.since == seen.since);
                if unchanged {
                    let what = format!("{:?} for {age:?}, but verifies valid={valid}", seen.phase);
                    watch.violations.entry(name).or_insert(what);
                }
            }
        }
        watch.sweeps += 1;
        tokio::time::sleep_until((sweep + Duration::from_millis(100)).into()).await;
    }
    watch
}

#[derive(Default, Debug)]
pub(crate) struct DeployRuns {
    pub(crate) pulls: usize,
    pub(crate) pull_failures: Vec<String>,
    pub(crate) resets: usize,
    pub(crate) reset_failures: Vec<String>,
}

/// `git <args>` in `repo` as a deploy job runs it; the error output if it failed.
fn deploy_git(repo: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A deploy job on `clone`: every 250 ms, alternately `git fetch && git reset --hard
/// origin/main` and `git pull --ff-only`, until `stop`.
pub(crate) fn deploy_job(clone: PathBuf, stop: Arc<AtomicBool>) -> DeployRuns {
    let mut runs = DeployRuns::default();
    for i in 0..400u32 {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        if i % 2 == 0 {
            runs.resets += 1;
            let reset = deploy_git(&clone, &["fetch", "--quiet", "origin"])
                .and_then(|()| deploy_git(&clone, &["reset", "--quiet", "--hard", "origin/main"]));
            if let Err(e) = reset {
                runs.reset_failures.push(e);
            }
        } else {
            runs.pulls += 1;
            if let Err(e) = deploy_git(&clone, &["pull", "--quiet", "--ff-only"]) {
                runs.pull_failures.push(e);
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    runs
}

/// Writers on A (two) and B (one) for ~12 s while a deploy job pulls and resets A's clone
/// and a poller checks every key written through A; then the remote must hold exactly the
/// surviving keys (waiting up to `push_wait` for pushes that follow the answers).
async fn deploy_job_while_writing(push: &str, push_wait: Duration) {
    // Arrange
    let world = World::new();
    let a = Replica::start(&world, push, &[]).await;
    let b = Replica::start(&world, push, &[]).await;
    let ledger: Ledger = Arc::default();
    let writing_ends = Instant::now() + Duration::from_secs(12);

    // Act
    let deploy_stop = Arc::new(AtomicBool::new(false));
    let deploy = {
        let (clone, stop) = (a.clone_dir(), deploy_stop.clone());
        std::thread::spawn(move || deploy_job(clone, stop))
    };
    let watch_stop = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch_ledger(
        a.api.clone(),
        ledger.clone(),
        watch_stop.clone(),
    ));
    let writers = vec![
        tokio::spawn(write_until(
            a.api.clone(),
            "a0".into(),
            writing_ends,
            Some(ledger.clone()),
        )),
        tokio::spawn(write_until(
            a.api.clone(),
            "a1".into(),
            writing_ends,
            Some(ledger.clone()),
        )),
        tokio::spawn(write_until(b.api.clone(), "b0".into(), writing_ends, None)),
    ];
    let mut writes = Writes::default();
    for w in writers {
        writes.merge(w.await.unwrap());
    }
    deploy_stop.store(true, Ordering::SeqCst);
    let runs = tokio::task::spawn_blocking(move || deploy.join().unwrap())
        .await
        .unwrap();
    // Every last answer gets its second, and a sweep after it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    watch_stop.store(true, Ordering::SeqCst);
    let watch = watcher.await.unwrap();

    // Assert
    assert!(
        writes.server_errors.is_empty(),
        "writes answered 5xx or not at all: {:#?}",
        writes.server_errors
    );
    assert!(
        writes.unexpected.is_empty(),
        "writes refused: {:#?}",
        writes.unexpected
    );
    assert!(
        writes.created.len() >= 20 && !writes.deleted.is_empty() && runs.pulls >= 10,
        "too little happened to tell: {writes:?} {runs:?}"
    );
    let allowed = (runs.pulls / 100).max(1);
    assert!(
        runs.pull_failures.len() <= allowed,
        "{} of {} `git pull --ff-only` failed: {:#?} (fetch + reset --hard failures: {:#?})",
        runs.pull_failures.len(),
        runs.pulls,
        runs.pull_failures,
        runs.reset_failures
    );
    assert!(
        watch.sweeps >= 5 && watch.checks > 0,
        "the poller barely ran: {watch:?}"
    );
    assert!(
        watch.violations.is_empty(),
        "{} keys broke the 1 s promise ({} checks in {} sweeps): {:#?}",
        watch.violations.len(),
        watch.checks,
        watch.sweeps,
        watch.violations.iter().take(20).collect::<Vec<_>>()
    );
    let (live, deleted) = (writes.live(), writes.deleted.clone());
    // (missing, back): surviving keys the remote lacks, deleted keys it still has.
    let remote_off = || {
        let names = world.remote_names("acme");
        let missing: Vec<String> = live.difference(&names).cloned().collect();
        let back: Vec<String> = deleted.intersection(&names).cloned().collect();
        (missing, back)
    };
    eventually(
        "the remote holds every surviving key and no deleted one",
        push_wait,
        || async { remote_off() },
        |(missing, back)| missing.is_empty() && back.is_empty(),
    )
    .await;
    a.assert_clean().await;
    b.assert_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_job_pulling_and_resetting_keyward_s_clone_loses_no_sync_write_and_fails_on_nothing()
 {
    // Acknowledged means on the remote: checked at once.
    deploy_job_while_writing("sync", Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_job_pulling_and_resetting_keyward_s_clone_loses_no_async_write_and_fails_on_nothing()
 {
    deploy_job_while_writing("async", Duration::from_secs(10)).await;
}

// ---- 2. force-pushes ----

#[tokio::test]
async fn a_force_push_is_served_by_every_replica_never_pushed_back_and_reported_to_its_tenant() {
    // Arrange: three acknowledged creates through A, each its own commit.
    let world = World::new();
    let mut a = Replica::start(&world, "sync", &[]).await;
    let b = Replica::start(&world, "sync", &[]).await;
    let mut created = Vec::new();
    for name in ["kept", "gone-1", "gone-2"] {
        let token = a.api.new_key("acme", name).await;
        let commit = world.remote_head();
        assert_eq!(world.remote_subjects()[0], format!("create acme/{name}"));
        created.push((name, token, commit));
    }
    let last = &created[2].1;
    until(
        "B serves the last create before the rewrite",
        Instant::now() + Duration::from_secs(5),
        || b.api.valid("acme", last),
    )
    .await;

    // Act: ops throw the last two away.
    world.ops_force_back(2);
    let pushed = Instant::now();

    // Assert: every replica serves exactly the new tip within the pull interval + 2 s.
    let tip = world.remote_names("acme");
    assert!(tip.contains("kept") && !tip.contains("gone-1") && !tip.contains("gone-2"));
    for replica in [&a, &b] {
        let api = &replica.api;
        until(
            &format!("{} serves the rewritten tip", api.base),
            pushed + Duration::from_secs(3),
            || async {
                api.list_names("acme").await == tip
                    && api.valid("acme", &created[0].1).await
                    && !api.valid("acme", &created[1].1).await
                    && !api.valid("acme", &created[2].1).await
            },
        )
        .await;
    }
    // A later write through A does not bring the removed commits back.
    assert_eq!(a.api.create("globex", "after-rewrite").await.status(), 201);
    let subjects = world.remote_subjects();
    assert_eq!(subjects[0], "create globex/after-rewrite", "{subjects:?}");
    for gone in ["create acme/gone-1", "create acme/gone-2"] {
        assert!(
            !subjects.iter().any(|s| s == gone),
            "{gone} is back: {subjects:?}"
        );
    }
    let remote = world.remote_names("acme");
    assert!(
        remote.contains("kept") && !remote.contains("gone-1") && !remote.contains("gone-2"),
        "{remote:?}"
    );
    // Reported: acme's status, and only acme's.
    let status = eventually(
        "A reports the rewritten writes",
        Duration::from_secs(3),
        || a.api.status("acme"),
        |s| {
            s["git"]["rewritten"]
                .as_array()
                .is_some_and(|r| r.len() == 2)
        },
    )
    .await;
    let rewritten = status["git"]["rewritten"].as_array().unwrap();
    for (name, _, commit) in &created[1..] {
        let item = rewritten
            .iter()
            .find(|i| i["keyName"] == *name)
            .unwrap_or_else(|| panic!("{name} is not reported: {status}"));
        assert_eq!(item["verb"], "create", "{item}");
        assert_eq!(item["tenant"], "acme", "{item}");
        assert_eq!(item["revives"], false, "{item}");
        assert_eq!(item["requestId"], world.request_id_of(commit), "{item}");
        let reported = item["commit"].as_str().unwrap();
        assert!(
            reported.len() >= 7 && commit.starts_with(reported),
            "{item} is not {commit}"
        );
    }
    let globex = a.api.status("globex").await;
    assert_eq!(globex["git"]["rewritten"], json!([]), "{globex}");
    let metrics = a.api.metrics().await;
    assert!(
        metric(&metrics, "keyward_git_rewritten_writes_total").is_some_and(|n| n > 0.0),
        "{metrics}"
    );
    assert!(
        a.logged("WARN", "removed by a rewrite", Duration::from_secs(3))
            .await,
        "no WARN about the rewrite in {:#?}",
        a.server.log
    );
    a.assert_clean().await;
    b.assert_clean().await;
}

#[tokio::test]
async fn a_delete_undone_by_a_force_push_is_reported_as_reviving_and_reapply_deletes_it_once() {
    // Arrange: a key created, then deleted, through A.
    let world = World::new();
    let a = Replica::start(&world, "sync", &[]).await;
    let token = a.api.new_key("acme", "doomed").await;
    assert_eq!(a.api.delete("acme", "doomed").await.status(), 204);
    assert!(!a.api.valid("acme", &token).await);

    // Act: ops reset the remote to before the delete.
    world.ops_force_back(1);
    let pushed = Instant::now();

    // Assert: the key lives again, and A says so.
    until(
        "A serves the revived key",
        pushed + Duration::from_secs(3),
        || a.api.valid("acme", &token),
    )
    .await;
    let status = eventually(
        "A reports the rewritten delete",
        Duration::from_secs(3),
        || a.api.status("acme"),
        |s| {
            s["git"]["rewritten"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        },
    )
    .await;
    let rewritten = status["git"]["rewritten"].as_array().unwrap();
    assert_eq!(rewritten.len(), 1, "{status}");
    assert_eq!(rewritten[0]["verb"], "delete", "{status}");
    assert_eq!(rewritten[0]["keyName"], "doomed", "{status}");
    assert_eq!(rewritten[0]["revives"], true, "{status}");

    // Act: ops re-apply what the rewrite removed.
    let out = run_bounded(a.command(&["git", "reapply"]), Duration::from_secs(20));

    // Assert: the delete is a commit on the new tip, once.
    assert!(
        out.status.success(),
        "keyward git reapply: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!world.remote_names("acme").contains("doomed"));
    assert_eq!(world.remote_subjects()[0], "delete acme/doomed");
    until(
        "A serves the re-applied delete",
        Instant::now() + Duration::from_secs(3),
        || async { !a.api.valid("acme", &token).await },
    )
    .await;
    let head = world.remote_head();
    let again = run_bounded(a.command(&["git", "reapply"]), Duration::from_secs(20));
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(world.remote_head(), head, "a second reapply made a commit");
    a.assert_clean().await;
}

// ---- 3. an outcome keyward does not know ----

/// The pid of the first hook run noted in `pids`, once there is one.
fn first_hook(pids: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(pids).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// Whether process `pid` still runs (a zombie has ended).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
        !matches!(state.and_then(|s| s.chars().next()), Some('Z' | 'X') | None)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_that_outlives_its_timeout_is_answered_as_unknown_and_its_retry_gets_the_outcome() {
    // Arrange: every push hangs 8 s on the remote; keyward waits 2 s.
    let world = World::new();
    let a = Replica::start(
        &world,
        "sync",
        &[("KEYWARD_GIT__PUSH_TIMEOUT_SECONDS", "2")],
    )
    .await;
    let bystander = a.api.new_key("acme", "bystander").await;
    let hook_pids = world.slow_remote(8);
    let body = json!({"name": "slow"});

    // Act: a create whose push hangs.
    let create = {
        let (api, body) = (a.api.clone(), body.clone());
        tokio::spawn(async move {
            let asked = Instant::now();
            let res = api
                .post_key("acme", &body, Some("k1"))
                .send()
                .await
                .unwrap();
            (asked.elapsed(), res)
        })
    };
    until(
        "the push reaches the remote's hook",
        Instant::now() + Duration::from_secs(5),
        || async { first_hook(&hook_pids).is_some() },
    )
    .await;

    // Assert: while it hangs, everything else answers.
    let healthz = a
        .api
        .client
        .get(a.api.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), 200);
    assert!(a.api.valid("acme", &bystander).await);
    assert_eq!(a.api.get("acme", "/admin/apiKeys").await.status(), 200);
    assert_eq!(a.api.get("acme", "/admin/status").await.status(), 200);
    assert!(
        !create.is_finished(),
        "premise: the push was still hanging while those were answered"
    );
    // The create is answered as unknown, at its timeout.
    let (answered_in, res) = create.await.unwrap();
    let retry_after = res.headers().get("retry-after").cloned();
    assert_problem(res, 504, "outcome_unknown").await;
    assert!(retry_after.is_some(), "no Retry-After");
    assert!(
        answered_in < Duration::from_secs(5),
        "answered after {answered_in:?}"
    );

    // Act: the hung push ends (run out or killed), the remote is quick again, the client
    // retries.
    let hook = first_hook(&hook_pids).unwrap();
    until(
        "the hung push ends",
        Instant::now() + Duration::from_secs(15),
        || async { !running(hook) },
    )
    .await;
    world.fast_remote();
    let (status, created) = eventually(
        "the retry gets a known outcome",
        Duration::from_secs(10),
        || async {
            let res = a
                .api
                .post_key("acme", &body, Some("k1"))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        },
        |(status, _)| *status != 504,
    )
    .await;

    // Assert: created once, and the retry carries its token.
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().unwrap();
    assert!(a.api.valid("acme", token).await);
    let subjects = world.remote_subjects();
    assert_eq!(
        subjects.iter().filter(|s| *s == "create acme/slow").count(),
        1,
        "{subjects:?}"
    );
    assert_eq!(world.on_remote("acme").matches("name: slow\n").count(), 1);
    a.assert_clean().await;
}

// ---- 4. Idempotency-Key ----

/// POST /api/acme/admin/apiKeys with `Idempotency-Key: key`, as `bearer`.
async fn create_once(app: &TestApp, bearer: &str, key: &str, body: Value) -> Response {
    app.client
        .post(app.keys_url("acme"))
        .bearer_auth(bearer)
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_and_body_gets_the_first_answer_and_writes_once() {
    // Arrange
    let app = spawn_app().await;
    let alice = writer("acme");
    let body = json!({"name": "idem", "permissions": ["orders:read"]});
    let first = create_once(&app, &alice, "retry-1", body.clone()).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();

    // Act
    let again = create_once(&app, &alice, "retry-1", body).await;

    // Assert
    assert_eq!(again.status(), 201);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["token"], first["token"]);
    assert!(first["token"].is_string());
    assert_eq!(app.read_file("acme").matches("name: idem\n").count(), 1);
}

#[tokio::test]
async fn an_idempotency_key_sent_again_with_another_body_is_refused_as_reused() {
    // Arrange
    let app = spawn_app().await;
    let alice = writer("acme");
    let first = create_once(&app, &alice, "reuse-1", json!({"name": "first"})).await;
    assert_eq!(first.status(), 201);

    // Act
    let other = create_once(&app, &alice, "reuse-1", json!({"name": "second"})).await;

    // Assert
    assert_problem(other, 422, "idempotency_key_reused").await;
    assert!(!app.read_file("acme").contains("name: second"));
}

#[tokio::test]
async fn an_idempotency_key_belongs_to_the_principal_that_sent_it() {
    // Arrange: alice used the key first.
    let app = spawn_app().await;
    let as_writer = |sub: &str| {
        jwt(json!({"sub": sub, "exp": now() + 600, "scope": WRITE, "tenant_id": "acme"}))
    };
    let (bob, carol) = (as_writer("bob@example.com"), as_writer("carol@example.com"));
    let alices = create_once(&app, &writer("acme"), "shared-1", json!({"name": "alices"})).await;
    assert_eq!(alices.status(), 201);

    // Act: bob sends alice's very request; carol sends her own with the same key.
    let bobs = create_once(&app, &bob, "shared-1", json!({"name": "alices"})).await;
    let carols = create_once(&app, &carol, "shared-1", json!({"name": "carols"})).await;

    // Assert: each is a request of its own: never alice's answer (nor her token), no reuse.
    assert_problem(bobs, 409, "key_exists").await;
    assert_eq!(carols.status(), 201);
    let carols: Value = carols.json().await.unwrap();
    assert_eq!(carols["name"], "carols");
    assert_eq!(carols["createdBy"], "carol@example.com");
    let file = app.read_file("acme");
    assert_eq!(file.matches("name: alices\n").count(), 1);
    assert!(file.contains("name: carols\n"));
}

#[tokio::test]
async fn a_create_retried_on_another_replica_is_not_applied_twice_and_says_its_token_was_issued_elsewhere()
 {
    // Arrange
    let world = World::new();
    let a = Replica::start(&world, "sync", &[]).await;
    let b = Replica::start(&world, "sync", &[]).await;
    let body = json!({"name": "twice"});
    let on_a = a
        .api
        .post_key("acme", &body, Some("k2"))
        .send()
        .await
        .unwrap();
    assert_eq!(on_a.status(), 201);
    let first: Value = on_a.json().await.unwrap();
    let token = first["token"].as_str().unwrap().to_owned();
    let head = world.remote_head();

    // Act
    let on_b = b
        .api
        .post_key("acme", &body, Some("k2"))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(on_b.status(), 201);
    let answer: Value = on_b.json().await.unwrap();
    assert_eq!(answer["name"], "twice", "{answer}");
    assert_eq!(answer["code"], "token_issued_elsewhere", "{answer}");
    assert!(answer["token"].is_null(), "{answer}");
    let document: Value = b
        .api
        .client
        .get(format!("{}/openapi.json", b.api.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    crate::openapi::assert_fits_the_document(
        &document,
        "post",
        "/api/{tenantId}/admin/apiKeys",
        201,
        &answer,
    );
    // One schema each: `oneOf` holds only when exactly one of them fits.
    crate::openapi::assert_fits_the_document(
        &document,
        "post",
        "/api/{tenantId}/admin/apiKeys",
        201,
        &first,
    );
    assert_eq!(world.remote_head(), head, "B made a commit");
    assert_eq!(world.on_remote("acme").matches("name: twice\n").count(), 1);
    // The commit carries the scoped key's digest, never the token or the key as sent.
    let message = git(
        &world.root().join("origin.git"),
        &["log", "-1", "--format=%B", "main"],
    );
    assert!(message.contains("Idempotency-Key: "), "{message}");
    assert!(
        !message.contains(&token) && !message.contains("k2\n"),
        "{message}"
    );
    until(
        "B serves the key A created",
        Instant::now() + Duration::from_secs(3),
        || b.api.valid("acme", &token),
    )
    .await;
    a.assert_clean().await;
    b.assert_clean().await;
}

// ---- 5, 6. async replay ----

#[tokio::test]
async fn an_async_update_is_replayed_by_meaning_and_keeps_ops_change_to_a_field_it_did_not_change()
{
    // Arrange: A cannot reach the remote.
    let world = World::new();
    let a = Replica::start(&world, "async", &[]).await;
    world.hide_remote();

    // Act: A's update (enabled was already true), then ops disable the key upstream.
    let res = a
        .api
        .update(
            "acme",
            "ci-deploy",
            json!({"enabled": true, "description": "from A"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    world.ops_commit_at(
        &world.moved(),
        "acme",
        |t| {
            t.replace(
                "    permissions: [orders:read, orders:write]\n",
                "    permissions: [orders:read, orders:write]\n    enabled: false\n",
            )
        },
        "ops disable ci-deploy",
    );
    world.restore_remote();

    // Assert: both changes, on the remote and as A serves it.
    let ci_deploy = || {
        let doc: serde_yaml::Value = serde_yaml::from_str(&world.on_remote("acme")).unwrap();
        doc["apiKeys"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|k| k["name"].as_str() == Some("ci-deploy"))
            .cloned()
            .unwrap()
    };
    until(
        "A's update reaches the remote on top of ops' change",
        Instant::now() + Duration::from_secs(10),
        || async { ci_deploy()["description"].as_str() == Some("from A") },
    )
    .await;
    let entry = ci_deploy();
    assert_eq!(entry["enabled"].as_bool(), Some(false), "{entry:?}");
    assert_eq!(entry["permissions"].as_sequence().unwrap().len(), 2);
    let served = eventually(
        "A serves both changes",
        Duration::from_secs(3),
        || async {
            a.api
                .get("acme", "/admin/apiKeys/ci-deploy")
                .await
                .json::<Value>()
                .await
                .unwrap()
        },
        |k| k["enabled"] == false && k["description"] == "from A",
    )
    .await;
    assert_eq!(served["name"], "ci-deploy");
    a.assert_clean().await;
}

#[tokio::test]
async fn an_async_write_that_cannot_be_applied_is_dropped_and_reported_and_the_replay_goes_on() {
    // Arrange: A cannot reach the remote.
    let world = World::new();
    let a = Replica::start(&world, "async", &[]).await;
    world.hide_remote();

    // Act: two acknowledged writes; meanwhile ops break acme's file upstream.
    assert_eq!(a.api.create("acme", "x1").await.status(), 201);
    assert_eq!(a.api.create("globex", "y1").await.status(), 201);
    world.ops_commit_at(
        &world.moved(),
        "acme",
        |_| "apiKeys: [\n".to_owned(),
        "ops break acme",
    );
    world.restore_remote();

    // Assert: globex's write goes on; acme's is dropped, said and counted once.
    until(
        "y1 reaches the remote",
        Instant::now() + Duration::from_secs(10),
        || async { world.on_remote("globex").contains("name: y1\n") },
    )
    .await;
    assert_eq!(world.on_remote("acme"), "apiKeys: [\n");
    let status = eventually(
        "acme's status reports x1 dropped",
        Duration::from_secs(3),
        || a.api.status("acme"),
        |s| {
            s["git"]["dropped"]
                .as_array()
                .is_some_and(|d| d.iter().any(|i| i["keyName"] == "x1"))
        },
    )
    .await;
    let dropped = &status["git"]["dropped"];
    let x1 = dropped
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["keyName"] == "x1")
        .unwrap();
    assert!(
        x1["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{dropped}"
    );
    let globex = a.api.status("globex").await;
    assert_eq!(globex["git"]["dropped"], json!([]), "{globex}");
    let metrics = a.api.metrics().await;
    assert_eq!(
        metric(&metrics, "keyward_git_dropped_writes_total"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "keyward_git_refused_writes_total"),
        Some(0.0),
        "the sync refusals are counted apart: {metrics}"
    );
    a.assert_clean().await;
}

#[tokio::test]
async fn an_async_backlog_is_replayed_in_slices_while_new_writes_are_taken_and_none_is_lost() {
    // Arrange: A cannot reach the remote, and acknowledges a backlog longer than a slice
    // of the replay (64 writes) several times over; meanwhile ops change the remote.
    let world = World::new();
    let a = Replica::start(&world, "async", &[]).await;
    world.hide_remote();
    let mut names = Vec::new();
    for i in 0..150 {
        let name = format!("b{i}");
        assert_eq!(a.api.create("acme", &name).await.status(), 201);
        names.push(name);
    }
    world.ops_commit_at(
        &world.moved(),
        "globex",
        |text| text + "# ops were here\n",
        "ops touch globex",
    );

    // Act: the remote is back; new writes come while the backlog is replayed on its tip.
    world.restore_remote();
    for i in 0..30 {
        let name = format!("n{i}");
        assert_eq!(a.api.create("acme", &name).await.status(), 201);
        names.push(name);
    }

    // Assert: every acknowledged write reaches the remote, each its own commit, in the
    // order it was taken; ops' change is kept and nothing is dropped.
    until(
        "every write reaches the remote",
        Instant::now() + Duration::from_secs(60),
        || async {
            let on_remote = world.remote_names("acme");
            names.iter().all(|n| on_remote.contains(n))
        },
    )
    .await;
    assert!(world.on_remote("globex").contains("# ops were here\n"));
    let subjects = world.remote_subjects();
    let ours: Vec<&String> = subjects
        .iter()
        .rev()
        .filter(|s| s.starts_with("create acme/"))
        .collect();
    let wanted: Vec<String> = names.iter().map(|n| format!("create acme/{n}")).collect();
    assert_eq!(
        ours.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        wanted.iter().map(String::as_str).collect::<Vec<_>>()
    );
    // The worker hears of its push landing a moment after the remote has it.
    let status = eventually(
        "nothing left unpushed",
        Duration::from_secs(30),
        || a.api.status("acme"),
        |s| s["git"]["unpushed"] == json!(0),
    )
    .await;
    assert_eq!(status["git"]["dropped"], json!([]), "{status}");
    a.assert_clean().await;
}

// ---- 7. a write fetches before a 404 ----

#[tokio::test]
async fn a_write_on_a_replica_that_has_not_pulled_yet_fetches_before_answering_404() {
    // Arrange: neither replica pulls on its own during the test.
    let world = World::new();
    let slow_pulls = [("KEYWARD_GIT__PULL_INTERVAL_SECONDS", "60")];
    let a = Replica::start(&world, "sync", &slow_pulls).await;
    let b = Replica::start(&world, "sync", &slow_pulls).await;
    assert_eq!(a.api.create("acme", "fresh").await.status(), 201);

    // Act
    let updated = b
        .api
        .update("acme", "fresh", json!({"enabled": false}))
        .await;
    let updated_status = updated.status();
    let deleted = b.api.delete("acme", "fresh").await;

    // Assert
    assert_eq!(updated_status, 200, "{}", updated.text().await.unwrap());
    assert_eq!(deleted.status(), 204);
    let subjects = world.remote_subjects();
    assert_eq!(
        subjects[..3],
        [
            "delete acme/fresh",
            "update acme/fresh",
            "create acme/fresh"
        ],
        "{subjects:?}"
    );
    assert!(!world.remote_names("acme").contains("fresh"));
    a.assert_clean().await;
    b.assert_clean().await;
}
