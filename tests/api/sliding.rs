//! Sliding tokens, as simplejwt's `TokenObtainSlidingView` / `TokenRefreshSlidingView`: one
//! token that authenticates like an access token and refreshes itself until its `refresh_exp`;
//! a session of its own, so blacklisting, revoke-all and deactivation end it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{db_test, helpers::*};

const SLIDING: &str = "/api/token/sliding/";
const SLIDING_REFRESH: &str = "/api/token/sliding/refresh/";
const REFRESH_EXPIRED: &str = r#"{"detail":"Token 'refresh_exp' claim has expired","code":"token_not_valid"}"#;

db_test!(
    login_returns_one_sliding_token_with_simplejwts_claims,
    login_is_the_password_login_with_its_errors_and_throttle,
    refresh_slides_exp_and_keeps_jti_and_refresh_exp,
    an_expired_token_refreshes_until_its_refresh_exp,
    past_its_refresh_exp_it_is_refused_as_simplejwt_words_it,
    other_token_types_are_the_wrong_type_and_the_reverse,
    a_sliding_token_authenticates_as_a_bearer_token,
    a_blacklisted_sliding_token_neither_refreshes_nor_authenticates,
    revoke_all_deactivation_and_password_set_end_sliding_sessions,
    a_password_change_keeps_the_sliding_session_it_was_made_in,
    concurrent_refreshes_of_one_token_all_succeed,
    flushing_expired_records_keeps_live_sliding_sessions,
    the_document_describes_both_endpoints,
    with_the_refresh_cookie_sliding_tokens_stay_in_the_body,
    login_by_email_works_for_sliding_tokens,
);

