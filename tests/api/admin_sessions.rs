//! The admin API's view of a user's sessions: `GET /api/admin/users/{id}/sessions/` lists the
//! live ones (each login, sliding logins too) with where they came from, and an admin ends one
//! (`DELETE …/sessions/{session_id}/`) or all (`DELETE …/sessions/`) of them, for good, even
//! while the user's client is refreshing.

use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{admin_helpers::*, db_test, helpers::*};

db_test!(
    the_list_shows_each_live_session_and_where_it_came_from,
    ending_one_session_refuses_its_refresh_and_spares_the_others,
    ending_every_session_of_a_user_spares_the_admins_own,
    a_session_ended_while_its_token_refreshes_stays_ended,
);

/// `GET /api/admin/users/{id}/sessions/`: the whole page, checked to be 200.
pub(crate) async fn session_page(app: &TestApp, admin: &str, id: i64) -> Value {
    let reply = get(app, &format!("{}sessions/", user_url(id)), admin).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()
}

/// The live sessions of user `id`, newest first.
pub(crate) async fn sessions(app: &TestApp, admin: &str, id: i64) -> Vec<Value> {
    session_page(app, admin, id).await["results"].as_array().expect("a results array").clone()
}

/// The ids of the live sessions of user `id`.
pub(crate) async fn session_ids(app: &TestApp, admin: &str, id: i64) -> Vec<String> {
    sessions(app, admin, id).await.iter().map(|s| s["id"].as_str().expect("a string id").to_owned()).collect()
}

/// The one live session of `id` that is not among `known`: the one a login since made.
pub(crate) async fn new_session(app: &TestApp, admin: &str, id: i64, known: &[String]) -> String {
    let fresh: Vec<String> = session_ids(app, admin, id).await.into_iter().filter(|s| !known.contains(s)).collect();
    assert_eq!(fresh.len(), 1, "expected one new session, got {fresh:?} beside {known:?}");
    fresh[0].clone()
}

/// A refresh that must succeed: the rotated refresh token.
pub(crate) async fn rotated(app: &TestApp, token: &str) -> String {
    let reply = refresh(app, token).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.field("refresh")
}

pub(crate) async fn sliding_login(app: &TestApp, name: &str) -> String {
    let reply = app.post_json("/api/token/sliding/", json!({"username": name, "password": PASSWORD})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.field("token")
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value.as_object().expect("an object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

fn instant(session: &Value, field: &str) -> OffsetDateTime {
    let text = session[field].as_str().unwrap_or_else(|| panic!("no {field} string in {session}"));
    OffsetDateTime::parse(text, &Rfc3339).unwrap_or_else(|e| panic!("{field} is not RFC 3339 ({e}): {session}"))
}

fn find<'a>(list: &'a [Value], id: &str) -> &'a Value {
    list.iter().find(|s| s["id"] == id).unwrap_or_else(|| panic!("session {id} is not listed: {list:?}"))
}

async fn the_list_shows_each_live_session_and_where_it_came_from(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = superuser(&app, "root").await.access;
    let Person { id: bob, access, refresh: first } = plain(&app, "bob").await;
    let one = new_session(&app, &admin, bob, &[]).await;
    let (_, second) = app.login("bob", PASSWORD).await;
    let two = new_session(&app, &admin, bob, std::slice::from_ref(&one)).await;
    let sliding = sliding_login(&app, "bob").await;
    let three = new_session(&app, &admin, bob, &[one.clone(), two.clone()]).await;

    let page = session_page(&app, &admin, bob).await;
    assert_eq!(keys(&page), ["count", "next", "previous", "results"], "a DRF page: {page}");
    assert_eq!((&page["count"], &page["next"], &page["previous"]), (&json!(3), &Value::Null, &Value::Null));
    let list = page["results"].as_array().unwrap();
    for session in list {
        assert_eq!(keys(session), ["client_addr", "created", "id", "last_used", "provider"], "{session}");
        let id = session["id"].as_str().unwrap();
        assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "id is 32 hex characters: {session}");
        assert!(instant(session, "last_used") >= instant(session, "created"), "{session}");
        assert_eq!((&session["client_addr"], &session["provider"]), (&json!("127.0.0.1"), &json!("password")));
    }
    let created: Vec<OffsetDateTime> = list.iter().map(|s| instant(s, "created")).collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "newest first: {list:?}");

    // A refresh rotates the token, not the session: same id, last used no earlier than before.
    let before = instant(find(list, &one), "last_used");
    let first = rotated(&app, &first).await;
    let sliding_reply = app.post_json("/api/token/sliding/refresh/", json!({"token": sliding})).await;
    assert_eq!(sliding_reply.status, 200, "{}", sliding_reply.text);
    let list = sessions(&app, &admin, bob).await;
    assert_eq!(list.len(), 3, "{list:?}");
    assert!(instant(find(&list, &one), "last_used") >= before, "{list:?}");
    find(&list, &three);

    // Paged like every admin list.
    let small = app.get_bearer(&format!("/api/admin/users/{bob}/sessions/?page_size=1"), &admin).await.json();
    assert_eq!((&small["count"], small["results"].as_array().unwrap().len()), (&json!(3), 1), "{small}");
    assert!(small["next"].as_str().is_some_and(|next| next.contains("page=2")), "{small}");

    // Logged out (a refresh token or a sliding token), or every session revoked: no longer listed.
    for token in [&second, &sliding] {
        assert_eq!(app.post_json("/api/token/blacklist/", json!({"refresh": token})).await.status, 200);
    }
    assert_eq!(session_ids(&app, &admin, bob).await, [one.as_str()]);
    assert_eq!(app.post_bearer("/api/token/revoke-all/", &access, json!({})).await.status, 200);
    let page = session_page(&app, &admin, bob).await;
    assert_eq!((&page["count"], &page["results"]), (&json!(0), &json!([])), "{page}");
    assert_eq!(refresh(&app, &first).await.status, 401);
}

