//! Tokens users customise (simplejwt's settings, without code): the user's attributes and
//! groups in access tokens, read at every login and refresh; custom claims; `sub` and
//! `USER_ID_CLAIM`; groups on the command line; `/api/me/`.

use std::{path::Path, time::Duration};

use serde_json::{Value, json};

use crate::{
    config::{run_binary, single_error_line},
    db_test,
    helpers::*,
};

const ALL_CLAIMS: &str = "username,email,first_name,last_name,is_staff,is_superuser,groups";

/// The one line a refused command prints, without its `error: ` prefix.
fn refusal(out: &std::process::Output) -> String {
    single_error_line(out).trim_start_matches("error: ").to_owned()
}

fn ok(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}; stderr: {stderr}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn refreshed_access(app: &TestApp, refresh: &str) -> (String, String) {
    let reply = app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    (reply.field("access"), reply.field("refresh"))
}

db_test!(
    access_tokens_carry_sub_beside_the_user_id,
    user_id_claim_renames_the_id_claim_everywhere,
    token_claims_follow_the_user_record_at_every_refresh,
    custom_claims_are_merged_and_reserved_names_refused,
    me_shows_groups_and_custom_claims,
    a_custom_claim_named_like_a_later_user_id_claim_never_doubles_the_id,
    a_user_belongs_to_at_most_a_hundred_groups,
    groups_are_managed_on_the_command_line,
);

async fn access_tokens_carry_sub_beside_the_user_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let (access, refresh) = app.alice().await;
    let claims = claims(&access);
    let id = claims["user_id"].as_str().expect("user_id is a string, as simplejwt 5.5 writes it").to_owned();
    assert_eq!(claims["sub"], json!(id), "sub names the same user: {claims}");
    // Without TOKEN_CLAIMS, nothing else about the user travels in the token.
    for attribute in ["username", "email", "is_staff", "groups"] {
        assert!(claims.get(attribute).is_none(), "{attribute} without TOKEN_CLAIMS: {claims}");
    }
    assert!(crate::helpers::claims(&refresh).get("sub").is_none(), "refresh tokens stay as simplejwt writes them");
    let (access, _) = refreshed_access(&app, &refresh).await;
    assert_eq!(crate::helpers::claims(&access)["sub"], json!(id));
}

async fn user_id_claim_renames_the_id_claim_everywhere(backend: Backend) {
    let app = spawn_app_with(backend, &[("USER_ID_CLAIM", "uid")]).await;
    let (access, refresh) = app.alice().await;
    let access_claims = claims(&access);
    assert!(access_claims.get("user_id").is_none(), "{access_claims}");
    assert_eq!(access_claims["uid"], access_claims["sub"]);
    assert!(crate::helpers::claims(&refresh)["uid"].is_string());
    // Every endpoint reads the id where the setting says.
    assert_eq!(app.get_bearer("/api/me/", &access).await.json()["username"], "alice");
    let (access, _) = refreshed_access(&app, &refresh).await;
    assert_eq!(app.post_json("/api/token/verify/", json!({"token": access})).await.status, 200);
    assert_eq!(app.get_bearer("/api/me/", &access).await.status, 200);
}

async fn token_claims_follow_the_user_record_at_every_refresh(backend: Backend) {
    let app = spawn_app_with(backend, &[("TOKEN_CLAIMS", ALL_CLAIMS)]).await;
    let args = ["user", "create", "alice", "--email", "alice@example.com", "--first-name", "Alice"];
    ok(&app.cli_with_stdin(&[&args[..], &["--last-name", "Liddell", "--password-stdin"]].concat(), "correct horse"));
    let (access, refresh) = app.login("alice", "correct horse").await;
    let claims = claims(&access);
    assert_eq!(claims["username"], "alice");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["first_name"], "Alice");
    assert_eq!(claims["last_name"], "Liddell");
    assert_eq!(claims["is_staff"], false);
    assert_eq!(claims["is_superuser"], false);
    assert_eq!(claims["groups"], json!([]));

    // An operator promotes her and puts her in groups: the next refresh says so (simplejwt
    // would copy the stale claims from the refresh token).
    ok(&app.cli(&["group", "create", "editors"]));
    ok(&app.cli(&["group", "create", "auditors"]));
    ok(&app.cli(&["user", "add-group", "alice", "editors"]));
    ok(&app.cli(&["user", "add-group", "alice", "auditors"]));
    app.db.execute("UPDATE users SET is_staff = TRUE WHERE username = 'alice'").await;
    let (access, refresh) = refreshed_access(&app, &refresh).await;
    let claims = crate::helpers::claims(&access);
    assert_eq!(claims["is_staff"], true, "{claims}");
    assert_eq!(claims["groups"], json!(["auditors", "editors"]));

    // And the reverse: demoted, out of a group.
    ok(&app.cli(&["user", "remove-group", "alice", "editors"]));
    app.db.execute("UPDATE users SET is_staff = FALSE WHERE username = 'alice'").await;
    let (access, _) = refreshed_access(&app, &refresh).await;
    let claims = crate::helpers::claims(&access);
    assert_eq!(claims["is_staff"], false, "{claims}");
    assert_eq!(claims["groups"], json!(["auditors"]));
}

