//! `POST /webhooks/clerk/`: Svix-signed Clerk events, signed here by hand as Svix signs them.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::{
    db_test,
    fake_clerk::{FakeClerk, clerk_user, spawn_with_clerk},
    helpers::{Backend, Http, Reply, TestApp, TestDb, now, read},
    process::Replica,
};

db_test!(
    user_events_upsert_the_linked_user,
    updates_arriving_out_of_order_keep_the_newest,
    a_redelivery_is_a_no_op,
    delivery_records_expire_with_flush_expired,
    bad_signatures_apply_nothing,
    deleted_banned_and_ended_sessions_end_local_sessions,
    a_failure_to_apply_is_a_5xx_and_the_retry_applies,
    nul_in_a_clerk_user_is_stripped_not_a_5xx,
    a_provider_never_undoes_the_operators_deactivation,
    webhook_usernames_follow_the_username_rule,
    membership_changes_end_the_sessions_in_that_organization,
    clerk_session_ended_spares_another_providers_session_with_the_same_id,
);

const SECRET_KEY_BYTES: &[u8] = b"a webhook secret of thirty-two b";

pub(crate) fn secret() -> String {
    format!("whsec_{}", STANDARD.encode(SECRET_KEY_BYTES))
}

/// What Svix sends: the three headers over exactly these bytes.
fn svix_headers(id: &str, timestamp: i64, body: &str, key: &[u8]) -> [(String, String); 3] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    [
        ("svix-id".into(), id.into()),
        ("svix-timestamp".into(), timestamp.to_string()),
        ("svix-signature".into(), format!("v1,{signature}")),
    ]
}

async fn post_webhook(app: &Http, headers: &[(String, String)], body: &str) -> Reply {
    let mut request =
        app.client.post(app.url("/webhooks/clerk/")).header("content-type", "application/json").body(body.to_owned());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    read(request.send().await.unwrap()).await
}

pub(crate) async fn deliver(app: &TestApp, id: &str, event: Value) -> Reply {
    let body = event.to_string();
    post_webhook(app, &svix_headers(id, now(), &body, SECRET_KEY_BYTES), &body).await
}

async fn app_with_webhooks(backend: Backend, clerk: &FakeClerk) -> TestApp {
    spawn_with_clerk(backend, clerk, &[("CLERK_WEBHOOK_SIGNING_SECRET", &secret())]).await
}

fn user_named<'a>(users: &'a [Value], username: &str) -> Option<&'a Value> {
    users.iter().find(|u| u["username"] == username)
}

async fn exchange(app: &TestApp, clerk: &FakeClerk, sub: &str) -> Reply {
    read(app.client.post(app.url("/api/token/clerk/")).bearer_auth(clerk.session_token(sub)).send().await.unwrap())
        .await
}

async fn user_events_upsert_the_linked_user(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = app_with_webhooks(backend, &clerk).await;
    let t = now() * 1000;
    let created = deliver(&app, "msg_1", json!({"type": "user.created", "object": "event", "data": clerk_user("user_ada", Some("ada"), "ada@example.com", true, t)})).await;
    assert_eq!((created.status, created.text.as_str()), (200, "{}"));
    let all = app.users();
    let ada = user_named(&all, "ada").expect("the webhook created the user");
    assert_eq!(
        (&ada["email"], &ada["first_name"], &ada["last_name"]),
        (&json!("ada@example.com"), &json!("Ada"), &json!("Lovelace"))
    );

    // The first exchange of that Clerk user lands on the same local user.
    let reply = exchange(&app, &clerk, "user_ada").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let me = app.get_bearer("/api/me/", &reply.field("access")).await.json();
    assert_eq!((&me["id"], &me["username"]), (&ada["id"], &json!("ada")));

    // An update with an unverified primary address clears the email: only verified ones count.
    let updated = deliver(
        &app,
        "msg_2",
        json!({"type": "user.updated", "data": clerk_user("user_ada", Some("ada_l"), "new@example.com", false, t + 1)}),
    )
    .await;
    assert_eq!(updated.status, 200);
    let all = app.users();
    let ada = user_named(&all, "ada_l").expect("renamed");
    assert_eq!(ada["email"], "");
    // Events tokensmith does not act on are acknowledged.
    let other = deliver(&app, "msg_3", json!({"type": "organization.created", "data": {"id": "org_1"}})).await;
    assert_eq!(other.status, 200);
    // A signed delivery that is not a Clerk event is a 400 (and Svix shows it to the operator).
    let junk = deliver(&app, "msg_4", json!({"hello": "world"})).await;
    assert_eq!(junk.status, 400, "{}", junk.text);
}

