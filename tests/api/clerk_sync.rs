//! `tokensmith clerk sync-users` against a fake Clerk Backend API.

use crate::{
    db_test,
    fake_clerk::{FakeClerk, clerk_user, spawn_with_clerk},
    helpers::{Backend, now},
};

db_test!(sync_pages_through_every_user, sync_failures_are_one_clear_line);

async fn sync_pages_through_every_user(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let t = now() * 1000;
    clerk.add_users((0..230).map(|i| {
        clerk_user(&format!("user_{i:03}"), Some(&format!("member{i}")), &format!("m{i}@example.com"), true, t)
    }));
    let app = spawn_with_clerk(backend, &clerk, &[]).await;

    let out = app.cli(&["clerk", "sync-users"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        stdout.trim(),
        "synced 230 Clerk users: 230 created, 0 linked, 0 updated, 0 deactivated, 0 unchanged, 0 skipped"
    );
    assert_eq!(clerk.user_pages_served(), 3, "100 + 100 + 30");

    let listed: Vec<serde_json::Value> = serde_json::from_slice(&app.cli(&["user", "list", "--json"]).stdout).unwrap();
    assert_eq!(listed.len(), 230);
    let member7 = listed.iter().find(|u| u["username"] == "member7").unwrap();
    assert_eq!(member7["email"], "m7@example.com");
    // The synced user is the one the exchange signs in.
    let reply = crate::helpers::read(
        app.client
            .post(app.url("/api/token/clerk/"))
            .bearer_auth(clerk.session_token("user_007"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(app.get_bearer("/api/me/", &reply.field("access")).await.json()["username"], "member7");

    // Run again: nothing new; a user banned meanwhile is deactivated.
    let mut banned = clerk_user("user_230", Some("late"), "late@example.com", true, t);
    banned["banned"] = serde_json::json!(true);
    clerk.add_users([banned]);
    let out = app.cli(&["clerk", "sync-users"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "synced 231 Clerk users: 1 created, 0 linked, 230 updated, 0 deactivated, 0 unchanged, 0 skipped"
    );
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&app.cli(&["user", "list", "--json"]).stdout).unwrap();
    assert_eq!(listed.iter().find(|u| u["username"] == "late").unwrap()["is_active"], false);
}

async fn sync_failures_are_one_clear_line(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = spawn_with_clerk(backend, &clerk, &[("CLERK_SECRET_KEY", "sk_test_wrong")]).await;
    let out = app.cli(&["clerk", "sync-users"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("CLERK_SECRET_KEY") && stderr.contains("401"), "{stderr}");
    assert!(!stderr.contains("sk_test_wrong"), "the secret leaked: {stderr}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut env = app.env.clone();
    env.insert("CLERK_API_URL".into(), format!("http://{closed}"));
    let out = crate::helpers::run_cli(&env, app.db.dir(), &["clerk", "sync-users"], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("unreachable") && stderr.trim().lines().count() == 1, "{stderr}");

    env.remove("CLERK_SECRET_KEY");
    let out = crate::helpers::run_cli(&env, app.db.dir(), &["clerk", "sync-users"], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("CLERK_SECRET_KEY"), "{stderr}");
}
