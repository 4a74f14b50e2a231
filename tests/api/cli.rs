//! The `tokensmith` command line, run as the real binary: what an operator types, sees and gets.

use std::{
    collections::HashMap,
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    config::{run_binary, single_error_line},
    helpers::*,
};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The command succeeded; returns its stdout.
fn ok(out: &Output) -> String {
    assert!(out.status.success(), "exit {:?}; stderr: {}", out.status, String::from_utf8_lossy(&out.stderr));
    stdout(out)
}

/// The first whole number in a line of output ("deleted 2 expired refresh tokens" → 2).
fn count_in(text: &str) -> u64 {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| !w.is_empty())
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no count in {text:?}"))
}

/// Like `TestApp::cli_with_stdin`, with stdin read from a file: a command that fails before
/// reading its input cannot turn into a broken pipe in the test.
fn cli_with_stdin_file(app: &TestApp, args: &[&str], input: &str) -> Output {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), input).unwrap();
    Command::new(binary())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&app.env)
        .env_remove("LISTEN_ADDR")
        .current_dir(app.db.dir())
        .stdin(file.reopen().unwrap())
        .output()
        .expect("the binary runs")
}

async fn login_status(app: &TestApp, username: &str, password: &str) -> Reply {
    app.post_json("/api/token/", json!({"username": username, "password": password})).await
}

async fn refresh(app: &TestApp, refresh: &str) -> Reply {
    app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await
}

async fn user_create_then_login(backend: Backend) {
    let app = spawn_app(backend).await;
    let out = app.cli_with_stdin(&["user", "create", "alice", "--password-stdin"], "correct horse");
    assert!(ok(&out).contains("alice"));
    app.login("alice", "correct horse").await;
    assert_401(&login_status(&app, "alice", "wrong").await, NO_ACTIVE_ACCOUNT);

    // A second alice is refused in one line naming her; the first keeps her password.
    let out = app.cli_with_stdin(&["user", "create", "alice", "--password-stdin"], "other password");
    let line = single_error_line(&out);
    assert!(line.contains("alice"), "{line}");
    app.login("alice", "correct horse").await;
    assert_401(&login_status(&app, "alice", "other password").await, NO_ACTIVE_ACCOUNT);
}

async fn password_stdin_refuses_an_empty_password(backend: Backend) {
    let app = spawn_app(backend).await;
    for input in ["", "\n", "\r\n"] {
        let out = app.cli_with_stdin(&["user", "create", "bob", "--password-stdin"], input);
        let line = single_error_line(&out);
        assert!(line.contains("--password-stdin"), "{input:?}: {line}");
    }
    // Nothing was created: the name is still free.
    let out = app.cli(&["user", "list", "--json"]);
    assert_eq!(serde_json::from_str::<Value>(&ok(&out)).unwrap(), json!([]));
    app.create_user("bob", "later on, maybe");
    app.login("bob", "later on, maybe").await;
}

async fn password_stdin_drops_only_the_trailing_newline(backend: Backend) {
    let app = spawn_app(backend).await;
    // `echo 'quiet pond' | tokensmith user create …` gives "quiet pond\n": the newline is not
    // part of the password.
    ok(&app.cli_with_stdin(&["user", "create", "echoed", "--password-stdin"], "quiet pond\n"));
    app.login("echoed", "quiet pond").await;
    assert_401(&login_status(&app, "echoed", "quiet pond\n").await, NO_ACTIVE_ACCOUNT);

    // Any other whitespace is the operator's choice and is kept.
    ok(&app.cli_with_stdin(&["user", "create", "spaced", "--password-stdin"], " quiet pond \n"));
    app.login("spaced", " quiet pond ").await;
    for wrong in ["quiet pond", " quiet pond", "quiet pond "] {
        assert_401(&login_status(&app, "spaced", wrong).await, NO_ACTIVE_ACCOUNT);
    }
}

