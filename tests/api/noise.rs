//! A flood of refused requests costs the log next to nothing: no line per refusal, never
//! the path a client chose, and the count in `/metrics`.

use crate::helpers::{ACME_FILE, serve_process, tenants_with};

/// A path segment no log line may ever carry.
const MARK: &str = "attacker-chosen-path-segment";

/// The sum of `http_requests_total` samples with this route and status.
fn requests(metrics: &str, route: &str, status: u16) -> u64 {
    let route = format!("route=\"{route}\"");
    let status = format!("status=\"{status}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("http_requests_total{") && l.contains(&route))
        .filter(|l| l.contains(&status))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test]
async fn unauthenticated_calls_and_unknown_routes_grow_the_log_by_a_summary_at_most() {
    // Arrange
    let dir = tenants_with(&[("acme", ACME_FILE)]);
    let mut server = serve_process(dir.path());
    let client = reqwest::Client::new();
    let long = MARK.repeat(40);
    let before = server.log.len();

    // Act: 100 admin calls without a credential, 100 with a bad one, 100 unknown routes.
    for i in 0..100 {
        let unauthenticated = client
            .get(server.url(&format!("/api/acme/admin/apiKeys/{MARK}-{i}")))
            .header("User-Agent", &long)
            .send()
            .await
            .unwrap();
        assert_eq!(unauthenticated.status(), 401);
        let bad_token = client
            .get(server.url(&format!("/api/acme/admin/apiKeys/{MARK}-{i}")))
            .bearer_auth(format!("{MARK}.{MARK}.{MARK}"))
            .send()
            .await
            .unwrap();
        assert_eq!(bad_token.status(), 401);
        let unknown = client
            .get(server.url(&format!("/{long}/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(unknown.status(), 404);
    }
    // Every line of those requests was written before their answers: a SIGHUP's line
    // marks the end of them.
    server.signal(rustix::process::Signal::HUP);
    server.wait_for("SIGHUP: rescanning");

    // Assert
    let lines = &server.log[before..server.log.len() - 1];
    let bytes: usize = lines.iter().map(String::len).sum();
    assert!(
        bytes <= 1024,
        "300 refusals logged {bytes} bytes:\n{}",
        lines.join("\n")
    );
    assert!(
        lines.iter().all(|l| !l.contains(MARK)),
        "a client's path or header reached the log:\n{}",
        lines.join("\n")
    );
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        requests(&metrics, "/api/{tenantId}/admin/apiKeys/{keyName}", 401),
        200,
        "{metrics}"
    );
    assert_eq!(requests(&metrics, "unmatched", 404), 100, "{metrics}");
}
