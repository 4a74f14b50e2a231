//! Tokens a superuser mints for another user (`POST /api/admin/users/{id}/tokens/`: a session
//! of that user, in the body even with the refresh cookie on, audited), and what becomes of a
//! user's tokens once an admin deletes the user. Who may mint is in admin_permissions.

use serde_json::json;

use crate::{
    admin_helpers::*,
    admin_sessions::{new_session, rotated, session_ids, sessions, sliding_login},
    db_test,
    helpers::*,
};

db_test!(
    a_superuser_mints_a_working_session_for_another_user,
    minted_tokens_stay_in_the_body_with_the_refresh_cookie,
    a_deleted_users_tokens_are_refused,
);

async fn mint(app: &TestApp, admin: &str, id: i64) -> Reply {
    call(app, "POST", &format!("{}tokens/", user_url(id)), Some(admin), None).await
}

async fn a_superuser_mints_a_working_session_for_another_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    let admin = root.access.clone();
    let bob = plain(&app, "bob").await.id;
    let before = session_ids(&app, &admin, bob).await;

    let minted = mint(&app, &admin, bob).await;
    assert_eq!(minted.status, 200, "{}", minted.text);
    let mut fields: Vec<String> = minted.json().as_object().unwrap().keys().cloned().collect();
    fields.sort();
    assert_eq!(fields, ["access", "refresh"], "{}", minted.text);

    // The access token is bob's, not the admin's.
    let me = app.get_bearer("/api/me/", &minted.field("access")).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!((&me.json()["id"], &me.json()["username"]), (&json!(bob), &json!("bob")), "{}", me.text);
    // A session of its own, listed as the admin's doing; its refresh token refreshes.
    let session = new_session(&app, &admin, bob, &before).await;
    let listed = sessions(&app, &admin, bob).await;
    let entry = listed.iter().find(|s| s["id"] == session).unwrap();
    assert_eq!(entry["provider"], "admin", "{entry}");
    let next = rotated(&app, &minted.field("refresh")).await;
    assert_eq!(session_ids(&app, &admin, bob).await.len(), before.len() + 1, "rotation made no new session");
    rotated(&app, &next).await;

    // The event names both: root did it, to bob.
    let events = audit(&app);
    let issued = events
        .iter()
        .rfind(|e| e["event"] == "admin_tokens_issued")
        .unwrap_or_else(|| panic!("no admin_tokens_issued in {events:?}"));
    assert_eq!((&issued["actor_username"], &issued["username"]), (&json!("root"), &json!("bob")), "{issued}");
    assert_eq!((&issued["actor_id"], &issued["user_id"]), (&json!(root.id), &json!(bob)), "{issued}");
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains(&minted.field("refresh")) && !text.contains(&minted.field("access")), "a token audited");

    // Without the trailing slash too.
    let again = call(&app, "POST", &format!("/api/admin/users/{bob}/tokens"), Some(&admin), None).await;
    assert_eq!(again.status, 200, "{}", again.text);
}

async fn minted_tokens_stay_in_the_body_with_the_refresh_cookie(backend: Backend) {
    let settings = [("REFRESH_TOKEN_COOKIE", "true"), ("CORS_ALLOWED_ORIGINS", "http://localhost:5173")];
    let app = spawn_app_with(backend, &settings).await;
    // With the cookie on, a login's refresh token is in the cookie, not the body: made by hand.
    for args in [&["root", "--staff", "--superuser"][..], &["bob"]] {
        let out = app.cli_with_stdin(&[&["user", "create"][..], args, &["--password-stdin"]].concat(), PASSWORD);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let login = try_login(&app, "root", PASSWORD).await;
    assert!(login.header("set-cookie").is_some(), "the cookie is on: {login:?}");
    let admin = login.field("access");
    let bob = try_login(&app, "bob", PASSWORD).await.field("access");
    let bob = claims(&bob)["user_id"].as_str().unwrap().parse().unwrap();

    let minted = mint(&app, &admin, bob).await;
    assert_eq!(minted.status, 200, "{}", minted.text);
    assert_eq!(minted.header("set-cookie"), None, "a minted session is for bob, not for the admin's browser");
    assert_eq!(app.get_bearer("/api/me/", &minted.field("access")).await.json()["username"], "bob");
    assert!(!minted.field("refresh").is_empty());
}

async fn a_deleted_users_tokens_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = superuser(&app, "root").await.access;
    let Person { id: bob, access, refresh: refresh_token } = plain(&app, "bob").await;
    let sliding = sliding_login(&app, "bob").await;

    let deleted = delete(&app, &format!("/api/admin/users/{bob}/"), &admin).await;
    assert_eq!((deleted.status, deleted.text.as_str()), (204, ""), "{deleted:?}");
    assert_401(&refresh(&app, &refresh_token).await, GONE_ACCOUNT);
    assert_401(&app.get_bearer("/api/me/", &access).await, USER_NOT_FOUND);
    let slid = app.get_bearer("/api/me/", &sliding).await;
    assert_eq!(slid.status, 401, "a deleted user's sliding token authenticated: {}", slid.text);
    let slid = app.post_json("/api/token/sliding/refresh/", json!({"token": sliding})).await;
    assert_eq!(slid.status, 401, "a deleted user's sliding token refreshed: {}", slid.text);
    // The admin's own session is not the deleted user's.
    assert_eq!(app.get_bearer("/api/admin/users/", &admin).await.status, 200);
}
