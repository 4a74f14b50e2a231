//! Login throttling: per username from one address, per address across usernames, across
//! replicas, behind a trusted proxy and an untrusted one.

use std::{net::SocketAddr, time::Duration};

use serde_json::json;

use crate::{
    db_test,
    helpers::{Backend, Http, Reply, TestDb, base_env, read, run_cli, spawn_app_with},
    pg_test,
    process::Replica,
};

db_test!(
    failures_for_one_username_from_one_address_throttle_only_that,
    a_successful_login_resets_the_count,
    password_spraying_from_one_address_is_throttled,
    throttled_attempts_run_no_argon2,
    an_untrusted_proxy_header_changes_nothing,
    the_throttle_lifts_when_the_window_passes,
    a_burst_of_guesses_reaches_argon2_at_most_the_limit,
    a_burst_of_sprays_passes_at_most_the_address_limit,
    wrong_current_passwords_are_throttled_like_logins,
    overlong_usernames_are_refused_before_any_database_work,
    an_ipv6_client_gets_one_budget_for_its_64,
    a_throttled_flood_is_audited_once_not_per_request,
    concurrent_password_changes_over_one_password_let_one_win,
    a_port_on_the_proxys_entry_does_not_make_the_forged_one_believed,
    a_dual_stack_listener_trusts_its_ipv4_proxy,
);
pg_test!(
    the_limit_holds_across_replicas,
    a_burst_split_across_replicas_passes_at_most_the_limit,
    the_limit_holds_under_a_repeatable_read_default,
);

const BODY_PREFIX: &str = "Request was throttled. Expected available in ";
const NO_ACCOUNT: &str = "No active account found with the given credentials";

/// A login attempt, optionally claiming a client address in `X-Forwarded-For`.
async fn attempt(app: &Http, username: &str, password: &str, forwarded_for: Option<&str>) -> Reply {
    let mut request =
        app.client.post(app.url("/api/token/")).json(&json!({"username": username, "password": password}));
    if let Some(addr) = forwarded_for {
        request = request.header("x-forwarded-for", addr);
    }
    read(request.send().await.unwrap()).await
}

/// A 429 exactly as DRF sends it; returns the seconds in `Retry-After`.
fn assert_throttled(reply: &Reply, window_secs: u64) -> u64 {
    assert_eq!(reply.status, 429, "{}", reply.text);
    let wait: u64 = reply.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=window_secs).contains(&wait), "Retry-After {wait}");
    let unit = if wait == 1 { "second" } else { "seconds" };
    assert_eq!(reply.json(), json!({"detail": format!("{BODY_PREFIX}{wait} {unit}.")}));
    wait
}

