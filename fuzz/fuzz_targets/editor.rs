//! See `keyward::fuzzing::editor` for the property checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyward::fuzzing::editor(data));
