//! simplejwt sessions carried over by `tokensmith import django`, held to tokensmith's own
//! session rules: a carried-over session lasts `SESSION_MAX_LIFETIME` from when Django issued
//! its token, as every other session lasts from its login.

use serde_json::{Value, json};

use crate::{
    db_test,
    django_import::{LegacySite, import, tokensmith_with},
    helpers::{Backend, assert_401, now},
};

db_test!(a_carried_over_session_ends_session_max_lifetime_after_django_issued_it,);

const TOKEN_EXPIRED: &str = r#"{"detail":"Token is expired","code":"token_not_valid"}"#;

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