async fn failures_for_one_username_from_one_address_throttle_only_that(backend: Backend) {
    let app = spawn_app_with(backend, &[("LOGIN_FAILURE_LIMIT", "3"), ("TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    app.create_user("alice", "correct horse");
    app.create_user("bob", "battery staple");
    let attacker = Some("203.0.113.7");
    for _ in 0..3 {
        assert_eq!(attempt(&app, "alice", "guess", attacker).await.status, 401);
    }
    // The fourth attempt is refused before the password is looked at, even the right one.
    assert_throttled(&attempt(&app, "alice", "correct horse", attacker).await, 900);
    // Other users from that address, and alice from anywhere else, log in normally.
    assert_eq!(attempt(&app, "bob", "battery staple", attacker).await.status, 200);
    assert_eq!(attempt(&app, "alice", "correct horse", Some("198.51.100.20")).await.status, 200);
    let audit = String::from_utf8(app.cli(&["audit", "tail", "-n", "20"]).stdout).unwrap();
    assert!(audit.contains("login_throttled") && audit.contains("203.0.113.7"), "{audit}");
}

async fn a_successful_login_resets_the_count(backend: Backend) {
    let app = spawn_app_with(backend, &[("LOGIN_FAILURE_LIMIT", "3")]).await;
    app.create_user("alice", "correct horse");
    for _ in 0..2 {
        assert_eq!(attempt(&app, "alice", "typo", None).await.status, 401);
    }
    assert_eq!(attempt(&app, "alice", "correct horse", None).await.status, 200);
    for _ in 0..2 {
        assert_eq!(attempt(&app, "alice", "typo", None).await.status, 401);
    }
    assert_eq!(attempt(&app, "alice", "correct horse", None).await.status, 200, "the earlier failures still counted");
}

async fn password_spraying_from_one_address_is_throttled(backend: Backend) {
    let app =
        spawn_app_with(backend, &[("LOGIN_ADDRESS_FAILURE_LIMIT", "4"), ("TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    app.create_user("alice", "correct horse");
    let sprayer = Some("203.0.113.9");
    for name in ["root", "admin", "test", "guest"] {
        assert_eq!(attempt(&app, name, "Winter2026!", sprayer).await.status, 401);
    }
    assert_throttled(&attempt(&app, "alice", "Winter2026!", sprayer).await, 900);
    assert_eq!(attempt(&app, "alice", "correct horse", Some("198.51.100.1")).await.status, 200);
}

async fn throttled_attempts_run_no_argon2(backend: Backend) {
    // A process of its own, so the hash counter is this server's alone.
    let db = TestDb::new(backend).await;
    let server = Replica::start(&db, &[("LOGIN_FAILURE_LIMIT", "2")]).await;
    let hashes = || async {
        let text = server.get("/metrics").await.text;
        text.lines()
            .find(|l| l.starts_with("tokensmith_password_hashes_total"))
            .and_then(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    for _ in 0..2 {
        assert_eq!(attempt(&server, "nobody", "guess", None).await.status, 401);
    }
    let before = hashes().await;
    assert_eq!(before, 2, "an unknown username still costs a hash");
    for _ in 0..20 {
        assert_eq!(attempt(&server, "nobody", "guess", None).await.status, 429);
    }
    assert_eq!(hashes().await, before, "throttled attempts ran argon2");
}

async fn an_untrusted_proxy_header_changes_nothing(backend: Backend) {
    // No TRUSTED_PROXIES: X-Forwarded-For is the attacker's own words and is ignored.
    let app = spawn_app_with(backend, &[("LOGIN_FAILURE_LIMIT", "2")]).await;
    app.create_user("alice", "correct horse");
    assert_eq!(attempt(&app, "alice", "guess", Some("192.0.2.1")).await.status, 401);
    assert_eq!(attempt(&app, "alice", "guess", Some("192.0.2.2")).await.status, 401);
    assert_throttled(&attempt(&app, "alice", "guess", Some("192.0.2.3")).await, 900);
}

async fn the_throttle_lifts_when_the_window_passes(backend: Backend) {
    let app = spawn_app_with(backend, &[("LOGIN_FAILURE_LIMIT", "2"), ("LOGIN_FAILURE_WINDOW", "2s")]).await;
    app.create_user("alice", "correct horse");
    for _ in 0..2 {
        assert_eq!(attempt(&app, "alice", "guess", None).await.status, 401);
    }
    let wait = assert_throttled(&attempt(&app, "alice", "correct horse", None).await, 2);
    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(1100)).await;
    assert_eq!(attempt(&app, "alice", "correct horse", None).await.status, 200);
    // Housekeeping forgets old failures.
    assert!(app.cli(&["tokens", "flush-expired"]).status.success());
}

async fn the_limit_holds_across_replicas(backend: Backend) {
    let db = TestDb::new(backend).await;
    let settings = [("LOGIN_FAILURE_LIMIT", "4")];
    let a = Replica::start(&db, &settings).await;
    let b = Replica::start(&db, &settings).await;
    let out =
        run_cli(&base_env(&db), db.dir(), &["user", "create", "alice", "--password-stdin"], Some("correct horse"));
    assert!(out.status.success());
    for replica in [&a, &b, &a, &b] {
        assert_eq!(attempt(replica, "alice", "guess", None).await.status, 401);
    }
    // Two failures on each replica make four: both refuse now.
    assert_throttled(&attempt(&a, "alice", "correct horse", None).await, 900);
    assert_throttled(&attempt(&b, "alice", "correct horse", None).await, 900);
}

/// The statuses of `attempts` logins sent at once, as (401s, 429s, others).
async fn burst(app: &Http, attempts: &[(String, &str)]) -> (usize, usize, Vec<u16>) {
    let replies =
        futures::future::join_all(attempts.iter().map(|(username, password)| attempt(app, username, password, None)))
            .await;
    let count = |status| replies.iter().filter(|r| r.status == status).count();
    let others = replies.iter().map(|r| r.status).filter(|s| *s != 401 && *s != 429).collect();
    (count(401), count(429), others)
}

/// Password hashes this server has run (its `/metrics`; a process of its own).
async fn hashes(server: &Http) -> u64 {
    let text = server.get("/metrics").await.text;
    text.lines()
        .find(|l| l.starts_with("tokensmith_password_hashes_total"))
        .and_then(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .unwrap_or(0)
}

async fn a_burst_of_guesses_reaches_argon2_at_most_the_limit(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = Replica::start(&db, &[("LOGIN_FAILURE_LIMIT", "5")]).await;
    let out =
        run_cli(&base_env(&db), db.dir(), &["user", "create", "alice", "--password-stdin"], Some("correct horse"));
    assert!(out.status.success());
    // Sixty guesses sent at once: counted whole, whatever order they are checked in.
    let guesses: Vec<(String, &str)> = (0..60).map(|_| ("alice".to_owned(), "guess")).collect();
    let (refused, throttled, others) = burst(&server, &guesses).await;
    assert_eq!((refused, throttled, others), (5, 55, vec![]), "5 guesses may be checked, no more");
    assert_eq!(hashes(&server).await, 5, "only the reserved attempts ran argon2");
    assert_throttled(&attempt(&server, "alice", "correct horse", None).await, 900);
}

async fn a_burst_of_sprays_passes_at_most_the_address_limit(backend: Backend) {
    let app = spawn_app_with(backend, &[("LOGIN_ADDRESS_FAILURE_LIMIT", "20")]).await;
    app.create_user("alice", "correct horse");
    let sprays: Vec<(String, &str)> = (0..80).map(|i| (format!("user{i}"), "Winter2026!")).collect();
    let (refused, throttled, others) = burst(&app, &sprays).await;
    assert_eq!((refused, throttled, others), (20, 60, vec![]), "20 sprays may be checked, no more");
    assert_throttled(&attempt(&app, "alice", "correct horse", None).await, 900);
}

async fn a_burst_split_across_replicas_passes_at_most_the_limit(backend: Backend) {
    let db = TestDb::new(backend).await;
    let settings = [("LOGIN_FAILURE_LIMIT", "6")];
    let a = Replica::start(&db, &settings).await;
    let b = Replica::start(&db, &settings).await;
    let guesses: Vec<(String, &str)> = (0..20).map(|_| ("alice".to_owned(), "guess")).collect();
    let ((refused_a, throttled_a, others_a), (refused_b, throttled_b, others_b)) =
        tokio::join!(burst(&a, &guesses), burst(&b, &guesses));
    assert!(others_a.is_empty() && others_b.is_empty(), "{others_a:?} {others_b:?}");
    assert_eq!(refused_a + refused_b, 6, "two replicas share one limit");
    assert_eq!(throttled_a + throttled_b, 34);
    assert_eq!(hashes(&a).await + hashes(&b).await, 6);
}

async fn wrong_current_passwords_are_throttled_like_logins(backend: Backend) {
    let app = spawn_app_with(backend, &[("LOGIN_FAILURE_LIMIT", "3")]).await;
    let (access, _) = app.alice().await;
    let change = |current: &'static str| {
        let body = json!({"current_password": current, "new_password": "a whole new password"});
        app.post_bearer("/api/password/change/", &access, body)
    };
    for _ in 0..3 {
        assert_eq!(change("guess").await.status, 400);
    }
    // A stolen access token is no password oracle: the right password is refused now too.
    assert_throttled(&change("correct horse").await, 900);
    assert_throttled(&attempt(&app, "alice", "correct horse", None).await, 900);
}

/// 60 KB usernames used to cost an audit row (and a throttle row) each: no username is longer
/// than 150 characters (Django's limit), so such a login is refused before the database.
async fn overlong_usernames_are_refused_before_any_database_work(backend: Backend) {
    let app = spawn_app_with(backend, &[("LOGIN_FAILURE_LIMIT", "1")]).await;
    let huge = "x".repeat(60 * 1024);
    for _ in 0..20 {
        let reply = attempt(&app, &huge, "guess", None).await;
        assert_eq!((reply.status, reply.json()), (401, json!({"detail": NO_ACCOUNT})));
    }
    // Never throttled either: they reserve nothing.
    assert_eq!(attempt(&app, &"y".repeat(151), "guess", None).await.status, 401);
    let audit = String::from_utf8(app.cli(&["audit", "tail", "-n", "50"]).stdout).unwrap();
    assert!(audit.trim().is_empty(), "refused before the database, yet audited: {} bytes", audit.len());
    // 150 characters is a username like any other: a failure, audited and counted.
    let longest = "z".repeat(150);
    assert_eq!(attempt(&app, &longest, "guess", None).await.status, 401);
    assert_throttled(&attempt(&app, &longest, "guess", None).await, 900);
    let audit = String::from_utf8(app.cli(&["audit", "tail", "-n", "50"]).stdout).unwrap();
    assert!(audit.contains("login_failed") && audit.contains(&longest), "{audit}");
}

async fn a_port_on_the_proxys_entry_does_not_make_the_forged_one_believed(backend: Backend) {
    // The proxy writes the address it saw with a port; the client rotates a forged entry left of it.
    let app = spawn_app_with(backend, &[("LOGIN_FAILURE_LIMIT", "2"), ("TRUSTED_PROXIES", "127.0.0.1")]).await;
    app.create_user("alice", "correct horse");
    for (user, real) in [("alice", "203.0.113.7:51234"), ("nobody", "[2001:db8::1]:443")] {
        for forged in ["192.0.2.1", "192.0.2.2"] {
            let reply = attempt(&app, user, "guess", Some(&format!("{forged}, {real}"))).await;
            assert_eq!(reply.status, 401, "{}", reply.text);
        }
        let reply = attempt(&app, user, "guess", Some(&format!("192.0.2.3, {real}"))).await;
        assert_throttled(&reply, 900);
    }
    // An entry that cannot be read ends the walk: the forged address left of it is not believed either.
    let reply = attempt(&app, "alice", "guess", Some("192.0.2.4, unknown, 203.0.113.7:51234")).await;
    assert_throttled(&reply, 900);
    let audit = String::from_utf8(app.cli(&["audit", "tail", "-n", "20"]).stdout).unwrap();
    assert!(audit.contains("addr=203.0.113.7\t") && audit.contains("addr=2001:db8::1\t"), "{audit}");
    assert!(!audit.contains("192.0.2."), "a forged address was believed: {audit}");
}

async fn a_dual_stack_listener_trusts_its_ipv4_proxy(backend: Backend) {
    // An IPv6 socket sees IPv4 peers as ::ffff:a.b.c.d; TRUSTED_PROXIES=127.0.0.1 must still match.
    let app = spawn_app_with(
        backend,
        &[("LISTEN_ADDR", "[::ffff:127.0.0.1]:0"), ("LOGIN_FAILURE_LIMIT", "2"), ("TRUSTED_PROXIES", "127.0.0.1")],
    )
    .await;
    let proxy = Http::new(SocketAddr::from(([127, 0, 0, 1], app.addr.port())));
    app.create_user("alice", "correct horse");
    let attacker = Some("203.0.113.7");
    for _ in 0..2 {
        assert_eq!(attempt(&proxy, "alice", "guess", attacker).await.status, 401);
    }
    assert_throttled(&attempt(&proxy, "alice", "correct horse", attacker).await, 900);
    // Other clients behind the same proxy are not throttled with the attacker.
    assert_eq!(attempt(&proxy, "alice", "correct horse", Some("198.51.100.20")).await.status, 200);
    // With no header the client is the proxy, recorded (and throttled) as the IPv4 address.
    assert_eq!(attempt(&proxy, "bob", "guess", None).await.status, 401);
    let audit = String::from_utf8(app.cli(&["audit", "tail", "-n", "20"]).stdout).unwrap();
    assert!(audit.contains("addr=203.0.113.7\t") && audit.contains("addr=198.51.100.20\t"), "{audit}");
    assert!(audit.contains("user=bob\taddr=127.0.0.1\t") && !audit.contains("::ffff:"), "{audit}");
}

/// One client owns a whole IPv6 /64: rotating through it is one client, one budget.
async fn an_ipv6_client_gets_one_budget_for_its_64(backend: Backend) {
    let app = spawn_app_with(backend, &[("LOGIN_FAILURE_LIMIT", "3"), ("TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    app.create_user("alice", "correct horse");
    for i in 1..=3 {
        let reply = attempt(&app, "alice", "guess", Some(&format!("2001:db8:5:6::{i:x}"))).await;
        assert_eq!(reply.status, 401, "{}", reply.text);
    }
    assert_throttled(&attempt(&app, "alice", "correct horse", Some("2001:db8:5:6:ffff::9")).await, 900);
    // Another /64 is another client.
    assert_eq!(attempt(&app, "alice", "correct horse", Some("2001:db8:5:7::1")).await.status, 200);
}

/// A throttled flood is one audit event, not one a request (each would be a database write).
async fn a_throttled_flood_is_audited_once_not_per_request(backend: Backend) {
    let app = spawn_app_with(backend, &[("LOGIN_FAILURE_LIMIT", "2")]).await;
    for _ in 0..2 {
        assert_eq!(attempt(&app, "alice", "guess", None).await.status, 401);
    }
    for _ in 0..30 {
        assert_eq!(attempt(&app, "alice", "guess", None).await.status, 429);
    }
    let audit = String::from_utf8(app.cli(&["audit", "tail", "-n", "100"]).stdout).unwrap();
    assert_eq!(audit.matches("login_throttled").count(), 1, "{audit}");
}

/// A thief with the old password and the owner change it at once: one change wins, the other
/// finds the password changed (400), so the thief cannot overwrite the owner's new password.
async fn concurrent_password_changes_over_one_password_let_one_win(backend: Backend) {
    let app = spawn_app_with(backend, &[("LOGIN_FAILURE_LIMIT", "100")]).await;
    let (access, _) = app.alice().await;
    let changes = (0..8).map(|i| {
        let body = json!({"current_password": "correct horse", "new_password": format!("new password {i}")});
        app.post_bearer("/api/password/change/", &access, body)
    });
    let replies = futures::future::join_all(changes).await;
    let won: Vec<usize> = (0..8).filter(|i| replies[*i].status == 200).collect();
    assert_eq!(won.len(), 1, "{:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
    assert!(replies.iter().all(|r| r.status == 200 || r.status == 400));
    app.login("alice", &format!("new password {}", won[0])).await;
}

/// A PostgreSQL server (or role) whose default isolation is REPEATABLE READ still holds the
/// limit: the reservation runs READ COMMITTED behind its lock.
async fn the_limit_holds_under_a_repeatable_read_default(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.execute(
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_isolation = ''repeatable read''', \
         current_database()); END $$",
    )
    .await;
    let server = Replica::start(&db, &[("LOGIN_FAILURE_LIMIT", "5")]).await;
    let guesses: Vec<(String, &str)> = (0..40).map(|_| ("alice".to_owned(), "guess")).collect();
    let (refused, throttled, others) = burst(&server, &guesses).await;
    assert_eq!((refused, throttled, others), (5, 35, vec![]));
}