pub(crate) async fn sliding_login(app: &TestApp, username: &str, password: &str) -> String {
    let reply = app.post_json(SLIDING, json!({"username": username, "password": password})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.field("token")
}

/// `alice` (password `correct horse`), logged in with a sliding token.
pub(crate) async fn alice_sliding(app: &TestApp) -> String {
    app.create_user("alice", "correct horse");
    sliding_login(app, "alice", "correct horse").await
}

pub(crate) async fn refreshed(app: &TestApp, token: &str) -> String {
    let reply = app.post_json(SLIDING_REFRESH, json!({"token": token})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(keys(&reply.json()), ["token"], "simplejwt answers the token alone");
    reply.field("token")
}

fn keys(value: &Value) -> Vec<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

fn ok(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}; stderr: {stderr}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The 401 simplejwt's `JWTAuthentication` sends when a sliding token is refused.
fn bearer_refused(message: &str) -> String {
    json!({
        "detail": "Given token not valid for any token type",
        "code": "token_not_valid",
        "messages": [{"token_class": "SlidingToken", "token_type": "sliding", "message": message}],
    })
    .to_string()
}

async fn login_returns_one_sliding_token_with_simplejwts_claims(backend: Backend) {
    let app = spawn_app_with(backend, &[("TOKEN_CLAIMS", "username,is_staff")]).await;
    app.create_user("alice", "correct horse");
    let reply = app.post_json(SLIDING, json!({"username": "alice", "password": "correct horse"})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(keys(&reply.json()), ["token"], "the body a simplejwt client reads: {}", reply.text);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let token = reply.field("token");

    let claims = claims(&token);
    assert_eq!(claims["token_type"], "sliding");
    let iat = claims["iat"].as_i64().unwrap();
    assert!((now() - 5..=now()).contains(&iat), "{claims}");
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 300, "SLIDING_TOKEN_LIFETIME defaults to 5m");
    assert_eq!(claims["refresh_exp"].as_i64().unwrap() - iat, 86_400, "SLIDING_TOKEN_REFRESH_LIFETIME to 1d");
    let jti = claims["jti"].as_str().unwrap();
    assert!(jti.len() == 32 && jti.chars().all(|c| c.is_ascii_hexdigit()), "{jti}");
    assert_eq!(claims["user_id"], "1", "a string, as simplejwt 5.5 writes it");
    assert_eq!(claims["sub"], "1");
    assert_eq!(claims["username"], "alice");
    assert_eq!(claims["is_staff"], false);
    assert_eq!(header(&token)["typ"], "JWT");
    // Each login is its own session.
    assert_ne!(claims["jti"], crate::helpers::claims(&sliding_login(&app, "alice", "correct horse").await)["jti"]);

    // The lifetimes are settings; no session outlives SESSION_MAX_LIFETIME, not even a sliding one.
    let app = spawn_app_with(
        backend,
        &[
            ("SLIDING_TOKEN_LIFETIME", "90s"),
            ("SLIDING_TOKEN_REFRESH_LIFETIME", "7d"),
            ("SESSION_MAX_LIFETIME", "1h"),
            ("USER_ID_CLAIM", "uid"),
        ],
    )
    .await;
    let claims = crate::helpers::claims(&alice_sliding(&app).await);
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 90, "{claims}");
    assert_eq!(claims["refresh_exp"].as_i64().unwrap() - iat, 3600, "{claims}");
    assert_eq!(claims["uid"], "1");
    assert!(claims.get("user_id").is_none(), "{claims}");
}

async fn login_is_the_password_login_with_its_errors_and_throttle(backend: Backend) {
    let app = spawn_app_with(backend, &[("LOGIN_FAILURE_LIMIT", "2")]).await;
    app.create_user("alice", "correct horse");

    let missing = app.post_json(SLIDING, json!({})).await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.text, r#"{"username":["This field is required."],"password":["This field is required."]}"#);
    let form = app.post_form("/api/token/sliding", &[("username", "alice"), ("password", "correct horse")]).await;
    assert_eq!(form.status, 200, "a form, without the trailing slash: {}", form.text);

    for password in ["wrong", "wrong again"] {
        let reply = app.post_json(SLIDING, json!({"username": "alice", "password": password})).await;
        assert_401(&reply, NO_ACTIVE_ACCOUNT);
    }
    // The failures of either login count against the same limit.
    let throttled = app.post_json("/api/token/", json!({"username": "alice", "password": "wrong"})).await;
    assert_eq!(throttled.status, 429, "{}", throttled.text);
    let throttled = app.post_json(SLIDING, json!({"username": "alice", "password": "correct horse"})).await;
    assert_eq!(throttled.status, 429, "{}", throttled.text);
    assert!(throttled.header("retry-after").is_some());

    let app = spawn_app(backend).await;
    app.create_user("bob", "bob password");
    ok(&app.cli(&["user", "deactivate", "bob"]));
    let inactive = app.post_json(SLIDING, json!({"username": "bob", "password": "bob password"})).await;
    assert_401(&inactive, NO_ACTIVE_ACCOUNT);

    ok(&app.cli(&["user", "activate", "bob"]));
    let token = sliding_login(&app, "bob", "bob password").await;
    refreshed(&app, &token).await;
    let audit = ok(&app.cli(&["audit", "tail", "--json", "-n", "50"]));
    for event in ["\"login_failed\"", "\"login_ok\"", "\"refresh\""] {
        assert!(audit.contains(event), "{event} not audited: {audit}");
    }
    assert!(!audit.contains("eyJ"), "a token reached the audit trail: {audit}");
}

async fn refresh_slides_exp_and_keeps_jti_and_refresh_exp(backend: Backend) {
    let app = spawn_app_with(backend, &[("TOKEN_CLAIMS", "is_staff,groups")]).await;
    let token = alice_sliding(&app).await;
    let before = claims(&token);
    assert_eq!(before["is_staff"], false);

    // The record changes; and a second passes, so the new exp is later.
    ok(&app.cli(&["group", "create", "editors"]));
    ok(&app.cli(&["user", "add-group", "alice", "editors"]));
    app.db.execute("UPDATE users SET is_staff = TRUE WHERE username = 'alice'").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let form = app.post_form("/api/token/sliding/refresh", &[("token", &token)]).await;
    assert_eq!(form.status, 200, "{}", form.text);
    let again = refreshed(&app, &token).await;
    let after = claims(&again);
    assert_eq!(after["token_type"], "sliding");
    assert_eq!(after["jti"], before["jti"], "simplejwt's sliding refresh keeps the jti");
    assert_eq!(after["refresh_exp"], before["refresh_exp"]);
    assert!(after["iat"].as_i64() > before["iat"].as_i64(), "{before} {after}");
    assert!(after["exp"].as_i64() > before["exp"].as_i64(), "{before} {after}");
    assert_eq!(after["exp"].as_i64().unwrap() - after["iat"].as_i64().unwrap(), 300);
    assert_eq!(after["is_staff"], true, "claims are read from the record at every refresh: {after}");
    assert_eq!(after["groups"], json!(["editors"]));
    assert_eq!(after["sub"], before["sub"]);

    // Both the old token and the new one work: nothing rotates.
    for token in [&token, &again] {
        assert_eq!(app.get_bearer("/api/me/", token).await.status, 200);
        refreshed(&app, token).await;
    }

    let missing = app.post_json(SLIDING_REFRESH, json!({})).await;
    assert_eq!((missing.status, missing.text.as_str()), (400, r#"{"token":["This field is required."]}"#));
    let refresh_field = app.post_json(SLIDING_REFRESH, json!({"refresh": token})).await;
    assert_eq!(refresh_field.text, r#"{"token":["This field is required."]}"#);
    assert_401(&app.post_json(SLIDING_REFRESH, json!({"token": "garbage"})).await, TOKEN_INVALID);
}

async fn an_expired_token_refreshes_until_its_refresh_exp(backend: Backend) {
    let app = spawn_app_with(backend, &[("SLIDING_TOKEN_LIFETIME", "1s")]).await;
    let token = alice_sliding(&app).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;

    // Past its exp it proves nothing...
    assert_401(&app.get_bearer("/api/me/", &token).await, &bearer_refused("Token is expired"));
    assert_401(&app.post_json("/api/token/verify/", json!({"token": token})).await, TOKEN_EXPIRED);
    // ...but it refreshes, as simplejwt documents, into a token that does.
    let fresh = refreshed(&app, &token).await;
    assert_eq!(claims(&fresh)["jti"], claims(&token)["jti"]);
    assert!(claims(&fresh)["exp"].as_i64().unwrap() >= now());
    let me = app.get_bearer("/api/me/", &fresh).await;
    assert_eq!((me.status, me.json()["username"].as_str()), (200, Some("alice")), "{}", me.text);
    assert_eq!(app.post_json("/api/token/verify/", json!({"token": fresh})).await.status, 200);
}

async fn past_its_refresh_exp_it_is_refused_as_simplejwt_words_it(backend: Backend) {
    let app =
        spawn_app_with(backend, &[("SLIDING_TOKEN_LIFETIME", "1h"), ("SLIDING_TOKEN_REFRESH_LIFETIME", "1s")]).await;
    let token = alice_sliding(&app).await;
    let claims = claims(&token);
    assert_eq!(claims["exp"], claims["refresh_exp"], "no token outlives its session: {claims}");
    tokio::time::sleep(Duration::from_millis(2100)).await;

    assert_401(&app.post_json(SLIDING_REFRESH, json!({"token": token})).await, REFRESH_EXPIRED);
    assert_401(&app.post_json("/api/token/blacklist/", json!({"refresh": token})).await, TOKEN_EXPIRED);
    assert_401(&app.get_bearer("/api/me/", &token).await, &bearer_refused("Token is expired"));
}

async fn other_token_types_are_the_wrong_type_and_the_reverse(backend: Backend) {
    let app = spawn_app(backend).await;
    let (access, refresh) = app.alice().await;
    for token in [&access, &refresh] {
        assert_401(&app.post_json(SLIDING_REFRESH, json!({"token": token})).await, TOKEN_WRONG_TYPE);
    }
    let sliding = sliding_login(&app, "alice", "correct horse").await;
    assert_401(&app.post_json("/api/token/refresh/", json!({"refresh": sliding})).await, TOKEN_WRONG_TYPE);
    // Refresh tokens still do not authenticate, with the message they always had.
    let refused = app.get_bearer("/api/me/", &refresh).await;
    assert_eq!(refused.json()["messages"][0]["token_class"], "AccessToken");
    assert_eq!(refused.json()["messages"][0]["message"], "Token has wrong type");

    // A forged sliding token (a flipped signature byte) proves nothing anywhere.
    let mut forged = sliding.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_401(&app.post_json(SLIDING_REFRESH, json!({"token": forged})).await, TOKEN_INVALID);
    assert_401(&app.get_bearer("/api/me/", &forged).await, &bearer_refused("Token is invalid"));
    assert_401(&app.post_json("/api/token/verify/", json!({"token": forged})).await, TOKEN_INVALID);
}

async fn a_sliding_token_authenticates_as_a_bearer_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = alice_sliding(&app).await;
    let me = app.get_bearer("/api/me/", &token).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json()["username"], "alice");
    let verified = app.post_json("/api/token/verify/", json!({"token": token})).await;
    assert_eq!((verified.status, verified.text.as_str()), (200, "{}"));

    // A deactivated user's token is refused as simplejwt refuses an inactive user's.
    ok(&app.cli(&["user", "deactivate", "alice"]));
    let refused = app.get_bearer("/api/me/", &token).await;
    assert_eq!(refused.status, 401, "{}", refused.text);
}

async fn a_blacklisted_sliding_token_neither_refreshes_nor_authenticates(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = alice_sliding(&app).await;
    let refreshed_before = refreshed(&app, &token).await;
    let other = sliding_login(&app, "alice", "correct horse").await;

    // simplejwt's blacklist endpoint takes it (in `refresh`, its only field).
    let done = app.post_json("/api/token/blacklist/", json!({"refresh": token})).await;
    assert_eq!((done.status, done.text.as_str()), (200, "{}"));

    // The token and every refresh of it are dead.
    for dead in [&token, &refreshed_before] {
        assert_401(&app.post_json(SLIDING_REFRESH, json!({"token": dead})).await, TOKEN_BLACKLISTED);
        assert_401(&app.get_bearer("/api/me/", dead).await, &bearer_refused("Token is blacklisted"));
        assert_401(&app.post_json("/api/token/verify/", json!({"token": dead})).await, TOKEN_BLACKLISTED);
        assert_401(&app.post_json("/api/token/blacklist/", json!({"refresh": dead})).await, TOKEN_BLACKLISTED);
    }
    // Another login's sliding token is another session.
    assert_eq!(app.get_bearer("/api/me/", &other).await.status, 200);
    refreshed(&app, &other).await;
    let audit = ok(&app.cli(&["audit", "tail", "--json", "-n", "50"]));
    assert!(audit.contains("\"blacklist\""), "{audit}");
}

async fn revoke_all_deactivation_and_password_set_end_sliding_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let (access, refresh) = app.alice().await;
    let sliding = sliding_login(&app, "alice", "correct horse").await;
    let done = app.post_bearer("/api/token/revoke-all/", &access, json!({})).await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_401(&app.post_json(SLIDING_REFRESH, json!({"token": sliding})).await, TOKEN_BLACKLISTED);
    assert_401(&app.get_bearer("/api/me/", &sliding).await, &bearer_refused("Token is blacklisted"));
    assert_401(&app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await, TOKEN_BLACKLISTED);

    // Revoke-all called with a sliding token ends it too, and every other session.
    let (_, refresh) = app.login("alice", "correct horse").await;
    let sliding = sliding_login(&app, "alice", "correct horse").await;
    let done = app.post_bearer("/api/token/revoke-all/", &sliding, json!({})).await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_401(&app.post_json(SLIDING_REFRESH, json!({"token": sliding})).await, TOKEN_BLACKLISTED);
    assert_401(&app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await, TOKEN_BLACKLISTED);

    // Deactivation ends it, and activating again does not bring it back.
    let sliding = sliding_login(&app, "alice", "correct horse").await;
    ok(&app.cli(&["user", "deactivate", "alice"]));
    ok(&app.cli(&["user", "activate", "alice"]));
    assert_401(&app.post_json(SLIDING_REFRESH, json!({"token": sliding})).await, TOKEN_BLACKLISTED);
    assert_401(&app.get_bearer("/api/me/", &sliding).await, &bearer_refused("Token is blacklisted"));

    // An operator setting the password ends it.
    let sliding = sliding_login(&app, "alice", "correct horse").await;
    ok(&app.cli_with_stdin(&["user", "set-password", "alice", "--password-stdin"], "battery staple"));
    assert_401(&app.post_json(SLIDING_REFRESH, json!({"token": sliding})).await, TOKEN_BLACKLISTED);
}

async fn a_password_change_keeps_the_sliding_session_it_was_made_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let current = alice_sliding(&app).await;
    let other = sliding_login(&app, "alice", "correct horse").await;
    let (_, refresh) = app.login("alice", "correct horse").await;

    let body = json!({"current_password": "correct horse", "new_password": "battery staple"});
    let done = app.post_bearer("/api/password/change/", &current, body).await;
    assert_eq!((done.status, done.text.as_str()), (200, "{}"));

    assert_eq!(app.get_bearer("/api/me/", &current).await.status, 200, "the caller's session lives on");
    refreshed(&app, &current).await;
    assert_401(&app.post_json(SLIDING_REFRESH, json!({"token": other})).await, TOKEN_BLACKLISTED);
    assert_401(&app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await, TOKEN_BLACKLISTED);
    let old = app.post_json(SLIDING, json!({"username": "alice", "password": "correct horse"})).await;
    assert_401(&old, NO_ACTIVE_ACCOUNT);
    sliding_login(&app, "alice", "battery staple").await;
}

