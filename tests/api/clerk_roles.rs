//! Clerk users' `is_staff` / `is_superuser` from their Clerk metadata (`CLERK_ROLES_CLAIM`,
//! `CLERK_STAFF_ROLES`, `CLERK_SUPERUSER_ROLES`): from the session token at every exchange, from
//! the Backend API at the first one, from `user.*` webhooks and from `clerk sync-users`. Which of
//! a token and a webhook wins by age is in `clerk_roles_order`.

use serde_json::{Value, json};

use crate::{
    clerk_webhooks::{deliver, secret},
    db_test,
    fake_clerk::{FakeClerk, clerk_user, spawn_with_clerk},
    helpers::{Backend, Reply, TestApp, claims, now, read},
};

db_test!(
    session_token_metadata_sets_and_removes_the_flags_at_every_exchange,
    a_token_without_the_metadata_leaves_the_flags_as_last_applied,
    rfc8693_exchange_applies_the_roles_too,
    the_first_exchange_reads_the_roles_from_the_backend_api,
    user_webhooks_flip_the_flags_and_never_reactivate,
    sync_users_applies_the_roles,
    without_clerk_roles_claim_clerk_never_touches_the_flags,
);

/// Roles in `public_metadata.role`, where Clerk's docs put them; the session token carries them
/// when its template has `"public_metadata": "{{user.public_metadata}}"`.
const ROLES: [(&str, &str); 3] = [
    ("CLERK_ROLES_CLAIM", "public_metadata.role"),
    ("CLERK_STAFF_ROLES", "admin, support"),
    ("CLERK_SUPERUSER_ROLES", "owner"),
];

pub(crate) async fn app_with_roles(backend: Backend, clerk: &FakeClerk) -> TestApp {
    let secret = secret();
    let mut settings = ROLES.to_vec();
    settings.push(("CLERK_WEBHOOK_SIGNING_SECRET", &secret));
    settings.push(("TOKEN_CLAIMS", "is_staff,is_superuser"));
    spawn_with_clerk(backend, clerk, &settings).await
}

/// A session token for `sub` minted at `iat` (unix seconds), whose template adds
/// `public_metadata` (`None`: the default template, no metadata at all). Of two tokens, the one
/// minted later says what the roles are now.
pub(crate) fn token_with(clerk: &FakeClerk, sub: &str, iat: i64, public_metadata: Option<Value>) -> String {
    let mut claims = clerk.claims(sub);
    claims["iat"] = json!(iat);
    if let Some(metadata) = public_metadata {
        claims["public_metadata"] = metadata;
    }
    clerk.key.sign(&claims)
}

pub(crate) async fn exchange(app: &TestApp, token: &str) -> Reply {
    read(app.client.post(app.url("/api/token/clerk/")).bearer_auth(token).send().await.unwrap()).await
}

/// `(is_staff, is_superuser)` as `/api/me/` shows them to the access token `token` exchanges for;
/// with `TOKEN_CLAIMS`, the access token itself says the same.
pub(crate) async fn flags_after_exchange(app: &TestApp, token: &str) -> (bool, bool) {
    let reply = exchange(app, token).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let access = reply.field("access");
    let flags = flags_of(&app.get_bearer("/api/me/", &access).await.json());
    if app.config.tokens.claims.is_empty() {
        return flags;
    }
    assert_eq!(flags_of(&claims(&access)), flags, "the access token carries the flags just applied");
    flags
}

pub(crate) fn flags_of(user: &Value) -> (bool, bool) {
    (user["is_staff"].as_bool().unwrap(), user["is_superuser"].as_bool().unwrap())
}

