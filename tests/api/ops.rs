//! What operators and tooling read: health, readiness, metrics, the OpenAPI document, the
//! docs page, and the headers every response carries.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

async fn health_and_readiness(backend: Backend) {
    let app = spawn_app(backend).await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), json!({"status": "ok"}));
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.json()["status"], "ok");
    let jwks_before = app.get("/.well-known/jwks.json").await.text;

    // The server shares this pool: closing it is the database going away.
    app.store.close().await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.text);
    assert!(ready.json().is_object(), "{}", ready.text);
    assert!(ready.header("content-type").unwrap_or("").starts_with("application/json"));

    // Liveness does not depend on the database, and keys are served from memory.
    let health = app.get("/healthz").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), json!({"status": "ok"}));
    let jwks = app.get("/.well-known/jwks.json").await;
    assert_eq!(jwks.status, 200);
    assert_eq!(jwks.text, jwks_before);

    // Anything that needs the database says so with a retryable 503, not a 500.
    let login = app.post_json("/api/token/", json!({"username": "alice", "password": "x"})).await;
    assert_eq!(login.status, 503, "{}", login.text);
    assert_eq!(login.json()["code"], "service_unavailable", "{}", login.text);
}

/// The value of the series whose line starts with `name{` and holds every label in `labels`, summed.
fn series_total(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn metrics_text(app: &TestApp) -> String {
    let reply = app.get("/metrics").await;
    assert_eq!(reply.status, 200);
    let content_type = reply.header("content-type").unwrap_or("");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    reply.text
}

async fn metrics_count_logins_requests_and_reuse(backend: Backend) {
    let app = spawn_app_with(backend, &[("REFRESH_REUSE_GRACE", "0s")]).await;
    app.create_user("alice", "correct horse");
    // The recorder is shared by every test in this process: compare before and after.
    let before = metrics_text(&app).await;

    let (_, refresh) = app.login("alice", "correct horse").await;
    let failed = app.post_json("/api/token/", json!({"username": "alice", "password": "wrong"})).await;
    assert_eq!(failed.status, 401);

    let after = metrics_text(&app).await;
    let ok = |m: &str| series_total(m, "tokensmith_logins_total", &["result=\"ok\""]);
    let bad = |m: &str| series_total(m, "tokensmith_logins_total", &["result=\"failed\""]);
    assert!(ok(&after) >= ok(&before) + 1.0, "successful logins not counted:\n{after}");
    assert!(bad(&after) >= bad(&before) + 1.0, "failed logins not counted:\n{after}");
    let token_200 = |m: &str| {
        series_total(m, "http_requests_total", &["route=\"/api/token/\"", "method=\"POST\"", "status=\"200\""])
    };
    let token_401 = |m: &str| series_total(m, "http_requests_total", &["route=\"/api/token/\"", "status=\"401\""]);
    assert!(token_200(&after) >= token_200(&before) + 1.0, "{after}");
    assert!(token_401(&after) >= token_401(&before) + 1.0, "{after}");
    assert!(
        after
            .lines()
            .any(|l| l.starts_with("http_request_duration_seconds_bucket{") && l.contains("route=\"/api/token/\"")),
        "no latency histogram for /api/token/:\n{after}"
    );
    assert!(after.contains("# TYPE http_requests_total counter"), "{after}");
    // Routes are labelled by pattern, never by what a client typed.
    let unknown = app.get("/no/such/path/for/metrics").await;
    assert_eq!(unknown.status, 404);
    assert!(!metrics_text(&app).await.contains("/no/such/path/for/metrics"));

    // Reuse of a rotated-away refresh token after the grace window.
    let reuse = |m: &str| series_total(m, "tokensmith_refresh_reuse_detected_total", &[]);
    let before_reuse = reuse(&metrics_text(&app).await);
    let rotated = app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let replay = app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_401(&replay, TOKEN_BLACKLISTED);
    let after = metrics_text(&app).await;
    assert!(reuse(&after) >= before_reuse + 1.0, "reuse detection not counted:\n{after}");
    // ... and the whole session died with it.
    let newest = app.post_json("/api/token/refresh/", json!({"refresh": rotated.field("refresh")})).await;
    assert_401(&newest, TOKEN_BLACKLISTED);
}

fn committed_openapi() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("the committed document is JSON")
}

