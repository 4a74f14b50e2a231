//! Users moved over from Django keep their passwords: hashes real Django 5.2 made (the test
//! venv, `make_password`, every hasher the contract names) log in over HTTP with the right
//! password and no other; the first successful login replaces the hash with tokensmith's
//! argon2id in the login's own transaction, a failed one never touches it, and concurrent first
//! logins all succeed.

use serde_json::{Value, json};

use crate::{db_test, helpers::*, python::run_script};

/// Every Django hasher the contract names.
const HASHERS: [&str; 7] = ["pbkdf2_sha256", "pbkdf2_sha1", "argon2", "bcrypt_sha256", "bcrypt", "scrypt", "md5"];
/// What tokensmith stores once a password has been upgraded.
const ARGON2ID: &str = "$argon2id$v=19$m=19456,t=2,p=1$";

db_test!(
    every_django_hasher_logs_in_and_is_upgraded_once,
    unusable_hashes_never_log_in,
    concurrent_first_logins_of_an_imported_user_all_succeed,
    a_sliding_login_upgrades_the_hash_too,
    an_upgrade_ends_no_session,
    a_password_change_racing_the_upgrade_of_its_current_password_succeeds,
);

/// One password and the hash Django made of it.
struct DjangoPassword {
    hasher: String,
    password: String,
    hash: String,
}

/// `make_password` by the venv's Django, several passwords per hasher.
async fn made_by_django(hashers: &[&str]) -> Vec<DjangoPassword> {
    let made = run_script("make_django_hashes.py", hashers, &[]).await.json();
    let field = |entry: &Value, name: &str| entry[name].as_str().unwrap().to_owned();
    let made: Vec<_> = made
        .as_array()
        .unwrap()
        .iter()
        .map(|e| DjangoPassword { hasher: field(e, "hasher"), password: field(e, "password"), hash: field(e, "hash") })
        .collect();
    assert_eq!(made.len(), hashers.len() * 3);
    made
}

/// An app whose throttle leaves the many wrong passwords here alone.
async fn app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[("LOGIN_FAILURE_LIMIT", "1000"), ("LOGIN_ADDRESS_FAILURE_LIMIT", "1000")]).await
}

/// A user as the importer writes one: `hash` stored as it is.
async fn insert_user(app: &TestApp, username: &str, hash: &str) {
    let user = tokensmith::store::NewUser {
        username,
        email: "",
        first_name: "",
        last_name: "",
        password_hash: Some(hash),
        is_staff: false,
        is_superuser: false,
        disabled_locally: false,
        custom_claims: "{}",
        group_ids: &[],
        created_at: now(),
    };
    let created = app.store.create_user(&user, false).await.unwrap();
    assert!(matches!(created, tokensmith::store::UserInsert::Created(_)));
}

async fn stored_hash(app: &TestApp, username: &str) -> String {
    app.store.user_by_username(username).await.unwrap().unwrap().password_hash.unwrap()
}

async fn login_reply(app: &TestApp, username: &str, password: &str) -> Reply {
    app.post_json("/api/token/", json!({"username": username, "password": password})).await
}

