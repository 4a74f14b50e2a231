//! The simplejwt-compatible endpoints and what tokensmith adds: exact bodies, rotation,
//! reuse detection, races, revocation, sessions.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

async fn obtain_pair_with_json_and_form(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse");

    let json = app.post_json("/api/token/", json!({"username": "alice", "password": "correct horse"})).await;
    assert_eq!(json.status, 200, "{}", json.text);
    let keys: Vec<String> = json.json().as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["refresh", "access"], "simplejwt's key order");
    assert_eq!(json.header("cache-control"), Some("no-store"));

    let form = app.post_form("/api/token/", &[("username", "alice"), ("password", "correct horse")]).await;
    assert_eq!(form.status, 200, "{}", form.text);

    let access = claims(&form.field("access"));
    let refresh = claims(&form.field("refresh"));
    assert_eq!(access["token_type"], "access");
    assert_eq!(refresh["token_type"], "refresh");
    assert_eq!(access["user_id"], "1");
    assert_eq!(refresh["user_id"], "1");
    for c in [&access, &refresh] {
        let jti = c["jti"].as_str().unwrap();
        assert!(jti.len() == 32 && jti.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{jti}");
        assert!((c["iat"].as_i64().unwrap() - now()).abs() <= 5);
    }
    assert_eq!(access["exp"].as_i64().unwrap() - access["iat"].as_i64().unwrap(), 300);
    assert_eq!(refresh["exp"].as_i64().unwrap() - refresh["iat"].as_i64().unwrap(), 86400);
    let h = header(&form.field("access"));
    assert_eq!(h["typ"], "JWT");
    assert_eq!(h["alg"], "ES256");
    assert!(h["kid"].is_string());

    // The trailing slash is optional, and username whitespace is trimmed as DRF does.
    let bare = app.post_json("/api/token", json!({"username": " alice ", "password": "correct horse"})).await;
    assert_eq!(bare.status, 200, "{}", bare.text);
}

async fn obtain_refuses_wrong_unknown_and_inactive(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse");
    app.create_user("bob", "bob password");
    assert!(app.cli(&["user", "deactivate", "bob"]).status.success());

    for (username, password) in [
        ("alice", "wrong"),
        ("alice", "correct horse "),
        ("Alice", "correct horse"),
        ("nobody", "x"),
        ("bob", "bob password"),
    ] {
        let reply = app.post_json("/api/token/", json!({"username": username, "password": password})).await;
        assert_401(&reply, NO_ACTIVE_ACCOUNT);
    }
}

