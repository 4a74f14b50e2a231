//! What the admin-session and minted-token tests share: staff callers made through the CLI, as an
//! operator makes the first admin; admin requests without a body (DELETE, POST …/tokens/); a
//! user's sessions as the admin API lists them; and the bodies the admin API answers with.

use serde_json::{Value, json};

use crate::helpers::*;

pub const NOT_FOUND: &str = r#"{"detail":"Not found."}"#;
pub const FORBIDDEN: &str = r#"{"detail":"You do not have permission to perform this action."}"#;
pub const NO_ACCOUNT_FOR_TOKEN: &str =
    r#"{"detail":"No active account found for the given token.","code":"no_active_account"}"#;
pub const USER_NOT_FOUND: &str = r#"{"detail":"User not found","code":"user_not_found"}"#;

/// The password every user these tests make logs in with.
pub const PASSWORD: &str = "correct horse";

/// Creates `name` through the CLI with the flags given (`--staff`, `--superuser`) and logs it in:
/// (access, refresh).
pub async fn user_with(app: &TestApp, name: &str, flags: &[&str]) -> (String, String) {
    let args = [&["user", "create", name, "--password-stdin"][..], flags].concat();
    let out = app.cli_with_stdin(&args, PASSWORD);
    assert!(out.status.success(), "user create {name}: {}", String::from_utf8_lossy(&out.stderr));
    app.login(name, PASSWORD).await
}

/// A staff superuser `root`, logged in: its access token.
pub async fn superuser(app: &TestApp) -> String {
    user_with(app, "root", &["--staff", "--superuser"]).await.0
}

/// The id the server gave `name`, as the operator's `user list --json` shows it.
pub fn user_id(app: &TestApp, name: &str) -> i64 {
    let users = app.users();
    let user = users.iter().find(|u| u["username"] == name).unwrap_or_else(|| panic!("no {name} in {users:?}"));
    user["id"].as_i64().unwrap_or_else(|| panic!("no integer id: {user}"))
}

/// A bodiless request with the bearer token (DELETE, or POST …/tokens/ which takes no body).
pub async fn bare(app: &TestApp, method: reqwest::Method, path: &str, token: &str) -> Reply {
    read(app.client.request(method, app.url(path)).bearer_auth(token).send().await.unwrap()).await
}

pub async fn delete(app: &TestApp, path: &str, token: &str) -> Reply {
    bare(app, reqwest::Method::DELETE, path, token).await
}

/// `GET /api/admin/users/{id}/sessions/`: the whole page, checked to be 200.
pub async fn session_page(app: &TestApp, admin: &str, id: i64) -> Value {
    let reply = app.get_bearer(&format!("/api/admin/users/{id}/sessions/"), admin).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()
}

/// The live sessions of user `id`, newest first.
pub async fn sessions(app: &TestApp, admin: &str, id: i64) -> Vec<Value> {
    session_page(app, admin, id).await["results"].as_array().expect("a results array").clone()
}

/// The ids of the live sessions of user `id`.
pub async fn session_ids(app: &TestApp, admin: &str, id: i64) -> Vec<String> {
    sessions(app, admin, id).await.iter().map(|s| s["id"].as_str().expect("a string id").to_owned()).collect()
}

/// The one session of `id` that is not among `known`: the one a login since made.
pub async fn new_session(app: &TestApp, admin: &str, id: i64, known: &[String]) -> String {
    let fresh: Vec<String> = session_ids(app, admin, id).await.into_iter().filter(|s| !known.contains(s)).collect();
    assert_eq!(fresh.len(), 1, "expected one new session, got {fresh:?} beside {known:?}");
    fresh[0].clone()
}

/// `POST /api/token/refresh/` with `refresh`, as a client sends it.
pub async fn refresh(app: &TestApp, refresh: &str) -> Reply {
    app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await
}

/// A refresh that must succeed: the rotated refresh token.
pub async fn rotated(app: &TestApp, token: &str) -> String {
    let reply = refresh(app, token).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.field("refresh")
}

/// The events `tokensmith audit tail --json` prints, oldest first.
pub fn audit_events(app: &TestApp) -> Vec<Value> {
    let out = app.cli(&["audit", "tail", "-n", "50", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}
