//! The verify hot path without HTTP: token format check, SHA-256, index lookup, permission
//! match. `cargo bench --bench verify`.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use keyward::domain::Verdict;
use keyward::domain::{KeyHash, PresentedKey, Token, TokenPrefix};
use keyward::index::TenantKeys;
use keyward::store::SecurityFile;
use time::OffsetDateTime;

fn tenant_with(n: usize, token: &str) -> TenantKeys {
    let prefix = TokenPrefix::parse("kw").unwrap();
    let mut text = String::from("apiKeys:\n");
    for i in 0..n {
        let other = Token::generate(&prefix);
        writeln!(
            text,
            "  - name: k{i}\n    hash: {}\n    permissions: [orders:read]",
            other.hash()
        )
        .unwrap();
    }
    writeln!(
        text,
        "  - name: gateway\n    hash: {}\n    permissions: [orders:*]",
        KeyHash::of(token.as_bytes())
    )
    .unwrap();
    TenantKeys::build(
        &SecurityFile::parse(&text).unwrap(),
        None,
        &Default::default(),
    )
}

fn verify_path(c: &mut Criterion) {
    let prefix = TokenPrefix::parse("kw").unwrap();
    let token = Token::generate(&prefix).expose().to_owned();
    let keys = tenant_with(10_000, &token);
    let now = OffsetDateTime::now_utc();

    c.bench_function("token check + SHA-256 (PresentedKey::parse)", |b| {
        b.iter(|| PresentedKey::parse(black_box(&token), &prefix).unwrap())
    });
    c.bench_function("check + lookup + permission, 10,000-key tenant", |b| {
        b.iter(|| {
            let key = PresentedKey::parse(black_box(&token), &prefix).unwrap();
            let verdict = keys.verify(key.hash(), &["orders:read"], now);
            assert!(matches!(verdict, Verdict::Valid(_)));
        })
    });
    let mut bad = token.clone();
    bad.pop();
    bad.push('!');
    c.bench_function("malformed token refused before any lookup", |b| {
        b.iter(|| PresentedKey::parse(black_box(&bad), &prefix).is_err())
    });
}

criterion_group!(benches, verify_path);
criterion_main!(benches);
