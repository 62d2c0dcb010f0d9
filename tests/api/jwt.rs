//! Asymmetric JWTs from a JWKS file, with real keys generated here: RS256, ES256, EdDSA;
//! and the edges of any JWT: critical extensions, an issuer list, a `kid` never echoed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

use crate::helpers::*;

struct Keys {
    rsa: EncodingKey,
    rsa_public_pem: String,
    ec: EncodingKey,
    ed: EncodingKey,
    other_rsa: EncodingKey,
    jwks: Value,
}

fn keys() -> Keys {
    use p256::pkcs8::EncodePrivateKey as _;
    let mut rng = rand_core::OsRng;
    let rsa = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let other = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let ec = p256::SecretKey::random(&mut rng);
    let ed = ed25519_dalek::SigningKey::generate(&mut rng);

    let ec_point = ec.public_key().to_sec1_bytes();
    let jwks = json!({"keys": [
        {"kty": "RSA", "kid": "rsa-1", "use": "sig",
         "n": B64.encode(rsa.n().to_bytes_be()), "e": B64.encode(rsa.e().to_bytes_be())},
        {"kty": "EC", "kid": "ec-1", "crv": "P-256",
         "x": B64.encode(&ec_point[1..33]), "y": B64.encode(&ec_point[33..65])},
        {"kty": "OKP", "kid": "ed-1", "crv": "Ed25519", "alg": "EdDSA",
         "x": B64.encode(ed.verifying_key().as_bytes())},
    ]});
    use rsa::pkcs1::EncodeRsaPublicKey;
    Keys {
        rsa: EncodingKey::from_rsa_der(rsa.to_pkcs1_der().unwrap().as_bytes()),
        rsa_public_pem: rsa
            .to_public_key()
            .to_pkcs1_pem(Default::default())
            .unwrap(),
        ec: EncodingKey::from_ec_der(ec.to_pkcs8_der().unwrap().as_bytes()),
        ed: EncodingKey::from_ed_der(ed.to_pkcs8_der().unwrap().as_bytes()),
        other_rsa: EncodingKey::from_rsa_der(other.to_pkcs1_der().unwrap().as_bytes()),
        jwks,
    }
}

fn claims() -> Value {
    json!({"sub": "dash", "exp": now() + 600, "scope": READ, "tenant_id": "acme"})
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, &claims(), key).unwrap()
}

async fn app_with_jwks(keys: &Keys) -> TestApp {
    let dir = tenants_with(&[("acme", ACME_FILE)]);
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, keys.jwks.to_string()).unwrap();
    spawn_app_on(dir, |s| {
        s.auth.jwks_file = Some(jwks_path);
        s.auth.hs256_secret = None;
    })
    .await
}

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_from_the_jwks_are_accepted() {
    let keys = keys();
    let app = app_with_jwks(&keys).await;
    for token in [
        sign(Algorithm::RS256, Some("rsa-1"), &keys.rsa),
        sign(Algorithm::ES256, Some("ec-1"), &keys.ec),
        sign(Algorithm::EdDSA, Some("ed-1"), &keys.ed),
    ] {
        let res = app.list_keys("acme", &token).await;
        assert_eq!(res.status(), 200);
    }
}

#[tokio::test]
async fn forged_confused_and_unknown_key_tokens_are_401() {
    let keys = keys();
    let app = app_with_jwks(&keys).await;
    let cases = [
        (
            "unknown kid",
            sign(Algorithm::RS256, Some("nope"), &keys.rsa),
        ),
        (
            "wrong key, same kid",
            sign(Algorithm::RS256, Some("rsa-1"), &keys.other_rsa),
        ),
        (
            "ES256 header on the RSA kid",
            sign(Algorithm::ES256, Some("rsa-1"), &keys.ec),
        ),
        (
            // The classic confusion: HMAC "signed" with the RSA public key as the secret.
            "HS256 with the public key as secret",
            sign(
                Algorithm::HS256,
                Some("rsa-1"),
                &EncodingKey::from_secret(keys.rsa_public_pem.as_bytes()),
            ),
        ),
        (
            "HS256 with the test secret but no secret configured",
            jwt(claims()),
        ),
    ];
    for (why, token) in cases {
        let res = app.list_keys("acme", &token).await;
        assert_eq!(res.status(), 401, "{why}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "invalid_token", "{why}");
    }
}

#[tokio::test]
async fn a_non_loopback_address_without_key_material_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tenants")).unwrap();
    let mut s = settings_for(dir.path());
    s.auth.hs256_secret = None;
    s.listen = "0.0.0.0:0".into();
    let err = keyward::startup::Application::build(s)
        .await
        .err()
        .expect("refuses");
    assert!(
        format!("{err:#}").contains("no JWT key material"),
        "{err:#}"
    );
}

