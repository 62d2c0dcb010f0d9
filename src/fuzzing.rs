//! The properties the fuzz targets check, in one place: `fuzz/fuzz_targets/*` call these
//! under libFuzzer, and `tests/api/fuzz_regressions.rs` replays every saved input
//! in `fuzz/regressions/<target>/` through them on stable, in `cargo test`.
//!
//! Each function panics when a property does not hold.

use std::sync::OnceLock;

use crate::auth::JwtVerifier;
use crate::config::AuthSettings;
use crate::domain::{
    Description, KeyEntry, KeyHash, KeyName, Permission, Permissions, PresentedKey, PreviousHash,
    Subject, TokenHint, TokenPrefix,
};
use crate::store::yaml_edit::{self, Node};
use crate::store::{self, Change, SecurityFile, render};

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
/// loads adds, keeps or removes exactly one entry; and the store's incremental check of an
/// edit never passes what its full check (a parse of the whole new text) refuses.
/// The first byte chooses the operation and the entry; the rest is the file, where `$h` and
/// one character stand for a hash (`expand_hashes`).
pub fn editor(data: &[u8]) {
    let Some((&op, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let text = &*expand_hashes(text);
    let index = usize::from(op >> 2);
    edit_counts(op, index, text);
    // The entry varies with the length of the file, so every file meets every kind of entry.
    let variant = text.len() % 4;
    store::checks_agree(text, |file| {
        let at = |i: usize| file.keys.get(i % file.keys.len().max(1));
        Some(match op % 3 {
            0 => Change::Create(fuzz_entry(item_entry("fuzz-new"), variant, file)),
            1 => Change::Replace(fuzz_entry(at(index)?.clone(), variant, file)),
            _ => Change::Delete(at(index)?.name.clone()),
        })
    });
}

/// `$h` and the character after it stand for a valid hash (`sha256:` and the SHA-256 of that
/// character): files the fuzzer mutates stay files the loader accepts far more often than
/// with 64 hex digits that most mutations break.
fn expand_hashes(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("$h") {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(at) = rest.find("$h") {
        out.push_str(&rest[..at]);
        let mut after = rest[at + 2..].chars();
        match after.next() {
            Some(c) => out.push_str(&KeyHash::of(c.to_string().as_bytes()).to_string()),
            None => out.push_str("$h"),
        }
        rest = after.as_str();
    }
    out.push_str(rest);
    out.into()
}

/// The editor alone: an edit that still loads changes the number of entries by one.
fn edit_counts(op: u8, index: usize, text: &str) {
    let before = SecurityFile::parse(text).ok();
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
    render::entry_node(&item_entry(name))
}

fn item_entry(name: &str) -> KeyEntry {
    let permission = Permission::parse("orders:read").expect("a valid permission");
    KeyEntry {
        name: KeyName::parse(name).expect("a valid name"),
        hash: KeyHash::parse(&"ab".repeat(32)).expect("a valid hash"),
        hint: None,
        enabled: true,
        permissions: Permissions::new(vec![permission]).expect("valid permissions"),
        description: None,
        created_at: None,
        created_by: None,
        rotated_at: None,
        expires_at: None,
        previous_hashes: Vec::new(),
    }
}

/// `entry` changed the way a write of kind `variant` would change it: disabled, given every
/// optional field (with strings YAML reads in more than one way), rotated, or given the hash
/// of the file's first entry (a duplicate, which both checks must refuse).
fn fuzz_entry(mut entry: KeyEntry, variant: usize, file: &SecurityFile) -> KeyEntry {
    let at = |unix| time::OffsetDateTime::from_unix_timestamp(unix).expect("a valid time");
    match variant {
        0 => entry.enabled = !entry.enabled,
        1 => {
            let permissions = ["*", "orders:*", "a:b", "true", "x#y"]
                .iter()
                .map(|p| Permission::parse(p).expect("a valid permission"))
                .collect();
            entry.permissions = Permissions::new(permissions).expect("valid permissions");
            let description = "it's \"quoted\" # & *a !t | > - ? : {[,]}\n\ttab \u{2028} ü";
            entry.description = Some(Description::parse(description).expect("valid"));
            entry.created_at = Some(at(1_790_000_000));
            entry.created_by = Some(Subject::parse("alice@example.com").expect("valid"));
            entry.expires_at = Some(at(1_800_000_000));
        }
        2 => {
            entry.hint = Some(TokenHint::parse("kw_...0eOu").expect("a valid hint"));
            entry.rotated_at = Some(at(1_795_000_000));
            let old = std::mem::replace(&mut entry.hash, KeyHash::of(b"fuzz-rotated"));
            entry.previous_hashes.push(PreviousHash {
                hash: old,
                expires_at: at(1_800_000_000),
            });
        }
        _ => {
            if let Some(first) = file.keys.first() {
                entry.hash = first.hash;
            }
        }
    }
    entry
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