async fn custom_claims_are_merged_and_reserved_names_refused(backend: Backend) {
    let app = spawn_app_with(backend, &[("TOKEN_CLAIMS", "is_staff")]).await;
    let (_, refresh) = app.alice().await;
    let out = app.cli(&["user", "set-claims", "alice", r#"{"tenant":"acme","plan":{"tier":2}}"#]);
    ok(&out);
    let (access, refresh) = refreshed_access(&app, &refresh).await;
    let claims = claims(&access);
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(claims["plan"], json!({"tier": 2}));
    assert_eq!(claims["is_staff"], false, "the record decides a configured attribute");
    assert!(crate::helpers::claims(&refresh).get("tenant").is_none(), "refresh tokens carry no claims");

    for (claims, named) in [
        (r#"{"exp":1}"#, "exp"),
        (r#"{"sub":"7"}"#, "sub"),
        (r#"{"user_id":"7"}"#, "user_id"),
        (r#"{"token_type":"access"}"#, "token_type"),
        (r#"{"refresh_exp":1}"#, "refresh_exp"),
        (r#"{"aud":"x"}"#, "aud"),
        // The user's attributes come from the record alone, configured in TOKEN_CLAIMS or not.
        (r#"{"is_staff":true}"#, "is_staff"),
        (r#"{"is_superuser":true}"#, "is_superuser"),
        (r#"{"username":"root"}"#, "username"),
        (r#"{"groups":["admins"]}"#, "groups"),
    ] {
        let line = refusal(&app.cli(&["user", "set-claims", "alice", claims]));
        assert!(line.starts_with("CLAIMS:") && line.contains(named), "{claims}: {line}");
    }
    for bad in ["[1,2]", "not json", "\"text\""] {
        let line = refusal(&app.cli(&["user", "set-claims", "alice", bad]));
        assert!(line.starts_with("CLAIMS:") && line.contains("JSON object"), "{bad}: {line}");
    }
    let huge = format!(r#"{{"blob":"{}"}}"#, "x".repeat(5000));
    assert!(refusal(&app.cli(&["user", "set-claims", "alice", &huge])).contains("at most"));
    let line = refusal(&app.cli(&["user", "set-claims", "nobody", "{}"]));
    assert!(line.starts_with("USERNAME:"), "{line}");

    // Refused changes left the claims as they were; `{}` clears them.
    let (access, refresh) = refreshed_access(&app, &refresh).await;
    assert_eq!(crate::helpers::claims(&access)["tenant"], "acme");
    ok(&app.cli(&["user", "set-claims", "alice", "{}"]));
    let (access, _) = refreshed_access(&app, &refresh).await;
    assert!(crate::helpers::claims(&access).get("tenant").is_none());

    // The configured USER_ID_CLAIM is reserved too.
    let renamed = spawn_app_with(backend, &[("USER_ID_CLAIM", "uid")]).await;
    renamed.create_user("bob", "pw of a user");
    let line = refusal(&renamed.cli(&["user", "set-claims", "bob", r#"{"uid":"1"}"#]));
    assert!(line.contains("uid"), "{line}");
    ok(&renamed.cli(&["user", "set-claims", "bob", r#"{"user_id":"is free here"}"#]));
}

async fn me_shows_groups_and_custom_claims(backend: Backend) {
    let app = spawn_app(backend).await;
    let (access, _) = app.alice().await;
    let me = app.get_bearer("/api/me/", &access).await.json();
    assert_eq!(me["groups"], json!([]));
    assert_eq!(me["claims"], json!({}));
    ok(&app.cli(&["group", "create", "editors"]));
    ok(&app.cli(&["user", "add-group", "alice", "editors"]));
    ok(&app.cli(&["user", "set-claims", "alice", r#"{"tenant":"acme"}"#]));
    let me = app.get_bearer("/api/me/", &access).await.json();
    assert_eq!(me["groups"], json!(["editors"]));
    assert_eq!(me["claims"], json!({"tenant": "acme"}));
    assert_eq!(me["username"], "alice");
}

async fn groups_are_managed_on_the_command_line(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_user("alice", "pw of a user");
    assert!(ok(&app.cli(&["group", "create", "editors"])).contains("editors"));
    let line = refusal(&app.cli(&["group", "create", "editors"]));
    assert!(line.starts_with("NAME:") && line.contains("already exists"), "{line}");
    for bad in ["", "   ", &"g".repeat(151), "a\u{7}b"] {
        let line = refusal(&app.cli(&["group", "create", bad]));
        assert!(line.starts_with("NAME:"), "{bad:?}: {line}");
    }
    let line = refusal(&app.cli(&["user", "add-group", "alice", "nope"]));
    assert!(line.starts_with("GROUP:") && line.contains("nope"), "{line}");
    let line = refusal(&app.cli(&["user", "add-group", "nobody", "editors"]));
    assert!(line.starts_with("USERNAME:"), "{line}");

    ok(&app.cli(&["user", "add-group", "alice", "editors"]));
    assert!(ok(&app.cli(&["user", "add-group", "alice", "editors"])).contains("already"));
    let listed: Value = serde_json::from_str(&ok(&app.cli(&["group", "list", "--json"]))).unwrap();
    assert_eq!(listed[0]["name"], "editors");
    assert_eq!(listed[0]["members"], 1);
    assert!(ok(&app.cli(&["group", "list"])).contains("editors\t1 members"));
    ok(&app.cli(&["user", "remove-group", "alice", "editors"]));
    assert!(ok(&app.cli(&["user", "remove-group", "alice", "editors"])).contains("was not"));
    let listed: Value = serde_json::from_str(&ok(&app.cli(&["group", "list", "--json"]))).unwrap();
    assert_eq!(listed[0]["members"], 0);

    let audit = ok(&app.cli(&["audit", "tail", "--json", "-n", "50"]));
    for event in ["group_created", "user_groups_changed"] {
        assert!(audit.contains(event), "{event} not audited: {audit}");
    }
}

#[test]
fn bad_claim_settings_stop_the_server_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value, says) in [
        ("TOKEN_CLAIMS", "username,phone", "phone"),
        ("USER_ID_CLAIM", "exp", "exp"),
        ("USER_ID_CLAIM", "user id", "letters"),
        ("USERNAME_FIELD", "phone", "username or email"),
        ("AUTH_HEADER_TYPES", "Bearer,Bad Type", "Bad Type"),
        ("SLIDING_TOKEN_LIFETIME", "soon", "duration"),
    ] {
        let out = run_binary(dir.path(), &[(var, value)], &["migrate"], Duration::from_secs(30));
        let line = refusal(&out);
        assert!(line.starts_with(var) && line.contains(says), "{var}={value}: {line}");
    }
    let out = run_binary(
        dir.path(),
        &[("USER_ID_CLAIM", "username"), ("TOKEN_CLAIMS", "username")],
        &["migrate"],
        Duration::from_secs(30),
    );
    assert!(refusal(&out).starts_with("USER_ID_CLAIM"));
    assert!(!Path::new(&dir.path().join("tokensmith.db")).exists(), "nothing was created");
}

/// A custom claim set while `USER_ID_CLAIM` had another name (or by a CLI run without the
/// server's settings) is dropped from tokens once its name is reserved: a token naming the id
/// twice would be read as the last one by most JSON parsers, tokensmith's own included.
async fn a_custom_claim_named_like_a_later_user_id_claim_never_doubles_the_id(backend: Backend) {
    let app = spawn_app_with(backend, &[("USER_ID_CLAIM", "uid")]).await;
    app.create_user("alice", "pw of alice");
    app.create_user("mallory", "quiet pond 73");
    let mut without_the_setting = app.env.clone();
    without_the_setting.remove("USER_ID_CLAIM");
    let set =
        run_cli(&without_the_setting, app.db.dir(), &["user", "set-claims", "mallory", r#"{"uid":"1","x":1}"#], None);
    ok(&set);

    let (access, _) = app.login("mallory", "quiet pond 73").await;
    let payload = access.split('.').nth(1).unwrap();
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
    let raw = String::from_utf8(raw).unwrap();
    assert_eq!(raw.matches("\"uid\"").count(), 1, "the id claim appears once: {raw}");
    assert_eq!(claims(&access)["x"], 1, "the other custom claims stay");
    assert_eq!(app.get_bearer("/api/me/", &access).await.json()["username"], "mallory");
}

/// Every access token lists all of its user's groups (`TOKEN_CLAIMS=groups`): their number is
/// bounded, so a token always fits in a header.
async fn a_user_belongs_to_at_most_a_hundred_groups(backend: Backend) {
    let app = spawn_app_with(backend, &[("TOKEN_CLAIMS", "groups")]).await;
    app.create_user("alice", "pw of a user");
    let values: Vec<String> = (1..=101).map(|n| format!("('g{n:03}')")).collect();
    app.db.execute(&format!("INSERT INTO groups (name) VALUES {}", values.join(", "))).await;
    app.db.execute("INSERT INTO user_groups (user_id, group_id) SELECT 1, id FROM groups WHERE name <> 'g101'").await;

    let line = refusal(&app.cli(&["user", "add-group", "alice", "g101"]));
    assert_eq!(line, "GROUP: a user belongs to at most 100 groups");
    assert!(ok(&app.cli(&["user", "add-group", "alice", "g001"])).contains("already"));
    ok(&app.cli(&["user", "remove-group", "alice", "g001"]));
    ok(&app.cli(&["user", "add-group", "alice", "g101"]));
    let (access, _) = app.login("alice", "pw of a user").await;
    assert_eq!(claims(&access)["groups"].as_array().unwrap().len(), 100);
}
