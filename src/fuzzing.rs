//! The properties the fuzz targets check, in one place: `fuzz/fuzz_targets/*` call these
//! under libFuzzer (nightly), and `tests/api/fuzz_regressions.rs` replays every saved input
//! in `fuzz/regressions/<target>/` through them on stable, in `cargo test`.
//!
//! Each function panics when a property does not hold.

use std::sync::OnceLock;

use crate::auth::JwtVerifier;
use crate::config::AuthSettings;
use crate::domain::{
    KeyEntry, KeyHash, KeyName, Permission, Permissions, PresentedKey, TokenPrefix,
};
use crate::store::yaml_edit::{self, Node};
use crate::store::{SecurityFile, render};

/// The loader never panics, and what it accepts it accepts again, the same way.
pub fn loader(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = SecurityFile::parse(text) {
        assert_eq!(SecurityFile::parse(text).ok(), Some(file));
    }
    let _ = yaml_edit::item_positions(text);
}

/// The surgical editor never panics; on a file the loader accepts, an edit that still
/// loads adds, keeps or removes exactly one entry (the store then checks the rest).
/// The first byte chooses the operation and the entry; the rest is the file.
pub fn editor(data: &[u8]) {
    let Some((&op, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let before = SecurityFile::parse(text).ok();
    let index = usize::from(op >> 2);
    let result = match op % 3 {
        0 => yaml_edit::append_item(text, &item("fuzz-new")),
        1 => yaml_edit::replace_item(text, index, &item("fuzz-replaced")),
        _ => yaml_edit::remove_item(text, index),
    };
    let (Some(before), Ok(after)) = (before, result) else {
        return;
    };
    let Ok(after) = SecurityFile::parse(&after) else {
        return;
    };
    match op % 3 {
        0 => assert_eq!(after.keys.len(), before.keys.len() + 1),
        1 => assert_eq!(after.keys.len(), before.keys.len()),
        _ => assert_eq!(after.keys.len() + 1, before.keys.len()),
    }
}

/// An entry as the store writes it: through the same renderer.
fn item(name: &str) -> Node {
    let permission = Permission::parse("orders:read").expect("a valid permission");
    render::entry_node(&KeyEntry {
        name: KeyName::parse(name).expect("a valid name"),
        hash: KeyHash::parse(&"ab".repeat(32)).expect("a valid hash"),
        enabled: true,
        permissions: Permissions::new(vec![permission]).expect("valid permissions"),
        description: None,
        created_at: None,
        created_by: None,
        expires_at: None,
        previous_hashes: Vec::new(),
    })
}

/// A presented key never panics the parser, and one it accepts is looked up by the SHA-256
/// of exactly the string presented.
pub fn token(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    static PREFIX: OnceLock<TokenPrefix> = OnceLock::new();
    let prefix = PREFIX.get_or_init(|| TokenPrefix::parse("kw").expect("a valid prefix"));
    if let Ok(key) = PresentedKey::parse(s, prefix) {
        assert_eq!(*key.hash(), KeyHash::of(s.as_bytes()));
    }
}

/// No input panics the JWT verifier, and none passes it: without the secret, anything
/// accepted would be a forgery.
pub fn jwt(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    static VERIFIER: OnceLock<JwtVerifier> = OnceLock::new();
    let verifier = VERIFIER.get_or_init(|| {
        let auth = AuthSettings {
            hs256_secret: Some("fuzz-secret-fuzz-secret-fuzz-secret!!".to_owned().into()),
            ..AuthSettings::default()
        };
        JwtVerifier::from_settings(&auth).expect("a valid verifier")
    });
    assert!(verifier.verify(token).is_err());
}
