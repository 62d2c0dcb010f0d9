//! The world git-mode tests run in: a bare `origin.git` (branch `main`) and ops' own clone,
//! which commits, force-pushes and breaks things as ops do.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::helpers::*;

/// A bare `origin.git` (branch `main`) holding `tenants/acme` (ACME_FILE) and
/// `tenants/globex` (no keys), and an ops clone that commits as ops@example.com.
pub struct World {
    dir: TempDir,
}

impl World {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git(
            root,
            &["init", "--quiet", "--bare", "-b", "main", "origin.git"],
        );
        git(root, &["clone", "--quiet", "origin.git", "ops"]);
        let ops = root.join("ops");
        git(&ops, &["config", "user.email", "ops@example.com"]);
        git(&ops, &["config", "user.name", "ops"]);
        std::fs::create_dir_all(ops.join("tenants/acme")).unwrap();
        std::fs::create_dir_all(ops.join("tenants/globex")).unwrap();
        std::fs::write(ops.join("tenants/acme/security.yml"), ACME_FILE).unwrap();
        std::fs::write(ops.join("tenants/globex/security.yml"), "apiKeys: []\n").unwrap();
        git(&ops, &["add", "."]);
        git(&ops, &["commit", "--quiet", "-m", "Start"]);
        git(&ops, &["push", "--quiet", "origin", "main"]);
        Self { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn origin(&self) -> PathBuf {
        self.root().join("origin.git")
    }

    /// Where `hide_remote` puts the remote.
    pub fn moved(&self) -> PathBuf {
        self.root().join("origin.moved")
    }

    pub fn ops(&self) -> PathBuf {
        self.root().join("ops")
    }

    /// The remote is gone from where every clone looks for it.
    pub fn hide_remote(&self) {
        std::fs::rename(self.origin(), self.moved()).unwrap();
    }

    pub fn restore_remote(&self) {
        std::fs::rename(self.moved(), self.origin()).unwrap();
    }

    /// Every push to the remote now hangs `seconds` in its `pre-receive` hook, which first
    /// notes its pid in the file returned.
    pub fn slow_remote(&self, seconds: u32) -> PathBuf {
        let pids = self.root().join("pre-receive-pids");
        self.hook(&format!(
            "#!/bin/sh\necho $$ >> '{}'\nsleep {seconds}\n",
            pids.display()
        ));
        pids
    }

    /// Pushes to the remote are quick again.
    pub fn fast_remote(&self) {
        self.hook("#!/bin/sh\nexit 0\n");
    }

    pub fn hook(&self, script: &str) {
        let hook = self.origin().join("hooks/pre-receive");
        std::fs::write(&hook, script).unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// ops edit a tenant's file, commit and push to `remote` (where `hide_remote` put it).
    pub fn ops_commit_at(
        &self,
        remote: &Path,
        tenant: &str,
        edit: impl FnOnce(String) -> String,
        message: &str,
    ) {
        let ops = self.ops();
        let remote = remote.to_str().unwrap();
        git(&ops, &["pull", "--quiet", "--ff-only", remote, "main"]);
        let file = ops.join("tenants").join(tenant).join("security.yml");
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, edit(text)).unwrap();
        git(&ops, &["commit", "--quiet", "-am", message]);
        git(&ops, &["push", "--quiet", remote, "HEAD:main"]);
    }

    /// ops throw away the remote's last `commits` commits: reset and force-push.
    pub fn ops_force_back(&self, commits: usize) {
        let ops = self.ops();
        git(&ops, &["pull", "--quiet", "--ff-only", "origin", "main"]);
        git(
            &ops,
            &["reset", "--quiet", "--hard", &format!("HEAD~{commits}")],
        );
        git(&ops, &["push", "--quiet", "--force", "origin", "main"]);
    }

    pub fn on_remote(&self, tenant: &str) -> String {
        git(
            &self.origin(),
            &["show", &format!("main:tenants/{tenant}/security.yml")],
        )
    }

    /// The key names in the remote's version of a tenant's file.
    pub fn remote_names(&self, tenant: &str) -> BTreeSet<String> {
        names_in(&self.on_remote(tenant))
    }

    pub fn remote_head(&self) -> String {
        git(&self.origin(), &["rev-parse", "main"])
            .trim()
            .to_owned()
    }

    /// The subjects of `main` on the remote, newest first.
    pub fn remote_subjects(&self) -> Vec<String> {
        git(&self.origin(), &["log", "--format=%s", "main"])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The `Request-Id:` line of a commit's message (the commit may no longer be on `main`).
    pub fn request_id_of(&self, commit: &str) -> String {
        let message = git(&self.origin(), &["log", "-1", "--format=%B", commit]);
        message
            .lines()
            .find_map(|l| l.strip_prefix("Request-Id: "))
            .unwrap_or_else(|| panic!("no Request-Id in {commit}:\n{message}"))
            .trim()
            .to_owned()
    }

    /// A fresh clone for a keyward replica.
    pub fn clone_for(&self, name: &str) -> PathBuf {
        git(self.root(), &["clone", "--quiet", "origin.git", name]);
        self.root().join(name)
    }

    /// ops edit a tenant's file, commit and push.
    pub fn ops_commit(&self, tenant: &str, edit: impl FnOnce(String) -> String, message: &str) {
        self.ops_commit_at(&self.origin(), tenant, edit, message);
    }

    /// The remote's log: author name, author email, committer name, subject.
    pub fn remote_log(&self) -> String {
        git(&self.origin(), &["log", "--format=%an|%ae|%cn|%s", "main"])
    }
}

/// The `name`s of a security.yml's `apiKeys`.
pub fn names_in(text: &str) -> BTreeSet<String> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
    doc["apiKeys"]
        .as_sequence()
        .unwrap_or_else(|| panic!("no apiKeys list in:\n{text}"))
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_owned())
        .collect()
}

/// keyward in git mode on `clone`, in this process, pulling every second unless `configure`
/// says otherwise.
pub async fn keyward_on(
    clone: &Path,
    configure: impl FnOnce(&mut keyward::config::Settings),
) -> TestApp {
    let state = tempfile::tempdir().unwrap();
    let tenants = clone.join("tenants");
    spawn_app_on(state, move |s| {
        s.tenants_dir = tenants;
        s.git.enabled = true;
        s.git.pull_interval_seconds = 1;
        configure(s);
    })
    .await
}
