//! The surgical editor never panics, and on a file the loader accepts, a successful edit
//! that still loads means exactly the intended change (what the store checks before writing).
#![no_main]

use keyward::store::SecurityFile;
use keyward::store::yaml_edit::{self, Node};
use libfuzzer_sys::fuzz_target;

fn item(name: &str) -> Node {
    Node::Map(vec![
        ("name".into(), Node::Str(name.into())),
        ("hash".into(), Node::Str(format!("sha256:{}", "ab".repeat(32)))),
        ("enabled".into(), Node::Bool(true)),
        ("permissions".into(), Node::Seq(vec![Node::Str("orders:read".into())])),
    ])
}

fuzz_target!(|data: &[u8]| {
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
});
