//! Upgrading a database whose sessions kept one record per refresh token (before migration
//! 0014) ends no session: tokens minted before the upgrade name no session (`sid`), and still
//! refresh, rotate into tokens that do, and betray their reuse.

use std::path::Path;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::{
    admin_helpers::refresh,
    config::{OPENSSL_P256, openssl_key},
    db_test,
    helpers::{Backend, TOKEN_BLACKLISTED, TestDb, assert_401, claims, jwks, now, spawn_app_on, spawn_app_with},
    session_storage::session_rows,
};

db_test!(sessions_from_before_the_upgrade_carry_over);

/// The last migration before sessions became one row each.
const BEFORE_SESSION_ROWS: i64 = 13;

/// Applies the migrations up to `BEFORE_SESSION_ROWS`, as an older release left the database.
async fn migrate_as_an_older_release(db: &TestDb, backend: Backend) {
    let dir = match backend {
        Backend::Sqlite => "migrations/sqlite",
        Backend::Postgres => "migrations/postgres",
    };
    let mut migrator = sqlx::migrate::Migrator::new(Path::new(dir)).await.unwrap();
    let older: Vec<_> = migrator.migrations.iter().filter(|m| m.version <= BEFORE_SESSION_ROWS).cloned().collect();
    assert_eq!(older.len() as i64, BEFORE_SESSION_ROWS);
    migrator.migrations = older.into();
    match backend {
        Backend::Sqlite => migrator.run(&sqlx::SqlitePool::connect(&db.url).await.unwrap()).await.unwrap(),
        Backend::Postgres => migrator.run(&sqlx::PgPool::connect(&db.url).await.unwrap()).await.unwrap(),
    }
}

/// A refresh token as the older release minted it: no `sid`, unless `sid` gives one of a shape
/// that is not tokensmith's (a simplejwt project's own claim).
fn older_refresh_token(key_pem: &[u8], kid: &str, jti: &str, issued_at: i64, sid: Option<Value>) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("JWT".into());
    header.kid = Some(kid.into());
    let mut claims =
        json!({"token_type": "refresh", "exp": issued_at + 86_400, "iat": issued_at, "jti": jti, "user_id": "1"});
    if let Some(sid) = sid {
        claims["sid"] = sid;
    }
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_pem(key_pem).unwrap()).unwrap()
}

async fn sessions_from_before_the_upgrade_carry_over(backend: Backend) {
    let keys = tempfile::tempdir().unwrap();
    let key_file = openssl_key(keys.path(), "es256.pem", OPENSSL_P256);
    let settings = [("JWT_SIGNING_KEY_FILE", key_file.as_str())];
    let kid = {
        let scratch = spawn_app_with(backend, &settings).await;
        jwks(&scratch).await["keys"][0]["kid"].as_str().unwrap().to_owned()
    };

    let db = TestDb::new(backend).await;
    migrate_as_an_older_release(&db, backend).await;
    let t = now();
    // Two sessions of alice: `one` was rotated a minute ago (`one-a` replaced by `one-b`), `two`
    // was never refreshed.
    for sql in [
        format!("INSERT INTO users (id, username, created_at) VALUES (1, 'alice', {t})"),
        format!(
            "INSERT INTO refresh_families (id, user_id, created_at, expires_at, provider) VALUES \
             ('one', 1, {}, {}, 'password'), ('two', 1, {}, {}, 'password')",
            t - 120,
            t + 86_400,
            t - 30,
            t + 86_400
        ),
        format!(
            "INSERT INTO refresh_tokens (jti, family_id, user_id, parent_jti, access_jti, issued_at, expires_at, \
             used_at_ms) VALUES ('one-a', 'one', 1, NULL, 'acc-a', {}, {}, {}), \
             ('one-b', 'one', 1, 'one-a', 'acc-b', {}, {}, NULL), ('two-a', 'two', 1, NULL, 'acc-c', {}, {}, NULL)",
            t - 120,
            t - 120 + 86_400,
            (t - 60) * 1000,
            t - 60,
            t - 60 + 86_400,
            t - 30,
            t - 30 + 86_400
        ),
    ] {
        db.execute(&sql).await;
    }
    let pem = std::fs::read(&key_file).unwrap();
    let one_a = older_refresh_token(&pem, &kid, "one-a", t - 120, None);
    let one_b = older_refresh_token(&pem, &kid, "one-b", t - 60, None);
    // Claims of its own named `sid` (not a session here): the token's record still finds its session.
    let two_a = older_refresh_token(&pem, &kid, "two-a", t - 30, Some(json!("django-session-7")));
    let two_a_numbered = older_refresh_token(&pem, &kid, "two-a", t - 30, Some(json!(7)));

    let app = spawn_app_on(db, &settings).await;
    let verified = app.post_json("/api/token/verify/", json!({"token": one_b})).await;
    assert_eq!(verified.status, 200, "a live token from before the upgrade: {}", verified.text);
    let rotated = refresh(&app, &one_b).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let newest = rotated.field("refresh");
    assert_eq!(claims(&newest)["sid"], "one", "the successor names the session it carried over into");
    let newest = {
        let again = refresh(&app, &newest).await;
        assert_eq!(again.status, 200, "{}", again.text);
        again.field("refresh")
    };
    assert_eq!(session_rows(&app).await[..2], [2, 3], "rotations after the upgrade wrote no token records");

    // The token rotated away before the upgrade is still known as stolen: the session ends.
    assert_401(&refresh(&app, &one_a).await, TOKEN_BLACKLISTED);
    assert_401(&refresh(&app, &newest).await, TOKEN_BLACKLISTED);
    // The other session was never touched.
    let verified = app.post_json("/api/token/verify/", json!({"token": two_a_numbered})).await;
    assert_eq!(verified.status, 200, "{}", verified.text);
    let other = refresh(&app, &two_a).await;
    assert_eq!(other.status, 200, "{}", other.text);
    assert_eq!(claims(&other.field("refresh"))["sid"], "two");
}