async fn updates_arriving_out_of_order_keep_the_newest(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = app_with_webhooks(backend, &clerk).await;
    let t = now() * 1000;
    let newer = clerk_user("user_bo", Some("bo_new"), "bo@example.com", true, t + 5000);
    let older = clerk_user("user_bo", Some("bo_old"), "old@example.com", true, t);
    assert_eq!(deliver(&app, "msg_new", json!({"type": "user.updated", "data": newer})).await.status, 200);
    assert_eq!(deliver(&app, "msg_old", json!({"type": "user.created", "data": older})).await.status, 200);
    let all = app.users();
    assert!(user_named(&all, "bo_new").is_some(), "{all:?}");
    assert!(user_named(&all, "bo_old").is_none(), "the older event overwrote the newer: {all:?}");
}

async fn a_redelivery_is_a_no_op(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = app_with_webhooks(backend, &clerk).await;
    let event = json!({"type": "user.created", "data": clerk_user("user_cy", Some("cy"), "cy@example.com", true, now() * 1000)});
    let body = event.to_string();
    let headers = svix_headers("msg_once", now(), &body, SECRET_KEY_BYTES);
    assert_eq!(post_webhook(&app, &headers, &body).await.status, 200);
    // The operator deactivates the user; Svix then delivers the same message again (at least once).
    assert!(app.cli(&["user", "deactivate", "cy"]).status.success());
    let again = post_webhook(&app, &headers, &body).await;
    assert_eq!((again.status, again.text.as_str()), (200, "{}"));
    let all = app.users();
    assert_eq!(user_named(&all, "cy").unwrap()["is_active"], false, "the redelivery was applied again");
}

async fn delivery_records_expire_with_flush_expired(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = app_with_webhooks(backend, &clerk).await;
    let body = json!({"type": "user.created", "data": clerk_user("user_ivy", Some("ivy"), "ivy@example.com", true, now() * 1000)}).to_string();
    let headers = svix_headers("msg_ivy", now(), &body, SECRET_KEY_BYTES);
    assert_eq!(post_webhook(&app, &headers, &body).await.status, 200);
    // Something the delivery sets changes locally: applying the delivery again would undo it.
    app.db.execute("UPDATE users SET email = 'changed@example.com' WHERE username = 'ivy'").await;
    assert_eq!(post_webhook(&app, &headers, &body).await.status, 200);
    assert_eq!(user_named(&app.users(), "ivy").unwrap()["email"], "changed@example.com", "a redelivery applied");
    // Eight days later the record is housekeeping's to delete (Svix stopped retrying long before).
    app.db.execute(&format!("UPDATE webhook_deliveries SET received_at = {}", now() - 8 * 24 * 3600)).await;
    assert!(app.cli(&["tokens", "flush-expired"]).status.success());
    assert_eq!(post_webhook(&app, &headers, &body).await.status, 200);
    assert_eq!(
        user_named(&app.users(), "ivy").unwrap()["email"],
        "ivy@example.com",
        "the record outlived its retention"
    );
}