async fn openapi_document_is_served_and_complete(backend: Backend) {
    let app = spawn_app(backend).await;
    let reply = app.get("/openapi.json").await;
    assert_eq!(reply.status, 200);
    assert!(reply.header("content-type").unwrap_or("").starts_with("application/json"));
    let served = reply.json();
    assert_eq!(
        served,
        committed_openapi(),
        "openapi/openapi.json is stale: regenerate it with `cargo run -q -- openapi > openapi/openapi.json`"
    );
    assert!(served["openapi"].as_str().unwrap().starts_with("3.1"), "{}", served["openapi"]);

    let out = app.cli(&["openapi"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).expect("`tokensmith openapi` prints JSON");
    assert_eq!(printed, served, "the CLI prints what the server serves");

    let paths = served["paths"].as_object().expect("paths");
    for path in [
        "/api/token/",
        "/api/token/refresh/",
        "/api/token/verify/",
        "/api/token/blacklist/",
        "/api/token/revoke-all/",
        "/api/me/",
        "/api/password/change/",
        "/.well-known/jwks.json",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} is not documented; documented: {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
    assert!(paths["/api/me/"].get("get").is_some());
    let mut posts = 0;
    for (path, item) in paths.iter().filter(|(p, _)| p.starts_with("/api/")) {
        let Some(post) = item.get("post") else { continue };
        posts += 1;
        let responses = post["responses"].as_object().unwrap_or_else(|| panic!("{path}: no responses"));
        assert!(responses.keys().any(|status| status.starts_with('2')), "{path}: no success response");
        assert!(
            responses.contains_key("401") || responses.contains_key("400"),
            "{path} documents no error: {:?}",
            responses.keys()
        );
    }
    assert!(posts >= 6, "only {posts} POST operations under /api/");
    // Protected operations say how to authenticate.
    for (path, method) in [("/api/me/", "get"), ("/api/token/revoke-all/", "post"), ("/api/password/change/", "post")] {
        assert!(paths[path][method]["security"].is_array(), "{path} does not declare bearer auth");
    }
    // Every admin operation does, and documents its 401 and 403.
    let admin: Vec<_> = paths.iter().filter(|(p, _)| p.starts_with("/api/admin/")).collect();
    assert!(admin.len() >= 8, "admin paths: {:?}", admin.iter().map(|(p, _)| p).collect::<Vec<_>>());
    for (path, item) in admin {
        for (method, operation) in item.as_object().unwrap().iter().filter(|(_, o)| o.get("responses").is_some()) {
            assert!(operation["security"].is_array(), "{method} {path} does not declare bearer auth");
            for status in ["401", "403"] {
                assert!(operation["responses"].get(status).is_some(), "{method} {path} does not document {status}");
            }
        }
    }
    assert!(served["components"]["securitySchemes"]["bearer"].is_object());
}

/// `src="…"` and `href="…"` values in `html`.
fn assets(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attr in ["src=", "href="] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else { continue };
            let value = &rest[1..];
            let end = value.find(quote).unwrap_or(value.len());
            found.push(value[..end].to_owned());
        }
    }
    found
}

