//! A JWKS URL: fetched at start, refetched on an unknown kid, at most once per 30 s.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{App, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::helpers::*;

struct IdP {
    jwks: Mutex<Value>,
    fetches: AtomicUsize,
}

/// An Ed25519 key: its JWK (with `kid`) and a signer.
fn ed_key(kid: &str) -> (Value, EncodingKey) {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": kid,
                     "x": B64.encode(key.verifying_key().as_bytes())});
    let signer = EncodingKey::from_ed_der(key.to_pkcs8_der().unwrap().as_bytes());
    (jwk, signer)
}

fn signed(kid: &str, key: &EncodingKey) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    let claims = json!({"exp": now() + 600, "scope": READ, "tenant_id": "acme"});
    encode(&header, &claims, key).unwrap()
}

/// A tiny identity provider on a random port serving `/jwks.json`.
fn start_idp(idp: Arc<IdP>) -> String {
    let data = web::Data::from(idp);
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).route(
            "/jwks.json",
            web::get().to(|idp: web::Data<IdP>| async move {
                idp.fetches.fetch_add(1, Ordering::SeqCst);
                HttpResponse::Ok().json(idp.jwks.lock().clone())
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    format!("http://127.0.0.1:{port}/jwks.json")
}

// Multi-threaded: start-up fetches the JWKS synchronously while the test's IdP, on this
// same runtime, must answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_provider_key_rotation_works_without_a_restart() {
    // Arrange: the IdP serves key A; keyward fetches it at start.
    let (jwk_a, key_a) = ed_key("a");
    let (jwk_b, key_b) = ed_key("b");
    let (jwk_c, key_c) = ed_key("c");
    let idp = Arc::new(IdP {
        jwks: Mutex::new(json!({"keys": [jwk_a]})),
        fetches: AtomicUsize::new(0),
    });
    let url = start_idp(idp.clone());
    let app = spawn_app_with(|s| {
        s.auth.hs256_secret = None;
        s.auth.jwks_url = Some(url);
    })
    .await;
    assert_eq!(
        idp.fetches.load(Ordering::SeqCst),
        1,
        "fetched once at start"
    );
    let list_as = async |token: String| app.list_keys("acme", &token).await.status();
    assert_eq!(list_as(signed("a", &key_a)).await, 200);

    // Act: the IdP rotates to key B.
    *idp.jwks.lock() = json!({"keys": [jwk_b]});

    // Assert: a token with the new kid triggers one refetch and is accepted.
    assert_eq!(list_as(signed("b", &key_b)).await, 200);
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
    assert_eq!(list_as(signed("b", &key_b)).await, 200);
    assert_eq!(
        idp.fetches.load(Ordering::SeqCst),
        2,
        "known kids need no fetch"
    );

    // Another unknown kid within 30 s: no refetch (rate limit), so it is refused.
    *idp.jwks.lock() = json!({"keys": [jwk_c]});
    assert_eq!(list_as(signed("c", &key_c)).await, 401);
    assert_eq!(list_as(signed("zzz", &key_c)).await, 401);
    assert_eq!(
        idp.fetches.load(Ordering::SeqCst),
        2,
        "at most one refetch per 30 s"
    );
}

#[tokio::test]
async fn an_unreachable_jwks_url_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tenants")).unwrap();
    let mut s = settings_for(dir.path());
    s.auth.jwks_url = Some("http://127.0.0.1:9/jwks.json".into());
    let err = keyward::startup::Application::build(s)
        .await
        .err()
        .expect("refused");
    assert!(
        format!("{err:#}").contains("cannot fetch the JWKS"),
        "{err:#}"
    );
}
