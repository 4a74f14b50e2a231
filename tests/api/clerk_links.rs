//! Moving users to Clerk: an existing local user (a Django user imported with its id, say) whose
//! Clerk user's `external_id` is that id, or whom the operator links by hand, signs in with Clerk
//! as themselves, keeping their password login and sessions; never by email, never someone
//! else's account, and a link never given to two.

use serde_json::{Value, json};

use crate::{
    clerk_roles::{app_with_roles, listed},
    clerk_webhooks::{deliver, secret},
    config::single_error_line,
    db_test,
    fake_clerk::{FakeClerk, clerk_user, clerk_user_with_external_id, spawn_with_clerk},
    helpers::{Backend, Reply, TestApp, claims, now, read, run_cli},
};

db_test!(
    the_first_exchange_lands_on_the_user_its_external_id_names,
    a_webhook_links_the_named_user_and_later_updates_keep_its_username,
    sync_users_links_the_users_external_ids_name,
    an_external_id_naming_a_user_linked_elsewhere_is_refused_everywhere,
    never_by_email_and_only_by_a_local_id,
    link_and_unlink_by_hand_and_their_errors,
    unlinking_takes_back_clerks_refusal_but_not_the_operators,
    an_exchange_and_a_webhook_racing_link_the_named_user_once,
    clerk_link_racing_exchanges_leaves_one_local_user_for_the_clerk_user,
);

async fn app_with_webhooks(backend: Backend, clerk: &FakeClerk) -> TestApp {
    spawn_with_clerk(backend, clerk, &[("CLERK_WEBHOOK_SIGNING_SECRET", &secret())]).await
}

fn id_of(app: &TestApp, username: &str) -> i64 {
    listed(app, username)["id"].as_i64().unwrap()
}

async fn exchange(app: &TestApp, clerk: &FakeClerk, sub: &str) -> Reply {
    read(app.client.post(app.url("/api/token/clerk/")).bearer_auth(clerk.session_token(sub)).send().await.unwrap())
        .await
}

/// The local user id the exchange of `sub`'s session token signs in.
async fn exchanged_id(app: &TestApp, clerk: &FakeClerk, sub: &str) -> i64 {
    let reply = exchange(app, clerk, sub).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    claims(&reply.field("access"))["user_id"].as_str().unwrap().parse().unwrap()
}

async fn refresh(app: &TestApp, refresh: &str) -> Reply {
    app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await
}

/// The audit events named `kind`, oldest first.
fn audited(app: &TestApp, kind: &str) -> Vec<Value> {
    let out = app.cli(&["audit", "tail", "-n", "500", "--json"]);
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).filter(|e| e["event"] == kind).collect()
}