async fn user_create_flags_show_in_me(backend: Backend) {
    let app = spawn_app(backend).await;
    let args = [
        "user",
        "create",
        "ada",
        "--email",
        "ada@example.com",
        "--first-name",
        "Ada",
        "--last-name",
        "Lovelace",
        "--staff",
        "--superuser",
        "--password-stdin",
    ];
    ok(&app.cli_with_stdin(&args, "engine room 4"));
    let (access, _) = app.login("ada", "engine room 4").await;
    let me = app.get_bearer("/api/me/", &access).await;
    assert_eq!(me.status, 200, "{}", me.text);
    let me = me.json();
    assert_eq!(me["username"], "ada");
    assert_eq!(me["email"], "ada@example.com");
    assert_eq!(me["first_name"], "Ada");
    assert_eq!(me["last_name"], "Lovelace");
    assert_eq!(me["is_staff"], true);
    assert_eq!(me["is_superuser"], true);

    // Without the flags: plain user, empty names.
    app.create_user("plain", "pw of a user");
    let (access, _) = app.login("plain", "pw of a user").await;
    let me = app.get_bearer("/api/me/", &access).await.json();
    assert_eq!((me["is_staff"].clone(), me["is_superuser"].clone()), (json!(false), json!(false)));
    assert_eq!((me["first_name"].clone(), me["last_name"].clone()), (json!(""), json!("")));

    // A malformed username or email is refused in one line naming the argument.
    let line = single_error_line(&app.cli(&["user", "create", "no spaces"]));
    assert!(line.contains("USERNAME"), "{line}");
    let line = single_error_line(&app.cli(&["user", "create", "carol", "--email", "not-an-email"]));
    assert!(line.contains("--email"), "{line}");
}

async fn user_list_plain_and_json(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "alice password");
    app.create_user("bob", "bob password");
    ok(&app.cli(&["user", "create", "root", "--superuser"]));

    let text = ok(&app.cli(&["user", "list"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for (line, name) in lines.iter().zip(["alice", "bob", "root"]) {
        assert!(line.split_whitespace().any(|w| w == name), "{line:?} should name {name}");
    }
    assert!(!text.contains("argon2"), "{text}");

    let json = ok(&app.cli(&["user", "list", "--json"]));
    assert!(!json.contains("argon2"), "password hashes leak: {json}");
    let users: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"));
    let users = users.as_array().expect("a JSON array");
    let names: Vec<&str> = users.iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["alice", "bob", "root"]);
    for user in users {
        for key in user.as_object().unwrap().keys() {
            assert!(!key.starts_with("password"), "{key} in {user}");
        }
    }
    assert_eq!(users[2]["is_superuser"], true);
    assert_eq!(users[0]["is_superuser"], false);
}

async fn user_list_shows_deactivated_users(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "pw of a user");
    ok(&app.cli(&["user", "create", "admin", "--staff", "--superuser"]));
    ok(&app.cli(&["user", "deactivate", "alice"]));
    ok(&app.cli(&["user", "deactivate", "admin"]));
    // An operator scanning for disabled accounts sees every one of them, staff included.
    let text = ok(&app.cli(&["user", "list"]));
    for name in ["alice", "admin"] {
        let line = text.lines().find(|l| l.split_whitespace().any(|w| w == name)).unwrap();
        assert!(line.contains("inactive"), "{name} is deactivated: {line:?}");
    }
    let users: Value = serde_json::from_str(&ok(&app.cli(&["user", "list", "--json"]))).unwrap();
    assert!(users.as_array().unwrap().iter().all(|u| u["is_active"] == false), "{users}");
}

