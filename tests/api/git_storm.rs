//! Git mode's promises all at once (README, "Git mode"): three real `keyward` processes on
//! their own clones of one bare remote, two pushing `sync` and one `async`, take creates,
//! updates, rotations and deletes from six writers while a deploy job pulls and resets the
//! async replica's clone and ops force-push the remote back by a few commits. Every answer
//! is kept in a ledger; once the replicas settle, each acknowledged write must be on the
//! remote's `main` or reported as removed, and nothing refused is anywhere. Last, on its
//! own, the race the storm found: a push built on a tip a force-push removed.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::git_truth::{Api, DeployRuns, Replica, deploy_job, until};
use crate::git_world::World;
use crate::helpers::*;

/// Each writer writes to one of these, by its number.
const TENANTS: [&str; 2] = ["acme", "globex"];
/// How many commits ops' force-push removes from the remote's tip.
const DROPPED_BY_OPS: usize = 3;

// ---- the ledger ----

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Verb {
    Create,
    Update,
    Rotate,
    Delete,
}

impl Verb {
    /// The word of keyward's commit subjects and reports.
    fn word(self) -> &'static str {
        match self {
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Rotate => "rotate",
            Verb::Delete => "delete",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        [Verb::Create, Verb::Update, Verb::Rotate, Verb::Delete]
            .into_iter()
            .find(|v| v.word() == word)
    }
}

/// What a write does to its key when it is done.
#[derive(Clone, Debug)]
enum Effect {
    /// The token the answer carried (empty when there was no 2xx answer).
    Created(String),
    /// The description the request set, unique to that request.
    Described(String),
    /// The new token the answer carried (empty when there was no 2xx answer).
    Rotated(String),
    Deleted,
}

/// What keyward answered.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    /// 2xx: acknowledged.
    Done,
    /// 4xx: nothing was written.
    Refused(u16, String),
    /// 503 `remote_unavailable`: nothing of the write is kept anywhere.
    Unavailable,
    /// 504 `outcome_unknown`: it may land or not.
    Unknown,
    /// Any other 5xx, or no answer at all: a broken promise.
    Broken(String),
}

#[derive(Clone, Debug)]
struct Write {
    replica: &'static str,
    tenant: &'static str,
    key: String,
    verb: Verb,
    effect: Effect,
    answer: Answer,
}

impl Write {
    fn acked(&self) -> bool {
        self.answer == Answer::Done
    }

    /// The key's token after this write, if it set one.
    fn token(&self) -> Option<&str> {
        match &self.effect {
            Effect::Created(t) | Effect::Rotated(t) if !t.is_empty() => Some(t),
            _ => None,
        }
    }
}

/// Sends one write and records its answer.
async fn write_once(
    api: &Api,
    replica: &'static str,
    tenant: &'static str,
    key: String,
    verb: Verb,
    step: u32,
) -> Write {
    let keys = api.keys_url(tenant);
    let description = format!("{key} step {step}");
    let req = match verb {
        Verb::Create => api.client.post(&keys).json(&json!({"name": key})),
        Verb::Update => api
            .client
            .put(format!("{keys}/{key}"))
            .json(&json!({"enabled": true, "description": description})),
        Verb::Rotate => api
            .client
            .post(format!("{keys}/{key}/rotate"))
            .json(&json!({"gracePeriodSeconds": 0})),
        Verb::Delete => api.client.delete(format!("{keys}/{key}")),
    };
    let (answer, body) = match req.bearer_auth(writer(tenant)).send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            (classify(status, &body), body)
        }
        Err(e) => (Answer::Broken(format!("no answer: {e}")), Value::Null),
    };
    let token = || body["token"].as_str().unwrap_or_default().to_owned();
    let effect = match verb {
        Verb::Create => Effect::Created(token()),
        Verb::Update => Effect::Described(description),
        Verb::Rotate => Effect::Rotated(token()),
        Verb::Delete => Effect::Deleted,
    };
    Write {
        replica,
        tenant,
        key,
        verb,
        effect,
        answer,
    }
}