pub(crate) fn listed(app: &TestApp, username: &str) -> Value {
    let out = app.cli(&["user", "list", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let users: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    users.into_iter().find(|u| u["username"] == username).unwrap_or_else(|| panic!("no user {username}"))
}

/// The `roles_changed` events of the audit trail, oldest first.
pub(crate) fn role_changes(app: &TestApp) -> Vec<Value> {
    let out = app.cli(&["audit", "tail", "-n", "100", "--json"]);
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).filter(|e| e["event"] == "roles_changed").collect()
}

pub(crate) fn user_with_metadata(id: &str, username: &str, updated_at: i64, public_metadata: Value) -> Value {
    let mut user = clerk_user(id, Some(username), &format!("{username}@example.com"), true, updated_at);
    user["public_metadata"] = public_metadata;
    user
}

async fn session_token_metadata_sets_and_removes_the_flags_at_every_exchange(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = app_with_roles(backend, &clerk).await;
    let (sub, t) = ("user_roles", now() - 30);
    let staff = flags_after_exchange(&app, &token_with(&clerk, sub, t, Some(json!({"role": "admin"})))).await;
    assert_eq!(staff, (true, false), "role admin is in CLERK_STAFF_ROLES");
    let member = flags_after_exchange(&app, &token_with(&clerk, sub, t + 1, Some(json!({"role": "member"})))).await;
    assert_eq!(member, (false, false), "a later token with another role takes staff away");
    let owner = flags_after_exchange(&app, &token_with(&clerk, sub, t + 2, Some(json!({"role": "owner"})))).await;
    assert_eq!(owner, (false, true), "owner is in CLERK_SUPERUSER_ROLES only");
    let list = json!({"role": ["member", "support", "owner"]});
    assert_eq!(flags_after_exchange(&app, &token_with(&clerk, sub, t + 3, Some(list))).await, (true, true));
    // The metadata is there and holds no role: no role, no flags.
    assert_eq!(flags_after_exchange(&app, &token_with(&clerk, sub, t + 4, Some(json!({})))).await, (false, false));

    // Each change is in the audit trail, with the user and the client that exchanged.
    let changes = role_changes(&app);
    let details: Vec<&str> = changes.iter().map(|e| e["detail"].as_str().unwrap()).collect();
    assert_eq!(
        details,
        [
            "clerk: is_staff true, is_superuser false (were false, false)",
            "clerk: is_staff false, is_superuser false (were true, false)",
            "clerk: is_staff false, is_superuser true (were false, false)",
            "clerk: is_staff true, is_superuser true (were false, true)",
            "clerk: is_staff false, is_superuser false (were true, true)",
        ]
    );
    assert_eq!((&changes[0]["username"], &changes[0]["client_addr"]), (&json!(sub), &json!("127.0.0.1")));
    // An exchange that changes nothing records no change.
    flags_after_exchange(&app, &token_with(&clerk, sub, t + 5, Some(json!({"role": "member"})))).await;
    assert_eq!(role_changes(&app).len(), 5);
}

/// Clerk's default session token has no metadata: such a token says nothing about roles, and the
/// flags stay as the last token, webhook or sync left them.
async fn a_token_without_the_metadata_leaves_the_flags_as_last_applied(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = app_with_roles(backend, &clerk).await;
    let (sub, t) = ("user_plain", now() - 30);
    assert_eq!(
        flags_after_exchange(&app, &token_with(&clerk, sub, t, Some(json!({"role": "admin"})))).await,
        (true, false)
    );
    assert_eq!(flags_after_exchange(&app, &token_with(&clerk, sub, t + 1, None)).await, (true, false));
    // A role that is not a string or a list of strings is no role.
    let odd = token_with(&clerk, sub, t + 2, Some(json!({"role": 7})));
    assert_eq!(flags_after_exchange(&app, &odd).await, (false, false));
    assert_eq!(flags_after_exchange(&app, &token_with(&clerk, sub, t + 3, None)).await, (false, false));
}

async fn rfc8693_exchange_applies_the_roles_too(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = app_with_roles(backend, &clerk).await;
    let exchange_8693 = |token: String| {
        let app = &app;
        async move {
            let form = [
                ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
                ("subject_token", token.as_str()),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
            ];
            let reply = app.post_form("/api/token/exchange/", &form).await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            flags_of(&app.get_bearer("/api/me/", &reply.field("access_token")).await.json())
        }
    };
    let t = now() - 30;
    assert_eq!(exchange_8693(token_with(&clerk, "user_rfc", t, Some(json!({"role": "owner"})))).await, (false, true));
    let member = token_with(&clerk, "user_rfc", t + 1, Some(json!({"role": "member"})));
    assert_eq!(exchange_8693(member).await, (false, false));
}

/// The default session token carries no metadata, but the first exchange reads the user from
/// Clerk's Backend API (`CLERK_SECRET_KEY`), whose `public_metadata` has the role.
async fn the_first_exchange_reads_the_roles_from_the_backend_api(backend: Backend) {
    let clerk = FakeClerk::start().await;
    clerk.add_users([user_with_metadata("user_api", "grace", now() * 1000, json!({"role": "support"}))]);
    let app = app_with_roles(backend, &clerk).await;
    assert_eq!(flags_after_exchange(&app, &token_with(&clerk, "user_api", now(), None)).await, (true, false));
    let changes = role_changes(&app);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["detail"], "clerk: is_staff true, is_superuser false (were false, false)");
    // A token that does carry the metadata wins over what the Backend API said, when it was
    // minted after the user's last update in Clerk...
    let t = now() - 30;
    clerk.add_users([user_with_metadata("user_api2", "hopper", t * 1000, json!({"role": "support"}))]);
    let token = token_with(&clerk, "user_api2", t + 1, Some(json!({"role": "member"})));
    assert_eq!(flags_after_exchange(&app, &token).await, (false, false));
    // ...and loses when minted before it: Clerk changed the role since.
    clerk.add_users([user_with_metadata("user_api3", "lamarr", t * 1000 + 500, json!({"role": "support"}))]);
    let token = token_with(&clerk, "user_api3", t, Some(json!({"role": "member"})));
    assert_eq!(flags_after_exchange(&app, &token).await, (true, false), "an old token outranked the Backend API");
}