async fn deactivate_and_activate(backend: Backend) {
    let app = spawn_app(backend).await;
    let (access, refresh_token) = app.alice().await;
    app.create_user("bob", "bob password");
    let (_, bob_refresh) = app.login("bob", "bob password").await;

    ok(&app.cli(&["user", "deactivate", "alice"]));
    assert_401(&login_status(&app, "alice", "correct horse").await, NO_ACTIVE_ACCOUNT);
    assert_eq!(refresh(&app, &refresh_token).await.status, 401, "a deactivated user's refresh token still works");
    let me = app.get_bearer("/api/me/", &access).await;
    assert_401(&me, r#"{"detail":"User is inactive","code":"user_inactive"}"#);
    // Bob is untouched.
    assert_eq!(refresh(&app, &bob_refresh).await.status, 200);

    ok(&app.cli(&["user", "activate", "alice"]));
    let (access, _) = app.login("alice", "correct horse").await;
    assert_eq!(app.get_bearer("/api/me/", &access).await.status, 200);
    // Sessions ended by the deactivation stay ended.
    assert_eq!(refresh(&app, &refresh_token).await.status, 401);
}

async fn unknown_user_is_one_line(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "pw of a user");
    for args in [
        &["user", "deactivate", "ghost"][..],
        &["user", "activate", "ghost"],
        &["user", "set-password", "ghost", "--password-stdin"],
    ] {
        let out = cli_with_stdin_file(&app, args, "new password");
        let line = single_error_line(&out);
        assert!(line.contains("ghost"), "{args:?}: {line}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", stdout(&out));
    }
    app.login("alice", "pw of a user").await;
}

async fn set_password_ends_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, before) = app.alice().await;
    let out = app.cli_with_stdin(&["user", "set-password", "alice", "--password-stdin"], "battery staple\n");
    ok(&out);
    assert_401(&login_status(&app, "alice", "correct horse").await, NO_ACTIVE_ACCOUNT);
    let (_, after) = app.login("alice", "battery staple").await;
    assert_eq!(refresh(&app, &before).await.status, 401, "the session from before the new password lives on");
    assert_eq!(refresh(&app, &after).await.status, 200);

    // No password on stdin: refused in one line, the password is unchanged.
    let line = single_error_line(&app.cli_with_stdin(&["user", "set-password", "alice", "--password-stdin"], ""));
    assert!(line.contains("--password-stdin"), "{line}");
    app.login("alice", "battery staple").await;
    // --password-stdin is required, and the error says so.
    let line = single_error_line(&app.cli(&["user", "set-password", "alice"]));
    assert!(line.contains("--password-stdin"), "{line}");
}

async fn flush_expired_deletes_only_expired(backend: Backend) {
    let app = spawn_app_with(backend, &[("REFRESH_TOKEN_LIFETIME", "1s")]).await;
    assert_eq!(app.env.get("REFRESH_TOKEN_LIFETIME").map(String::as_str), Some("1s"));
    app.create_user("alice", "pw of a user");
    app.login("alice", "pw of a user").await;
    app.login("alice", "pw of a user").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count_in(&ok(&app.cli(&["tokens", "flush-expired"]))), 2);
    assert_eq!(count_in(&ok(&app.cli(&["tokens", "flush-expired"]))), 0);
}

async fn flush_expired_works_through_many_batches(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, live) = app.alice().await;
    // 2,500 expired sessions, more than two batches of deletes.
    app.db
        .execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500) \
             INSERT INTO refresh_families (id, user_id, created_at, expires_at) SELECT 'fam' || i, 1, 0, 10 FROM n",
        )
        .await;
    app.db
        .execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500) \
             INSERT INTO refresh_tokens (jti, family_id, user_id, issued_at, expires_at) SELECT 'tok' || i, 'fam' || i, 1, 0, 10 FROM n",
        )
        .await;
    assert_eq!(count_in(&ok(&app.cli(&["tokens", "flush-expired"]))), 2500);
    assert_eq!(count_in(&ok(&app.cli(&["tokens", "flush-expired"]))), 0);
    assert_eq!(refresh(&app, &live).await.status, 200, "flush-expired killed a live session");
}