async fn ending_one_session_refuses_its_refresh_and_spares_the_others(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = superuser(&app, "root").await.access;
    let Person { id: bob, refresh: mine, .. } = plain(&app, "bob").await;
    let one = new_session(&app, &admin, bob, &[]).await;
    let (_, other) = app.login("bob", PASSWORD).await;
    let two = new_session(&app, &admin, bob, std::slice::from_ref(&one)).await;
    // The session's latest token is the one that must stop working, not only the first.
    let mine = rotated(&app, &mine).await;

    let ended = delete(&app, &format!("/api/admin/users/{bob}/sessions/{one}/"), &admin).await;
    assert_eq!((ended.status, ended.text.as_str()), (204, ""), "{ended:?}");
    assert_401(&refresh(&app, &mine).await, TOKEN_BLACKLISTED);
    let other = rotated(&app, &other).await;
    assert_eq!(session_ids(&app, &admin, bob).await, [two.as_str()]);

    // Ended already, or not this user's, or no session at all: 404, and nothing else ends.
    let carol = plain(&app, "carol").await;
    let carol_session = new_session(&app, &admin, carol.id, &[]).await;
    let long = "a".repeat(300);
    for missing in [one.as_str(), carol_session.as_str(), "nope", "12345", "0123456789abcdef0123456789abcdef", &long] {
        let reply = delete(&app, &format!("/api/admin/users/{bob}/sessions/{missing}/"), &admin).await;
        assert_eq!((reply.status, reply.text.as_str()), (404, NOT_FOUND), "session {missing:?}");
    }
    let unknown_user = delete(&app, &format!("/api/admin/users/999999/sessions/{two}/"), &admin).await;
    assert_eq!((unknown_user.status, unknown_user.text.as_str()), (404, NOT_FOUND));
    let carols = rotated(&app, &carol.refresh).await;
    let other = rotated(&app, &other).await;

    // Without the trailing slash too.
    let ended = delete(&app, &format!("/api/admin/users/{bob}/sessions/{two}"), &admin).await;
    assert_eq!(ended.status, 204, "{}", ended.text);
    assert_401(&refresh(&app, &other).await, TOKEN_BLACKLISTED);
    assert!(session_ids(&app, &admin, bob).await.is_empty());
    rotated(&app, &carols).await;
}

async fn ending_every_session_of_a_user_spares_the_admins_own(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    let admin = root.access.clone();
    let Person { id: bob, refresh: first, .. } = plain(&app, "bob").await;
    let (_, second) = app.login("bob", PASSWORD).await;
    let sliding = sliding_login(&app, "bob").await;
    assert_eq!(sessions(&app, &admin, bob).await.len(), 3);

    let ended = delete(&app, &format!("/api/admin/users/{bob}/sessions/"), &admin).await;
    assert_eq!((ended.status, ended.text.as_str()), (204, ""), "{ended:?}");
    for token in [&first, &second] {
        assert_401(&refresh(&app, token).await, TOKEN_BLACKLISTED);
    }
    let slid = app.post_json("/api/token/sliding/refresh/", json!({"token": sliding})).await;
    assert_eq!(slid.status, 401, "{}", slid.text);
    assert_eq!(session_page(&app, &admin, bob).await["count"], 0);

    // The admin's own session was not among them.
    rotated(&app, &root.refresh).await;
    assert_eq!(sessions(&app, &admin, root.id).await.len(), 1);
    // Ending sessions is not locking out: bob logs in again. And without the trailing slash.
    let (_, again) = app.login("bob", PASSWORD).await;
    assert_eq!(delete(&app, &format!("/api/admin/users/{bob}/sessions"), &admin).await.status, 204);
    assert_401(&refresh(&app, &again).await, TOKEN_BLACKLISTED);
}

async fn a_session_ended_while_its_token_refreshes_stays_ended(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = superuser(&app, "root").await.access;
    let bob = plain(&app, "bob").await.id;
    assert_eq!(delete(&app, &format!("/api/admin/users/{bob}/sessions/"), &admin).await.status, 204);
    for round in 0..6 {
        let (_, token) = app.login("bob", PASSWORD).await;
        let session = new_session(&app, &admin, bob, &[]).await;
        let path = format!("/api/admin/users/{bob}/sessions/{session}/");
        let (ended, raced) = tokio::join!(delete(&app, &path, &admin), refresh(&app, &token));
        assert_eq!(ended.status, 204, "round {round}: {}", ended.text);
        assert!(raced.status == 200 || raced.status == 401, "round {round}: {} {}", raced.status, raced.text);
        assert!(session_ids(&app, &admin, bob).await.is_empty(), "round {round}: the session is still listed");
        // The token that raced is dead, and so is what it was rotated into, had the refresh won.
        assert_eq!(refresh(&app, &token).await.status, 401, "round {round}");
        if raced.status == 200 {
            let successor = refresh(&app, &raced.field("refresh")).await;
            assert_eq!(successor.status, 401, "round {round}: its successor outlived the session: {}", successor.text);
        }
    }
}
