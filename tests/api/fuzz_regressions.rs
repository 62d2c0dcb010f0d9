//! Replays every saved fuzz input on stable: `fuzz/regressions/<target>/*` through the same
//! property checks the libFuzzer targets run (`keyward::fuzzing`). A crash libFuzzer finds
//! goes into that directory once fixed, and stays fixed.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no inputs in {}", dir.display());
    for input in inputs {
        let data = std::fs::read(&input).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{} fails its property", input.display());
    }
}

#[test]
fn saved_loader_inputs_still_pass() {
    replay("loader", keyward::fuzzing::loader);
}

#[test]
fn saved_editor_inputs_still_pass() {
    replay("editor", keyward::fuzzing::editor);
}

#[test]
fn saved_token_inputs_still_pass() {
    replay("token", keyward::fuzzing::token);
}

#[test]
fn saved_jwt_inputs_still_pass() {
    replay("jwt", keyward::fuzzing::jwt);
}