async fn a_newer_schema_does_not_stop_an_older_binary(backend: Backend) {
    let app = spawn_app(backend).await;
    // A newer release applied a migration this binary does not know (a rolling upgrade, or a
    // rollback): the older replicas and jobs keep working.
    let checksum = if backend == Backend::Sqlite { "X'00'" } else { "'\\x00'::bytea" };
    app.db
        .execute(&format!(
            "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) \
             VALUES (99, 'from a newer release', CURRENT_TIMESTAMP, TRUE, {checksum}, 0)"
        ))
        .await;
    ok(&app.cli(&["migrate"]));
    let server = crate::process::Replica::start(&app.db, &[]).await;
    assert_eq!(server.get("/readyz").await.status, 200);
}

async fn flush_expired_prunes_old_audit_events(backend: Backend) {
    let app = spawn_app_with(backend, &[("AUDIT_RETENTION", "30d")]).await;
    app.create_user("alice", "pw of a user");
    app.login("alice", "pw of a user").await;
    app.db
        .execute(&format!(
            "INSERT INTO audit_events (occurred_at, event, detail) VALUES ({}, 'ancient_event', '')",
            now() - 31 * 24 * 3600
        ))
        .await;
    let before = ok(&app.cli(&["audit", "tail", "-n", "50"]));
    assert!(before.contains("ancient_event") && before.contains("login_ok"), "{before}");
    ok(&app.cli(&["tokens", "flush-expired"]));
    let after = ok(&app.cli(&["audit", "tail", "-n", "50"]));
    assert!(!after.contains("ancient_event"), "{after}");
    assert!(after.contains("login_ok"), "recent events must stay: {after}");
}

async fn flush_expired_keeps_live_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, refresh_token) = app.alice().await;
    assert_eq!(count_in(&ok(&app.cli(&["tokens", "flush-expired"]))), 0);
    assert_eq!(refresh(&app, &refresh_token).await.status, 200, "flush-expired killed a live session");
}

