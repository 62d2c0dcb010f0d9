//! Stamps the build with the commit it is built from (`BUILD_COMMIT`, shown by the
//! `keyward_build_info` metric); a build outside a git checkout says `unknown`. Not named
//! `KEYWARD_*`: cargo hands the variable to what it runs, and the configuration reads every
//! `KEYWARD_*` variable as a setting.

use std::process::Command;

fn main() {
    if let Some(commit) = git(&["rev-parse", "--short=12", "HEAD"]) {
        println!("cargo:rustc-env=BUILD_COMMIT={commit}");
    }
    // A new commit moves HEAD's branch (or HEAD itself, when detached).
    for path in ["HEAD", "packed-refs"] {
        rerun_if_changed(path);
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        rerun_if_changed(&branch);
    }
}

fn rerun_if_changed(git_path: &str) {
    if let Some(path) = git(&["rev-parse", "--git-path", git_path]) {
        println!("cargo:rerun-if-changed={path}");
    }
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}