async fn obtain_reports_each_missing_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let both = app.post_json("/api/token/", json!({})).await;
    assert_eq!(both.status, 400);
    assert_eq!(both.text, r#"{"username":["This field is required."],"password":["This field is required."]}"#);

    let one = app.post_form("/api/token/", &[("username", "alice")]).await;
    assert_eq!(one.status, 400);
    assert_eq!(one.text, r#"{"password":["This field is required."]}"#);

    let blank = app.post_json("/api/token/", json!({"username": "", "password": "x"})).await;
    assert_eq!(blank.text, r#"{"username":["This field may not be blank."]}"#);

    let empty = app.post_raw("/api/token/", "application/json", "").await;
    assert_eq!(empty.status, 400);
    assert_eq!(empty.json()["password"][0], "This field is required.");

    let bad = app.post_raw("/api/token/", "application/json", "{\"username\": ").await;
    assert_eq!(bad.status, 400);
    assert!(bad.json()["detail"].as_str().unwrap().starts_with("JSON parse error - "), "{}", bad.text);

    for (path, field) in
        [("/api/token/refresh/", "refresh"), ("/api/token/verify/", "token"), ("/api/token/blacklist/", "refresh")]
    {
        let reply = app.post_json(path, json!({})).await;
        assert_eq!(reply.status, 400);
        assert_eq!(reply.text, format!(r#"{{"{field}":["This field is required."]}}"#));
    }

    let get = app.get("/api/token/").await;
    assert_eq!(get.status, 405);
    assert_eq!(get.text, r#"{"detail":"Method \"GET\" not allowed."}"#);
}

async fn refresh_rotates_and_retires_the_old_token(backend: Backend) {
    let app = spawn_app_with(backend, &[("AUDIT_REFRESHES", "true")]).await;
    let (_, refresh) = app.alice().await;

    let first = app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let keys: Vec<String> = first.json().as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["access", "refresh"]);
    let rotated = first.field("refresh");
    assert_ne!(rotated, refresh);
    assert_ne!(claims(&rotated)["jti"], claims(&refresh)["jti"]);
    assert_eq!(claims(&first.field("access"))["token_type"], "access");

    // The old one is dead; the new one carries the session on (form body this time).
    assert_401(&app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await, TOKEN_BLACKLISTED);
    let second = app.post_form("/api/token/refresh", &[("refresh", &rotated)]).await;
    assert_eq!(second.status, 200, "{}", second.text);

    // An access token where a refresh token belongs.
    let access = first.field("access");
    assert_401(&app.post_json("/api/token/refresh/", json!({"refresh": access})).await, TOKEN_WRONG_TYPE);
    assert_401(&app.post_json("/api/token/refresh/", json!({"refresh": "not.a.token"})).await, TOKEN_INVALID);

    // With AUDIT_REFRESHES, each rotation is in the audit trail, with the user and the client address.
    let audit = String::from_utf8(app.cli(&["audit", "tail", "-n", "20", "--json"]).stdout).unwrap();
    let refreshes: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["event"] == "refresh")
        .collect();
    assert_eq!(refreshes.len(), 2, "{audit}");
    assert_eq!(refreshes[0]["client_addr"], "127.0.0.1");
    assert!(refreshes[0]["user_id"].is_number());
    assert_eq!(refreshes[0]["username"], "alice");
}

async fn reuse_after_grace_revokes_the_whole_family(backend: Backend) {
    let app = spawn_app_with(backend, &[("REFRESH_REUSE_GRACE", "1s")]).await;
    let (_, original) = app.alice().await;
    let (_, other_session) = app.login("alice", "correct horse").await;

    let r1 = app.post_json("/api/token/refresh/", json!({"refresh": original})).await.field("refresh");
    let r2 = app.post_json("/api/token/refresh/", json!({"refresh": r1})).await.field("refresh");

    tokio::time::sleep(Duration::from_millis(1300)).await;
    // The thief replays the first token: refused, and the chain dies, newest token included.
    assert_401(&app.post_json("/api/token/refresh/", json!({"refresh": original})).await, TOKEN_BLACKLISTED);
    assert_401(&app.post_json("/api/token/refresh/", json!({"refresh": r2})).await, TOKEN_BLACKLISTED);
    assert_401(&app.post_json("/api/token/verify/", json!({"token": r2})).await, TOKEN_BLACKLISTED);

    // Another login of the same user is another family, untouched.
    let other = app.post_json("/api/token/refresh/", json!({"refresh": other_session})).await;
    assert_eq!(other.status, 200, "{}", other.text);

    let audit = app.cli(&["audit", "tail", "-n", "50"]);
    assert!(String::from_utf8_lossy(&audit.stdout).contains("refresh_reuse_detected"));
}

async fn two_tabs_racing_within_grace_keep_the_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, refresh) = app.alice().await;
    let tab_a = app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(tab_a.status, 200);
    // Tab B presents the same token a moment later, inside REFRESH_REUSE_GRACE (10 s).
    let tab_b = app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_401(&tab_b, TOKEN_BLACKLISTED);
    // ...and the session lives on through tab A's token.
    let next = app.post_json("/api/token/refresh/", json!({"refresh": tab_a.field("refresh")})).await;
    assert_eq!(next.status, 200, "{}", next.text);
}

async fn sixteen_concurrent_refreshes_have_one_winner(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, refresh) = app.alice().await;
    let attempts = (0..16).map(|_| app.post_json("/api/token/refresh/", json!({"refresh": refresh})));
    let replies = futures::future::join_all(attempts).await;
    let winners: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    assert_eq!(winners.len(), 1, "statuses: {:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
    for loser in replies.iter().filter(|r| r.status != 200) {
        assert_401(loser, TOKEN_BLACKLISTED);
    }
    let next = app.post_json("/api/token/refresh/", json!({"refresh": winners[0].field("refresh")})).await;
    assert_eq!(next.status, 200, "the winner's token carries the session on: {}", next.text);
}

async fn without_rotation_refresh_returns_access_only(backend: Backend) {
    let app = spawn_app_with(backend, &[("ROTATE_REFRESH_TOKENS", "false")]).await;
    let (_, refresh) = app.alice().await;
    for _ in 0..2 {
        let reply = app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json().as_object().unwrap().keys().cloned().collect::<Vec<_>>(), ["access"]);
    }
}