#[tokio::test]
async fn dev_mode_on_loopback_makes_a_working_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tenants/acme")).unwrap();
    let mut s = settings_for(dir.path());
    s.auth.hs256_secret = None;
    let app = keyward::startup::Application::build(s).await.unwrap();
    let token = app.dev_token().expect("dev mode prints a token").to_owned();
    let (address, _, _) = serve(app).await;
    let url = format!("{address}/api/acme/admin/apiKeys");

    let res = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&token)
        .json(&json!({"name": "from-dev"}))
        .send()
        .await
        .unwrap();

    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn a_short_secret_or_a_missing_jwks_file_is_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tenants")).unwrap();
    let mut s = settings_for(dir.path());
    s.auth.hs256_secret = Some("short".to_owned().into());
    assert!(keyward::startup::Application::build(s).await.is_err());
    let mut s = settings_for(dir.path());
    s.auth.jwks_file = Some(dir.path().join("missing.json"));
    assert!(keyward::startup::Application::build(s).await.is_err());
    let mut s = settings_for(dir.path());
    s.tenants_dir = dir.path().join("no-such-dir");
    assert!(keyward::startup::Application::build(s).await.is_err());
}

fn unsigned_token(header: Value, claims: Value) -> String {
    use base64::Engine;
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    format!("{}.{}.c2ln", b64(&header), b64(&claims))
}

#[tokio::test]
async fn a_jwt_with_critical_extensions_is_refused() {
    let app = spawn_app().await;
    let claims = json!({"sub": "a", "exp": now() + 600, "scope": WRITE, "tenant_id": "acme"});
    let token = {
        // Signed for real with the test secret: only `crit` is wrong.
        let header =
            json!({"alg": "HS256", "typ": "JWT", "crit": ["exp-policy"], "exp-policy": "strict"});
        let signing_input = unsigned_token(header, claims.clone());
        let signing_input = signing_input.rsplit_once('.').unwrap().0.to_owned();
        let sig = jsonwebtoken::crypto::sign(
            signing_input.as_bytes(),
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
            jsonwebtoken::Algorithm::HS256,
        )
        .unwrap();
        format!("{signing_input}.{sig}")
    };

    let res = app.list_keys("acme", &token).await;
    let body = assert_problem(res, 401, "invalid_token").await;
    assert!(
        body["detail"].as_str().unwrap().contains("critical"),
        "{body}"
    );
    // The same claims without `crit` pass.
    let plain = jwt(claims);
    assert_eq!(app.list_keys("acme", &plain).await.status(), 200);
}

#[tokio::test]
async fn an_issuer_given_as_a_list_is_refused_when_an_issuer_is_configured() {
    let app = spawn_app_with(|s| s.auth.issuer = Some("https://idp.example".into())).await;
    let claims = |iss: Value| {
        jwt(json!({"sub": "a", "exp": now() + 600, "scope": READ, "tenant_id": "acme", "iss": iss}))
    };

    let listed = claims(json!(["https://idp.example", "https://evil.example"]));
    assert_problem(app.list_keys("acme", &listed).await, 401, "invalid_token").await;
    let single = claims(json!("https://idp.example"));
    assert_eq!(app.list_keys("acme", &single).await.status(), 200);
}

#[tokio::test]
async fn an_unknown_kid_is_never_echoed_in_full() {
    let app = spawn_app().await;
    let kid = format!("{}<script>{}", "k".repeat(500), "\u{7}".repeat(5));
    let token = unsigned_token(
        json!({"alg": "RS256", "typ": "JWT", "kid": kid}),
        json!({"sub": "a", "exp": now() + 600}),
    );

    let res = app.list_keys("acme", &token).await;

    let body = assert_problem(res, 401, "invalid_token").await;
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.len() < 120, "{detail}");
    assert!(
        !detail.contains("<script>") && !detail.contains('\u{7}'),
        "{detail}"
    );
}
