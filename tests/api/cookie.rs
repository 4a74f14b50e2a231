//! The refresh cookie and CORS, at the HTTP level (the browser tests drive them for real).

use serde_json::json;

use crate::{
    db_test,
    fake_clerk::{FakeClerk, spawn_with_clerk},
    helpers::{Backend, Reply, TOKEN_INVALID, TestApp, assert_401, read, spawn_app, spawn_app_with},
};

db_test!(
    cookie_mode_keeps_the_refresh_token_out_of_javascripts_reach,
    the_cookie_works_only_from_allowed_origins,
    without_cookie_mode_cookies_are_ignored,
    cors_allows_exactly_the_configured_origins,
    a_foreign_page_cannot_plant_its_session_in_the_browser,
    exchanges_set_the_cookie_only_for_allowed_origins,
    two_refresh_cookies_are_refused,
    only_http_and_https_are_the_services_own_origin,
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

/// An HTML form POST, as a page on `origin` (`None`: no Origin header) submits it.
async fn post_form_from(app: &TestApp, path: &str, form: &[(&str, &str)], origin: Option<&str>) -> Reply {
    let mut request = app.client.post(app.url(path)).form(form);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    read(request.send().await.unwrap()).await
}

/// An HTML form POST from another site by a browser that sends no `Origin` (but `Sec-Fetch-Site`).
async fn post_form_cross_site(app: &TestApp, path: &str, form: &[(&str, &str)]) -> Reply {
    read(app.client.post(app.url(path)).header("sec-fetch-site", "cross-site").form(form).send().await.unwrap()).await
}

const ALICE: [(&str, &str); 2] = [("username", "alice"), ("password", "correct horse")];

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

/// 403 as refresh words it for a foreign origin, and no cookie set.
fn assert_foreign(reply: &Reply, origin: &str) {
    assert_eq!(reply.status, 403, "{}", reply.text);
    let detail = format!("CSRF Failed: Origin checking failed - {origin} does not match any trusted origins.");
    assert_eq!(reply.json(), json!({ "detail": detail }));
    assert!(reply.header("set-cookie").is_none(), "a refused request set a cookie: {:?}", reply.headers);
}

async fn a_foreign_page_cannot_plant_its_session_in_the_browser(backend: Backend) {
    // Login CSRF: a page elsewhere submits a form with the attacker's credentials (or refresh
    // token); had the answer set the cookie, the victim's app would run in the attacker's account.
    let app = cookie_app(backend).await;
    let evil = "https://evil.example";
    assert_foreign(&post_form_from(&app, "/api/token/", &ALICE, Some(evil)).await, evil);
    // A browser that names no Origin still says the request is cross-site.
    let hidden = post_form_cross_site(&app, "/api/token/", &ALICE).await;
    assert_eq!((hidden.status, hidden.json()), (403, json!({"detail": "CSRF Failed: Origin header missing."})));
    assert!(hidden.header("set-cookie").is_none());

    let login = post_form_from(&app, "/api/token/", &ALICE, Some(APP)).await;
    assert_eq!(login.status, 200, "{}", login.text);
    let (token, _) = set_cookie(&login);
    // The refresh answer sets the cookie too, whether the token came in the cookie or the body.
    assert_foreign(&post_form_from(&app, "/api/token/refresh/", &[("refresh", &token)], Some(evil)).await, evil);
    assert_foreign(&post_form_from(&app, "/api/token/blacklist/", &[("refresh", &token)], Some(evil)).await, evil);
    // The refused requests changed nothing: the token still refreshes, from the app.
    let own = format!("http://{}", app.addr);
    let refreshed = post_form_from(&app, "/api/token/refresh/", &[("refresh", &token)], Some(&own)).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    set_cookie(&refreshed);
}

async fn exchanges_set_the_cookie_only_for_allowed_origins(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let provider = FakeClerk::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("issuers.toml");
    let issuer = provider.issuer();
    std::fs::write(
        &file,
        format!("[[issuer]]\nname = \"acme\"\nissuer = \"{issuer}\"\njwks_url = \"{issuer}/.well-known/jwks.json\"\n"),
    )
    .unwrap();
    let path = file.display().to_string();
    let app = spawn_with_clerk(
        backend,
        &clerk,
        &[("REFRESH_TOKEN_COOKIE", "true"), ("CORS_ALLOWED_ORIGINS", APP), ("EXTERNAL_ISSUERS_FILE", &path)],
    )
    .await;
    let evil = "https://evil.example";
    for (endpoint, fake) in [("/api/token/clerk/", &clerk), ("/api/token/acme/", &provider)] {
        let token = fake.session_token("user_mallory");
        assert_foreign(&post_form_from(&app, endpoint, &[("token", &token)], Some(evil)).await, evil);
        let hidden = post_form_cross_site(&app, endpoint, &[("token", &token)]).await;
        assert_eq!(hidden.status, 403, "{endpoint}: {}", hidden.text);
        let allowed = post_form_from(&app, endpoint, &[("token", &token)], Some(APP)).await;
        assert_eq!(allowed.status, 200, "{endpoint}: {}", allowed.text);
        set_cookie(&allowed);
    }
}

async fn two_refresh_cookies_are_refused(backend: Backend) {
    // A cookie planted for a parent domain or another path travels next to ours; neither is
    // used, whichever comes first.
    let app = cookie_app(backend).await;
    app.create_user("mallory", "mallory's password");
    let login = |form: [(&'static str, &'static str); 2]| {
        let app = &app;
        async move { set_cookie(&post_form_from(app, "/api/token/", &form, Some(APP)).await).0 }
    };
    let alice = login(ALICE).await;
    let mallory = login([("username", "mallory"), ("password", "mallory's password")]).await;
    for pair in [format!("{mallory}; refresh_token={alice}"), format!("{alice}; refresh_token={mallory}")] {
        let reply = post_with_cookie(&app, "/api/token/refresh/", &pair, Some(APP)).await;
        assert_401(&reply, TOKEN_INVALID);
        assert!(reply.header("set-cookie").is_none(), "{:?}", reply.headers);
    }
    // Nothing was used: each alone still refreshes.
    for token in [&alice, &mallory] {
        assert_eq!(post_with_cookie(&app, "/api/token/refresh/", token, Some(APP)).await.status, 200);
    }
}

async fn only_http_and_https_are_the_services_own_origin(backend: Backend) {
    let app = cookie_app(backend).await;
    let login = post_form_from(&app, "/api/token/", &ALICE, Some(APP)).await;
    let (token, _) = set_cookie(&login);
    // Same host and port as the request, but not a web origin.
    for scheme in ["evil", "file", "chrome-extension"] {
        let origin = format!("{scheme}://{}", app.addr);
        assert_foreign(&post_with_cookie(&app, "/api/token/refresh/", &token, Some(&origin)).await, &origin);
        assert_foreign(&post_form_from(&app, "/api/token/", &ALICE, Some(&origin)).await, &origin);
    }
    // Its own origin, by http or https, still is.
    for scheme in ["http", "https"] {
        let origin = format!("{scheme}://{}", app.addr);
        let login = post_form_from(&app, "/api/token/", &ALICE, Some(&origin)).await;
        let (token, _) = set_cookie(&login);
        let reply = post_with_cookie(&app, "/api/token/refresh/", &token, Some(&origin)).await;
        assert_eq!(reply.status, 200, "{origin}: {}", reply.text);
    }
}