async fn user_webhooks_flip_the_flags_and_never_reactivate(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = app_with_roles(backend, &clerk).await;
    let t = now() * 1000;
    let event = |kind: &str, at: i64, metadata: Value| json!({"type": kind, "data": user_with_metadata("user_hook", "linus", at, metadata)});
    assert_eq!(deliver(&app, "msg_r1", event("user.created", t, json!({"role": "admin"}))).await.status, 200);
    assert_eq!(flags_of(&listed(&app, "linus")), (true, false), "user.created with role admin: staff");
    // The default session token says nothing about roles: what the webhook set holds.
    assert_eq!(flags_after_exchange(&app, &token_with(&clerk, "user_hook", now(), None)).await, (true, false));

    assert_eq!(deliver(&app, "msg_r2", event("user.updated", t + 1, json!({}))).await.status, 200);
    assert_eq!(flags_of(&listed(&app, "linus")), (false, false), "role removed from public_metadata");
    assert_eq!(flags_after_exchange(&app, &token_with(&clerk, "user_hook", now(), None)).await, (false, false));
    // A delivery older than the one applied brings back nothing, roles included.
    assert_eq!(deliver(&app, "msg_r3", event("user.updated", t, json!({"role": "admin"}))).await.status, 200);
    assert_eq!(flags_of(&listed(&app, "linus")), (false, false), "an older update restored staff");

    let update = event("user.updated", t + 2, json!({"role": ["support", "owner"]}));
    assert_eq!(deliver(&app, "msg_r4", update).await.status, 200);
    assert_eq!(flags_of(&listed(&app, "linus")), (true, true));
    let details: Vec<Value> = role_changes(&app).into_iter().map(|e| e["detail"].clone()).collect();
    assert_eq!(details.len(), 3, "{details:?}");
    assert_eq!(details[2], "clerk: is_staff true, is_superuser true (were false, false)");

    // The operator's deactivation stands whatever roles Clerk gives.
    assert!(app.cli(&["user", "deactivate", "linus"]).status.success());
    assert_eq!(deliver(&app, "msg_r5", event("user.updated", t + 3, json!({"role": "admin"}))).await.status, 200);
    let linus = listed(&app, "linus");
    assert_eq!((&linus["is_active"], &linus["is_staff"]), (&json!(false), &json!(true)));
    assert_eq!(
        exchange(&app, &token_with(&clerk, "user_hook", now(), Some(json!({"role": "admin"})))).await.status,
        401
    );
}