fn classify(status: u16, body: &Value) -> Answer {
    let code = body["code"].as_str().unwrap_or_default().to_owned();
    match (status, code.as_str()) {
        (200..=299, _) => Answer::Done,
        (400..=499, _) => Answer::Refused(status, code),
        (503, "remote_unavailable") => Answer::Unavailable,
        (504, "outcome_unknown") => Answer::Unknown,
        _ => Answer::Broken(format!("{status} {body}")),
    }
}

/// One writer on `tenant` through `api` until `until`, a step at most every 150 ms: of five
/// steps two create a key, one updates its newest key, one rotates one of its keys and one
/// deletes its oldest (only its own: each key has one writer, so its expected state is
/// known). A key whose write was refused or left unknown is not touched again.
async fn write_storm(
    api: Api,
    replica: &'static str,
    writer_no: usize,
    until: Instant,
) -> Vec<Write> {
    let tenant = TENANTS[writer_no % TENANTS.len()];
    let mut ledger = Vec::new();
    let mut mine: VecDeque<String> = VecDeque::new();
    for step in 0..10_000u32 {
        let started = Instant::now();
        if started >= until {
            break;
        }
        let verb = match step % 5 {
            _ if mine.is_empty() => Verb::Create,
            0 | 1 => Verb::Create,
            2 => Verb::Update,
            3 => Verb::Rotate,
            _ => Verb::Delete,
        };
        let key = match verb {
            Verb::Create => format!("{replica}w{writer_no}-{step}"),
            Verb::Delete => mine.pop_front().unwrap(),
            // The newest key: the one a force-push most likely removed.
            Verb::Update => mine.back().unwrap().clone(),
            _ => mine[step as usize % mine.len()].clone(),
        };
        let write = write_once(&api, replica, tenant, key, verb, step).await;
        match (write.acked(), verb) {
            (true, Verb::Create) => mine.push_back(write.key.clone()),
            (false, _) => mine.retain(|k| *k != write.key),
            _ => {}
        }
        ledger.push(write);
        tokio::time::sleep_until((started + Duration::from_millis(150)).into()).await;
    }
    ledger
}

