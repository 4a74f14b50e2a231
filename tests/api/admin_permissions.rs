//! Who may use the Admin API: nobody without a token, no ordinary user (not even to learn
//! whether an id exists), staff for everyday work, superusers alone for flags, tokens and other
//! superusers; and nobody may lock themselves out.

use serde_json::{Value, json};

use crate::{admin_helpers::*, db_test, helpers::*};

db_test!(
    admin_endpoints_refuse_requests_without_a_token,
    admin_endpoints_refuse_ordinary_users_before_looking_anything_up,
    staff_may_do_everyday_work_on_every_endpoint,
    a_staff_user_who_loses_is_staff_is_refused_with_a_still_valid_token,
    superuser_only_actions_are_refused_to_staff,
    nobody_may_delete_deactivate_or_demote_themselves,
    superusers_mint_tokens_for_active_users_only,
);

/// Every admin request (method, path, body) about user `id`, group `group` and session `session`.
fn every_endpoint(id: i64, group: i64, session: &str) -> Vec<(&'static str, String, Option<Value>)> {
    let user = user_url(id);
    vec![
        ("GET", USERS.to_owned(), None),
        ("POST", USERS.to_owned(), Some(json!({"username": "newcomer"}))),
        ("GET", user.clone(), None),
        ("PATCH", user.clone(), Some(json!({"first_name": "Changed"}))),
        ("POST", format!("{user}set-password/"), Some(json!({"password": "another fine phrase 62"}))),
        ("GET", format!("{user}sessions/"), None),
        ("DELETE", format!("{user}sessions/{session}/"), None),
        ("DELETE", format!("{user}sessions/"), None),
        ("POST", format!("{user}tokens/"), None),
        ("DELETE", user, None),
        ("GET", GROUPS.to_owned(), None),
        ("POST", GROUPS.to_owned(), Some(json!({"name": "newgroup"}))),
        ("DELETE", format!("{GROUPS}{group}/"), None),
    ]
}

async fn admin_endpoints_refuse_requests_without_a_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    let bob = plain(&app, "bob").await;
    let group = create_group(&app, &root.access, "editors").await;
    for (method, path, body) in every_endpoint(bob.id, group, &"0".repeat(32)) {
        let reply = call(&app, method, &path, None, body.clone()).await;
        assert_401(&reply, NOT_PROVIDED);
        // Without the trailing slash the answer is the same, not a 404.
        let reply = call(&app, method, path.trim_end_matches('/'), None, body).await;
        assert_401(&reply, NOT_PROVIDED);
    }
    // A bad token is judged as /api/me/ judges it.
    let me = app.get_bearer("/api/me/", "not-a-token").await;
    assert_eq!(me.status, 401, "{}", me.text);
    assert_401(&get(&app, USERS, "not-a-token").await, &me.text);
    // Nothing was touched.
    assert_eq!(get(&app, &user_url(bob.id), &root.access).await.json()["first_name"], "");
    assert_eq!(app.users().len(), 2);
}

async fn admin_endpoints_refuse_ordinary_users_before_looking_anything_up(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    let bob = plain(&app, "bob").await;
    let carol = plain(&app, "carol").await;
    let group = create_group(&app, &root.access, "editors").await;
    let missing = carol.id + 1000;
    for (id, group) in [(carol.id, group), (missing, group + 1000)] {
        for (method, path, body) in every_endpoint(id, group, &"0".repeat(32)) {
            let reply = call(&app, method, &path, Some(&bob.access), body.clone()).await;
            assert_reply(&reply, 403, FORBIDDEN);
            let reply = call(&app, method, path.trim_end_matches('/'), Some(&bob.access), body).await;
            assert_reply(&reply, 403, FORBIDDEN);
        }
    }
    // Not even about themselves.
    assert_reply(&get(&app, &user_url(bob.id), &bob.access).await, 403, FORBIDDEN);
    assert_reply(&get(&app, "/api/admin/users/abc/", &bob.access).await, 403, FORBIDDEN);
    // Carol's account is as it was: her session lives, her name and password are unchanged.
    assert_eq!(refresh(&app, &carol.refresh).await.status, 200);
    assert_eq!(get(&app, &user_url(carol.id), &root.access).await.json()["first_name"], "");
    app.login("carol", PASSWORD).await;
    assert_eq!(app.users().len(), 3, "no user was created");
}

