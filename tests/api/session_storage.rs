//! A session costs the same after a thousand refreshes as after one: rotation updates the
//! session's row in place, tokens name their session (`sid`), and routine refreshes are counted
//! in `/metrics` but audited only with `AUDIT_REFRESHES`.

use serde_json::json;

use crate::{
    admin_helpers::refresh,
    db_test,
    helpers::{Backend, TOKEN_BLACKLISTED, TestApp, assert_401, claims, spawn_app, spawn_app_with},
};

db_test!(
    rotations_do_not_grow_a_session,
    tokens_name_their_session,
    routine_refreshes_are_audited_only_when_asked,
    a_token_older_than_the_one_just_replaced_is_reuse,
    a_refresh_without_rotation_writes_nothing,
);

/// Refreshes `times` times, each with the token the last one handed out; returns the newest.
async fn rotate(app: &TestApp, mut token: String, times: usize) -> String {
    for i in 0..times {
        let reply = refresh(app, &token).await;
        assert_eq!(reply.status, 200, "rotation {i}: {}", reply.text);
        token = reply.field("refresh");
    }
    token
}

/// Rows in every table that holds sessions, their tokens, or their audit trail.
pub async fn session_rows(app: &TestApp) -> [i64; 3] {
    let mut counts = [0; 3];
    for (count, table) in counts.iter_mut().zip(["refresh_families", "refresh_tokens", "audit_events"]) {
        let sql = format!("SELECT CAST(COUNT(*) AS TEXT) FROM {table}");
        *count = app.db.strings(&sql).await[0].parse().unwrap();
    }
    counts
}

async fn rotations_do_not_grow_a_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, first) = app.alice().await;
    let once = rotate(&app, first.clone(), 1).await;
    let after_one = session_rows(&app).await;
    assert_eq!(after_one[0], 1, "one session, one row: {after_one:?}");
    assert_eq!(after_one[1], 0, "no per-token records for tokens that name their session: {after_one:?}");

    let newest = rotate(&app, once, 60).await;
    assert_eq!(session_rows(&app).await, after_one, "60 more rotations added rows");

    // Still one session with reuse detection: the very first token, presented again, ends it.
    assert_401(&refresh(&app, &first).await, TOKEN_BLACKLISTED);
    assert_401(&refresh(&app, &newest).await, TOKEN_BLACKLISTED);
    let rows = session_rows(&app).await;
    assert_eq!((rows[0], rows[1]), (1, 0), "{rows:?}");
    assert_eq!(rows[2], after_one[2] + 1, "the reuse is audited, once: {rows:?}");
}

async fn tokens_name_their_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let (access, refresh_token) = app.alice().await;
    let sid = claims(&refresh_token)["sid"].as_str().expect("a refresh token names its session").to_owned();
    assert_eq!(claims(&access)["sid"], sid.as_str(), "the access token names the same session");
    let ids = app.db.strings("SELECT id FROM refresh_families").await;
    assert_eq!(ids, [sid.as_str()]);

    let rotated = refresh(&app, &refresh_token).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    assert_eq!(claims(&rotated.field("refresh"))["sid"], sid.as_str(), "rotation stays in the session");
    assert_eq!(claims(&rotated.field("access"))["sid"], sid.as_str());

    // A second login is a second session.
    let (_, other) = app.login("alice", "correct horse").await;
    assert_ne!(claims(&other)["sid"], sid.as_str());
}

async fn refreshes_audited(app: &TestApp) -> Vec<String> {
    app.db.strings("SELECT CAST(COUNT(*) AS TEXT) FROM audit_events WHERE event = 'refresh'").await
}

async fn routine_refreshes_are_audited_only_when_asked(backend: Backend) {
    let quiet = spawn_app(backend).await;
    let (_, token) = quiet.alice().await;
    rotate(&quiet, token, 5).await;
    assert_eq!(refreshes_audited(&quiet).await, ["0"], "routine refreshes were audited by default");
    let logins = quiet.db.strings("SELECT CAST(COUNT(*) AS TEXT) FROM audit_events WHERE event = 'login_ok'").await;
    assert_eq!(logins, ["1"], "the login is a security event: always audited");

    let audited = spawn_app_with(backend, &[("AUDIT_REFRESHES", "true")]).await;
    let (_, token) = audited.alice().await;
    rotate(&audited, token, 5).await;
    assert_eq!(refreshes_audited(&audited).await, ["5"]);
}

/// The grace covers the token just replaced (two tabs refreshing at once); a token from before
/// it is a stolen one, however recent.
async fn a_token_older_than_the_one_just_replaced_is_reuse(backend: Backend) {
    let app = spawn_app_with(backend, &[("REFRESH_REUSE_GRACE", "1h")]).await;
    let (_, a) = app.alice().await;
    let b = rotate(&app, a.clone(), 1).await;
    let c = rotate(&app, b.clone(), 1).await;
    assert_401(&refresh(&app, &b).await, TOKEN_BLACKLISTED);
    assert_eq!(refresh(&app, &c).await.status, 200, "the replaced token within the grace ended the session");

    let (_, a) = app.login("alice", "correct horse").await;
    let b = rotate(&app, a.clone(), 1).await;
    let c = rotate(&app, b, 1).await;
    assert_401(&refresh(&app, &a).await, TOKEN_BLACKLISTED);
    assert_401(&refresh(&app, &c).await, TOKEN_BLACKLISTED);
}

async fn a_refresh_without_rotation_writes_nothing(backend: Backend) {
    let app = spawn_app_with(backend, &[("ROTATE_REFRESH_TOKENS", "false")]).await;
    let (_, token) = app.alice().await;
    let before = session_rows(&app).await;
    for _ in 0..5 {
        let reply = refresh(&app, &token).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert!(reply.json().get("refresh").is_none(), "{}", reply.text);
        assert_eq!(claims(&reply.field("access"))["sid"], claims(&token)["sid"]);
    }
    assert_eq!(session_rows(&app).await, before);
    // Changing the password with an access token of this session keeps this session only.
    let (access, other) = (refresh(&app, &token).await.field("access"), app.login("alice", "correct horse").await.1);
    let changed = app
        .post_bearer(
            "/api/password/change/",
            &access,
            json!({"current_password": "correct horse", "new_password": "a much longer passphrase 42"}),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(refresh(&app, &token).await.status, 200, "the caller's own session ended");
    assert_401(&refresh(&app, &other).await, TOKEN_BLACKLISTED);
}
