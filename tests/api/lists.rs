//! Lists (README, "Admin API"): every key with no query; pages with `limit` + `cursor` and
//! a `Link` to the next, in the order `sort` asks; `q`, `enabled` and `expired` filter, and
//! `X-Total-Count` says how many keys pass them.

use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::macros::datetime;

use crate::helpers::*;

/// `n` keys named `k000`.., every third disabled, every fifth expired, written as ops would.
fn many(n: usize) -> String {
    let mut text = String::from("apiKeys:\n");
    for i in 0..n {
        text.push_str(&format!(
            "  - name: k{i:03}\n    hash: sha256:{i:064x}\n    enabled: {}\n",
            !i.is_multiple_of(3)
        ));
        if i.is_multiple_of(5) {
            text.push_str("    expiresAt: 2001-01-01T00:00:00Z\n");
        }
    }
    text
}

async fn app_with(n: usize) -> TestApp {
    let dir = tenants_with(&[("acme", &many(n))]);
    spawn_app_on(dir, |_| {}).await
}

async fn page(app: &TestApp, query: &str) -> (Vec<String>, Option<String>) {
    let (names, next, _) = counted_page(app, "acme", query).await;
    (names, next)
}

/// One page of `tenant`'s list: its names, the next page's path and `X-Total-Count`.
async fn counted_page(
    app: &TestApp,
    tenant: &str,
    query: &str,
) -> (Vec<String>, Option<String>, usize) {
    let res = app
        .client
        .get(app.url(&format!("/api/{tenant}/admin/apiKeys{query}")))
        .bearer_auth(token(tenant, READ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{query}");
    let total = res.headers()["x-total-count"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let next = res.headers().get("link").map(|l| {
        let l = l.to_str().unwrap();
        assert!(l.ends_with(r#">; rel="next""#), "{l}");
        l[1..l.find('>').unwrap()].to_owned()
    });
    let body: Vec<Value> = res.json().await.unwrap();
    let names = body
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_owned())
        .collect();
    (names, next, total)
}

#[tokio::test]
async fn two_hundred_and_fifty_keys_page_in_name_order_following_the_link() {
    let app = app_with(250).await;

    let (all, none) = page(&app, "").await;
    assert_eq!(all.len(), 250, "no query: every key");
    assert!(none.is_none());

    let mut seen = Vec::new();
    let mut next = Some("/api/acme/admin/apiKeys?limit=100".to_owned());
    let mut pages = 0;
    while let Some(url) = next {
        let query = url.trim_start_matches("/api/acme/admin/apiKeys").to_owned();
        let (names, link) = page(&app, &query).await;
        seen.extend(names);
        next = link;
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, all, "every key once, in name order");
}

#[tokio::test]
async fn filters_combine_and_keep_their_place_across_pages() {
    let app = app_with(40).await;

    let (names, _) = page(&app, "?q=k01").await;
    assert_eq!(names.len(), 10);
    assert!(names.iter().all(|n| n.contains("k01")));
    let (disabled, _) = page(&app, "?enabled=false").await;
    assert_eq!(disabled.len(), 14, "{disabled:?}");
    let (expired, _) = page(&app, "?expired=true").await;
    assert_eq!(
        expired,
        [
            "k000", "k005", "k010", "k015", "k020", "k025", "k030", "k035"
        ]
    );
    let (live, _) = page(&app, "?expired=false&enabled=true").await;
    assert!(live.iter().all(|n| {
        let i: usize = n[1..].parse().unwrap();
        !i.is_multiple_of(3) && !i.is_multiple_of(5)
    }));

    let (first, link) = page(&app, "?enabled=true&limit=5").await;
    assert_eq!(first.len(), 5);
    let link = link.unwrap();
    assert!(
        link.contains("enabled=true") && link.contains("limit=5"),
        "{link}"
    );
    let (second, _) = page(&app, link.trim_start_matches("/api/acme/admin/apiKeys")).await;
    assert!(second.iter().all(|n| n > first.last().unwrap()));
}

#[tokio::test]
async fn bad_list_queries_are_400_problems() {
    let app = app_with(3).await;
    for query in [
        "?limit=0",
        "?limit=1001",
        "?limit=ten",
        "?enabled=yes",
        "?expired=1",
        "?cursor=not a cursor!",
        "?sort=hash",
        "?sort=-",
        "?sort=Name",
        &format!("?q={}", "x".repeat(1025)),
    ] {
        let res = app
            .client
            .get(app.url(&format!("/api/acme/admin/apiKeys{query}")))
            .bearer_auth(token("acme", READ))
            .send()
            .await
            .unwrap();
        let body = assert_problem(res, 400, "invalid_request").await;
        assert!(body["errors"][0]["field"].is_string(), "{query}: {body}");
    }
}

/// `team`'s keys: created, expiring and (with `used`) last used at different times, with
/// ties, and some without each field. Their tokens are `tok-<name>` (imported keys).
const TEAM: &str = "\
apiKeys:
  - name: a
    hash: HASH_a
    createdAt: 2026-01-03T00:00:00Z
    expiresAt: 2099-01-01T00:00:00Z
  - name: b
    hash: HASH_b
    createdAt: 2026-01-01T00:00:00Z
  - name: c
    hash: HASH_c
    createdAt: 2026-01-03T00:00:00Z
    expiresAt: 2098-01-01T00:00:00Z
  - name: d
    hash: HASH_d
    expiresAt: 2099-01-01T00:00:00Z
  - name: e
    hash: HASH_e
    createdAt: 2026-01-02T00:00:00Z
";

/// A server whose `team` tenant holds `TEAM`, with `b` used at +10 s and `a` and `d` at
/// +20 s on a manual clock.
async fn team_app() -> TestApp {
    let clock = keyward::clock::Clock::manual(datetime!(2026-06-01 00:00 UTC));
    let app = spawn_app_with_clock(clock.clone(), |_| {}).await;
    let mut file = TEAM.to_owned();
    for name in ["a", "b", "c", "d", "e"] {
        let hash = format!("sha256:{:x}", Sha256::digest(format!("tok-{name}")));
        file = file.replace(&format!("HASH_{name}"), &hash);
    }
    let dir = app.tenants().join("team");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("security.yml"), file).unwrap();
    // A read loads a tenant that appeared since start-up; verification never reads files.
    let (names, _, _) = counted_page(&app, "team", "").await;
    assert_eq!(names.len(), 5);
    for (after, names) in [(10, &["b"][..]), (10, &["a", "d"][..])] {
        clock.advance(Duration::from_secs(after));
        for name in names {
            let verdict = app
                .verdict_for("team", json!({"key": format!("tok-{name}")}))
                .await;
            assert_eq!(verdict["valid"], true, "{name}: {verdict}");
        }
    }
    app
}

/// Every page of a query, followed by its `Link`s; each page's `X-Total-Count` checked.
async fn all_pages(app: &TestApp, query: &str, total: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut next = Some(format!("/api/team/admin/apiKeys{query}"));
    while let Some(url) = next {
        let query = url.trim_start_matches("/api/team/admin/apiKeys");
        let (names, link, count) = counted_page(app, "team", query).await;
        assert_eq!(count, total, "{query}");
        assert!(names.len() <= 2, "{query}: {names:?}");
        seen.extend(names);
        next = link;
    }
    seen
}

#[tokio::test]
async fn every_sort_orders_both_ways_with_missing_fields_last_and_ties_by_name() {
    let app = team_app().await;
    let expected = [
        ("name", "abcde"),
        ("-name", "edcba"),
        ("createdAt", "beacd"),
        ("-createdAt", "acebd"),
        ("expiresAt", "cadbe"),
        ("-expiresAt", "adcbe"),
        ("lastUsedAt", "badce"),
        ("-lastUsedAt", "adbce"),
    ];
    for (sort, order) in expected {
        let want: Vec<String> = order.chars().map(String::from).collect();

        let (whole, link, total) = counted_page(&app, "team", &format!("?sort={sort}")).await;
        let paged = all_pages(&app, &format!("?sort={sort}&limit=2"), 5).await;

        assert_eq!(whole, want, "sort={sort}");
        assert_eq!((link, total), (None, 5), "sort={sort}");
        assert_eq!(paged, want, "sort={sort}, two at a time");
    }
    let (default, _, _) = counted_page(&app, "team", "").await;
    assert_eq!(default, ["a", "b", "c", "d", "e"], "name by default");
}

#[tokio::test]
async fn pages_of_a_sort_keep_the_filters_and_count_what_passes_them() {
    let app = team_app().await;

    let paged = all_pages(&app, "?sort=-createdAt&limit=2&q=", 5).await;
    assert_eq!(paged, ["a", "c", "e", "b", "d"]);

    let (first, link, total) =
        counted_page(&app, "team", "?sort=expiresAt&limit=1&expired=false").await;
    assert_eq!((first, total), (vec!["c".to_owned()], 5));
    let link = link.unwrap();
    assert!(
        link.contains("sort=expiresAt") && link.contains("expired=false"),
        "{link}"
    );
}

#[tokio::test]
async fn a_cursor_from_another_sort_or_one_not_made_here_is_a_400_naming_it() {
    let app = team_app().await;
    let (_, link, _) = counted_page(&app, "team", "?sort=createdAt&limit=2").await;
    let link = link.unwrap();
    let cursor = link.split("cursor=").nth(1).unwrap().to_owned();
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);

    for query in [
        format!("?sort=-createdAt&cursor={cursor}"),
        format!("?sort=name&cursor={cursor}"),
        format!("?cursor={cursor}"),
        format!("?sort=createdAt&cursor={}", &cursor[..cursor.len() - 3]),
        format!("?sort=createdAt&cursor={cursor}x"),
        format!("?sort=createdAt&cursor={}", b64("createdAt\nsoon\na")),
        format!("?sort=createdAt&cursor={}", b64("createdAt\n1\n../x")),
        format!("?sort=createdAt&cursor={}", b64("createdAt\n1\na\nb")),
        format!("?sort=name&cursor={}", b64("name\n1\na")),
        format!("?sort=name&cursor={}", b64("b")),
        "?cursor=%FF%FE".to_owned(),
    ] {
        let res = app
            .client
            .get(app.url(&format!("/api/team/admin/apiKeys{query}")))
            .bearer_auth(token("team", READ))
            .send()
            .await
            .unwrap();

        let body = assert_problem(res, 400, "invalid_request").await;
        assert_eq!(body["errors"][0]["field"], "cursor", "{query}: {body}");
    }
}

#[tokio::test]
async fn a_sort_not_offered_is_a_400_that_lists_the_ones_that_are() {
    let app = team_app().await;

    let res = app
        .client
        .get(app.url("/api/team/admin/apiKeys?sort=hash"))
        .bearer_auth(token("team", READ))
        .send()
        .await
        .unwrap();

    let body = assert_problem(res, 400, "invalid_request").await;
    assert_eq!(body["errors"][0]["field"], "sort");
    let message = body["errors"][0]["message"].as_str().unwrap();
    for allowed in ["name", "createdAt", "expiresAt", "lastUsedAt", "-"] {
        assert!(message.contains(allowed), "{message}");
    }
    assert!(!message.contains("hash"), "the value is not quoted back");
}

#[tokio::test]
async fn q_finds_any_case_in_names_descriptions_and_permissions() {
    let file = "\
apiKeys:
  - name: Orders-api
    hash: sha256:0000000000000000000000000000000000000000000000000000000000000001
  - name: worker-one
    hash: sha256:0000000000000000000000000000000000000000000000000000000000000002
    description: \"worker #1\"
  - name: billing
    hash: sha256:0000000000000000000000000000000000000000000000000000000000000003
    permissions: [billing:write, orders:read]
  - name: munich
    hash: sha256:0000000000000000000000000000000000000000000000000000000000000004
    description: Straße in MÜNCHEN
";
    let app = spawn_app_on(tenants_with(&[("acme", file)]), |_| {}).await;

    for (q, want) in [
        ("ORDERS", &["Orders-api", "billing"][..]),
        ("Orders", &["Orders-api", "billing"]),
        ("billing%3Awrite", &["billing"]),
        ("BILLING:WRITE", &["billing"]),
        ("worker%20%231", &["worker-one"]),
        ("m%C3%BCnchen", &["munich"]),
        ("STRASSE", &[]),
        ("nothing-like-it", &[]),
    ] {
        let (names, _, total) = counted_page(&app, "acme", &format!("?q={q}")).await;
        assert_eq!(names, want, "q={q}");
        assert_eq!(total, want.len(), "q={q}");
    }
}

#[tokio::test]
async fn the_total_counts_every_match_on_every_page() {
    let app = app_with(40).await;

    let (names, link, total) = counted_page(&app, "acme", "?q=k01&limit=3").await;
    assert_eq!((names.len(), total), (3, 10));
    let link = link.unwrap();
    let (_, _, total) = counted_page(
        &app,
        "acme",
        link.trim_start_matches("/api/acme/admin/apiKeys"),
    )
    .await;
    assert_eq!(total, 10);
    let (_, _, total) = counted_page(&app, "acme", "?enabled=false&limit=1").await;
    assert_eq!(total, 14);
    let (_, _, total) = counted_page(&app, "acme", "").await;
    assert_eq!(total, 40);
}

#[tokio::test]
async fn a_dashboard_on_a_configured_origin_can_read_the_total_and_the_link() {
    let dir = tenants_with(&[("acme", &many(3))]);
    let app = spawn_app_on(dir, |s| {
        s.cors_allowed_origins = vec!["https://dash.example".into()];
    })
    .await;

    let res = app
        .client
        .get(app.url("/api/acme/admin/apiKeys?limit=1"))
        .header("Origin", "https://dash.example")
        .bearer_auth(token("acme", READ))
        .send()
        .await
        .unwrap();

    assert_eq!(res.status(), 200);
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("x-total-count") && exposed.contains("link"),
        "{exposed}"
    );
}
