//! The console in a real browser: `tests/browser/` (pytest + Playwright driving Debian's
//! Chromium) against this build's `keyward` binary. A test binary of its own, so cargo runs
//! it after the API tests rather than beside them: the page's waits then measure the
//! console, not a machine busy with kill -9 loops.

use std::process::Command;

/// Playwright for Python and Chromium, as `.ci/run` installs them. Locally without them the
/// browser suite is skipped with a message; in CI their absence is a failure.
fn browser_available() -> bool {
    let playwright = Command::new("python3")
        .args(["-c", "import playwright, pytest"])
        .status()
        .is_ok_and(|s| s.success());
    let chromium = std::path::Path::new("/usr/bin/chromium").exists();
    let found = playwright && chromium;
    assert!(
        found || std::env::var_os("CI").is_none(),
        "CI must install chromium, playwright and pytest (see .ci/run)"
    );
    if !found {
        eprintln!(
            "SKIPPED: the console's browser tests: `apt-get install chromium` and \
             `python3 -m pip install playwright pytest` to run them"
        );
    }
    found
}

#[test]
fn the_console_works_in_a_real_browser() {
    if !browser_available() {
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("python3")
        .args([
            "-m",
            "pytest",
            "tests/browser",
            "-q",
            "-p",
            "no:cacheprovider",
        ])
        .current_dir(root)
        .env("KEYWARD_BIN", env!("CARGO_BIN_EXE_keyward"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", report.lines().last().unwrap_or_default());
}
