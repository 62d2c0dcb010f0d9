//! JWT header and claims parsing: no panic on any input, and nothing unsigned gets through.
#![no_main]

use std::sync::OnceLock;

use keyward::auth::JwtVerifier;
use keyward::config::AuthSettings;
use libfuzzer_sys::fuzz_target;

fn verifier() -> &'static JwtVerifier {
    static V: OnceLock<JwtVerifier> = OnceLock::new();
    V.get_or_init(|| {
        let auth = AuthSettings {
            hs256_secret: Some("fuzz-secret-fuzz-secret-fuzz-secret!!".to_owned().into()),
            ..AuthSettings::default()
        };
        JwtVerifier::from_settings(&auth).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    // Without the secret no input can be valid: anything accepted is a forgery.
    assert!(verifier().verify(token).is_err());
});