/// Roles from `private_metadata` (never seen by the browser), through `clerk sync-users`.
async fn sync_users_applies_the_roles(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let t = now() * 1000;
    let with_private = |id: &str, name: &str, at: i64, roles: Value| {
        let mut user = clerk_user(id, Some(name), &format!("{name}@example.com"), true, at);
        user["public_metadata"] = json!({"roles": ["staff", "root"]});
        user["private_metadata"] = json!({"roles": roles});
        user
    };
    clerk.add_users([
        with_private("user_s1", "staffer", t, json!(["staff"])),
        with_private("user_s2", "rooter", t, json!(["staff", "root"])),
        with_private("user_s3", "nobody", t, json!([])),
    ]);
    let settings = [
        ("CLERK_ROLES_CLAIM", "private_metadata.roles"),
        ("CLERK_STAFF_ROLES", "staff"),
        ("CLERK_SUPERUSER_ROLES", "root"),
    ];
    let app = spawn_with_clerk(backend, &clerk, &settings).await;
    assert!(app.cli(&["clerk", "sync-users"]).status.success());
    assert_eq!(flags_of(&listed(&app, "staffer")), (true, false));
    assert_eq!(flags_of(&listed(&app, "rooter")), (true, true));
    assert_eq!(flags_of(&listed(&app, "nobody")), (false, false), "public_metadata is not the configured path");

    // Clerk took the roles away: the next sync does too, and the audit trail names the CLI.
    clerk.add_users([with_private("user_s2", "rooter", t + 1, json!(null))]);
    assert!(app.cli(&["clerk", "sync-users"]).status.success());
    assert_eq!(flags_of(&listed(&app, "rooter")), (false, false));
    let last = role_changes(&app).pop().unwrap();
    assert_eq!((&last["username"], &last["client_addr"]), (&json!("rooter"), &json!("cli")));
}

/// Unset `CLERK_ROLES_CLAIM`: whatever the metadata says, Clerk never touches the flags, and
/// flags set locally stay.
async fn without_clerk_roles_claim_clerk_never_touches_the_flags(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let secret = secret();
    let app = spawn_with_clerk(backend, &clerk, &[("CLERK_WEBHOOK_SIGNING_SECRET", &secret)]).await;
    let t = now() * 1000;
    let admin = json!({"role": "admin"});
    assert_eq!(
        flags_after_exchange(&app, &token_with(&clerk, "user_local", now(), Some(admin.clone()))).await,
        (false, false)
    );

    app.db.execute("UPDATE users SET is_staff = TRUE WHERE username = 'user_local'").await;
    let member = json!({"role": "member"});
    assert_eq!(
        flags_after_exchange(&app, &token_with(&clerk, "user_local", now(), Some(member.clone()))).await,
        (true, false)
    );
    let update = json!({"type": "user.updated", "data": user_with_metadata("user_local", "user_local", t, member)});
    assert_eq!(deliver(&app, "msg_local", update).await.status, 200);
    clerk.add_users([user_with_metadata("user_synced", "synced", t, admin)]);
    assert!(app.cli(&["clerk", "sync-users"]).status.success());
    assert_eq!(flags_of(&listed(&app, "user_local")), (true, false));
    assert_eq!(flags_of(&listed(&app, "synced")), (false, false));
    assert!(role_changes(&app).is_empty());
}