async fn staff_may_do_everyday_work_on_every_endpoint(backend: Backend) {
    let app = spawn_app(backend).await;
    let _root = superuser(&app, "root").await;
    let sam = staff(&app, "sam").await;
    let bob = plain(&app, "bob").await;
    let t = sam.access.as_str();
    assert_eq!(get(&app, USERS, t).await.json()["count"], 3);
    assert_eq!(get(&app, USERS.trim_end_matches('/'), t).await.json()["count"], 3);
    assert_eq!(post(&app, USERS, t, json!({"username": "newcomer"})).await.status, 201);
    assert_eq!(get(&app, &user_url(bob.id), t).await.json()["username"], "bob");
    let patched = patch(&app, &user_url(bob.id), t, json!({"first_name": "Robert"})).await;
    assert_eq!(patched.json()["first_name"], "Robert", "{}", patched.text);
    let sessions = get(&app, &format!("{}sessions/", user_url(bob.id)), t).await;
    assert_eq!(sessions.json()["count"], 1, "{}", sessions.text);
    let session = sessions.json()["results"][0]["id"].as_str().expect("a session id").to_owned();
    let one = delete(&app, &format!("{}sessions/{session}/", user_url(bob.id)), t).await;
    assert_reply(&one, 204, "");
    assert_eq!(refresh(&app, &bob.refresh).await.text, TOKEN_BLACKLISTED);
    let bob_again = app.login("bob", PASSWORD).await;
    assert_reply(&delete(&app, &format!("{}sessions/", user_url(bob.id)), t).await, 204, "");
    assert_eq!(refresh(&app, &bob_again.1).await.status, 401);
    let set =
        post(&app, &format!("{}set-password/", user_url(bob.id)), t, json!({"password": "a new phrase 3321"})).await;
    assert_reply(&set, 200, "{}");
    app.login("bob", "a new phrase 3321").await;
    assert_eq!(get(&app, GROUPS, t).await.status, 200);
    let group = create_group(&app, t, "editors").await;
    assert_reply(&delete(&app, &format!("{GROUPS}{group}/"), t).await, 204, "");
    assert_reply(&delete(&app, &user_url(bob.id), t).await, 204, "");
    assert_eq!(get(&app, USERS, t).await.json()["count"], 3);
}

async fn a_staff_user_who_loses_is_staff_is_refused_with_a_still_valid_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    let sam = staff(&app, "sam").await;
    assert_eq!(get(&app, USERS, &sam.access).await.status, 200);
    let demoted = patch(&app, &user_url(sam.id), &root.access, json!({"is_staff": false})).await;
    assert_eq!(demoted.json()["is_staff"], false, "{}", demoted.text);
    // The access token is still valid for the rest of the API, but no longer opens the admin one.
    assert_eq!(app.get_bearer("/api/me/", &sam.access).await.status, 200);
    assert_reply(&get(&app, USERS, &sam.access).await, 403, FORBIDDEN);
    assert_reply(&get(&app, &user_url(root.id), &sam.access).await, 403, FORBIDDEN);
    // Deactivated staff are refused as /api/me/ refuses them.
    let other = staff(&app, "tess").await;
    assert_eq!(patch(&app, &user_url(other.id), &root.access, json!({"is_active": false})).await.status, 200);
    assert_401(&get(&app, USERS, &other.access).await, USER_INACTIVE);
}