async fn jwks_kid(app: &TestApp) -> Vec<String> {
    let jwks = app.get("/.well-known/jwks.json").await;
    assert_eq!(jwks.status, 200);
    jwks.json()["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

async fn keys_list_and_rotate(backend: Backend) {
    let app = spawn_app_with(backend, &[("KEYS_RELOAD_INTERVAL", "1s")]).await;
    let published = jwks_kid(&app).await;
    assert_eq!(published.len(), 1);
    let old = published[0].clone();
    let text = ok(&app.cli(&["keys", "list"]));
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains(&old) && text.contains("signing"), "{text}");

    let (_, refresh_before) = app.alice().await;
    let out = ok(&app.cli(&["keys", "rotate"]));
    let text = ok(&app.cli(&["keys", "list"]));
    assert_eq!(text.lines().count(), 2, "{text}");
    let new_line = text.lines().find(|l| !l.contains(&old)).unwrap();
    let new = new_line.split_whitespace().next().unwrap().to_owned();
    assert!(out.contains(&new), "rotate should print the new kid {new}: {out}");
    assert!(new_line.contains("signing"), "{new_line}");
    let old_line = text.lines().find(|l| l.contains(&old)).unwrap();
    assert!(!old_line.contains("signing") && old_line.contains("published"), "{old_line}");

    // The running server picks the new key up: both published, new tokens signed by the new one.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let kids = jwks_kid(&app).await;
        if kids.contains(&new) {
            assert!(kids.contains(&old), "the old key must stay published: {kids:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the server never published {new}: {kids:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (access, _) = app.login("alice", "correct horse").await;
    assert_eq!(header(&access)["kid"], new.as_str());
    assert_eq!(refresh(&app, &refresh_before).await.status, 200, "tokens signed before the rotation keep working");
}

async fn keys_rotate_refuses_hs256(backend: Backend) {
    let secret = "0123456789abcdef0123456789abcdef";
    let app = spawn_app_with(backend, &[("JWT_ALGORITHM", "HS256"), ("JWT_SECRET", secret)]).await;
    let out = app.cli(&["keys", "rotate"]);
    let line = single_error_line(&out);
    assert!(line.contains("JWT_SECRET"), "{line}");
    assert!(!line.contains(secret), "{line}");
    // Logins still work with the secret.
    let (access, _) = app.alice().await;
    assert_eq!(header(&access)["alg"], "HS256");
}

async fn audit_tail_shows_logins(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse");
    assert_401(&login_status(&app, "alice", "hunter2-wrong").await, NO_ACTIVE_ACCOUNT);
    app.login("alice", "correct horse").await;

    let text = ok(&app.cli(&["audit", "tail", "-n", "5"]));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() <= 5, "{text}");
    let failed = lines.iter().position(|l| l.contains("login_failed")).unwrap_or_else(|| panic!("{text}"));
    let succeeded = lines.iter().position(|l| l.contains("login_ok")).unwrap_or_else(|| panic!("{text}"));
    assert!(failed < succeeded, "oldest first: {text}");
    assert!(lines[failed].contains("alice") && lines[succeeded].contains("alice"), "{text}");
    assert!(!text.contains("hunter2") && !text.contains("correct horse"), "a password in the audit trail: {text}");

    // -n limits to the latest N.
    let text = ok(&app.cli(&["audit", "tail", "-n", "1"]));
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("login_ok"), "{text}");

    let json = ok(&app.cli(&["audit", "tail", "-n", "5", "--json"]));
    assert!(!json.contains("hunter2") && !json.contains("correct horse"), "{json}");
    let events: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {l:?}")))
        .collect();
    assert!(events.len() >= 2 && events.len() <= 5, "{json}");
    assert!(events.iter().all(|e| e.is_object() && e["event"].is_string()), "{json}");
    let names: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert!(names.ends_with(&["login_failed", "login_ok"]), "{names:?}");

    let line = single_error_line(&app.cli(&["audit", "tail", "-n", "0"]));
    assert!(line.contains("-n"), "{line}");
}

async fn audit_tail_escapes_what_clients_typed(backend: Backend) {
    // A failed login records the username as sent: here one that forges a second audit line
    // and turns the operator's terminal red.
    let app = spawn_app(backend).await;
    app.create_user("alice", "correct horse");
    let forged = "mallory\n2026-01-01T00:00:00Z\tlogin_ok\tuser=admin\taddr=10.0.0.1\t\u{1b}[31mred\u{1b}[0m";
    assert_401(&login_status(&app, forged, "guess").await, NO_ACTIVE_ACCOUNT);
    app.login("alice", "correct horse").await;

    let out = app.cli(&["audit", "tail", "-n", "5"]);
    let text = ok(&out);
    let events = ok(&app.cli(&["audit", "tail", "-n", "5", "--json"])).lines().count();
    assert_eq!(text.lines().count(), events, "one line per event: {text}");
    assert!(
        out.stdout.iter().all(|&b| b == b'\n' || b == b'\t' || (b >= 0x20 && b != 0x7f)),
        "raw control bytes reach the terminal: {text:?}"
    );
    for line in text.lines() {
        assert_eq!(line.matches('\t').count(), 4, "a forged field: {line:?}");
    }
    let failed = text.lines().find(|l| l.contains("\tlogin_failed\t")).unwrap_or_else(|| panic!("{text}"));
    assert!(
        failed.contains(r"user=mallory\n2026-01-01T00:00:00Z\tlogin_ok\tuser=admin\taddr=10.0.0.1\t\u{1b}[31mred"),
        "the username, escaped: {failed}"
    );
    assert_eq!(text.matches("login_ok").count(), 2, "the real login and the escaped forgery: {text}");
}

async fn migrate_is_idempotent(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HashMap::from([("DATABASE_URL".to_owned(), db.url.clone())]);
    ok(&run_cli(&env, db.dir(), &["migrate"], None));
    ok(&run_cli(&env, db.dir(), &["migrate"], None));
    // The schema is there: users can be made and listed.
    ok(&run_cli(&env, db.dir(), &["user", "create", "alice", "--password-stdin"], Some("pw of a user")));
    assert!(ok(&run_cli(&env, db.dir(), &["user", "list"], None)).contains("alice"));
}

crate::db_test!(
    user_create_then_login,
    password_stdin_refuses_an_empty_password,
    password_stdin_drops_only_the_trailing_newline,
    user_create_flags_show_in_me,
    user_list_plain_and_json,
    user_list_shows_deactivated_users,
    deactivate_and_activate,
    unknown_user_is_one_line,
    set_password_ends_sessions,
    flush_expired_deletes_only_expired,
    flush_expired_keeps_live_tokens,
    flush_expired_works_through_many_batches,
    a_newer_schema_does_not_stop_an_older_binary,
    flush_expired_prunes_old_audit_events,
    keys_list_and_rotate,
    keys_rotate_refuses_hs256,
    audit_tail_shows_logins,
    audit_tail_escapes_what_clients_typed,
    migrate_is_idempotent,
    serve_stops_cleanly_on_sigterm,
);

#[test]
fn migrate_creates_a_fresh_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fresh.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let out = run_binary(dir.path(), &[("DATABASE_URL", &url)], &["migrate"], Duration::from_secs(30));
    ok(&out);
    assert!(file.exists(), "migrate did not create {}", file.display());
}

