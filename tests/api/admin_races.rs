//! Admin actions racing the requests they change, fired at once: a deactivation racing logins
//! leaves no session alive, a user's deletion racing its refresh and a group's deletion racing an
//! edit of memberships are never a 500 (on PostgreSQL they once deadlocked and broke a foreign
//! key), and a staff user's change racing a promotion to superuser does not land on the superuser.

use futures::future::join_all;
use serde_json::json;

use crate::{admin_helpers::*, db_test, helpers::*};

db_test!(
    admin_deactivation_racing_logins_leaves_no_session,
    admin_deleting_a_user_racing_its_refreshes_never_fails,
    admin_deleting_a_group_racing_membership_edits_never_fails,
    admin_staff_change_racing_a_promotion_never_lands_on_a_superuser,
);

async fn admin_deactivation_racing_logins_leaves_no_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    let bob = plain(&app, "bob").await;
    let url = user_url(bob.id);
    for round in 0..3 {
        // Logins take an argon2 hash's time: the deactivation lands while some are in flight.
        let logins = join_all((0..12).map(|_| try_login(&app, "bob", PASSWORD)));
        let deactivate = async {
            tokio::time::sleep(std::time::Duration::from_millis(5 * round)).await;
            patch(&app, &url, &root.access, json!({"is_active": false})).await
        };
        let (logins, deactivated) = tokio::join!(logins, deactivate);
        assert_eq!(deactivated.status, 200, "{}", deactivated.text);
        assert_eq!(patch(&app, &url, &root.access, json!({"is_active": true})).await.status, 200);
        // Reactivation brings back no session: every pair a racing login got ended with it.
        for login in logins.iter().filter(|l| l.status == 200) {
            let reply = refresh(&app, &login.field("refresh")).await;
            assert_eq!(reply.status, 401, "round {round}: a session started during the deactivation survived");
        }
        let sessions = get(&app, &format!("{url}sessions/"), &root.access).await;
        assert_eq!(sessions.json()["count"], 0, "round {round}: {}", sessions.text);
    }
}

async fn admin_deleting_a_user_racing_its_refreshes_never_fails(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    for round in 0..60 {
        // Made and given a session over the admin API: no password to hash, so many rounds are cheap.
        let id = create(&app, &root.access, json!({"username": format!("gone{round}")})).await["id"].as_i64().unwrap();
        let path = user_url(id);
        let pair = post(&app, &format!("{path}tokens/"), &root.access, json!({})).await;
        let token = pair.field("refresh");
        let (refreshed, deleted) = tokio::join!(refresh(&app, &token), delete(&app, &path, &root.access));
        assert_eq!(deleted.status, 204, "round {round}: {}", deleted.text);
        assert!([200, 401].contains(&refreshed.status), "round {round}: {} {}", refreshed.status, refreshed.text);
        // Whatever the refresh won, nothing of the user's session is left.
        if refreshed.status == 200 {
            assert_eq!(refresh(&app, &refreshed.field("refresh")).await.status, 401);
        }
        assert_reply(&refresh(&app, &token).await, 401, GONE_ACCOUNT);
    }
}

async fn admin_deleting_a_group_racing_membership_edits_never_fails(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    let bob = plain(&app, "bob").await;
    let url = user_url(bob.id);
    for round in 0..10 {
        let name = format!("g{round}");
        let group = create_group(&app, &root.access, &name).await;
        let group_path = format!("{GROUPS}{group}/");
        let (edited, deleted) = tokio::join!(
            patch(&app, &url, &root.access, json!({"groups": [name]})),
            delete(&app, &group_path, &root.access),
        );
        assert_eq!(deleted.status, 204, "round {round}: {}", deleted.text);
        // The edit came first (the group goes, the membership with it) or second (no such group).
        assert!([200, 400].contains(&edited.status), "round {round}: {} {}", edited.status, edited.text);
        let user = get(&app, &url, &root.access).await.json();
        assert_eq!(user["groups"], json!([]), "round {round}: {user}");
    }
}

async fn admin_staff_change_racing_a_promotion_never_lands_on_a_superuser(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = superuser(&app, "root").await;
    let clerk = staff(&app, "clerk").await;
    for round in 0..6 {
        let target = plain(&app, &format!("target{round}")).await;
        let url = user_url(target.id);
        // The staff user's new password is hashed while the superuser promotes the target.
        let set_path = format!("{url}set-password/");
        let (set, promoted) = tokio::join!(
            post(&app, &set_path, &clerk.access, json!({"password": "staff chose 5150"})),
            patch(&app, &url, &root.access, json!({"is_superuser": true, "is_staff": true})),
        );
        assert_eq!(promoted.status, 200, "{}", promoted.text);
        match set.status {
            // It landed first: the password was set before the promotion, as the audit trail shows.
            200 => {
                let name = format!("target{round}");
                let events: Vec<String> = audit(&app)
                    .into_iter()
                    .filter(|e| e["username"] == name.as_str())
                    .map(|e| e["event"].as_str().unwrap_or_default().to_owned())
                    .collect();
                let set_at = events.iter().position(|e| e == "password_set");
                let promoted_at = events.iter().position(|e| e == "user_updated");
                assert!(set_at < promoted_at, "round {round}: a staff password landed on a superuser: {events:?}");
            }
            // It came after: refused, and the superuser's password is still theirs.
            403 => {
                assert_reply(&set, 403, FORBIDDEN);
                assert_eq!(try_login(&app, &format!("target{round}"), PASSWORD).await.status, 200);
            }
            other => panic!("round {round}: {other} {}", set.text),
        }
    }
}
