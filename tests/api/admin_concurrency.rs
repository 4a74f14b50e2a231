//! The Admin API under concurrent admins, and its audit trail: simultaneous changes to one user
//! all land, a name taken twice at once is granted once, a change racing a deletion is never a
//! 500; and every change is an audit event naming both the admin and the user.

use serde_json::{Value, json};

use crate::{admin_helpers::*, db_test, helpers::*};

db_test!(
    admin_concurrent_patches_of_different_fields_all_land,
    admin_simultaneous_creations_of_one_name_grant_it_once,
    admin_patch_racing_delete_never_fails_and_leaves_the_user_gone,
    admin_changes_are_audited_with_actor_and_target,
    admin_audit_names_only_what_changed,
);

async fn admin_concurrent_patches_of_different_fields_all_land(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    create_group(&app, &root.access, "editors").await;
    create_group(&app, &root.access, "writers").await;
    let bob = plain(&app, "bob").await;
    let url = user_url(bob.id);
    let t = root.access.as_str();
    for round in 0..5 {
        let group = if round % 2 == 0 { "editors" } else { "writers" };
        let replies = tokio::join!(
            patch(&app, &url, t, json!({"first_name": format!("First{round}")})),
            patch(&app, &url, t, json!({"last_name": format!("Last{round}")})),
            patch(&app, &url, t, json!({"email": format!("bob{round}@example.com")})),
            patch(&app, &url, t, json!({"claims": {"round": round}})),
            patch(&app, &url, t, json!({"groups": [group]})),
        );
        for reply in [replies.0, replies.1, replies.2, replies.3, replies.4] {
            assert_eq!(reply.status, 200, "round {round}: {}", reply.text);
        }
        let user = get(&app, &url, t).await.json();
        assert_eq!(user["first_name"], format!("First{round}"), "{user}");
        assert_eq!(user["last_name"], format!("Last{round}"), "{user}");
        assert_eq!(user["email"], format!("bob{round}@example.com"), "{user}");
        assert_eq!(user["claims"], json!({"round": round}), "{user}");
        assert_eq!(user["groups"], json!([group]), "{user}");
    }
    app.login("bob", PASSWORD).await;
}

async fn admin_simultaneous_creations_of_one_name_grant_it_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    let t = root.access.as_str();
    for round in 0..5 {
        let name = format!("twin{round}");
        let (a, b) = tokio::join!(
            post(&app, USERS, t, json!({"username": name, "first_name": "A"})),
            post(&app, USERS, t, json!({"username": name, "first_name": "B"})),
        );
        let mut statuses = [a.status, b.status];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 400], "{a:?} {b:?}");
        let loser = if a.status == 400 { &a } else { &b };
        assert_json(loser, 400, json!({"username": ["A user with that username already exists."]}));
        let winner = if a.status == 201 { &a } else { &b };
        let found = get(&app, &format!("{USERS}?search={name}"), t).await.json();
        assert_eq!(found["count"], 1, "{found}");
        assert_eq!(found["results"][0]["first_name"], winner.json()["first_name"]);

        let group = format!("group{round}");
        let (a, b) =
            tokio::join!(post(&app, GROUPS, t, json!({"name": group})), post(&app, GROUPS, t, json!({"name": group})));
        let mut statuses = [a.status, b.status];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 400], "{a:?} {b:?}");
    }
    assert_eq!(get(&app, USERS, t).await.json()["count"], 6);
    assert_eq!(get(&app, GROUPS, t).await.json()["count"], 5);
}

async fn admin_patch_racing_delete_never_fails_and_leaves_the_user_gone(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    create_group(&app, &root.access, "editors").await;
    let t = root.access.as_str();
    for round in 0..5 {
        let user = create(&app, t, json!({"username": format!("doomed{round}")})).await;
        let url = user_url(user["id"].as_i64().unwrap());
        let change = json!({"first_name": "Late", "groups": ["editors"], "claims": {"a": 1}});
        let (patched, deleted) = tokio::join!(patch(&app, &url, t, change), delete(&app, &url, t));
        assert_reply(&deleted, 204, "");
        assert!(patched.status == 200 || patched.text == NOT_FOUND, "round {round}: {patched:?}");
        assert_reply(&get(&app, &url, t).await, 404, NOT_FOUND);
    }
    let list = get(&app, USERS, t).await.json();
    assert_eq!(list["count"], 1, "{list}");
    // No membership outlived its user.
    assert_eq!(get(&app, GROUPS, t).await.json()["results"][0]["members"], 0);
}