async fn bad_signatures_apply_nothing(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = app_with_webhooks(backend, &clerk).await;
    let body = json!({"type": "user.created", "data": clerk_user("user_eve", Some("eve"), "eve@example.com", true, now() * 1000)}).to_string();
    let good = svix_headers("msg_e", now(), &body, SECRET_KEY_BYTES);
    let tampered_body = body.replace("eve@example.com", "eve@evil.example");
    /// (what is wrong, the headers sent, the body sent)
    type Case<'a> = (&'a str, Vec<(String, String)>, &'a str);
    let cases: Vec<Case> = vec![
        ("tampered body", good.to_vec(), tampered_body.as_str()),
        ("wrong secret", svix_headers("msg_e", now(), &body, b"another secret entirely.........").to_vec(), &body),
        ("six minutes old", svix_headers("msg_e", now() - 360, &body, SECRET_KEY_BYTES).to_vec(), &body),
        ("six minutes ahead", svix_headers("msg_e", now() + 360, &body, SECRET_KEY_BYTES).to_vec(), &body),
        ("no signature", good[..2].to_vec(), &body),
        (
            "v2 scheme",
            vec![good[0].clone(), good[1].clone(), ("svix-signature".into(), good[2].1.replace("v1,", "v2,"))],
            &body,
        ),
        ("id swapped", vec![("svix-id".into(), "msg_other".into()), good[1].clone(), good[2].clone()], &body),
    ];
    for (case, headers, body) in cases {
        let reply = post_webhook(&app, &headers, body).await;
        assert_eq!(reply.status, 400, "{case}: {}", reply.text);
        assert_eq!(reply.json()["code"], "webhook_signature_invalid", "{case}");
    }
    assert!(user_named(&app.users(), "eve").is_none(), "a refused delivery was applied");
    // Several signatures (Svix during secret rotation): any match passes.
    let mut rotating = good.clone();
    rotating[2].1 = format!("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= {}", good[2].1);
    assert_eq!(post_webhook(&app, &rotating, &body).await.status, 200);
    assert!(user_named(&app.users(), "eve").is_some());
    let audit = String::from_utf8(app.cli(&["audit", "tail", "-n", "50"]).stdout).unwrap();
    assert!(audit.contains("webhook_rejected") && audit.contains("webhook_applied"), "{audit}");
}

async fn deleted_banned_and_ended_sessions_end_local_sessions(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = app_with_webhooks(backend, &clerk).await;
    let refresh_status = |refresh: String| {
        let app = &app;
        async move { app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await.status }
    };

    // session.ended ends the local sessions born from that Clerk session, and only those.
    let from_session = exchange(&app, &clerk, "user_dan").await.field("refresh");
    let (_, other_session) = {
        let mut c = clerk.claims("user_dan");
        c["sid"] = json!("sess_second");
        let reply =
            read(app.client.post(app.url("/api/token/clerk/")).bearer_auth(clerk.key.sign(&c)).send().await.unwrap())
                .await;
        ((), reply.field("refresh"))
    };
    assert_eq!(deliver(&app, "msg_s", json!({"type": "session.ended", "data": {"id": "sess_user_dan", "object": "session", "user_id": "user_dan", "status": "ended"}})).await.status, 200);
    assert_eq!(refresh_status(from_session).await, 401);
    let other_session = app.post_json("/api/token/refresh/", json!({"refresh": other_session})).await;
    assert_eq!(other_session.status, 200, "{}", other_session.text);

    // Banned in Clerk: deactivated, every session ends, no new exchange.
    let banned_refresh = exchange(&app, &clerk, "user_fay").await.field("refresh");
    let mut banned = clerk_user("user_fay", None, "fay@example.com", true, now() * 1000);
    banned["banned"] = json!(true);
    assert_eq!(deliver(&app, "msg_b", json!({"type": "user.updated", "data": banned})).await.status, 200);
    assert_eq!(refresh_status(banned_refresh).await, 401);
    assert_eq!(exchange(&app, &clerk, "user_fay").await.status, 401);

    // Deleted in Clerk: the same, for good.
    let deleted_refresh = exchange(&app, &clerk, "user_gus").await.field("refresh");
    let deleted = json!({"type": "user.deleted", "data": {"id": "user_gus", "object": "user", "deleted": true}});
    assert_eq!(deliver(&app, "msg_d", deleted).await.status, 200);
    assert_eq!(refresh_status(deleted_refresh).await, 401);
    assert_eq!(exchange(&app, &clerk, "user_gus").await.status, 401);
    // A late update from before the deletion does not bring the user back.
    let late = clerk_user("user_gus", Some("gus"), "gus@example.com", true, now() * 1000);
    assert_eq!(deliver(&app, "msg_late", json!({"type": "user.updated", "data": late})).await.status, 200);
    assert_eq!(exchange(&app, &clerk, "user_gus").await.status, 401);
}

