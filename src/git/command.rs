//! The runner every git command line goes through: no shell, no prompts, keyward's own
//! settings per call, and a time limit after which git is killed with its children.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::GitError;

/// Settings keyward's own git commands rely on, whatever the global configuration says.
const CONFIG: &[&str] = &[
    "core.hooksPath=/dev/null",
    "commit.gpgsign=false",
    "core.autocrlf=false",
    "core.fsmonitor=false",
    "user.useConfigOnly=false",
    "advice.detachedHead=false",
    "gc.auto=0",
    "maintenance.auto=false",
    "fetch.writeCommitGraph=false",
    "fetch.recurseSubmodules=false",
];

/// Runs git in `dir` with keyward's settings, no prompts and a time limit; stdout on
/// success.
pub(super) fn run(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<Vec<u8>>,
    limit: Duration,
) -> Result<String, GitError> {
    run_bytes(dir, args, env, stdin, limit).map(|b| String::from_utf8_lossy(&b).into_owned())
}

pub(super) fn run_bytes(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<Vec<u8>>,
    limit: Duration,
) -> Result<Vec<u8>, GitError> {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(dir);
    for c in CONFIG {
        cmd.args(["-c", c]);
    }
    cmd.args(args)
        // No prompts: git's own, and ssh's through git's askpass. Ops' ssh settings
        // (GIT_SSH_COMMAND, core.sshCommand, ~/.ssh/config) are left as they are.
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a timeout kills git and everything it started (ssh, a
        // local remote's receive-pack and its hooks).
        .process_group(0);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let command = args.first().copied().unwrap_or_default().to_owned();
    let mut child = cmd.spawn().map_err(GitError::Missing)?;
    let feeder = stdin.and_then(|input| {
        let mut pipe = child.stdin.take()?;
        Some(std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        }))
    });
    let (mut stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
    let err_reader = std::thread::spawn(move || {
        let mut err = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut err);
        }
        err
    });
    let out_reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut out);
        }
        out
    });
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_micros(200);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(5));
            }
            _ => {
                kill_group(child.id());
                let _ = child.kill();
                let _ = child.wait();
                return Err(GitError::Timeout { command, limit });
            }
        }
    };
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if status.success() {
        Ok(out)
    } else {
        Err(GitError::Failed {
            command,
            stderr: String::from_utf8_lossy(&err).trim().to_owned(),
        })
    }
}

fn kill_group(pid: u32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}
