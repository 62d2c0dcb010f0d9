//! Real git, as ops run it: one command in one work tree, which must succeed. The bare
//! remote and ops' clone that git-mode tests share are `crate::git_world`.

use std::path::Path;

/// `git -C dir args...`, which must succeed; returns its standard output.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