async fn a_failure_to_apply_is_a_5xx_and_the_retry_applies(backend: Backend) {
    // A process of its own: the deliberate 5xx must not show in this process's metrics, which
    // other tests read to prove that nothing else ever answers 500.
    let clerk = FakeClerk::start().await;
    let db = TestDb::new(backend).await;
    let settings = clerk.settings();
    let mut settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let secret = secret();
    settings.push(("CLERK_WEBHOOK_SIGNING_SECRET", &secret));
    let server = Replica::start(&db, &settings).await;
    let body = json!({"type": "user.created", "data": clerk_user("user_hal", Some("hal"), "hal@example.com", true, now() * 1000)}).to_string();
    let headers = svix_headers("msg_retry", now(), &body, SECRET_KEY_BYTES);
    // The write cannot happen (the table is gone for a moment): Svix must be told to retry.
    db.execute("ALTER TABLE external_identities RENAME TO external_identities_away").await;
    let failed = post_webhook(&server, &headers, &body).await;
    assert!(failed.status >= 500, "{}: {}", failed.status, failed.text);
    assert!(failed.json()["detail"].is_string());
    db.execute("ALTER TABLE external_identities_away RENAME TO external_identities").await;
    // Svix's retry carries the same svix-id: it was not recorded, so it applies now.
    let retried = post_webhook(&server, &headers, &body).await;
    assert_eq!(retried.status, 200, "{}", retried.text);
    let me = read(
        server
            .client
            .post(server.url("/api/token/clerk/"))
            .bearer_auth(clerk.session_token("user_hal"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(server.get_bearer("/api/me/", &me.field("access")).await.json()["username"], "hal");
}

async fn nul_in_a_clerk_user_is_stripped_not_a_5xx(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = app_with_webhooks(backend, &clerk).await;
    let mut user = clerk_user("user_nul", Some("ada\u{0}"), "ada\u{0}@example.com", true, now() * 1000);
    user["first_name"] = json!("A\u{0}da");
    user["last_name"] = json!("\u{0}");
    // A failed delivery would be retried by Svix for days: it is applied, without the NULs.
    let created = deliver(&app, "msg_nul_1", json!({"type": "user.created", "data": user})).await;
    assert_eq!((created.status, created.text.as_str()), (200, "{}"));
    let all = app.users();
    let ada = user_named(&all, "ada").expect("the webhook created the user");
    assert_eq!(
        (&ada["email"], &ada["first_name"], &ada["last_name"]),
        (&json!("ada@example.com"), &json!("Ada"), &json!(""))
    );
    // Ids no local record can carry name nothing here: acknowledged, nothing changes.
    let before = app.users().len();
    let odd_user = clerk_user("user_\u{0}", Some("odd"), "odd@example.com", true, now() * 1000);
    for (id, event) in [
        ("msg_nul_2", json!({"type": "user.updated", "data": odd_user})),
        ("msg_nul_3", json!({"type": "user.deleted", "data": {"id": "user_\u{0}", "deleted": true}})),
        ("msg_nul_4", json!({"type": "session.ended", "data": {"id": "sess_\u{0}"}})),
        ("msg_nul_5", json!({"type": "organization.\u{0}created", "data": {"id": "org_1"}})),
    ] {
        let reply = deliver(&app, id, event).await;
        assert_eq!((reply.status, reply.text.as_str()), (200, "{}"), "{id}");
    }
    assert_eq!(app.users().len(), before);
}

/// `tokensmith user deactivate`, then Clerk says the user changed their name: the user stays
/// deactivated (webhooks and sync alike) until the operator activates them again; and the
/// operator cannot activate a user Clerk has banned.
async fn a_provider_never_undoes_the_operators_deactivation(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = app_with_webhooks(backend, &clerk).await;
    let t = now() * 1000;
    let created =
        json!({"type": "user.created", "data": clerk_user("user_x", Some("xavier"), "x@example.com", true, t)});
    assert_eq!(deliver(&app, "msg_x1", created).await.status, 200);
    assert_eq!(exchange(&app, &clerk, "user_x").await.status, 200);
    assert!(app.cli(&["user", "deactivate", "xavier"]).status.success());

    let mut renamed = clerk_user("user_x", Some("xavier"), "x@example.com", true, t + 1);
    renamed["first_name"] = json!("Xavi");
    assert_eq!(deliver(&app, "msg_x2", json!({"type": "user.updated", "data": renamed})).await.status, 200);
    assert_eq!(exchange(&app, &clerk, "user_x").await.status, 401, "a webhook undid the operator's deactivation");
    clerk.add_users([clerk_user("user_x", Some("xavier"), "x@example.com", true, t + 2)]);
    assert!(app.cli(&["clerk", "sync-users"]).status.success());
    assert_eq!(exchange(&app, &clerk, "user_x").await.status, 401, "sync undid the operator's deactivation");
    let listed = app.users();
    assert_eq!(user_named(&listed, "xavier").unwrap()["is_active"], false);

    let activated = app.cli(&["user", "activate", "xavier"]);
    assert_eq!(String::from_utf8_lossy(&activated.stdout).trim(), "activated xavier");
    assert_eq!(exchange(&app, &clerk, "user_x").await.status, 200);

    // Banned in Clerk: the operator's activation does not override the provider.
    let mut banned = clerk_user("user_x", Some("xavier"), "x@example.com", true, t + 3);
    banned["banned"] = json!(true);
    assert_eq!(deliver(&app, "msg_x3", json!({"type": "user.updated", "data": banned})).await.status, 200);
    let activated = app.cli(&["user", "activate", "xavier"]);
    assert!(String::from_utf8_lossy(&activated.stdout).contains("still inactive"), "{activated:?}");
    assert_eq!(exchange(&app, &clerk, "user_x").await.status, 401);
}

/// A username a webhook brings is made to satisfy the same rule as at creation, and may not
/// differ from another user's only by case.
async fn webhook_usernames_follow_the_username_rule(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = app_with_webhooks(backend, &clerk).await;
    let t = now() * 1000;
    for (id, sub, name) in [("msg_a", "user_a", "alice"), ("msg_m", "user_m", "mallory")] {
        let event = json!({"type": "user.created", "data": clerk_user(sub, Some(name), "", true, t)});
        assert_eq!(deliver(&app, id, event).await.status, 200);
    }
    let renames = [("ALICE", "mallory"), ("bad name\n<script>", "badnamescript")];
    for (i, (wanted, stored)) in renames.into_iter().enumerate() {
        let user = clerk_user("user_m", Some(wanted), "", true, t + 1 + i as i64);
        let reply = deliver(&app, &format!("msg_r{i}"), json!({"type": "user.updated", "data": user})).await;
        assert_eq!(reply.status, 200);
        let listed = app.users();
        assert!(user_named(&listed, stored).is_some(), "{wanted:?} should be stored as {stored:?}: {listed:?}");
    }
    let long = clerk_user("user_m", Some(&"x".repeat(300)), "", true, t + 10);
    assert_eq!(deliver(&app, "msg_long", json!({"type": "user.updated", "data": long})).await.status, 200);
    assert!(user_named(&app.users(), &"x".repeat(150)).is_some(), "cut to Django's 150 characters");
    assert!(user_named(&app.users(), "alice").is_some());
}

/// Clerk's OrganizationMembership event for `user` in `org`, as Clerk sends it.
fn membership_event(kind: &str, user: &str, org: &str, role: &str) -> Value {
    json!({"object": "event", "type": kind, "data": {
        "id": format!("orgmem_{user}_{org}"), "object": "organization_membership", "role": role,
        "created_at": 1_700_000_000_000_i64, "updated_at": now() * 1000,
        "organization": {"id": org, "object": "organization", "name": "Acme", "slug": "acme"},
        "public_user_data": {"user_id": user, "identifier": format!("{user}@example.com"), "first_name": null},
    }})
}

/// A session exchanged for `user` with `org` active (none when `None`): its refresh token.
async fn exchange_in(app: &TestApp, clerk: &FakeClerk, user: &str, org: Option<&str>) -> String {
    let mut c = clerk.claims(user);
    if let Some(org) = org {
        c["org_id"] = json!(org);
        c["org_role"] = json!("org:admin");
        c["sid"] = json!(format!("sess_{user}_{org}"));
    }
    let reply =
        read(app.client.post(app.url("/api/token/clerk/")).bearer_auth(clerk.key.sign(&c)).send().await.unwrap()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.field("refresh")
}

async fn membership_changes_end_the_sessions_in_that_organization(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let app = app_with_webhooks(backend, &clerk).await;
    let refresh = |token: &str| app.post_json("/api/token/refresh/", json!({"refresh": token}));
    let ivy_acme = exchange_in(&app, &clerk, "user_ivy", Some("org_acme")).await;
    let ivy_beta = exchange_in(&app, &clerk, "user_ivy", Some("org_beta")).await;
    let ivy_none = exchange_in(&app, &clerk, "user_ivy", None).await;
    let joe_acme = exchange_in(&app, &clerk, "user_joe", Some("org_acme")).await;

    // Ivy's role in Acme changed: her Acme session ends, nothing else does.
    let updated = membership_event("organizationMembership.updated", "user_ivy", "org_acme", "org:member");
    let reply = deliver(&app, "msg_m1", updated).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    crate::helpers::assert_401(&refresh(&ivy_acme).await, crate::helpers::TOKEN_BLACKLISTED);
    let mut live = Vec::new();
    for token in [&ivy_beta, &ivy_none, &joe_acme] {
        let reply = refresh(token).await;
        assert_eq!(reply.status, 200, "another organization's or user's session lives on: {}", reply.text);
        live.push(reply.field("refresh"));
    }
    // The app exchanges again and carries what Clerk says now.
    let ivy_acme_again = exchange_in(&app, &clerk, "user_ivy", Some("org_acme")).await;

    // Joe left Acme: his Acme session ends; Ivy's sessions, the new Acme one included, live on.
    let deleted = membership_event("organizationMembership.deleted", "user_joe", "org_acme", "org:admin");
    assert_eq!(deliver(&app, "msg_m2", deleted).await.status, 200);
    crate::helpers::assert_401(&refresh(&live[2]).await, crate::helpers::TOKEN_BLACKLISTED);
    for token in [&live[0], &live[1], &ivy_acme_again] {
        let reply = refresh(token).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }

    // A membership event naming nobody linked here is acknowledged, and ends nothing.
    let stranger = membership_event("organizationMembership.deleted", "user_nobody", "org_beta", "org:admin");
    assert_eq!(deliver(&app, "msg_m3", stranger).await.status, 200);
    let audit = String::from_utf8_lossy(&app.cli(&["audit", "tail", "-n", "10"]).stdout).into_owned();
    assert!(audit.contains("membership of user user_joe in org_acme changed"), "{audit}");
}

/// Session ids are the provider's own: Clerk's `session.ended` for `sess_user_dan` ends the
/// session exchanged from that Clerk session, not another provider's that carries the same id.
async fn clerk_session_ended_spares_another_providers_session_with_the_same_id(backend: Backend) {
    let clerk = FakeClerk::start().await;
    let other = FakeClerk::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("issuers.toml");
    let entry = format!(
        "[[issuer]]\nname = \"other\"\nissuer = \"{}\"\njwks_url = \"{}/.well-known/jwks.json\"\n",
        other.issuer(),
        other.issuer()
    );
    std::fs::write(&file, entry).unwrap();
    let path = file.display().to_string();
    let app = spawn_with_clerk(
        backend,
        &clerk,
        &[("CLERK_WEBHOOK_SIGNING_SECRET", &secret()), ("EXTERNAL_ISSUERS_FILE", &path)],
    )
    .await;
    let from_clerk = exchange(&app, &clerk, "user_dan").await;
    assert_eq!(from_clerk.status, 200, "{}", from_clerk.text);
    let t = now();
    let claims =
        json!({"iss": other.issuer(), "sub": "dan-elsewhere", "sid": "sess_user_dan", "exp": t + 600, "iat": t});
    let token = other.key.sign(&claims);
    let request = app.client.post(app.url("/api/token/other/")).bearer_auth(token);
    let from_other = read(request.send().await.unwrap()).await;
    assert_eq!(from_other.status, 200, "{}", from_other.text);

    let ended =
        json!({"type": "session.ended", "data": {"id": "sess_user_dan", "object": "session", "user_id": "user_dan"}});
    assert_eq!(deliver(&app, "msg_end", ended).await.status, 200);
    let refresh = |pair: &Reply| app.post_json("/api/token/refresh/", json!({"refresh": pair.field("refresh")}));
    assert_eq!(refresh(&from_clerk).await.status, 401, "the Clerk session ended");
    let spared = refresh(&from_other).await;
    assert_eq!(spared.status, 200, "another provider's session ended with it: {}", spared.text);
}