fn stdout(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn user_created(user: Value) -> Value {
    json!({"type": "user.created", "object": "event", "data": user})
}

async fn the_first_exchange_lands_on_the_user_its_external_id_names(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = spawn_with_clerk(backend, &clerk, &[]).await;
    app.create_user("zed", "zed's password 1");
    app.create_user("alice", "correct horse");
    let (_, alice_refresh) = app.login("alice", "correct horse").await;
    let alice = id_of(&app, "alice");
    let t = now() * 1000;
    clerk.add_users([clerk_user_with_external_id("user_alice", "alice_in_clerk", &alice.to_string(), t)]);

    let reply = exchange(&app, &clerk, "user_alice").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let access = reply.field("access");
    assert_eq!(claims(&access)["user_id"], alice.to_string());
    let me = app.get_bearer("/api/me/", &access).await.json();
    assert_eq!((&me["id"], &me["username"], &me["email"]), (&json!(alice), &json!("alice"), &json!("u@example.com")));
    assert_eq!(app.users().len(), 2, "nobody new");
    // The password login and the session it started are untouched.
    app.login("alice", "correct horse").await;
    assert_eq!(refresh(&app, &alice_refresh).await.status, 200, "linking ended a session");
    assert_eq!(exchanged_id(&app, &clerk, "user_alice").await, alice, "the next exchange too");

    let linked = audited(&app, "identity_linked");
    assert_eq!(linked.len(), 1, "{linked:?}");
    assert_eq!((&linked[0]["username"], &linked[0]["client_addr"]), (&json!("alice"), &json!("127.0.0.1")));
    assert_eq!(linked[0]["detail"], "clerk user_alice, by its external_id");
}

/// The operator imports the user into Clerk with its id as external_id: Clerk's `user.created`
/// links it before its first sign-in. Clerk's later updates never rename it (its password login
/// goes by its username) nor rewrite its email or names; its roles and bans apply as to any
/// Clerk user, Clerk's lockouts after failed sign-ins not.
async fn a_webhook_links_the_named_user_and_later_updates_keep_its_username(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = app_with_roles(backend, &clerk).await;
    app.create_user("bob", "bob's password 1");
    let (_, bob_refresh) = app.login("bob", "bob's password 1").await;
    let bob = id_of(&app, "bob");
    let t = now() * 1000;
    let imported = clerk_user_with_external_id("user_bob", "robert", &bob.to_string(), t);
    let created = deliver(&app, "msg_created", user_created(imported)).await;
    assert_eq!((created.status, created.text.as_str()), (200, "{}"));
    assert_eq!(app.users().len(), 1, "nobody new");
    assert_eq!(exchanged_id(&app, &clerk, "user_bob").await, bob);

    let mut renamed = clerk_user_with_external_id("user_bob", "bobby", &bob.to_string(), t + 1000);
    renamed["first_name"] = json!("Robert");
    renamed["public_metadata"] = json!({"role": "admin"});
    let updated = deliver(&app, "msg_updated", json!({"type": "user.updated", "data": renamed})).await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    let after = listed(&app, "bob");
    assert_eq!(
        (&after["id"], &after["email"], &after["first_name"], &after["is_staff"]),
        (&json!(bob), &json!("u@example.com"), &json!(""), &json!(true)),
        "username, email and names stay; the role applies"
    );
    app.login("bob", "bob's password 1").await;
    assert_eq!(refresh(&app, &bob_refresh).await.status, 200);

    // Clerk's lockout after failed sign-ins (anyone who knows bob's identifier can cause it) is
    // not a ban: his password login and his sessions stay.
    let (_, live_refresh) = app.login("bob", "bob's password 1").await;
    let mut locked = clerk_user_with_external_id("user_bob", "bobby", &bob.to_string(), t + 1500);
    locked["locked"] = json!(true);
    assert_eq!(deliver(&app, "msg_locked", json!({"type": "user.updated", "data": locked})).await.status, 200);
    assert_eq!(listed(&app, "bob")["is_active"], json!(true), "a lockout leaves the local account active");
    assert_eq!(refresh(&app, &live_refresh).await.status, 200, "and its sessions live");
    app.login("bob", "bob's password 1").await;

    let mut banned = clerk_user_with_external_id("user_bob", "bobby", &bob.to_string(), t + 2000);
    banned["banned"] = json!(true);
    assert_eq!(deliver(&app, "msg_banned", json!({"type": "user.updated", "data": banned})).await.status, 200);
    let login = app.post_json("/api/token/", json!({"username": "bob", "password": "bob's password 1"})).await;
    assert_eq!(login.status, 401, "banned in Clerk, as any Clerk user: {}", login.text);
}

async fn sync_users_links_the_users_external_ids_name(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = spawn_with_clerk(backend, &clerk, &[]).await;
    app.create_user("carol", "carol's password 1");
    let carol = id_of(&app, "carol");
    let t = now() * 1000;
    clerk.add_users([
        clerk_user_with_external_id("user_carol", "carol_c", &carol.to_string(), t),
        clerk_user("user_new", Some("newbie"), "newbie@example.com", true, t),
        clerk_user_with_external_id("user_crm", "crm", "crm-7781", t),
    ]);
    let out = app.cli(&["clerk", "sync-users"]);
    assert_eq!(
        stdout(&out),
        "synced 3 Clerk users: 2 created, 1 linked, 0 updated, 0 deactivated, 0 unchanged, 0 skipped"
    );
    assert_eq!(exchanged_id(&app, &clerk, "user_carol").await, carol);
    assert_eq!(listed(&app, "carol")["email"], "u@example.com");
    assert_eq!(audited(&app, "identity_linked")[0]["client_addr"], "cli");
    let again = app.cli(&["clerk", "sync-users"]);
    assert_eq!(
        stdout(&again),
        "synced 3 Clerk users: 0 created, 0 linked, 3 updated, 0 deactivated, 0 unchanged, 0 skipped"
    );
}

async fn an_external_id_naming_a_user_linked_elsewhere_is_refused_everywhere(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = app_with_webhooks(backend, &clerk).await;
    app.create_user("dave", "dave's password 1");
    let dave = id_of(&app, "dave");
    stdout(&app.cli(&["clerk", "link", "dave", "user_first"]));
    let t = now() * 1000;
    let second = clerk_user_with_external_id("user_second", "second", &dave.to_string(), t);
    clerk.add_users([second.clone()]);

    let reply = exchange(&app, &clerk, "user_second").await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(
        reply.json(),
        json!({"detail": "The local account this user is assigned to is linked to another user of the identity provider.", "code": "external_account_conflict"})
    );
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
        ("subject_token", &clerk.session_token("user_second")),
        ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
    ];
    let oauth = app.post_form("/api/token/exchange/", &form).await;
    assert_eq!((oauth.status, &oauth.json()["error"]), (400, &json!("invalid_request")), "{}", oauth.text);
    let webhook = deliver(&app, "msg_second", user_created(second)).await;
    assert_eq!(webhook.status, 200, "acknowledged: a retry would change nothing");
    let sync = app.cli(&["clerk", "sync-users"]);
    assert_eq!(
        stdout(&sync),
        "synced 1 Clerk users: 0 created, 0 linked, 0 updated, 0 deactivated, 0 unchanged, 1 skipped"
    );

    assert_eq!(app.users().len(), 1, "no new user was made for the refused Clerk user");
    assert!(app.store.user_by_identity("clerk", "user_second").await.unwrap().is_none());
    assert_eq!(exchanged_id(&app, &clerk, "user_first").await, dave, "the link stands");
    let refused = audited(&app, "identity_link_refused");
    assert_eq!(refused.len(), 4, "two exchanges, the webhook, the sync: {refused:?}");
    assert!(refused.iter().all(|e| e["username"] == "dave"), "{refused:?}");
    assert_eq!(refused[3]["client_addr"], "cli");
    assert_eq!(audited(&app, "clerk_exchange_failed").len(), 2);
}