async fn verify_accepts_live_tokens_and_names_what_is_wrong(backend: Backend) {
    let app = spawn_app_with(backend, &[("ACCESS_TOKEN_LIFETIME", "1s")]).await;
    let (access, refresh) = app.alice().await;

    for token in [&access, &refresh] {
        let ok = app.post_json("/api/token/verify/", json!({"token": token})).await;
        assert_eq!((ok.status, ok.text.as_str()), (200, "{}"));
    }
    let form = app.post_form("/api/token/verify", &[("token", &refresh)]).await;
    assert_eq!(form.status, 200);

    // A flipped signature byte.
    let mut forged = access.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_401(&app.post_json("/api/token/verify/", json!({"token": forged})).await, TOKEN_INVALID);
    assert_401(&app.post_json("/api/token/verify/", json!({"token": "garbage"})).await, TOKEN_INVALID);

    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_401(&app.post_json("/api/token/verify/", json!({"token": access})).await, TOKEN_EXPIRED);
    assert_401(
        &app.get_bearer("/api/me/", &access).await,
        &json!({
            "detail": "Given token not valid for any token type",
            "code": "token_not_valid",
            "messages": [{"token_class": "AccessToken", "token_type": "access", "message": "Token is expired"}],
        })
        .to_string(),
    );
}

async fn blacklist_logs_the_session_out(backend: Backend) {
    let app = spawn_app(backend).await;
    let (access, refresh) = app.alice().await;

    assert_401(&app.post_json("/api/token/blacklist/", json!({"refresh": access})).await, TOKEN_WRONG_TYPE);
    let done = app.post_json("/api/token/blacklist/", json!({"refresh": refresh})).await;
    assert_eq!((done.status, done.text.as_str()), (200, "{}"));

    assert_401(&app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await, TOKEN_BLACKLISTED);
    assert_401(&app.post_json("/api/token/verify/", json!({"token": refresh})).await, TOKEN_BLACKLISTED);
    assert_401(&app.post_json("/api/token/blacklist/", json!({"refresh": refresh})).await, TOKEN_BLACKLISTED);

    // A token rotated away is as dead as a blacklisted one.
    let (_, second) = app.login("alice", "correct horse").await;
    app.post_json("/api/token/refresh/", json!({"refresh": second})).await;
    assert_401(&app.post_form("/api/token/blacklist/", &[("refresh", &second)]).await, TOKEN_BLACKLISTED);
}

async fn revoke_all_ends_every_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let (access, first) = app.alice().await;
    let (_, second) = app.login("alice", "correct horse").await;
    app.create_user("bob", "bob password");
    let (_, bobs) = app.login("bob", "bob password").await;

    let missing = app.post_json("/api/token/revoke-all/", json!({})).await;
    assert_401(&missing, r#"{"detail":"Authentication credentials were not provided."}"#);

    let done = app.post_bearer("/api/token/revoke-all/", &access, json!({})).await;
    assert_eq!((done.status, done.text.as_str()), (200, "{}"));
    for token in [&first, &second] {
        assert_401(&app.post_json("/api/token/refresh/", json!({"refresh": token})).await, TOKEN_BLACKLISTED);
    }
    assert_eq!(
        app.post_json("/api/token/refresh/", json!({"refresh": bobs})).await.status,
        200,
        "other users keep theirs"
    );
    // Logging in again starts afresh.
    app.login("alice", "correct horse").await;
}

