//! What the Admin API tests share: people with the right flags, logged in; requests with any
//! method and a bearer token; the answers the API gives in DRF's exact words; the audit trail.

use futures::StreamExt;
use serde_json::{Value, json};

use crate::helpers::*;

pub const NOT_PROVIDED: &str = r#"{"detail":"Authentication credentials were not provided."}"#;
pub const FORBIDDEN: &str = r#"{"detail":"You do not have permission to perform this action."}"#;
pub const SELF_REFUSED: &str = r#"{"detail":"You cannot deactivate, delete or demote your own account."}"#;
pub const NOT_FOUND: &str = r#"{"detail":"Not found."}"#;
pub const INVALID_PAGE: &str = r#"{"detail":"Invalid page."}"#;
pub const USER_NOT_FOUND: &str = r#"{"detail":"User not found","code":"user_not_found"}"#;
pub const USER_INACTIVE: &str = r#"{"detail":"User is inactive","code":"user_inactive"}"#;
/// What a refresh token of a user who no longer exists gets.
pub const GONE_ACCOUNT: &str =
    r#"{"detail":"No active account found for the given token.","code":"no_active_account"}"#;

/// The password every person made here logs in with: long, uncommon, unlike any username.
pub const PASSWORD: &str = "violet kettle 4817";

pub const USERS: &str = "/api/admin/users/";
pub const GROUPS: &str = "/api/admin/groups/";

pub fn user_url(id: i64) -> String {
    format!("{USERS}{id}/")
}

/// A user made on the command line and logged in.
pub struct Person {
    pub id: i64,
    pub access: String,
    pub refresh: String,
}

/// Creates `name` with `flags` (`--staff`, `--superuser`) through the CLI, then logs in.
pub async fn person(app: &TestApp, name: &str, flags: &[&str]) -> Person {
    let email = format!("{name}@example.com");
    let args = [&["user", "create", name, "--email", &email][..], flags, &["--password-stdin"]].concat();
    let out = app.cli_with_stdin(&args, PASSWORD);
    assert!(out.status.success(), "user create {name}: {}", String::from_utf8_lossy(&out.stderr));
    let (access, refresh) = app.login(name, PASSWORD).await;
    let id = claims(&access)["user_id"].as_str().expect("user_id claim").parse().expect("numeric user id");
    Person { id, access, refresh }
}

pub async fn superuser(app: &TestApp, name: &str) -> Person {
    person(app, name, &["--staff", "--superuser"]).await
}

pub async fn staff(app: &TestApp, name: &str) -> Person {
    person(app, name, &["--staff"]).await
}

pub async fn plain(app: &TestApp, name: &str) -> Person {
    person(app, name, &[]).await
}

/// Any request, with a JSON body when `body` is given and a bearer token when `token` is.
pub async fn call(app: &TestApp, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
    let url = if path.starts_with("http") { path.to_owned() } else { app.url(path) };
    let mut request = app.client.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    read(request.send().await.expect("the server answers")).await
}

pub async fn get(app: &TestApp, path: &str, token: &str) -> Reply {
    call(app, "GET", path, Some(token), None).await
}

pub async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> Reply {
    call(app, "POST", path, Some(token), Some(body)).await
}

pub async fn patch(app: &TestApp, path: &str, token: &str, body: Value) -> Reply {
    call(app, "PATCH", path, Some(token), Some(body)).await
}

pub async fn delete(app: &TestApp, path: &str, token: &str) -> Reply {
    call(app, "DELETE", path, Some(token), None).await
}

/// Asserts `reply` is `status` with exactly `body`.
#[track_caller]
pub fn assert_reply(reply: &Reply, status: u16, body: &str) {
    assert_eq!((reply.status, reply.text.as_str()), (status, body), "{reply:?}");
}

/// Asserts `reply` is `status` with a JSON body equal to `body`.
#[track_caller]
pub fn assert_json(reply: &Reply, status: u16, body: Value) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.json(), body);
}

/// Creates a user through the API as `admin`, asserting the 201; returns its JSON.
pub async fn create(app: &TestApp, admin: &str, body: Value) -> Value {
    let reply = post(app, USERS, admin, body).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json()
}

/// Creates users `{prefix}000`, `{prefix}001`… through the API, many requests at a time.
pub async fn create_many(app: &TestApp, admin: &str, prefix: &str, n: usize) {
    let statuses: Vec<(u16, String)> = futures::stream::iter(0..n)
        .map(|i| async move {
            let body = json!({"username": format!("{prefix}{i:03}"), "email": format!("{prefix}{i:03}@example.com")});
            let reply = post(app, USERS, admin, body).await;
            (reply.status, reply.text)
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for (status, text) in statuses {
        assert_eq!(status, 201, "{text}");
    }
}

/// Creates a group through the API, asserting the 201; returns its id.
pub async fn create_group(app: &TestApp, admin: &str, name: &str) -> i64 {
    let reply = post(app, GROUPS, admin, json!({"name": name})).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json()["id"].as_i64().expect("a numeric group id")
}

/// The refresh endpoint's answer for `refresh`.
pub async fn refresh(app: &TestApp, refresh: &str) -> Reply {
    app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await
}

/// The login endpoint's answer.
pub async fn try_login(app: &TestApp, username: &str, password: &str) -> Reply {
    app.post_json("/api/token/", json!({"username": username, "password": password})).await
}

/// The latest audit events, oldest first, as `tokensmith audit tail --json` prints them.
pub fn audit(app: &TestApp) -> Vec<Value> {
    let out = app.cli(&["audit", "tail", "--json", "-n", "50"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}