/// Nothing but an `external_id` that is an existing user's id, in its canonical decimal form,
/// links an existing user: not a matching email, not a padded, signed or unknown id.
async fn never_by_email_and_only_by_a_local_id(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = spawn_with_clerk(backend, &clerk, &[]).await;
    app.create_user("erin", "erin's password 1");
    let erin = id_of(&app, "erin");
    let t = now() * 1000;
    clerk.add_users([
        clerk_user("user_same_email", Some("erin"), "u@example.com", true, t),
        clerk_user_with_external_id("user_padded", "padded", &format!("0{erin}"), t),
        clerk_user_with_external_id("user_signed", "signed", &format!("+{erin}"), t),
        clerk_user_with_external_id("user_ghost", "ghost", "999999", t),
        clerk_user_with_external_id("user_word", "word", "erin", t),
    ]);
    for sub in ["user_same_email", "user_padded", "user_signed", "user_ghost", "user_word"] {
        assert_ne!(exchanged_id(&app, &clerk, sub).await, erin, "{sub} landed on erin");
    }
    assert_eq!(app.users().len(), 6, "five new users");
    assert!(audited(&app, "identity_linked").is_empty());
    app.login("erin", "erin's password 1").await;
}

async fn link_and_unlink_by_hand_and_their_errors(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = spawn_with_clerk(backend, &clerk, &[]).await;
    app.create_user("frank", "frank's password 1");
    app.create_user("gina", "gina's password 1");
    let frank = id_of(&app, "frank");
    let (_, password_refresh) = app.login("frank", "frank's password 1").await;

    let out = app.cli(&["clerk", "link", "frank", "user_frank"]);
    assert_eq!(stdout(&out), format!("linked frank (id {frank}) to Clerk user user_frank"));
    let clerk_refresh = exchange(&app, &clerk, "user_frank").await.field("refresh");
    assert_eq!(claims(&clerk_refresh)["user_id"], frank.to_string());
    let password_refresh = refresh(&app, &password_refresh).await;
    assert_eq!(password_refresh.status, 200, "linking ended a session: {}", password_refresh.text);
    app.login("frank", "frank's password 1").await;
    let again = app.cli(&["clerk", "link", "frank", "user_frank"]);
    assert_eq!(stdout(&again), "frank is already linked to Clerk user user_frank");

    let refused = |args: &[&str], expected: &str| {
        let line = single_error_line(&app.cli(args));
        assert_eq!(line, format!("error: {expected}"), "{args:?}");
    };
    refused(&["clerk", "link", "nobody", "user_x"], r#"USERNAME: no user named "nobody""#);
    let shape = "CLERK_USER_ID: not a Clerk user id (user_ followed by 1 to 64 letters and digits)";
    let too_long = format!("user_{}", "a".repeat(65));
    for bad in ["frank", "user_", "user_abc-def", "sess_abc", " user_abc", too_long.as_str()] {
        refused(&["clerk", "link", "frank", bad], shape);
    }
    refused(
        &["clerk", "link", "gina", "user_frank"],
        r#"CLERK_USER_ID: Clerk user user_frank is already linked to user "frank"; unlink that user first"#,
    );
    refused(
        &["clerk", "link", "frank", "user_other"],
        r#"USERNAME: "frank" is already linked to Clerk user user_frank; unlink it first"#,
    );
    refused(&["clerk", "unlink", "gina"], r#"USERNAME: "gina" is not linked to a Clerk user"#);
    refused(&["clerk", "unlink", "nobody"], r#"USERNAME: no user named "nobody""#);

    // Unlinked: the session exchanged from Clerk ends (Clerk could no longer end it), the
    // password session goes on, and the Clerk user is a stranger again.
    let out = app.cli(&["clerk", "unlink", "frank"]);
    assert_eq!(stdout(&out), "unlinked frank from Clerk user user_frank; 1 sessions exchanged from Clerk ended");
    assert_eq!(refresh(&app, &clerk_refresh).await.status, 401);
    assert_eq!(refresh(&app, &password_refresh.field("refresh")).await.status, 200);
    assert_ne!(exchanged_id(&app, &clerk, "user_frank").await, frank);
    stdout(&app.cli(&["clerk", "link", "gina", "user_gina"]));

    let linked = audited(&app, "identity_linked");
    let details: Vec<(&Value, &Value, &Value)> =
        linked.iter().map(|e| (&e["username"], &e["client_addr"], &e["detail"])).collect();
    assert_eq!(
        details,
        [
            (&json!("frank"), &json!("cli"), &json!("clerk user_frank")),
            (&json!("gina"), &json!("cli"), &json!("clerk user_gina"))
        ]
    );
    let unlinked = audited(&app, "identity_unlinked");
    assert_eq!(unlinked.len(), 1);
    assert_eq!(unlinked[0]["detail"], "clerk user_frank; 1 exchanged sessions ended");
}

/// Clerk deleting a linked user deactivates it, password login included (the person was
/// offboarded); unlinking gives Clerk no further say, so the refusal goes with the link. An
/// operator's own deactivation stays.
async fn unlinking_takes_back_clerks_refusal_but_not_the_operators(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = app_with_webhooks(backend, &clerk).await;
    for name in ["hana", "ivan"] {
        app.create_user(name, &format!("{name}'s password 1"));
        stdout(&app.cli(&["clerk", "link", name, &format!("user_{name}")]));
        let deleted = json!({"type": "user.deleted", "data": {"id": format!("user_{name}"), "deleted": true}});
        assert_eq!(deliver(&app, &format!("msg_{name}"), deleted).await.status, 200);
        let login = app.post_json("/api/token/", json!({"username": name, "password": format!("{name}'s password 1")}));
        assert_eq!(login.await.status, 401, "{name} deleted in Clerk can still log in");
    }
    stdout(&app.cli(&["user", "deactivate", "ivan"]));

    assert_eq!(
        stdout(&app.cli(&["clerk", "unlink", "hana"])),
        "unlinked hana from Clerk user user_hana; 0 sessions exchanged from Clerk ended; active again"
    );
    app.login("hana", "hana's password 1").await;
    assert_eq!(
        stdout(&app.cli(&["clerk", "unlink", "ivan"])),
        "unlinked ivan from Clerk user user_ivan; 0 sessions exchanged from Clerk ended"
    );
    let login = app.post_json("/api/token/", json!({"username": "ivan", "password": "ivan's password 1"})).await;
    assert_eq!(login.status, 401, "the operator's deactivation went with Clerk's link");
}

async fn an_exchange_and_a_webhook_racing_link_the_named_user_once(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = app_with_webhooks(backend, &clerk).await;
    app.create_user("jo", "jo's password 1");
    let jo = id_of(&app, "jo");
    let imported = clerk_user_with_external_id("user_jo", "jo_clerk", &jo.to_string(), now() * 1000);
    clerk.add_users([imported.clone()]);

    let exchanges = futures::future::join_all((0..4).map(|_| exchanged_id(&app, &clerk, "user_jo")));
    let (webhook, ids) = tokio::join!(deliver(&app, "msg_race", user_created(imported)), exchanges);
    assert_eq!(webhook.status, 200, "{}", webhook.text);
    assert_eq!(ids, [jo; 4], "every exchange landed on jo");
    assert_eq!(app.users().len(), 1, "nobody new");
    assert_eq!(app.store.user_by_identity("clerk", "user_jo").await.unwrap().unwrap().id, jo);
    assert_eq!(audited(&app, "identity_linked").len(), 1, "linked once");
}

/// The operator links a Clerk user by hand while it signs in for the first time: whichever
/// wins, the Clerk user has one local user, and every exchange signs that one in.
async fn clerk_link_racing_exchanges_leaves_one_local_user_for_the_clerk_user(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = spawn_with_clerk(backend, &clerk, &[]).await;
    app.create_user("kim", "kim's password 1");
    let (env, dir) = (app.env.clone(), app.db.dir().to_path_buf());
    let link = tokio::task::spawn_blocking(move || run_cli(&env, &dir, &["clerk", "link", "kim", "user_kim"], None));
    let mut ids = Vec::new();
    while !link.is_finished() {
        let round = futures::future::join_all((0..2).map(|_| exchanged_id(&app, &clerk, "user_kim"))).await;
        ids.extend(round);
    }
    let out = link.await.unwrap();
    ids.push(exchanged_id(&app, &clerk, "user_kim").await);

    let linked = app.store.user_by_identity("clerk", "user_kim").await.unwrap().expect("linked");
    assert!(ids.iter().all(|id| *id == linked.id), "{ids:?} for {}", linked.id);
    if out.status.success() {
        assert_eq!((linked.username.as_str(), app.users().len()), ("kim", 1));
    } else {
        let line = single_error_line(&out);
        assert!(line.contains("user_kim is already linked to user"), "{line}");
        assert_eq!(app.users().len(), 2, "kim, and the user the first exchange made");
    }
}