async fn me_returns_the_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let out = app.cli(&[
        "user",
        "create",
        "carol",
        "--email",
        "c@example.com",
        "--first-name",
        "Carol",
        "--last-name",
        "Ng",
        "--staff",
    ]);
    assert!(out.status.success());
    app.cli_with_stdin(&["user", "set-password", "carol", "--password-stdin"], "pw of carol");
    let (access, refresh) = app.login("carol", "pw of carol").await;

    let me = app.get_bearer("/api/me/", &access).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(
        me.text,
        r#"{"id":1,"username":"carol","email":"c@example.com","first_name":"Carol","last_name":"Ng","is_staff":true,"is_superuser":false,"groups":[],"claims":{}}"#
    );
    assert_eq!(app.get_bearer("/api/me", &access).await.status, 200);

    let wrong_type = app.get_bearer("/api/me/", &refresh).await;
    assert_eq!(wrong_type.status, 401);
    assert_eq!(wrong_type.json()["messages"][0]["message"], "Token has wrong type");
    assert_401(&app.get("/api/me/").await, r#"{"detail":"Authentication credentials were not provided."}"#);

    assert!(app.cli(&["user", "deactivate", "carol"]).status.success());
    assert_401(&app.get_bearer("/api/me/", &access).await, r#"{"detail":"User is inactive","code":"user_inactive"}"#);
    let refused = app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(refused.status, 401, "a deactivated user cannot refresh: {}", refused.text);
}

async fn password_change_keeps_only_the_current_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let (access, current) = app.alice().await;
    let (_, other) = app.login("alice", "correct horse").await;

    let wrong = app
        .post_bearer(
            "/api/password/change/",
            &access,
            json!({"current_password": "nope", "new_password": "new secret"}),
        )
        .await;
    assert_eq!(wrong.status, 400, "{}", wrong.text);
    assert!(wrong.json()["current_password"].is_array());

    let missing = app.post_bearer("/api/password/change/", &access, json!({"current_password": "correct horse"})).await;
    assert_eq!(missing.text, r#"{"new_password":["This field is required."]}"#);

    let done = app
        .post_bearer(
            "/api/password/change/",
            &access,
            json!({"current_password": "correct horse", "new_password": "new secret"}),
        )
        .await;
    assert_eq!((done.status, done.text.as_str()), (200, "{}"));

    assert_401(&app.post_json("/api/token/refresh/", json!({"refresh": other})).await, TOKEN_BLACKLISTED);
    assert_eq!(app.post_json("/api/token/refresh/", json!({"refresh": current})).await.status, 200);
    assert_401(
        &app.post_json("/api/token/", json!({"username": "alice", "password": "correct horse"})).await,
        NO_ACTIVE_ACCOUNT,
    );
    app.login("alice", "new secret").await;
}

async fn session_max_lifetime_caps_the_chain(backend: Backend) {
    let app = spawn_app_with(backend, &[("SESSION_MAX_LIFETIME", "2s"), ("REFRESH_REUSE_GRACE", "0s")]).await;
    let (_, refresh) = app.alice().await;
    let c = claims(&refresh);
    assert!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap() <= 2, "refresh exp capped by the session");
    let next = app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(next.status, 200);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_401(&app.post_json("/api/token/refresh/", json!({"refresh": next.field("refresh")})).await, TOKEN_EXPIRED);
}

async fn passwords_are_argon2id_and_never_stored_raw(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse");
    let user = app.store.user_by_username("alice").await.unwrap().unwrap();
    let hash = user.password_hash.unwrap();
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
    assert!(!hash.contains("correct horse"));
}

