//! See `keyward::fuzzing::jwt` for the property checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keyward::fuzzing::jwt(data));
