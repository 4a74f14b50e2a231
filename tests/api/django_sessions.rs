//! simplejwt sessions carried over by `tokensmith import django`, held to tokensmith's own
//! session rules: a carried-over session lasts `SESSION_MAX_LIFETIME` from when Django issued
//! its token, as every other session lasts from its login; and a token Django issued before the
//! user's sessions were ended here (a password set, a deactivation, revoke-all) comes over ended,
//! as it would have ended had it been here.

use serde_json::{Value, json};

use crate::{
    db_test,
    django_import::{LegacySite, import, tokensmith_with},
    helpers::{Backend, TOKEN_BLACKLISTED, TOKEN_EXPIRED, assert_401, now},
};

db_test!(
    a_carried_over_session_ends_session_max_lifetime_after_django_issued_it,
    importing_again_never_revives_a_session_ended_here,
);

/// The dump with the outstanding record of `jti` issued `ago` seconds before now.
fn issued_ago(dump: &std::path::Path, jti: &str, ago: i64) -> std::path::PathBuf {
    let mut records: Vec<Value> = serde_json::from_slice(&std::fs::read(dump).unwrap()).unwrap();
    let record = records
        .iter_mut()
        .find(|r| r["model"] == "token_blacklist.outstandingtoken" && r["fields"]["jti"] == jti)
        .unwrap();
    let t = time::OffsetDateTime::from_unix_timestamp(now() - ago).unwrap();
    let issued = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    record["fields"]["created_at"] = json!(issued);
    let path = dump.with_extension("issued-ago.json");
    std::fs::write(&path, serde_json::to_vec(&records).unwrap()).unwrap();
    path
}

/// Django's refresh tokens live a day (simplejwt's default); one issued two hours ago, moved to
/// a tokensmith whose sessions last an hour, is a session that ended an hour ago.
async fn a_carried_over_session_ends_session_max_lifetime_after_django_issued_it(backend: Backend) {
    let site = LegacySite::new(backend).await;
    let made = site.setup().await;
    let live = made["refresh"]["live"].as_str().unwrap();
    let jti = crate::helpers::claims(live)["jti"].as_str().unwrap().to_owned();
    let dump = issued_ago(&site.dump().await, &jti, 2 * 3600);
    let app = tokensmith_with(backend, &[("SESSION_MAX_LIFETIME", "1h")]).await;
    import(&app, &["--dumpdata", dump.to_str().unwrap()]);

    let refreshed = app.post_json("/api/token/refresh/", json!({"refresh": live})).await;
    assert_401(&refreshed, TOKEN_EXPIRED);
}

/// Between the two imports of the cut-over, Django still issues tokens: a login there (a thief's
/// with a stolen password, say) before the operator ends the user's sessions here. The second
/// import must not hand that session back.
async fn importing_again_never_revives_a_session_ended_here(backend: Backend) {
    let site = LegacySite::new(backend).await;
    site.setup().await;
    let app = tokensmith_with(backend, &[]).await;
    import(&app, &["--database", &site.url()]);
    let in_django = |username: &'static str| {
        let site = &site;
        async move { site.run(&["refresh", username]).await.trim().to_owned() }
    };
    let before_password_set = in_django("user_md5").await;
    let before_revoke_all = in_django("user_bcrypt").await;
    let untouched = in_django("user_scrypt").await;
    // The second of the token's `iat`, not the one its session ends in.
    std::thread::sleep(std::time::Duration::from_millis(1100));

    let set = app.cli_with_stdin(&["user", "set-password", "user_md5", "--password-stdin"], "set-in-tokensmith");
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    let out = app.cli_with_stdin(&["user", "set-password", "user_bcrypt", "--password-stdin"], "bcrypt-here-now");
    assert!(out.status.success());
    let (access, _) = app.login("user_bcrypt", "bcrypt-here-now").await;
    assert_eq!(app.post_bearer("/api/token/revoke-all/", &access, json!({})).await.status, 200);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let after_password_set = in_django("user_md5").await;

    let line = import(&app, &["--database", &site.url()]);
    assert!(line.contains("sessions: 4 created"), "{line}");
    for ended in [&before_password_set, &before_revoke_all] {
        let refreshed = app.post_json("/api/token/refresh/", json!({"refresh": ended})).await;
        assert_401(&refreshed, TOKEN_BLACKLISTED);
    }
    for live in [&untouched, &after_password_set] {
        let refreshed = app.post_json("/api/token/refresh/", json!({"refresh": live})).await;
        assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    }
}