async fn django_argon2_hashes_still_log_in(backend: Backend) {
    let app = spawn_app(backend).await;
    // Django's Argon2PasswordHasher stores "argon2" followed by the PHC string.
    let django_hash = format!("argon2{}", tokensmith::passwords::hash_blocking("from django").unwrap());
    let user = tokensmith::store::NewUser {
        username: "migrated",
        email: "",
        first_name: "",
        last_name: "",
        password_hash: Some(&django_hash),
        is_staff: false,
        is_superuser: false,
        disabled_locally: false,
        custom_claims: "{}",
        group_ids: &[],
        created_at: now(),
    };
    let created = app.store.create_user(&user, false).await.unwrap();
    assert!(matches!(created, tokensmith::store::UserInsert::Created(_)));
    app.login("migrated", "from django").await;
    assert_401(
        &app.post_json("/api/token/", json!({"username": "migrated", "password": "wrong"})).await,
        NO_ACTIVE_ACCOUNT,
    );
}

crate::db_test!(
    a_rotated_away_token_at_blacklist_or_verify_is_reuse,
    logins_in_flight_during_a_password_change_do_not_survive_it,
    django_argon2_hashes_still_log_in,
    obtain_pair_with_json_and_form,
    obtain_refuses_wrong_unknown_and_inactive,
    obtain_reports_each_missing_field,
    refresh_rotates_and_retires_the_old_token,
    reuse_after_grace_revokes_the_whole_family,
    two_tabs_racing_within_grace_keep_the_session,
    sixteen_concurrent_refreshes_have_one_winner,
    without_rotation_refresh_returns_access_only,
    verify_accepts_live_tokens_and_names_what_is_wrong,
    blacklist_logs_the_session_out,
    revoke_all_ends_every_session,
    me_returns_the_user,
    password_change_keeps_only_the_current_session,
    session_max_lifetime_caps_the_chain,
    passwords_are_argon2id_and_never_stored_raw,
);

/// A thief rotated T1 into T2; the victim then logs out with T1, or a client verifies T1. Either
/// is reuse of a rotated-away token: the whole session, T2 included, is revoked.
async fn a_rotated_away_token_at_blacklist_or_verify_is_reuse(backend: Backend) {
    let app = spawn_app_with(backend, &[("REFRESH_REUSE_GRACE", "0s")]).await;
    app.create_user("alice", "correct horse");
    for endpoint in ["/api/token/blacklist/", "/api/token/verify/"] {
        let (_, t1) = app.login("alice", "correct horse").await;
        let stolen = app.post_json("/api/token/refresh/", json!({"refresh": t1})).await;
        let t2 = stolen.field("refresh");
        tokio::time::sleep(Duration::from_millis(20)).await;
        let field = if endpoint.ends_with("verify/") { "token" } else { "refresh" };
        assert_401(&app.post_json(endpoint, json!({ field: t1 })).await, TOKEN_BLACKLISTED);
        let thief = app.post_json("/api/token/refresh/", json!({"refresh": t2})).await;
        assert_401(&thief, TOKEN_BLACKLISTED);
    }
    let audit = String::from_utf8(app.cli(&["audit", "tail", "-n", "30"]).stdout).unwrap();
    assert_eq!(audit.matches("refresh_reuse_detected").count(), 2, "{audit}");
}

/// Logins with the old password that are still in flight when the password changes: none of
/// their sessions outlives the change (each either ends with it or never starts).
async fn logins_in_flight_during_a_password_change_do_not_survive_it(backend: Backend) {
    let app =
        spawn_app_with(backend, &[("LOGIN_FAILURE_LIMIT", "1000"), ("LOGIN_ADDRESS_FAILURE_LIMIT", "1000")]).await;
    app.create_user("alice", "password 0");
    for round in 0..6 {
        let (old, new) = (format!("password {round}"), format!("password {}", round + 1));
        let (access, _) = app.login("alice", &old).await;
        let logins = (0..32).map(|_| app.post_json("/api/token/", json!({"username": "alice", "password": old})));
        let change =
            app.post_bearer("/api/password/change/", &access, json!({"current_password": old, "new_password": new}));
        let (replies, changed) = tokio::join!(futures::future::join_all(logins), change);
        assert_eq!(changed.status, 200, "{}", changed.text);
        for reply in replies.iter().filter(|r| r.status == 200) {
            let refreshed = app.post_json("/api/token/refresh/", json!({"refresh": reply.field("refresh")})).await;
            assert_401(&refreshed, TOKEN_BLACKLISTED);
        }
    }
}
