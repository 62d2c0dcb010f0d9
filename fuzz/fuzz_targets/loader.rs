//! The security.yml loader never panics, and anything it accepts it accepts again.
#![no_main]

use keyward::store::SecurityFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = SecurityFile::parse(text) {
        assert_eq!(SecurityFile::parse(text).ok(), Some(file));
    }
    let _ = keyward::store::yaml_edit::item_positions(text);
});
