//! Bad input never gets a 500 or a panic: it gets a 4xx with a JSON body, shaped as DRF's.

use serde_json::{Value, json};

use crate::helpers::*;

/// A client error with a JSON object body (never a bare status, never HTML).
#[track_caller]
fn assert_json_4xx(reply: &Reply, what: &str) {
    assert!((400..500).contains(&reply.status), "{what}: status {} {}", reply.status, reply.text);
    let body: Value = serde_json::from_str(&reply.text)
        .unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {:?}", reply.text));
    assert!(body.is_object(), "{what}: {body}");
    let content_type = reply.header("content-type").unwrap_or("");
    assert!(content_type.starts_with("application/json"), "{what}: content-type {content_type:?}");
}

async fn send(app: &TestApp, method: reqwest::Method, path: &str) -> Reply {
    read(app.client.request(method, app.url(path)).send().await.unwrap()).await
}

async fn with_authorization(app: &TestApp, path: &str, value: Option<&str>) -> Reply {
    let mut request = app.client.get(app.url(path));
    if let Some(v) = value {
        request = request.header("authorization", v);
    }
    read(request.send().await.unwrap()).await
}

const NOT_PROVIDED: &str = r#"{"detail":"Authentication credentials were not provided."}"#;

/// Every hostile request below, against `app`. Returns nothing: each one asserts its own answer.
async fn volley(app: &TestApp) {
    // --- bodies
    let huge = format!(r#"{{"username":"alice","password":"{}"}}"#, "x".repeat(70 * 1024));
    let reply = app.post_raw("/api/token/", "application/json", huge.clone()).await;
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert_json_4xx(&reply, "body over 64 KiB");
    assert!(reply.json()["detail"].is_string(), "{}", reply.text);
    let form = format!("username=alice&password={}", "x".repeat(70 * 1024));
    let reply = app.post_raw("/api/token/refresh/", "application/x-www-form-urlencoded", form).await;
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert_json_4xx(&reply, "form over 64 KiB");
    let reply = app.post_raw("/api/token/", "text/plain", huge).await;
    assert_json_4xx(&reply, "big text/plain body");

    for (what, body) in [
        ("not JSON", "username=alice"),
        ("truncated", r#"{"username": "alice", "#),
        ("trailing garbage", r#"{"username": "alice"} x"#),
        ("single quotes", r#"{'username': 'alice'}"#),
        ("bare word", "alice"),
    ] {
        let reply = app.post_raw("/api/token/", "application/json", body).await;
        assert_eq!(reply.status, 400, "{what}: {}", reply.text);
        assert_json_4xx(&reply, what);
        let detail = reply.json()["detail"].as_str().unwrap_or_default().to_owned();
        assert!(detail.starts_with("JSON parse error - "), "{what}: {}", reply.text);
    }

    for (body, python_type) in
        [("[]", "list"), (r#"["a"]"#, "list"), (r#""alice""#, "str"), ("42", "int"), ("4.2", "float"), ("true", "bool")]
    {
        let reply = app.post_raw("/api/token/", "application/json", body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        let expected = format!("Invalid data. Expected a dictionary, but got {python_type}.");
        assert_eq!(reply.json(), json!({"non_field_errors": [expected]}), "{body}");
    }
    let reply = app.post_raw("/api/token/", "application/json", "null").await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(reply.json()["non_field_errors"].is_array(), "{}", reply.text);

    // Nesting: past the body limit, and just under it (the parser's own depth limit).
    for depth in [100_000, 60_000, 200] {
        for (open, close) in [("[", "]"), (r#"{"a":"#, "}")] {
            let body = format!("{}{}", open.repeat(depth), close.repeat(depth));
            let body = if body.len() > 64 * 1024 { open.repeat(depth) } else { body };
            let reply = app.post_raw("/api/token/", "application/json", body).await;
            assert_json_4xx(&reply, &format!("nesting {depth} {open}"));
        }
    }

    let mut bad_utf8 = br#"{"username": "al"#.to_vec();
    bad_utf8.extend([0xff, 0xfe, 0xc3]);
    bad_utf8.extend(br#"ice", "password": "x"}"#);
    let reply = app.post_raw("/api/token/", "application/json", bad_utf8).await;
    assert_json_4xx(&reply, "invalid UTF-8 in JSON");
    let mut bad_form = b"username=al".to_vec();
    bad_form.extend([0xff, 0xfe, 0xc3]);
    bad_form.extend(b"ice&password=x%ff%fe");
    let reply = app.post_raw("/api/token/", "application/x-www-form-urlencoded", bad_form).await;
    assert_json_4xx(&reply, "invalid UTF-8 in a form");
    let reply =
        app.post_raw("/api/token/verify/", "application/x-www-form-urlencoded", b"token=%ff%00%c3".to_vec()).await;
    assert_json_4xx(&reply, "percent-encoded bad UTF-8 token");
    let reply = app.post_raw("/api/token/", "application/x-www-form-urlencoded", "&&==&=x&%%%&username").await;
    assert_json_4xx(&reply, "mangled form");

    let reply = app.post_raw("/api/token/", "text/plain", "username=alice&password=x").await;
    assert_eq!(reply.status, 415, "{}", reply.text);
    assert_eq!(reply.text, r#"{"detail":"Unsupported media type \"text/plain\" in request."}"#);
    for content_type in ["application/xml", "multipart/form-data; boundary=x", "application/jsonx", "garbage"] {
        let reply = app.post_raw("/api/token/", content_type, "username=alice").await;
        assert_eq!(reply.status, 415, "{content_type}: {}", reply.text);
        assert_json_4xx(&reply, content_type);
    }

    // --- fields
    let reply = app.post_json("/api/token/", json!({"username": ["a"], "password": {}})).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.json(), json!({"username": ["Not a valid string."], "password": ["Not a valid string."]}));
    let reply = app.post_json("/api/token/", json!({"username": true, "password": "x"})).await;
    assert_eq!(reply.json(), json!({"username": ["Not a valid string."]}), "{}", reply.text);
    let reply = app.post_json("/api/token/", json!({"username": null, "password": null})).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(
        reply.json(),
        json!({"username": ["This field may not be null."], "password": ["This field may not be null."]})
    );
    let reply = app.post_json("/api/token/", json!({"username": "", "password": "x"})).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.text, r#"{"username":["This field may not be blank."]}"#);
    let reply = app.post_json("/api/token/", json!({"username": "   ", "password": ""})).await;
    assert_eq!(
        reply.json(),
        json!({"username": ["This field may not be blank."], "password": ["This field may not be blank."]})
    );
    let reply = app.post_form("/api/token/", &[("username", ""), ("password", "")]).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    for (field, value) in [("refresh", json!([])), ("refresh", json!({"a": 1})), ("refresh", Value::Null)] {
        let reply = app.post_json("/api/token/refresh/", json!({ field: value })).await;
        assert_eq!(reply.status, 400, "{value}: {}", reply.text);
        assert!(reply.json()["refresh"].is_array(), "{}", reply.text);
    }
    let reply = app.post_json("/api/token/verify/", json!({"token": 12})).await;
    assert_401(&reply, TOKEN_INVALID);

    for (what, username, password) in [
        ("10,000-char username", "u".repeat(10_000), "x".to_owned()),
        ("10,000-char password", "alice".to_owned(), "p".repeat(10_000)),
        ("unicode", "ålice 🦀 ﷽ \u{202e}".to_owned(), "pässwörd 🔑".to_owned()),
        ("control characters", "\u{1}\u{7f}\u{1b}[31m".to_owned(), "\u{8}".to_owned()),
        ("lone surrogate escape", "\\ud800".to_owned(), "x".to_owned()),
        ("SQL", "alice' OR '1'='1".to_owned(), "' OR 1=1 --".to_owned()),
    ] {
        let reply = app.post_json("/api/token/", json!({"username": username, "password": password})).await;
        assert_401(&reply, NO_ACTIVE_ACCOUNT);
        let reply = app.post_form("/api/token/", &[("username", &username), ("password", &password)]).await;
        assert_eq!(reply.status, 401, "{what} as a form: {}", reply.text);
    }
    // NUL: refused as DRF's CharField refuses it (PostgreSQL could not even look it up).
    for (username, password, body) in [
        ("ali\u{0}ce", "correct horse", r#"{"username":["Null characters are not allowed."]}"#),
        ("alice", "correct\u{0}horse", r#"{"password":["Null characters are not allowed."]}"#),
        (
            "\u{0}",
            "\u{0}",
            r#"{"username":["Null characters are not allowed."],"password":["Null characters are not allowed."]}"#,
        ),
    ] {
        let reply = app.post_json("/api/token/", json!({"username": username, "password": password})).await;
        assert_eq!(reply.status, 400, "{username:?}: {}", reply.text);
        assert_eq!(reply.text, body);
        let reply = app.post_form("/api/token/", &[("username", username), ("password", password)]).await;
        assert_eq!(reply.text, body);
    }
    for (path, field) in
        [("/api/token/refresh/", "refresh"), ("/api/token/verify/", "token"), ("/api/token/blacklist/", "refresh")]
    {
        let reply = app.post_json(path, json!({ field: "eyJ\u{0}.e30.x" })).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.text);
        assert_eq!(reply.json(), json!({ field: ["Null characters are not allowed."] }), "{path}");
    }

    // A JSON lone-surrogate escape is not valid UTF-8 once decoded.
    let reply = app.post_raw("/api/token/", "application/json", r#"{"username": "\ud800", "password": "x"}"#).await;
    assert_json_4xx(&reply, "lone surrogate");

    // --- garbage tokens
    let big = format!("eyJhbGciOiJIUzI1NiJ9.{}.{}", "A".repeat(60_000), "B".repeat(43));
    let garbage = [
        ".".to_owned(),
        "..".to_owned(),
        "...".to_owned(),
        "a..c".to_owned(),
        ".b.c".to_owned(),
        "a.b.".to_owned(),
        "a.b.c".to_owned(),
        "a.b.c.d".to_owned(),
        "abc".to_owned(),
        "Bearer x".to_owned(),
        big,
        "x".repeat(60_000),
        "bm90IGpzb24.bm90IGpzb24.c2lnbmF0dXJl".to_owned(), // base64 of "not json"
        "W10.e30.c2ln".to_owned(),                         // header `[]`
        "e30.e30.c2ln".to_owned(),                         // header `{}`: no alg
        "eyJhbGciOiJFUzI1NiJ9.W10.c2ln".to_owned(),        // claims `[]`
        "eyJhbGciOiJFUzI1NiJ9.bnVsbA.c2ln".to_owned(),     // claims `null`
        "eyJhbGciOiJFUzI1NiIsImtpZCI6WzFdfQ.e30.c2ln".to_owned(), // kid a list
        "eyJhbGciOiJSUzI1NiIsImtpZCI6Ilx1MDAwMCJ9.e30.c2ln".to_owned(), // kid "\u0000"
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.!!!".to_owned(),
        "eyJ.é.🦀".to_owned(),
    ];
    for token in &garbage {
        let shown: String = token.chars().take(60).collect();
        for (path, field) in
            [("/api/token/refresh/", "refresh"), ("/api/token/verify/", "token"), ("/api/token/blacklist/", "refresh")]
        {
            let reply = app.post_json(path, json!({ field: token })).await;
            assert_eq!(reply.status, 401, "{shown:?} at {path}: {}", reply.text);
            assert_401(&reply, TOKEN_INVALID);
        }
        let form = app.post_form("/api/token/verify/", &[("token", token)]).await;
        assert_401(&form, TOKEN_INVALID);
        if token.is_ascii() && token.len() < 8000 {
            let me = app.get_bearer("/api/me/", token.split_whitespace().last().unwrap_or("x")).await;
            assert_eq!(me.status, 401, "{shown:?} as Bearer: {}", me.text);
            assert_json_4xx(&me, "garbage Bearer");
        }
    }

    // --- Authorization header
    for path in ["/api/me/", "/api/me"] {
        let none = with_authorization(app, path, None).await;
        assert_401(&none, NOT_PROVIDED);
        let basic = with_authorization(app, path, Some("Basic xyz")).await;
        assert_401(&basic, NOT_PROVIDED);
        let other = with_authorization(app, path, Some("Token abc.def.ghi")).await;
        assert_401(&other, NOT_PROVIDED);
        let empty = with_authorization(app, path, Some("")).await;
        assert_401(&empty, NOT_PROVIDED);
        for value in ["Bearer", "bearer", "Bearer a.b.c d.e.f", "Bearer  a b c"] {
            let reply = with_authorization(app, path, Some(value)).await;
            assert_eq!(reply.status, 401, "{value:?}: {}", reply.text);
            assert_json_4xx(&reply, value);
            assert_eq!(reply.json()["code"], "bad_authorization_header", "{value:?}: {}", reply.text);
            assert_eq!(reply.header("www-authenticate"), Some("Bearer realm=\"api\""));
        }
        let garbage = with_authorization(app, path, Some("Bearer not-a-jwt")).await;
        assert_eq!(garbage.status, 401);
        assert_eq!(garbage.json()["code"], "token_not_valid", "{}", garbage.text);
        let binary = read(
            app.client
                .get(app.url(path))
                .header("authorization", reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(binary.status, 401, "{}", binary.text);
        assert_json_4xx(&binary, "non-UTF-8 Authorization");
    }
    for path in ["/api/token/revoke-all/", "/api/password/change/"] {
        let reply = read(app.client.post(app.url(path)).send().await.unwrap()).await;
        assert_401(&reply, NOT_PROVIDED);
        let reply =
            read(app.client.post(app.url(path)).header("authorization", "Basic xyz").send().await.unwrap()).await;
        assert_401(&reply, NOT_PROVIDED);
        let reply = read(app.client.post(app.url(path)).header("authorization", "Bearer").send().await.unwrap()).await;
        assert_eq!(reply.status, 401, "{}", reply.text);
        assert_json_4xx(&reply, "Bearer with no token");
    }

    // --- paths and methods
    let post_paths = [
        "/api/token/",
        "/api/token/refresh/",
        "/api/token/verify/",
        "/api/token/blacklist/",
        "/api/token/revoke-all/",
        "/api/password/change/",
    ];
    for path in post_paths {
        for path in [path.to_owned(), path.trim_end_matches('/').to_owned()] {
            let reply = app.post_json(&path, json!({})).await;
            assert!(matches!(reply.status, 400 | 401), "POST {path}: {} {}", reply.status, reply.text);
            assert_json_4xx(&reply, &path);
            let get = app.get(&path).await;
            assert_eq!(get.status, 405, "GET {path}: {}", get.text);
            assert_eq!(get.text, r#"{"detail":"Method \"GET\" not allowed."}"#);
            let delete = send(app, reqwest::Method::DELETE, &path).await;
            assert_eq!(delete.status, 405, "DELETE {path}: {}", delete.text);
            assert_eq!(delete.text, r#"{"detail":"Method \"DELETE\" not allowed."}"#);
            let put = send(app, reqwest::Method::PUT, &path).await;
            assert_eq!(put.text, r#"{"detail":"Method \"PUT\" not allowed."}"#);
        }
    }
    for (path, status) in [
        ("/api/me/", 401),
        ("/healthz", 200),
        ("/readyz", 200),
        ("/metrics", 200),
        ("/.well-known/jwks.json", 200),
        ("/openapi.json", 200),
    ] {
        let other = match path.strip_suffix('/') {
            Some(bare) => bare.to_owned(),
            None => format!("{path}/"),
        };
        for path in [path.to_owned(), other] {
            let reply = app.get(&path).await;
            assert_eq!(reply.status, status, "GET {path}: {}", reply.text);
            let post = app.post_json(&path, json!({})).await;
            assert_eq!(post.status, 405, "POST {path}: {}", post.text);
            assert_eq!(post.text, r#"{"detail":"Method \"POST\" not allowed."}"#);
            let delete = send(app, reqwest::Method::DELETE, &path).await;
            assert_eq!(delete.text, r#"{"detail":"Method \"DELETE\" not allowed."}"#, "DELETE {path}");
        }
    }
    // /api/token/{provider}/ is a route (external identity providers): an unknown provider is a
    // 404 to POST, and other methods are 405 as on every route.
    let unknown = app.post_json("/api/token/nope/", json!({"token": "x"})).await;
    assert_eq!((unknown.status, unknown.json()), (404, json!({"detail": "Not found."})));
    assert_eq!(app.get("/api/token/nope/").await.status, 405);
    assert_eq!(app.post_json("/api/token//", json!({"token": "x"})).await.status, 404);
    for path in
        ["/nope", "/api/", "/api/token/nope/x/", "/api/me/x", "/.well-known/", "/%ff%fe", "/..%2f..%2fetc/passwd"]
    {
        let reply = app.get(path).await;
        assert_eq!(reply.status, 404, "GET {path}: {}", reply.text);
        assert_eq!(reply.json(), json!({"detail": "Not found."}), "{path}");
        let post = app.post_json(path, json!({})).await;
        assert_eq!(post.status, 404, "POST {path}: {}", post.text);
        assert_json_4xx(&post, path);
    }
}

async fn hostile_input_gets_json_4xx_never_500(backend: Backend) {
    let app = spawn_app(backend).await;
    let (access, refresh) = app.alice().await;

    volley(&app).await;

    // Nobody was logged in or out by any of it, and the server still answers.
    let reply = app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(app.get_bearer("/api/me/", &access).await.status, 200);
    assert_eq!(app.get("/healthz").await.json(), json!({"status": "ok"}));

    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    let five_hundreds: Vec<&str> =
        metrics.text.lines().filter(|l| !l.starts_with('#') && l.contains("status=\"500\"")).collect();
    assert!(five_hundreds.is_empty(), "some request got a 500: {five_hundreds:?}");
    let panics: Vec<&str> = metrics.text.lines().filter(|l| l.starts_with("tokensmith_panics_total")).collect();
    assert!(panics.is_empty(), "a handler panicked: {panics:?}");
    // The volley itself was counted, so the absence above means something.
    assert!(metrics.text.contains("status=\"415\""), "requests are not being counted");
}

/// A panic in the server would close the connection (or 500); a raw socket sees exactly what comes back.
async fn malformed_http_is_refused_cleanly(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app(backend).await;
    for raw in [
        "POST /api/token/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\nConnection: close\r\n\r\n{\"a\"",
        "POST /api/token/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 999999\r\nConnection: close\r\n\r\n{}",
        "POST /api/token/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n20000\r\n",
    ] {
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        stream.write_all(raw.as_bytes()).await.unwrap();
        let _ = stream.shutdown().await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(!answer.contains(" 500 "), "{raw:?} → {answer}");
    }
    assert_eq!(app.get("/healthz").await.status, 200);
}

/// A body sent a byte at a time (slowloris) holds a connection only until REQUEST_TIMEOUT.
async fn slow_drip_bodies_are_cut_off(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = crate::helpers::spawn_app_with(backend, &[("REQUEST_TIMEOUT", "1s")]).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = "POST /api/token/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{";
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    // Keep dripping in the background; the server must answer anyway.
    let drip = tokio::spawn(async move {
        for _ in 0..20 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            if writer.write_all(b" ").await.is_err() {
                break;
            }
        }
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), reader.read_to_end(&mut answer)).await;
    let elapsed = started.elapsed();
    drip.abort();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#"{"detail":"Request Timeout."}"#), "{answer}");
    assert!(elapsed < std::time::Duration::from_secs(3), "held for {elapsed:?}");
    assert_eq!(app.get("/healthz").await.status, 200);
}

crate::db_test!(hostile_input_gets_json_4xx_never_500, malformed_http_is_refused_cleanly, slow_drip_bodies_are_cut_off);
