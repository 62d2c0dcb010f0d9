//! keyward as a real process: the built binary started with `keyward serve` in a temp dir,
//! its JSON log read line by line, for what only a process has (signals, kills, restarts).

use std::path::Path;

use serde_json::{Value, json};

use super::{SECRET, writer};

/// The keyward binary cargo built for these tests.
pub fn keyward() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
}

/// A temp dir whose `tenants/` holds these tenants' files.
pub fn tenants_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (tenant, text) in files {
        let t = dir.path().join("tenants").join(tenant);
        std::fs::create_dir_all(&t).unwrap();
        std::fs::write(t.join("security.yml"), text).unwrap();
    }
    dir
}

/// A real `keyward serve` process with JSON logs, in `dir`.
pub struct Server {
    pub child: std::process::Child,
    pub port: u16,
    pub lines: std::sync::mpsc::Receiver<String>,
    pub log: Vec<String>,
}

pub fn serve_process(dir: &Path) -> Server {
    serve_process_with(dir, &[])
}

/// `serve_process` with more `KEYWARD_*` settings.
pub fn serve_process_with(dir: &Path, settings: &[(&str, String)]) -> Server {
    let child = keyward()
        .current_dir(dir)
        .envs(settings.iter().map(|(k, v)| (*k, v.as_str())))
        .env("KEYWARD_LISTEN", "127.0.0.1:0")
        .env("KEYWARD_LOG_FORMAT", "json")
        .env("KEYWARD_AUTH__HS256_SECRET", SECRET)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    started(child)
}

/// A `keyward serve` just spawned with its JSON log on a pipe, once it listens and is ready.
pub fn started(mut child: std::process::Child) -> Server {
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut server = Server {
        child,
        port: 0,
        lines,
        log: Vec::new(),
    };
    let listening = server.wait_for("keyward listening");
    server.port = listening["port"].as_u64().unwrap() as u16;
    server.wait_for("keyward ready");
    server
}

impl Drop for Server {
    /// A test that fails or ends early leaves no process behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Waits for a JSON log line whose message contains `needle`.
    pub fn wait_for(&mut self, needle: &str) -> Value {
        // Generous: a start after a kill may wait out a killed git's lock (10 s).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            let v: Value =
                serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
            self.log.push(line);
            if v["message"].as_str().is_some_and(|m| m.contains(needle)) {
                return v;
            }
        }
        panic!("no log line with {needle:?}; got {:#?}", self.log);
    }

    pub fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Whether `POST /api/{tenant}/apiKeys/verify` finds `key` valid.
    pub async fn valid(&self, tenant: &str, key: &str) -> bool {
        let res = reqwest::Client::new()
            .post(self.url(&format!("/api/{tenant}/apiKeys/verify")))
            .json(&json!({"key": key}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.unwrap()["valid"] == true
    }

    /// `GET /metrics`, as a scraper reads it.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// The value of a sample without labels in a `/metrics` exposition.
pub fn sample(exposition: &str, name: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// `writers` clients creating keys named `r<round>-w<w>-<i>` on `url` (as acme's writer)
/// until the server is gone; each returns the names answered 201. Any other answer fails.
pub fn create_until_gone(
    url: &str,
    round: u64,
    writers: usize,
) -> Vec<tokio::task::JoinHandle<Vec<String>>> {
    (0..writers)
        .map(|w| {
            let url = url.to_owned();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut ok = Vec::new();
                for i in 0.. {
                    let name = format!("r{round}-w{w}-{i}");
                    let res = client
                        .post(&url)
                        .bearer_auth(writer("acme"))
                        .json(&json!({"name": name}))
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status() == 201 => ok.push(name),
                        Ok(r) => panic!("unexpected {}", r.status()),
                        Err(_) => break, // the server is gone
                    }
                }
                ok
            })
        })
        .collect()
}