async fn superuser_only_actions_are_refused_to_staff(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    let sam = staff(&app, "sam").await;
    let tess = staff(&app, "tess").await;
    let bob = plain(&app, "bob").await;
    let t = sam.access.as_str();
    for flag in ["is_staff", "is_superuser"] {
        assert_reply(&post(&app, USERS, t, json!({"username": "flagged", flag: true})).await, 403, FORBIDDEN);
        assert_reply(&patch(&app, &user_url(bob.id), t, json!({flag: true})).await, 403, FORBIDDEN);
    }
    assert_reply(&patch(&app, &user_url(tess.id), t, json!({"is_staff": false})).await, 403, FORBIDDEN);
    // Sending a flag's current value is no change, and is allowed.
    assert_eq!(post(&app, USERS, t, json!({"username": "y", "is_staff": false})).await.status, 201);
    assert_eq!(patch(&app, &user_url(bob.id), t, json!({"is_staff": false, "last_name": "B"})).await.status, 200);
    // Nothing about a superuser may be changed by staff.
    let root_url = user_url(root.id);
    assert_reply(&patch(&app, &root_url, t, json!({"first_name": "Mallory"})).await, 403, FORBIDDEN);
    let set = post(&app, &format!("{root_url}set-password/"), t, json!({"password": "taken over 7781"})).await;
    assert_reply(&set, 403, FORBIDDEN);
    assert_reply(&delete(&app, &format!("{root_url}sessions/"), t).await, 403, FORBIDDEN);
    assert_reply(&delete(&app, &root_url, t).await, 403, FORBIDDEN);
    assert_reply(&call(&app, "POST", &format!("{}tokens/", user_url(bob.id)), Some(t), None).await, 403, FORBIDDEN);
    // The superuser is untouched: same name, same password, session alive; no user "flagged".
    assert_eq!(get(&app, &root_url, t).await.json()["first_name"], "");
    assert_eq!(refresh(&app, &root.refresh).await.status, 200);
    app.login("root", PASSWORD).await;
    let bob_now = get(&app, &user_url(bob.id), t).await.json();
    assert_eq!((bob_now["is_staff"].clone(), bob_now["is_superuser"].clone()), (json!(false), json!(false)));
    assert_eq!(get(&app, &format!("{USERS}?search=flagged"), t).await.json()["count"], 0);
    // The superuser may do all of it.
    assert_eq!(patch(&app, &user_url(bob.id), &root.access, json!({"is_staff": true})).await.json()["is_staff"], true);
}

async fn nobody_may_delete_deactivate_or_demote_themselves(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    let sam = staff(&app, "sam").await;
    let me = user_url(root.id);
    for change in [json!({"is_active": false}), json!({"is_staff": false}), json!({"is_superuser": false})] {
        assert_reply(&patch(&app, &me, &root.access, change).await, 403, SELF_REFUSED);
    }
    assert_reply(&delete(&app, &me, &root.access).await, 403, SELF_REFUSED);
    assert_reply(&patch(&app, &user_url(sam.id), &sam.access, json!({"is_active": false})).await, 403, SELF_REFUSED);
    assert_reply(&delete(&app, &user_url(sam.id), &sam.access).await, 403, SELF_REFUSED);
    let root_now = get(&app, &me, &root.access).await.json();
    assert_eq!(root_now["is_active"], true);
    assert_eq!((root_now["is_staff"].clone(), root_now["is_superuser"].clone()), (json!(true), json!(true)));
    assert_eq!(get(&app, &user_url(sam.id), &sam.access).await.json()["is_active"], true);
    // Other changes to oneself are fine.
    assert_eq!(patch(&app, &me, &root.access, json!({"first_name": "Ruth"})).await.json()["first_name"], "Ruth");
}

async fn superusers_mint_tokens_for_active_users_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    let bob = plain(&app, "bob").await;
    let tokens = format!("{}tokens/", user_url(bob.id));
    let reply = call(&app, "POST", &tokens, Some(&root.access), None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.header("set-cookie").is_none(), "tokens travel in the body only");
    let access = reply.field("access");
    assert_eq!(claims(&access)["user_id"], bob.id.to_string());
    assert_eq!(app.get_bearer("/api/me/", &access).await.json()["username"], "bob");
    assert_eq!(refresh(&app, &reply.field("refresh")).await.status, 200);
    let sessions = get(&app, &format!("{}sessions/", user_url(bob.id)), &root.access).await.json();
    let mut providers: Vec<&str> =
        sessions["results"].as_array().expect("results").iter().map(|s| s["provider"].as_str().unwrap()).collect();
    providers.sort_unstable();
    assert_eq!(providers, ["admin", "password"], "a new session beside bob's own: {sessions}");
    assert_eq!(patch(&app, &user_url(bob.id), &root.access, json!({"is_active": false})).await.status, 200);
    let refused = call(&app, "POST", &tokens, Some(&root.access), None).await;
    assert_json(&refused, 400, json!({"non_field_errors": ["User is inactive."]}));
    let missing = call(&app, "POST", &format!("{}tokens/", user_url(bob.id + 100)), Some(&root.access), None).await;
    assert_reply(&missing, 404, NOT_FOUND);
}