#[test]
fn openapi_prints_the_committed_document() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_binary(dir.path(), &[], &["openapi"], Duration::from_secs(30));
    let printed: Value = serde_json::from_str(&ok(&out)).expect("openapi prints JSON");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(printed == committed, "`tokensmith openapi` differs from openapi/openapi.json: regenerate it");
    assert!(printed["openapi"].as_str().unwrap().starts_with("3.1"));
    // No database is needed (or made) to print it.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn help_for_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let commands: &[&[&str]] = &[
        &[],
        &["serve"],
        &["migrate"],
        &["user"],
        &["user", "create"],
        &["user", "set-password"],
        &["user", "deactivate"],
        &["user", "activate"],
        &["user", "list"],
        &["keys"],
        &["keys", "rotate"],
        &["keys", "list"],
        &["tokens"],
        &["tokens", "flush-expired"],
        &["openapi"],
        &["audit"],
        &["audit", "tail"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let out = run_binary(dir.path(), &[], &args, Duration::from_secs(20));
        let text = ok(&out);
        let usage =
            format!("Usage: {}", ["tokensmith"].iter().chain(command.iter()).copied().collect::<Vec<_>>().join(" "));
        assert!(text.contains(&usage), "{args:?}: no {usage:?} in {text}");
    }
    let top = ok(&run_binary(dir.path(), &[], &["--help"], Duration::from_secs(20)));
    for sub in ["serve", "migrate", "user", "keys", "tokens", "openapi", "audit"] {
        assert!(top.lines().any(|l| l.trim_start().starts_with(sub)), "top-level help lists {sub}: {top}");
    }
    let create = ok(&run_binary(dir.path(), &[], &["user", "create", "--help"], Duration::from_secs(20)));
    for flag in ["--email", "--first-name", "--last-name", "--staff", "--superuser", "--password-stdin"] {
        assert!(create.contains(flag), "user create --help lists {flag}");
    }
    let tail = ok(&run_binary(dir.path(), &[], &["audit", "tail", "--help"], Duration::from_secs(20)));
    assert!(tail.contains("-n") && tail.contains("--json"), "{tail}");
    // Help starts no server and makes no database.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn bad_arguments_are_one_line_naming_the_argument() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["frobnicate"], "frobnicate"),
        (&["--bogus"], "--bogus"),
        (&["user", "list", "--bogus"], "--bogus"),
        (&["user", "frobnicate"], "frobnicate"),
        (&["user", "create"], "USERNAME"),
        (&["user", "deactivate"], "USERNAME"),
        (&["user", "set-password", "alice"], "--password-stdin"),
        (&["audit", "tail", "-n", "abc"], "-n"),
        (&["user"], "user"),
        (&["keys"], "keys"),
    ];
    for (args, named) in cases {
        let out = run_binary(dir.path(), &[], args, Duration::from_secs(20));
        let line = single_error_line(&out);
        assert!(line.contains(named), "{args:?}: the error should name {named}: {line:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", stdout(&out));
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "a usage error touched the database");
}