async fn docs_are_served_without_a_cdn(backend: Backend) {
    let app = spawn_app(backend).await;
    let redirect = app.get("/docs").await;
    let html = if (300..400).contains(&redirect.status) {
        let location = redirect.header("location").expect("a redirect names its target").to_owned();
        assert!(location.ends_with("/docs/"), "{location}");
        app.get("/docs/").await
    } else {
        redirect
    };
    assert_eq!(html.status, 200, "{}", html.text);
    assert!(html.header("content-type").unwrap_or("").starts_with("text/html"));
    assert!(html.text.to_lowercase().contains("swagger"), "{}", html.text);

    let names = assets(&html.text);
    assert!(names.iter().any(|n| n.ends_with(".js")), "no script in {}", html.text);
    assert!(names.iter().any(|n| n.ends_with(".css")), "no stylesheet in {}", html.text);
    let mut initializer = None;
    for name in &names {
        assert!(
            !name.starts_with("http://") && !name.starts_with("https://") && !name.starts_with("//"),
            "external asset {name}"
        );
        let path = match name.strip_prefix("./") {
            Some(relative) => format!("/docs/{relative}"),
            None if name.starts_with('/') => name.clone(),
            None => format!("/docs/{name}"),
        };
        let asset = app.get(&path).await;
        assert_eq!(asset.status, 200, "{path} named by the docs page is not served");
        assert!(!asset.text.is_empty(), "{path} is empty");
        if path.ends_with("swagger-initializer.js") {
            initializer = Some(asset.text);
        }
    }
    let initializer = initializer.expect("the page loads swagger-initializer.js");
    assert!(initializer.contains("/openapi.json"), "{initializer}");
    // Swagger UI's default shows a badge image fetched from validator.swagger.io, with our URL in it.
    let compact: String = initializer.split_whitespace().collect();
    assert!(compact.contains(r#""validatorUrl":"none""#), "the online validator is not disabled:\n{initializer}");
    for text in [&html.text, &initializer] {
        assert!(!text.contains("http://") && !text.contains("https://"), "an external URL in the docs page:\n{text}");
    }
    // The document the page loads is ours.
    assert_eq!(app.get("/openapi.json").await.json(), committed_openapi());
}

async fn every_response_carries_the_standard_headers(backend: Backend) {
    let app = spawn_app(backend).await;
    let (access, refresh) = app.alice().await;
    let big = "x".repeat(70 * 1024);
    let mut replies = vec![
        ("login", app.post_json("/api/token/", json!({"username": "alice", "password": "correct horse"})).await),
        ("failed login", app.post_json("/api/token/", json!({"username": "alice", "password": "nope"})).await),
        ("refresh", app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await),
        ("verify", app.post_json("/api/token/verify/", json!({"token": access})).await),
        ("verify garbage", app.post_json("/api/token/verify/", json!({"token": "a.b.c"})).await),
        ("missing field", app.post_json("/api/token/", json!({})).await),
        ("bad JSON", app.post_raw("/api/token/", "application/json", "{").await),
        ("media type", app.post_raw("/api/token/", "text/plain", "x").await),
        ("too large", app.post_raw("/api/token/", "application/json", big).await),
        ("me", app.get_bearer("/api/me/", &access).await),
        ("me anonymous", app.get("/api/me/").await),
        ("wrong method", app.get("/api/token/").await),
        ("not found", app.get("/nope").await),
        ("healthz", app.get("/healthz").await),
        ("readyz", app.get("/readyz").await),
        ("metrics", app.get("/metrics").await),
        ("jwks", app.get("/.well-known/jwks.json").await),
        ("openapi", app.get("/openapi.json").await),
        ("docs redirect", app.get("/docs").await),
        ("docs", app.get("/docs/").await),
    ];
    let blacklisted = app.post_json("/api/token/blacklist/", json!({"refresh": refresh})).await;
    replies.push(("blacklist", blacklisted));

    let mut ids = std::collections::HashSet::new();
    for (what, reply) in &replies {
        let id = reply.header("x-request-id").unwrap_or_else(|| panic!("{what}: no x-request-id"));
        assert!(!id.is_empty(), "{what}");
        assert!(ids.insert(id.to_owned()), "{what}: request id {id} reused");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"), "{what}");
    }
    for (what, reply) in replies.iter().filter(|(w, _)| {
        matches!(
            *w,
            "login"
                | "failed login"
                | "refresh"
                | "verify"
                | "verify garbage"
                | "missing field"
                | "me"
                | "me anonymous"
                | "blacklist"
        )
    }) {
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{what}: token responses must not be cached");
    }
    // The login really succeeded, so the no-store above covers a response holding tokens.
    assert_eq!(replies[0].1.status, 200);

    // A request id sent by the caller (a proxy's) is kept, for tracing across services.
    let traced =
        read(app.client.get(app.url("/healthz")).header("x-request-id", "trace-me-123").send().await.unwrap()).await;
    assert_eq!(traced.header("x-request-id"), Some("trace-me-123"));
}

crate::db_test!(
    health_and_readiness,
    metrics_count_logins_requests_and_reuse,
    openapi_document_is_served_and_complete,
    docs_are_served_without_a_cdn,
    every_response_carries_the_standard_headers,
);