/// Reads during the storm: every replica's status and key list of each tenant, every
/// 250 ms until `stop`; returns how many were asked and the answers other than 200.
async fn read_storm(apis: Vec<Api>, stop: Arc<AtomicBool>) -> (usize, Vec<String>) {
    let (mut asked, mut wrong) = (0, Vec::new());
    while !stop.load(Ordering::SeqCst) {
        for api in &apis {
            for tenant in TENANTS {
                for path in ["/admin/status", "/admin/apiKeys"] {
                    let url = api.url(&format!("/api/{tenant}{path}"));
                    let res = api
                        .client
                        .get(&url)
                        .bearer_auth(token(tenant, READ))
                        .send()
                        .await;
                    asked += 1;
                    match res {
                        Ok(r) if r.status() == 200 => {}
                        Ok(r) => wrong.push(format!("GET {url}: {}", r.status())),
                        Err(e) => wrong.push(format!("GET {url}: {e}")),
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    (asked, wrong)
}

// ---- ops' force-push ----

/// What ops' force-push removed from the remote.
#[derive(Debug)]
struct Rewrite {
    /// Full ids, newest first.
    removed: Vec<String>,
    /// How many force-pushes lost to a replica's push first.
    attempts: usize,
}

/// `git <args>` in `dir`, which may fail: its output, or its error output.
fn try_git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// ops throw away the remote's last `commits` commits from their clone. The force-push
/// only lands on the tip ops looked at (`--force-with-lease`), so exactly those commits
/// are removed; a replica's push in between makes ops look again.
fn ops_drop_last(world: &World, commits: usize) -> Rewrite {
    let ops = world.ops();
    for attempt in 1..=200 {
        git(&ops, &["fetch", "--quiet", "origin"]);
        let tip = git(&ops, &["rev-parse", "origin/main"]).trim().to_owned();
        let back = git(&ops, &["rev-parse", &format!("{tip}~{commits}")])
            .trim()
            .to_owned();
        let lease = format!("--force-with-lease=main:{tip}");
        let refspec = format!("{back}:refs/heads/main");
        if try_git(&ops, &["push", "--quiet", &lease, "origin", &refspec]).is_ok() {
            let removed = git(&ops, &["rev-list", &tip, &format!("^{back}")]);
            return Rewrite {
                removed: removed.lines().map(str::to_owned).collect(),
                attempts: attempt,
            };
        }
    }
    panic!("ops' force-push lost to the replicas' pushes 200 times");
}

// ---- the remote, read with git ----

/// One key as a `security.yml` holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stored {
    /// None when YAML reads it as a number (a bare hex hash of digits only).
    hash: Option<String>,
    hint: Option<String>,
    description: Option<String>,
}

/// The keys of a `security.yml`, by name.
fn stored_keys(text: &str) -> BTreeMap<String, Stored> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
    let field = |k: &serde_yaml::Value, f: &str| k[f].as_str().map(str::to_owned);
    doc["apiKeys"]
        .as_sequence()
        .unwrap_or_else(|| panic!("no apiKeys list in:\n{text}"))
        .iter()
        .map(|k| {
            let stored = Stored {
                hash: field(k, "hash"),
                hint: field(k, "hint"),
                description: field(k, "description"),
            };
            (field(k, "name").unwrap(), stored)
        })
        .collect()
}

fn hash_of(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A tenant's file at `commit`, from the first of `repos` that has the commit.
fn file_at(repos: &[PathBuf], commit: &str, tenant: &str) -> Option<String> {
    let spec = format!("{commit}:tenants/{tenant}/security.yml");
    repos
        .iter()
        .find_map(|r| try_git(r, &["cat-file", "-p", &spec]).ok())
}

/// The last commit on the remote's `main` that touched a tenant's file.
fn remote_last(world: &World, tenant: &str) -> String {
    let path = format!("tenants/{tenant}/security.yml");
    git(
        &world.origin(),
        &["log", "-1", "--format=%H", "main", "--", &path],
    )
    .trim()
    .to_owned()
}

/// keyward's commits on the remote's `main`, counted by (tenant, key, verb).
fn commits_on_main(world: &World) -> HashMap<(String, String, Verb), usize> {
    let log = git(&world.origin(), &["log", "--format=%cn|%s", "main"]);
    let mut counts = HashMap::new();
    for line in log.lines() {
        let Some(subject) = line.strip_prefix("keyward|") else {
            continue;
        };
        let (verb, target) = subject.split_once(' ').unwrap();
        let (tenant, key) = target.split_once('/').unwrap();
        let verb = Verb::parse(verb).unwrap_or_else(|| panic!("unknown verb in {line}"));
        *counts
            .entry((tenant.to_owned(), key.to_owned(), verb))
            .or_default() += 1;
    }
    counts
}

/// Which write of `ledger` made `commit` (a `verb` of `tenant/key`): a key has one create
/// and one delete; an update is known by its description, a rotation by its token's hash.
fn write_of(
    ledger: &[Write],
    repos: &[PathBuf],
    commit: &str,
    tenant: &str,
    key: &str,
    verb: Verb,
) -> Option<usize> {
    let candidates = || {
        ledger
            .iter()
            .enumerate()
            .filter(move |(_, w)| w.tenant == tenant && w.key == key && w.verb == verb)
    };
    if matches!(verb, Verb::Create | Verb::Delete) {
        return candidates().map(|(i, _)| i).next();
    }
    let stored = stored_keys(&file_at(repos, commit, tenant)?).remove(key)?;
    candidates()
        .find(|(_, w)| match &w.effect {
            Effect::Described(d) => stored.description.as_deref() == Some(d.as_str()),
            Effect::Rotated(t) => !t.is_empty() && stored.hash == Some(hash_of(t)),
            _ => false,
        })
        .map(|(i, _)| i)
}

// ---- what the replicas report ----

/// A write a replica reports as not on the remote: `kind` is `rewritten` or `dropped`.
#[derive(Clone, Debug)]
struct Reported {
    replica: &'static str,
    kind: &'static str,
    tenant: &'static str,
    key: String,
    verb: Verb,
    commit: String,
}

async fn reports_of(replica: &'static str, api: &Api) -> Vec<Reported> {
    let mut all = Vec::new();
    for tenant in TENANTS {
        let status = api.status(tenant).await;
        for kind in ["rewritten", "dropped"] {
            for r in status["git"][kind].as_array().unwrap() {
                all.push(Reported {
                    replica,
                    kind,
                    tenant,
                    key: r["keyName"].as_str().unwrap().to_owned(),
                    verb: Verb::parse(r["verb"].as_str().unwrap())
                        .unwrap_or_else(|| panic!("a report of another verb: {r}")),
                    commit: r["commit"].as_str().unwrap_or_default().to_owned(),
                });
            }
        }
    }
    all
}

/// Whether every replica has nothing left to push and serves the remote's last commit
/// of every tenant's file; the first that does not, said.
async fn settled(world: &World, replicas: &[(&'static str, &Api)]) -> Result<(), String> {
    for tenant in TENANTS {
        let last = remote_last(world, tenant);
        for (name, api) in replicas {
            let git = api.status(tenant).await["git"].clone();
            if git["unpushed"] != 0 || git["head"] != *last || git["remoteHead"] != *last {
                return Err(format!("{name} on {tenant}: {git} (remote: {last})"));
            }
        }
    }
    Ok(())
}

/// What a replica serves of a tenant's keys: name, description and hint.
async fn served(api: &Api, tenant: &str) -> BTreeMap<String, (Option<String>, Option<String>)> {
    let res = api.get(tenant, "/admin/apiKeys").await;
    assert_eq!(res.status(), 200);
    let keys: Vec<Value> = res.json().await.unwrap();
    let text = |v: &Value| v.as_str().map(str::to_owned);
    keys.iter()
        .map(|k| {
            let name = k["name"].as_str().unwrap().to_owned();
            (name, (text(&k["description"]), text(&k["hint"])))
        })
        .collect()
}

// ---- the accounts ----

/// A key the ledger says is on the remote: its description and current token.
#[derive(Debug)]
struct Live {
    description: Option<String>,
    token: String,
}

/// What each key must be on the remote: `None` once deleted (or never created).
type Expected = BTreeMap<(&'static str, String), Option<Live>>;

/// The ledger, read against the remote and the reports.
#[derive(Default, Debug)]
struct Accounts {
    tried: usize,
    acked: BTreeMap<Verb, usize>,
    /// Acknowledged writes whose commit is on the remote's `main`.
    on_remote: usize,
    /// Acknowledged writes reported removed, by kind.
    reported: BTreeMap<&'static str, usize>,
    refused: BTreeMap<String, usize>,
    unavailable: usize,
    unknown: usize,
    broken: Vec<String>,
    /// Broken promises, one line each.
    wrong: Vec<String>,
}

impl Accounts {
    fn print(&self, rewrite: &Rewrite, runs: &DeployRuns, reads: usize) {
        let acked: usize = self.acked.values().sum();
        println!(
            "storm: {} writes tried, {acked} acknowledged {:?}, {} of them on the remote's main, \
             reported removed {:?}; refused {:?}; 503 remote_unavailable {}, 504 outcome_unknown {}, \
             broken {}; force-push removed {} commits (attempt {}); deploy job {} resets, {} pulls \
             ({} pulls failed); {reads} reads during the storm",
            self.tried,
            self.acked,
            self.on_remote,
            self.reported,
            self.refused,
            self.unavailable,
            self.unknown,
            self.broken.len(),
            rewrite.removed.len(),
            rewrite.attempts,
            runs.resets,
            runs.pulls,
            runs.pull_failures.len(),
        );
    }
}

/// Counts the ledger's answers.
fn count_answers(ledger: &[Write], acc: &mut Accounts) {
    acc.tried = ledger.len();
    for w in ledger {
        match &w.answer {
            Answer::Done => *acc.acked.entry(w.verb).or_default() += 1,
            Answer::Refused(status, code) => {
                *acc.refused
                    .entry(format!("{} {status} {code}", w.verb.word()))
                    .or_default() += 1
            }
            Answer::Unavailable => acc.unavailable += 1,
            Answer::Unknown => acc.unknown += 1,
            Answer::Broken(why) => acc.broken.push(format!(
                "{} {}/{} on {}: {why}",
                w.verb.word(),
                w.tenant,
                w.key,
                w.replica
            )),
        }
    }
}

/// Each (tenant, key, verb): the acknowledged writes not reported removed are on `main`,
/// and no more than those and the unknown ones are; a write refused or failed is never
/// on `main` nor reported.
fn check_counts(
    ledger: &[Write],
    removed: &BTreeMap<usize, &'static str>,
    on_main: &HashMap<(String, String, Verb), usize>,
    acc: &mut Accounts,
) {
    let mut want: HashMap<(String, String, Verb), (usize, usize)> = HashMap::new();
    for (i, w) in ledger.iter().enumerate() {
        let id = (w.tenant.to_owned(), w.key.clone(), w.verb);
        let (must, may) = want.entry(id).or_default();
        match (&w.answer, removed.get(&i)) {
            (Answer::Done, None) => *must += 1,
            (Answer::Done, Some(kind)) => *acc.reported.entry(kind).or_default() += 1,
            (Answer::Unknown | Answer::Broken(_), _) => *may += 1,
            (answer, Some(kind)) => acc
                .wrong
                .push(format!("answered {answer:?}, yet reported {kind}: {w:?}")),
            _ => {}
        }
    }
    for id in on_main.keys() {
        want.entry(id.clone()).or_default();
    }
    for (id, (must, may)) in &want {
        let found = on_main.get(id).copied().unwrap_or(0);
        acc.on_remote += found.min(*must);
        if found < *must || found > must + may {
            acc.wrong.push(format!(
                "{} {}/{}: {must} acknowledged and not reported removed (+{may} unknown), \
                 {found} on the remote's main",
                id.2.word(),
                id.0,
                id.1
            ));
        }
    }
}

/// What each key must be on the remote, from its acknowledged writes that were not
/// reported removed, in order. Keys with a write of unknown outcome are left out.
fn expected_keys(
    ledger: &[Write],
    removed: &BTreeMap<usize, &'static str>,
    acc: &mut Accounts,
) -> Expected {
    let mut keys = Expected::new();
    let mut uncertain = BTreeSet::new();
    for (i, w) in ledger.iter().enumerate() {
        let id = (w.tenant, w.key.clone());
        if matches!(w.answer, Answer::Unknown | Answer::Broken(_)) {
            uncertain.insert(id.clone());
        }
        if !w.acked() || removed.contains_key(&i) {
            keys.entry(id).or_insert(None);
            continue;
        }
        let state = keys.entry(id).or_insert(None);
        match (&w.effect, state.as_mut()) {
            (Effect::Created(token), _) => {
                *state = Some(Live {
                    description: None,
                    token: token.clone(),
                })
            }
            (Effect::Deleted, _) => *state = None,
            (Effect::Described(d), Some(live)) => live.description = Some(d.clone()),
            (Effect::Rotated(t), Some(live)) => live.token = t.clone(),
            (_, None) => acc.wrong.push(format!(
                "acknowledged, not reported removed, yet its key's create is: {w:?}"
            )),
        }
    }
    keys.retain(|id, _| !uncertain.contains(id));
    keys
}

// ---- the test ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_a_deploy_job_and_a_force_push_at_once_lose_no_acknowledged_write() {
    // Arrange: two sync replicas and one async, the deploy job on the async one's clone.
    let world = World::new();
    let (s1, s2, a1) = tokio::join!(
        Replica::start(&world, "sync", &[]),
        Replica::start(&world, "sync", &[]),
        Replica::start(&world, "async", &[]),
    );
    let replicas: [(&'static str, &Replica); 3] = [("s1", &s1), ("s2", &s2), ("a1", &a1)];
    let apis: Vec<(&'static str, &Api)> = replicas.iter().map(|(n, r)| (*n, &r.api)).collect();
    let started = Instant::now();
    let writing_ends = started + Duration::from_secs(18);

    // Act: two writers per replica, one per tenant; reads all along; the deploy job.
    let writers: Vec<_> = replicas
        .iter()
        .flat_map(|&(name, r)| {
            (0..2).map(move |w| tokio::spawn(write_storm(r.api.clone(), name, w, writing_ends)))
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn(read_storm(
        apis.iter().map(|(_, a)| (*a).clone()).collect(),
        stop.clone(),
    ));
    let deploy = {
        let (clone, stop) = (a1.clone_dir(), stop.clone());
        std::thread::spawn(move || deploy_job(clone, stop))
    };
    // ... and once, in the middle, ops force-push the remote back.
    tokio::time::sleep_until((started + Duration::from_secs(8)).into()).await;
    let rewrite = {
        let ops_world = &world;
        tokio::task::block_in_place(|| ops_drop_last(ops_world, DROPPED_BY_OPS))
    };
    let mut ledger = Vec::new();
    for w in writers {
        ledger.extend(w.await.unwrap());
    }
    stop.store(true, Ordering::SeqCst);
    let runs = tokio::task::spawn_blocking(move || deploy.join().unwrap())
        .await
        .unwrap();
    let (reads, read_errors) = reader.await.unwrap();

    // The replicas settle: nothing left to push, the remote's last commits served.
    eventually(
        "every replica settles on the remote",
        Duration::from_secs(30),
        || settled(&world, &apis),
        Result::is_ok,
    )
    .await
    .expect("settled");

    // Assert
    let mut repos = vec![world.origin()];
    repos.extend(replicas.iter().map(|(_, r)| r.clone_dir()));
    let mut reports = Vec::new();
    for (name, api) in &apis {
        reports.extend(reports_of(name, api).await);
    }
    let mut acc = Accounts::default();
    count_answers(&ledger, &mut acc);
    let removed = removed_writes(&world, &ledger, &repos, &reports, &rewrite, &mut acc);
    check_refusals(&ledger, &removed, &mut acc);
    check_counts(&ledger, &removed, &commits_on_main(&world), &mut acc);
    let expected = expected_keys(&ledger, &removed, &mut acc);
    check_remote_files(&world, &expected, &mut acc);
    check_never_pushed_back(&world, &rewrite, &mut acc);
    acc.print(&rewrite, &runs, reads);
    let mut by_replica: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for r in &reports {
        *by_replica.entry((r.replica, r.kind)).or_default() += 1;
    }
    println!("storm: reports by replica and kind {by_replica:?}");

    assert!(
        acc.broken.is_empty(),
        "undocumented 5xx or no answer: {:#?}",
        acc.broken
    );
    assert!(
        read_errors.is_empty(),
        "reads during the storm: {read_errors:#?}"
    );
    assert!(
        acc.wrong.is_empty(),
        "{} broken promises: {:#?}\nreports: {reports:#?}",
        acc.wrong.len(),
        acc.wrong
    );
    let enough = |v: Verb| acc.acked.get(&v).copied().unwrap_or(0) >= 5;
    assert!(
        [Verb::Create, Verb::Update, Verb::Rotate, Verb::Delete]
            .into_iter()
            .all(enough)
            && rewrite.removed.len() == DROPPED_BY_OPS
            && acc.reported.get("rewritten").is_some_and(|n| *n > 0)
            && runs.pulls >= 10,
        "too little happened to tell: {acc:?} {runs:?}"
    );
    assert!(
        runs.pull_failures.len() <= runs.pulls / 100 + 1,
        "{} of {} `git pull --ff-only` failed: {:#?}",
        runs.pull_failures.len(),
        runs.pulls,
        runs.pull_failures
    );
    for (name, api) in &apis {
        check_served(name, api, &world, &expected, &ledger).await;
    }
    for (_, r) in &replicas {
        r.assert_clean().await;
    }
}

/// The writes reported removed (rewritten or dropped), by their ledger index. Every report
/// must name a write of the ledger, and a rewritten one a commit ops' force-push removed;
/// every removed commit of an acknowledged write must be reported by some replica.
fn removed_writes(
    world: &World,
    ledger: &[Write],
    repos: &[PathBuf],
    reports: &[Reported],
    rewrite: &Rewrite,
    acc: &mut Accounts,
) -> BTreeMap<usize, &'static str> {
    let mut removed = BTreeMap::new();
    for r in reports {
        let full = rewrite.removed.iter().find(|c| c.starts_with(&r.commit));
        if r.kind == "rewritten" && (r.commit.len() < 7 || full.is_none()) {
            acc.wrong
                .push(format!("reported rewritten, not removed by ops: {r:?}"));
        }
        match write_of(ledger, repos, &r.commit, r.tenant, &r.key, r.verb) {
            Some(i) => {
                removed.insert(i, r.kind);
            }
            None => acc
                .wrong
                .push(format!("a report of no write in the ledger: {r:?}")),
        }
    }
    for commit in &rewrite.removed {
        let subject = git(&world.origin(), &["log", "-1", "--format=%s", commit]);
        let (verb, target) = subject.trim().split_once(' ').unwrap();
        let (tenant, key) = target.split_once('/').unwrap();
        let verb = Verb::parse(verb).unwrap();
        let write = write_of(ledger, repos, commit, tenant, key, verb);
        let reported = reports.iter().any(|r| {
            r.kind == "rewritten" && commit.starts_with(&r.commit) && !r.commit.is_empty()
        });
        match write {
            Some(i) if ledger[i].acked() && !reported => acc.wrong.push(format!(
                "removed by the force-push and reported by no replica: {commit} {:?}",
                ledger[i]
            )),
            None => acc.wrong.push(format!(
                "ops removed {commit} ({subject}), a write of no writer"
            )),
            _ => {}
        }
    }
    removed
}

/// A write is refused only as the removal of one of its key's acknowledged writes
/// explains: a 404 for a key whose create (or a later write) a replica reported removed.
fn check_refusals(ledger: &[Write], removed: &BTreeMap<usize, &'static str>, acc: &mut Accounts) {
    let touched: BTreeSet<(&str, &str)> = removed
        .keys()
        .map(|i| (ledger[*i].tenant, ledger[*i].key.as_str()))
        .collect();
    for w in ledger {
        let Answer::Refused(status, code) = &w.answer else {
            continue;
        };
        let explained = *status == 404
            && code == "key_not_found"
            && touched.contains(&(w.tenant, w.key.as_str()));
        if !explained {
            acc.wrong
                .push(format!("refused, and no removed write explains it: {w:?}"));
        }
    }
}

/// The remote's final file of each tenant holds exactly the expected keys: present or
/// gone, with the description and the current token's hash the ledger says.
fn check_remote_files(world: &World, expected: &Expected, acc: &mut Accounts) {
    for tenant in TENANTS {
        let on_remote = stored_keys(&world.on_remote(tenant));
        for ((t, key), want) in expected.iter().filter(|((t, _), _)| *t == tenant) {
            let got = on_remote.get(key);
            let fine = match (want, got) {
                (None, None) => true,
                (Some(live), Some(stored)) => {
                    stored.description == live.description
                        && stored.hash == Some(hash_of(&live.token))
                }
                _ => false,
            };
            if !fine {
                acc.wrong.push(format!(
                    "{t}/{key} on the remote is {got:?}, the ledger says {}",
                    match want {
                        None => "gone".to_owned(),
                        Some(live) => format!("present, description {:?}", live.description),
                    }
                ));
            }
        }
    }
}

/// No commit ops removed is on the remote's `main` again.
fn check_never_pushed_back(world: &World, rewrite: &Rewrite, acc: &mut Accounts) {
    for commit in &rewrite.removed {
        let back = try_git(
            &world.origin(),
            &["merge-base", "--is-ancestor", commit, "main"],
        )
        .is_ok();
        if back {
            acc.wrong.push(format!(
                "{commit}, removed by the force-push, was pushed back"
            ));
        }
    }
}

/// A replica serves each tenant's keys as the remote's `main` holds them, and of every
/// token the ledger saw, exactly the expected current ones verify.
async fn check_served(name: &str, api: &Api, world: &World, expected: &Expected, ledger: &[Write]) {
    for tenant in TENANTS {
        let remote: BTreeMap<_, _> = stored_keys(&world.on_remote(tenant))
            .into_iter()
            .map(|(k, s)| (k, (s.description, s.hint)))
            .collect();
        assert_eq!(served(api, tenant).await, remote, "{name} serves {tenant}");
    }
    let mut wrong = Vec::new();
    for w in ledger {
        let (Some(token), Some(want)) = (w.token(), expected.get(&(w.tenant, w.key.clone())))
        else {
            continue;
        };
        let current = want.as_ref().is_some_and(|live| live.token == token);
        let res = api.verify_req(w.tenant, token).send().await.unwrap();
        assert_eq!(res.status(), 200, "verify on {name}");
        let valid = res.json::<Value>().await.unwrap()["valid"] == true;
        if valid != current {
            wrong.push(format!(
                "{} {}/{}: valid={valid}",
                w.verb.word(),
                w.tenant,
                w.key
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{name} verifies tokens wrongly: {wrong:#?}"
    );
}

// ---- a push built before a force-push ----

/// ops drop the last two commits of the remote, wherever `hide_remote` put it.
fn ops_force_back_at(world: &World, remote: &Path) {
    let (ops, remote) = (world.ops(), remote.to_str().unwrap());
    git(&ops, &["fetch", "--quiet", remote, "main"]);
    git(
        &ops,
        &[
            "push",
            "--quiet",
            "--force",
            remote,
            "FETCH_HEAD~2:refs/heads/main",
        ],
    );
}

#[tokio::test]
async fn an_async_write_built_on_the_tip_a_force_push_removed_never_pushes_the_removed_commits_back()
 {
    // Arrange: three creates through A, pushed; A does not pull on its own meanwhile.
    let world = World::new();
    let a = Replica::start(
        &world,
        "async",
        &[("KEYWARD_GIT__PULL_INTERVAL_SECONDS", "60")],
    )
    .await;
    for name in ["kept", "gone-1", "gone-2"] {
        assert_eq!(a.api.create("acme", name).await.status(), 201);
    }
    until(
        "A's creates reach the remote",
        Instant::now() + Duration::from_secs(10),
        || async { world.remote_names("acme").contains("gone-2") },
    )
    .await;
    let removed: Vec<String> = git(&world.origin(), &["rev-list", "-2", "main"])
        .lines()
        .map(str::to_owned)
        .collect();

    // Act: while A cannot reach the remote, it takes a write on the tip it knows, and ops
    // drop the last two commits; then the remote is back.
    world.hide_remote();
    assert_eq!(a.api.create("globex", "after").await.status(), 201);
    ops_force_back_at(&world, &world.moved());
    world.restore_remote();

    // Assert: the write lands on the new tip, and the removed commits stay removed.
    until(
        "A's write reaches the remote",
        Instant::now() + Duration::from_secs(15),
        || async { world.remote_subjects()[0] == "create globex/after" },
    )
    .await;
    for commit in &removed {
        assert!(
            try_git(
                &world.origin(),
                &["merge-base", "--is-ancestor", commit, "main"]
            )
            .is_err(),
            "{commit}, removed by the force-push, is on main again: {:?}",
            world.remote_subjects()
        );
    }
    let names = world.remote_names("acme");
    assert!(
        names.contains("kept") && !names.contains("gone-1"),
        "{names:?}"
    );
    let status = a.api.status("acme").await;
    let rewritten: BTreeSet<&str> = status["git"]["rewritten"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["keyName"].as_str().unwrap())
        .collect();
    assert_eq!(rewritten, BTreeSet::from(["gone-1", "gone-2"]), "{status}");
}
