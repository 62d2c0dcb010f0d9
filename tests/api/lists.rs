//! Lists (README, "Admin API"): every key with no query; pages in name order with `limit` + `cursor` and
//! a `Link` to the next; `q`, `enabled` and `expired` filter.

use serde_json::Value;

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
    let res = app
        .client
        .get(app.url(&format!("/api/acme/admin/apiKeys{query}")))
        .bearer_auth(token("acme", READ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{query}");
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
    (names, next)
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
        "?sort=name",
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