/// The events named `kind` about `username` (or about anyone), asserting there is at least one.
fn events_of<'a>(events: &'a [Value], kind: &str, username: Option<&str>) -> Vec<&'a Value> {
    let found: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == kind && (username.is_none() || e["username"] == json!(username)))
        .collect();
    assert!(!found.is_empty(), "no {kind} for {username:?}: {events:#?}");
    found
}

async fn admin_changes_are_audited_with_actor_and_target(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    let t = root.access.as_str();
    let group = create_group(&app, t, "editors").await;
    let bob = create(&app, t, json!({"username": "bob", "password": "builder of sheds 77"})).await;
    let bob_id = bob["id"].as_i64().unwrap();
    let url = user_url(bob_id);
    assert_eq!(patch(&app, &url, t, json!({"first_name": "Robert", "last_name": "B"})).await.status, 200);
    assert_eq!(patch(&app, &url, t, json!({"groups": ["editors"]})).await.status, 200);
    assert_eq!(patch(&app, &url, t, json!({"claims": {"tier": 1}})).await.status, 200);
    assert_eq!(patch(&app, &url, t, json!({"is_active": false})).await.status, 200);
    assert_eq!(patch(&app, &url, t, json!({"is_active": true})).await.status, 200);
    assert_eq!(
        post(&app, &format!("{url}set-password/"), t, json!({"password": "secret garden 9911"})).await.status,
        200
    );
    assert_eq!(call(&app, "POST", &format!("{url}tokens/"), Some(t), None).await.status, 200);
    assert_eq!(delete(&app, &format!("{url}sessions/"), t).await.status, 204);
    assert_eq!(delete(&app, &format!("{GROUPS}{group}/"), t).await.status, 204);
    assert_eq!(delete(&app, &url, t).await.status, 204);

    let events = audit(&app);
    let about_bob = [
        "user_created",
        "user_updated",
        "user_groups_changed",
        "user_claims_changed",
        "user_deactivated",
        "user_activated",
        "password_set",
        "admin_tokens_issued",
        "sessions_ended",
        "user_deleted",
    ];
    for kind in about_bob {
        for e in events_of(&events, kind, Some("bob")) {
            assert_eq!((e["actor_username"].clone(), e["actor_id"].clone()), (json!("root"), json!(root.id)), "{e}");
            assert_eq!(e["user_id"], json!(bob_id), "{e}");
            assert_ne!(e["client_addr"], "cli", "{e}");
        }
    }
    let updates = events_of(&events, "user_updated", Some("bob"));
    let names_fields =
        |e: &&Value| e["detail"].to_string().contains("first_name") && e["detail"].to_string().contains("last_name");
    assert!(updates.iter().any(names_fields), "the changed fields are named: {updates:#?}");
    for kind in ["group_created", "group_deleted"] {
        let e = events_of(&events, kind, None)[0];
        assert_eq!(e["actor_username"], "root", "{e}");
        assert!(e["detail"].to_string().contains("editors"), "{e}");
    }
    // The operator's own command is the CLI's, with no actor.
    let cli = events_of(&events, "user_created", Some("root"))[0];
    assert_eq!((cli["actor_username"].clone(), cli["client_addr"].clone()), (Value::Null, json!("cli")), "{cli}");
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains("secret garden") && !text.contains("builder of sheds"), "a password was audited");
}

// A PATCH sending a field's current value changes nothing and is not audited as a change, and
// `is_active: true` on an active user writes no "user_activated" event.
async fn admin_audit_names_only_what_changed(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    let bob = plain(&app, "bob").await;
    let url = user_url(bob.id);
    let same = json!({"username": "bob", "first_name": "", "is_active": true, "last_name": "Builder"});
    assert_eq!(patch(&app, &url, &root.access, same).await.status, 200);
    let events = audit(&app);
    assert!(events.iter().all(|e| e["event"] != "user_activated"), "bob was active all along: {events:#?}");
    let updates = events_of(&events, "user_updated", Some("bob"));
    let details: Vec<&Value> = updates.iter().map(|e| &e["detail"]).collect();
    assert_eq!(details, [&json!("changed: last_name")]);
}