async fn concurrent_refreshes_of_one_token_all_succeed(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = alice_sliding(&app).await;
    let replies =
        futures::future::join_all((0..12).map(|_| app.post_json(SLIDING_REFRESH, json!({"token": token.clone()}))))
            .await;
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(claims(&reply.field("token"))["jti"], claims(&token)["jti"]);
    }
    // Two tabs refreshing at once are no theft: the session lives on.
    assert_eq!(app.get_bearer("/api/me/", &token).await.status, 200);
    refreshed(&app, &replies[0].field("token")).await;
}

async fn flushing_expired_records_keeps_live_sliding_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = alice_sliding(&app).await;
    ok(&app.cli(&["tokens", "flush-expired"]));
    assert_eq!(app.get_bearer("/api/me/", &token).await.status, 200, "a live session is no empty one");
    refreshed(&app, &token).await;
}

async fn the_document_describes_both_endpoints(backend: Backend) {
    let app = spawn_app(backend).await;
    let document = app.get("/openapi.json").await.json();
    let obtain = &document["paths"]["/api/token/sliding/"]["post"];
    let body = &obtain["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["$ref"], "#/components/schemas/TokenObtainRequest");
    let refresh = &document["paths"]["/api/token/sliding/refresh/"]["post"];
    let body = &refresh["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["$ref"], "#/components/schemas/SlidingTokenRefreshRequest");
    for operation in [obtain, refresh] {
        for status in ["200", "400", "401", "403", "413", "415", "503"] {
            assert!(operation["responses"].get(status).is_some(), "{status} missing: {operation}");
        }
        let ok = &operation["responses"]["200"]["content"]["application/json"]["schema"];
        assert_eq!(ok["$ref"], "#/components/schemas/SlidingTokenResponse");
    }
    assert!(obtain["responses"].get("429").is_some());
    assert_eq!(document["components"]["schemas"]["SlidingTokenResponse"]["required"], json!(["token"]));
}

async fn login_by_email_works_for_sliding_tokens(backend: Backend) {
    let app = spawn_app_with(backend, &[("USERNAME_FIELD", "email")]).await;
    let args = ["user", "create", "alice", "--email", "Alice@Example.com", "--password-stdin"];
    ok(&app.cli_with_stdin(&args, "correct horse"));
    let reply = app.post_json(SLIDING, json!({"email": "alice@example.com", "password": "correct horse"})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(app.get_bearer("/api/me/", &reply.field("token")).await.json()["username"], "alice");
    let named = app.post_json(SLIDING, json!({"username": "alice", "password": "correct horse"})).await;
    assert_eq!((named.status, named.text.as_str()), (400, r#"{"email":["This field is required."]}"#));

    let document = app.get("/openapi.json").await.json();
    let body = &document["paths"]["/api/token/sliding/"]["post"]["requestBody"]["content"]["application/json"];
    assert_eq!(body["schema"]["$ref"], "#/components/schemas/EmailTokenObtainRequest");
}

async fn with_the_refresh_cookie_sliding_tokens_stay_in_the_body(backend: Backend) {
    const APP: &str = "http://localhost:5173";
    let app = spawn_app_with(backend, &[("REFRESH_TOKEN_COOKIE", "true"), ("CORS_ALLOWED_ORIGINS", APP)]).await;
    app.create_user("alice", "correct horse");
    let post = |path: &'static str, body: Value, origin: &'static str| {
        let request = app.client.post(app.url(path)).header("origin", origin).json(&body);
        async move { read(request.send().await.unwrap()).await }
    };
    let login = json!({"username": "alice", "password": "correct horse"});

    // As for the pair's login: a browser on a foreign page is refused.
    let foreign = post(SLIDING, login.clone(), "https://evil.example").await;
    assert_eq!(foreign.status, 403, "{}", foreign.text);

    let reply = post(SLIDING, login.clone(), APP).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.header("set-cookie").is_none(), "simplejwt returns sliding tokens in the body");
    let token = reply.field("token");
    let reply = post(SLIDING_REFRESH, json!({"token": token}), APP).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.header("set-cookie").is_none());

    // Blacklisting the sliding token leaves the browser's refresh cookie (another session) alone.
    let pair = post("/api/token/", login, APP).await;
    assert!(pair.header("set-cookie").is_some());
    let done = post("/api/token/blacklist/", json!({"refresh": token}), APP).await;
    assert_eq!((done.status, done.text.as_str()), (200, "{}"));
    assert!(done.header("set-cookie").is_none(), "the refresh cookie was cleared: {:?}", done.headers);
}
