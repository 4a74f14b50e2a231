//! The refresh cookie and CORS, at the HTTP level (the browser tests drive them for real).

use serde_json::json;

use crate::{
    db_test,
    helpers::{Backend, Reply, TestApp, read, spawn_app, spawn_app_with},
};

db_test!(
    cookie_mode_keeps_the_refresh_token_out_of_javascripts_reach,
    the_cookie_works_only_from_allowed_origins,
    without_cookie_mode_cookies_are_ignored,
    cors_allows_exactly_the_configured_origins,
);

const APP: &str = "http://localhost:5173";

async fn cookie_app(backend: Backend) -> TestApp {
    let app = spawn_app_with(
        backend,
        &[("REFRESH_TOKEN_COOKIE", "true"), ("CORS_ALLOWED_ORIGINS", APP), ("REFRESH_TOKEN_LIFETIME", "1h")],
    )
    .await;
    app.create_user("alice", "correct horse");
    app
}

/// The `refresh_token=…` cookie a response set: (value, attributes).
fn set_cookie(reply: &Reply) -> (String, String) {
    let header = reply.header("set-cookie").unwrap_or_else(|| panic!("no Set-Cookie: {:?}", reply.headers));
    let (pair, attributes) = header.split_once(';').unwrap();
    let value = pair.strip_prefix("refresh_token=").expect("the refresh cookie").to_owned();
    (value, attributes.to_owned())
}

async fn post_with_cookie(app: &TestApp, path: &str, cookie: &str, origin: Option<&str>) -> Reply {
    let mut request = app.client.post(app.url(path)).header("cookie", format!("refresh_token={cookie}"));
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    read(request.send().await.unwrap()).await
}

async fn cookie_mode_keeps_the_refresh_token_out_of_javascripts_reach(backend: Backend) {
    let app = cookie_app(backend).await;
    let login = app.post_json("/api/token/", json!({"username": "alice", "password": "correct horse"})).await;
    assert_eq!(login.status, 200, "{}", login.text);
    assert!(login.json().get("refresh").is_none(), "the refresh token is in the body: {}", login.text);
    assert!(login.json()["access"].is_string());
    let (token, attributes) = set_cookie(&login);
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/api/token/"] {
        assert!(attributes.contains(attribute), "{attributes}");
    }
    let max_age: i64 = attributes.split("Max-Age=").nth(1).unwrap().split(';').next().unwrap().parse().unwrap();
    assert!((3590..=3600).contains(&max_age), "Max-Age is the token's remaining life: {max_age}");

    let refreshed = post_with_cookie(&app, "/api/token/refresh/", &token, Some(APP)).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    assert!(refreshed.json().get("refresh").is_none());
    let (rotated, _) = set_cookie(&refreshed);
    assert_ne!(rotated, token);
    // The rotated-away cookie is dead (and within the grace it does not end the session).
    assert_eq!(post_with_cookie(&app, "/api/token/refresh/", &token, Some(APP)).await.status, 401);

    let logout = post_with_cookie(&app, "/api/token/blacklist/", &rotated, Some(APP)).await;
    assert_eq!(logout.status, 200, "{}", logout.text);
    let (cleared, attributes) = set_cookie(&logout);
    assert!(cleared.is_empty() && attributes.contains("Max-Age=0"), "{cleared} {attributes}");
    assert_eq!(post_with_cookie(&app, "/api/token/refresh/", &rotated, Some(APP)).await.status, 401);

    // A body token still works as in simplejwt, from anywhere.
    let login = app.post_json("/api/token/", json!({"username": "alice", "password": "correct horse"})).await;
    let (token, _) = set_cookie(&login);
    assert_eq!(app.post_json("/api/token/refresh/", json!({"refresh": token})).await.status, 200);
}

async fn the_cookie_works_only_from_allowed_origins(backend: Backend) {
    let app = cookie_app(backend).await;
    let login = app.post_json("/api/token/", json!({"username": "alice", "password": "correct horse"})).await;
    let (token, _) = set_cookie(&login);
    let foreign = post_with_cookie(&app, "/api/token/refresh/", &token, Some("https://evil.example")).await;
    assert_eq!(foreign.status, 403);
    assert_eq!(
        foreign.json(),
        json!({"detail": "CSRF Failed: Origin checking failed - https://evil.example does not match any trusted origins."})
    );
    let missing = post_with_cookie(&app, "/api/token/blacklist/", &token, None).await;
    assert_eq!((missing.status, missing.json()), (403, json!({"detail": "CSRF Failed: Origin header missing."})));
    // The service's own origin is allowed (its own pages, /docs).
    let own = format!("http://{}", app.addr);
    assert_eq!(post_with_cookie(&app, "/api/token/refresh/", &token, Some(&own)).await.status, 200);
}

async fn without_cookie_mode_cookies_are_ignored(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, refresh) = app.alice().await;
    let reply = post_with_cookie(&app, "/api/token/refresh/", &refresh, Some(APP)).await;
    assert_eq!((reply.status, reply.json()), (400, json!({"refresh": ["This field is required."]})));
    let login = app.post_json("/api/token/", json!({"username": "alice", "password": "correct horse"})).await;
    assert!(login.header("set-cookie").is_none());
    assert!(login.json()["refresh"].is_string());
}

async fn cors_allows_exactly_the_configured_origins(backend: Backend) {
    let preflight = |app: &TestApp, origin: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/token/refresh/"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let app = cookie_app(backend).await;
    let allowed = read(preflight(&app, APP).await.unwrap()).await;
    assert!(allowed.status < 300, "{}", allowed.status);
    assert_eq!(allowed.header("access-control-allow-origin"), Some(APP));
    assert_eq!(allowed.header("access-control-allow-credentials"), Some("true"));
    let refused = read(preflight(&app, "https://evil.example").await.unwrap()).await;
    assert!(refused.header("access-control-allow-origin").is_none());
    // A simple request from the allowed origin gets the header too.
    let reply = read(app.client.get(app.url("/healthz")).header("origin", APP).send().await.unwrap()).await;
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP));

    // Unset: nothing is allowed.
    let plain = spawn_app(backend).await;
    let reply = read(preflight(&plain, APP).await.unwrap()).await;
    assert!(reply.header("access-control-allow-origin").is_none());
}