/// A `tokensmith serve` process, killed if a test fails before stopping it.
struct Server {
    child: Child,
    addr: String,
    log: tempfile::NamedTempFile,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Server {
    /// Starts `tokensmith serve` in `dir` with only `env`, PATH and LISTEN_ADDR.
    fn start(dir: &Path, env: &HashMap<String, String>) -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(binary())
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env)
            .env("LISTEN_ADDR", &addr)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("the binary runs");
        Self { child, addr, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Polls /healthz until it answers 200 (20 s at most).
    async fn wait_healthy(&mut self, client: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("serve exited early with {status:?}: {}", self.log());
            }
            if let Ok(response) = client.get(self.url("/healthz")).send().await
                && response.status() == 200
            {
                assert_eq!(response.json::<Value>().await.unwrap(), json!({"status": "ok"}));
                return;
            }
            assert!(Instant::now() < deadline, "/healthz never answered 200: {}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends SIGTERM and asserts a clean exit (status 0) within 10 s.
    async fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "serve exited with {status:?} after SIGTERM: {}", self.log());
                return;
            }
            assert!(Instant::now() < deadline, "serve still running 10 s after SIGTERM: {}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn serve_stops_cleanly_on_sigterm(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = HashMap::from([("DATABASE_URL".to_owned(), db.url.clone())]);
    let mut server = Server::start(db.dir(), &env);
    // The client keeps its idle keep-alive connection open across the shutdown, as a load
    // balancer would: that must not hold the process up.
    let client = reqwest::Client::new();
    server.wait_healthy(&client).await;
    let ready = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    server.terminate().await;
    assert!(client.get(server.url("/healthz")).send().await.is_err(), "still answering after exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_no_configuration_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let nothing = HashMap::new();
    let mut server = Server::start(dir.path(), &nothing);
    let client = reqwest::Client::new();
    server.wait_healthy(&client).await;
    assert!(dir.path().join("tokensmith.db").exists(), "no tokensmith.db in the working directory");

    let jwks: Value = client.get(server.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    assert_eq!(keys[0]["alg"], "ES256");
    assert_eq!(keys[0]["use"], "sig");
    let kid = keys[0]["kid"].as_str().unwrap().to_owned();

    // The operator adds a user with the CLI in the same directory, also with no settings.
    ok(&run_cli(&nothing, dir.path(), &["user", "create", "alice", "--password-stdin"], Some("correct horse\n")));
    let reply = client
        .post(server.url("/api/token/"))
        .json(&json!({"username": "alice", "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let pair: Value = reply.json().await.unwrap();
    assert_eq!(header(pair["access"].as_str().unwrap())["kid"], kid.as_str());
    server.terminate().await;

    // The generated key is kept: a restart publishes the same one, and the session survives.
    let mut server = Server::start(dir.path(), &nothing);
    server.wait_healthy(&client).await;
    let jwks: Value = client.get(server.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "{jwks}");
    assert_eq!(jwks["keys"][0]["kid"], kid.as_str(), "a new key after restart logs everyone out");
    let reply =
        client.post(server.url("/api/token/refresh/")).json(&json!({"refresh": pair["refresh"]})).send().await.unwrap();
    assert_eq!(reply.status(), 200);
    server.terminate().await;
}