/// The audit trail, newest first, as JSON.
fn audit(app: &TestApp) -> Vec<Value> {
    let out = app.cli(&["audit", "tail", "-n", "1000", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

async fn every_django_hasher_logs_in_and_is_upgraded_once(backend: Backend) {
    let made = made_by_django(&HASHERS).await;
    let app = app(backend).await;
    for (n, django) in made.iter().enumerate() {
        let (username, what) = (format!("{}-{n}", django.hasher), &django.hash[..django.hasher.len()]);
        insert_user(&app, &username, &django.hash).await;

        let wrong = login_reply(&app, &username, &format!("{}!", django.password)).await;
        assert_401(&wrong, NO_ACTIVE_ACCOUNT);
        assert_eq!(stored_hash(&app, &username).await, django.hash, "{what}: a failed login leaves the hash");

        let (access, refresh) = app.login(&username, &django.password).await;
        assert_eq!(claims(&access)["user_id"], claims(&refresh)["user_id"]);
        let upgraded = stored_hash(&app, &username).await;
        assert!(upgraded.starts_with(ARGON2ID), "{what}: upgraded to {upgraded}");
        assert_eq!(app.get_bearer("/api/me/", &access).await.json()["username"], username.as_str());

        // From now on the user is an argon2id user.
        app.login(&username, &django.password).await;
        assert_eq!(stored_hash(&app, &username).await, upgraded, "{what}: upgraded once");
        assert_401(&login_reply(&app, &username, &format!("{}!", django.password)).await, NO_ACTIVE_ACCOUNT);
        assert_401(&login_reply(&app, &username, " ").await, NO_ACTIVE_ACCOUNT);
    }
    let upgrades: Vec<String> = audit(&app)
        .iter()
        .filter(|e| e["event"] == "login_ok" && e["detail"] != "")
        .map(|e| e["detail"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(upgrades.len(), made.len(), "{upgrades:?}");
    for hasher in HASHERS {
        let detail = format!("password_upgraded from {hasher}");
        assert_eq!(upgrades.iter().filter(|d| **d == detail).count(), 3, "{detail}: {upgrades:?}");
    }
}

/// Django's `set_unusable_password` (`!` and 40 random characters), and an empty hash: no
/// password logs in, not even the characters after the `!`, and the hash stays as it is.
async fn unusable_hashes_never_log_in(backend: Backend) {
    let app = app(backend).await;
    let unusable = "!Xq3ZzVwWb0uCjJ7ai1Tn5hTqjQ5cEsZ0mW7S6oRkz";
    for (username, hash) in [("unusable", unusable), ("empty", ""), ("bang", "!")] {
        insert_user(&app, username, hash).await;
        for password in [" ", "!", &unusable[1..], unusable, "correct horse"] {
            assert_401(&login_reply(&app, username, password).await, NO_ACTIVE_ACCOUNT);
        }
        let sliding = app.post_json("/api/token/sliding/", json!({"username": username, "password": "!"})).await;
        assert_401(&sliding, NO_ACTIVE_ACCOUNT);
        assert_eq!(stored_hash(&app, username).await, hash);
    }
}

/// Several first logins of one imported user at once (pairs and sliding tokens): each checks
/// the Django hash and tries to upgrade it; one upgrade wins and every login succeeds, each
/// with a session of its own that works.
async fn concurrent_first_logins_of_an_imported_user_all_succeed(backend: Backend) {
    let made = made_by_django(&["pbkdf2_sha256"]).await;
    let django = &made[0];
    let app = app(backend).await;
    insert_user(&app, "imported", &django.hash).await;
    let body = json!({"username": "imported", "password": django.password});
    let pairs = (0..6).map(|_| app.post_json("/api/token/", body.clone()));
    let slidings = (0..2).map(|_| app.post_json("/api/token/sliding/", body.clone()));
    let (pairs, slidings) = tokio::join!(futures::future::join_all(pairs), futures::future::join_all(slidings));
    for reply in pairs.iter().chain(&slidings) {
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    assert!(stored_hash(&app, "imported").await.starts_with(ARGON2ID));
    for reply in &pairs {
        let refreshed = app.post_json("/api/token/refresh/", json!({"refresh": reply.field("refresh")})).await;
        assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    }
    for reply in &slidings {
        assert_eq!(app.get_bearer("/api/me/", &reply.field("token")).await.status, 200);
    }
    let events = audit(&app);
    let logins: Vec<_> = events.iter().filter(|e| e["event"] == "login_ok").collect();
    assert_eq!(logins.len(), 8);
    assert_eq!(logins.iter().filter(|e| e["detail"] == "password_upgraded from pbkdf2_sha256").count(), 1);
}

async fn a_sliding_login_upgrades_the_hash_too(backend: Backend) {
    let made = made_by_django(&["bcrypt_sha256"]).await;
    let app = app(backend).await;
    for (n, django) in made.iter().enumerate() {
        let username = format!("sliding-{n}");
        insert_user(&app, &username, &django.hash).await;
        let body = json!({"username": username, "password": format!("{}!", django.password)});
        assert_401(&app.post_json("/api/token/sliding/", body).await, NO_ACTIVE_ACCOUNT);
        assert_eq!(stored_hash(&app, &username).await, django.hash);
        let token = crate::sliding::sliding_login(&app, &username, &django.password).await;
        assert!(stored_hash(&app, &username).await.starts_with(ARGON2ID));
        assert_eq!(app.get_bearer("/api/me/", &token).await.json()["username"], username.as_str());
        app.login(&username, &django.password).await;
    }
}

/// A user with a session whose stored hash is then (re)imported from Django: the login that
/// upgrades it leaves the earlier session alone, as a password change would not.
async fn an_upgrade_ends_no_session(backend: Backend) {
    let made = made_by_django(&["md5"]).await;
    let django = &made[0];
    let app = app(backend).await;
    let (_, earlier) = app.alice().await;
    let sql_hash = django.hash.replace('\'', "''");
    app.db.execute(&format!("UPDATE users SET password_hash = '{sql_hash}' WHERE username = 'alice'")).await;
    app.login("alice", &django.password).await;
    assert!(stored_hash(&app, "alice").await.starts_with(ARGON2ID));
    let refreshed = app.post_json("/api/token/refresh/", json!({"refresh": earlier})).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    assert!(audit(&app).iter().all(|e| e["event"] != "password_changed" && e["event"] != "password_set"));
}

/// An imported user changes their password (the current one right) while their first logins on
/// other devices upgrade its hash: the upgrade is the same password, not a change, so the change
/// goes through rather than being refused as a wrong current password; then only the new
/// password logs in.
async fn a_password_change_racing_the_upgrade_of_its_current_password_succeeds(backend: Backend) {
    let made = made_by_django(&["pbkdf2_sha256"]).await;
    let django = &made[0];
    let app = spawn_app_with(
        backend,
        &[("PASSWORD_HASH_CONCURRENCY", "2"), ("LOGIN_FAILURE_LIMIT", "1000"), ("LOGIN_ADDRESS_FAILURE_LIMIT", "1000")],
    )
    .await;
    let (access, _) = app.alice().await;
    let sql_hash = django.hash.replace('\'', "''");
    app.db.execute(&format!("UPDATE users SET password_hash = '{sql_hash}' WHERE username = 'alice'")).await;
    let body = json!({"current_password": django.password, "new_password": "a brand new passphrase"});
    // The change's check goes first; the logins' upgrades land while it hashes the new password.
    let change = app.post_bearer("/api/password/change/", &access, body);
    let logins = futures::future::join_all((0..3).map(|_| login_reply(&app, "alice", &django.password)));
    let (change, logins) = tokio::join!(change, logins);
    assert_eq!(change.status, 200, "{}", change.text);
    assert!(logins.iter().all(|l| l.status == 200 || l.status == 401));
    let upgrades = audit(&app).iter().filter(|e| e["detail"] == "password_upgraded from pbkdf2_sha256").count();
    assert_eq!(upgrades, 1, "a login upgraded the hash meanwhile");
    app.login("alice", "a brand new passphrase").await;
    assert_401(&login_reply(&app, "alice", &django.password).await, NO_ACTIVE_ACCOUNT);
}
