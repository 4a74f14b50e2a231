//! Several real `tokensmith serve` processes on one PostgreSQL behave as one service.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{
    fake_clerk::FakeClerk,
    helpers::{Backend, Http, TestDb, base_env, claims, header, run_cli},
    pg_test,
    process::Replica,
};

pg_test!(
    replicas_starting_together_on_an_empty_database_agree,
    a_session_moves_freely_between_replicas,
    rotation_is_exactly_once_across_replicas,
    reuse_is_detected_across_replicas,
    key_rotation_reaches_every_replica,
    webhook_dedup_holds_across_replicas,
);

/// `tokensmith …` against the replicas' database, as an operator runs it.
fn cli(db: &TestDb, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let out = run_cli(&base_env(db), db.dir(), args, stdin);
    assert!(out.status.success(), "tokensmith {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn create_user(db: &TestDb, name: &str) {
    cli(db, &["user", "create", name, "--password-stdin"], Some("correct horse"));
}

async fn jwks(replica: &Http) -> Value {
    replica.get("/.well-known/jwks.json").await.json()
}

async fn replicas_starting_together_on_an_empty_database_agree(backend: Backend) {
    let db = TestDb::new(backend).await;
    // Four processes at once against a database with no tables and no key.
    let replicas = futures::future::join_all((0..4).map(|_| Replica::start(&db, &[]))).await;
    let first = jwks(&replicas[0]).await;
    assert_eq!(first["keys"].as_array().unwrap().len(), 1, "exactly one signing key: {first}");
    for replica in &replicas {
        assert_eq!(jwks(replica).await, first, "every replica publishes the same key set");
        assert_eq!(replica.get("/readyz").await.status, 200);
    }
    let keys = String::from_utf8(cli(&db, &["keys", "list"], None).stdout).unwrap();
    assert_eq!(keys.lines().filter(|l| l.contains("ES256")).count(), 1, "{keys}");
    // Migrations ran once each.
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let applied: Vec<(i64,)> =
        sqlx::query_as("SELECT version FROM _sqlx_migrations ORDER BY version").fetch_all(&mut conn).await.unwrap();
    // Versions as the files number them (a number may be missing while work lands out of order).
    let mut known: Vec<(i64,)> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .map(|f| (f.unwrap().file_name().to_string_lossy().split('_').next().unwrap().parse().unwrap(),))
        .collect();
    known.sort();
    assert_eq!(applied, known, "each migration applied once");
    // And they all sign with it: a token from any replica verifies on every other.
    create_user(&db, "alice");
    for (i, issuer) in replicas.iter().enumerate() {
        let (access, _) = issuer.login("alice", "correct horse").await;
        assert_eq!(header(&access)["kid"], first["keys"][0]["kid"]);
        let other = &replicas[(i + 1) % replicas.len()];
        assert_eq!(other.post_json("/api/token/verify/", json!({"token": access})).await.status, 200);
    }
}

async fn a_session_moves_freely_between_replicas(backend: Backend) {
    let db = TestDb::new(backend).await;
    let a = Replica::start(&db, &[]).await;
    let b = Replica::start(&db, &[]).await;
    create_user(&db, "alice");

    let (access, refresh) = a.login("alice", "correct horse").await;
    assert_eq!(b.get_bearer("/api/me/", &access).await.json()["username"], "alice");
    let on_b = b.post_json("/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(on_b.status, 200, "{}", on_b.text);
    // The rotated-away token is dead on A too.
    assert_eq!(a.post_json("/api/token/verify/", json!({"token": refresh})).await.status, 401);
    let on_a = a.post_json("/api/token/refresh/", json!({"refresh": on_b.field("refresh")})).await;
    assert_eq!(on_a.status, 200, "{}", on_a.text);

    // Blacklisted on A: refused on B at once.
    let newest = on_a.field("refresh");
    assert_eq!(a.post_json("/api/token/blacklist/", json!({"refresh": newest})).await.status, 200);
    assert_eq!(b.post_json("/api/token/refresh/", json!({"refresh": newest})).await.status, 401);

    // Revoke-all on A: every session refused on B at once.
    let (_, first) = b.login("alice", "correct horse").await;
    let (access2, second) = b.login("alice", "correct horse").await;
    assert_eq!(a.post_bearer("/api/token/revoke-all/", &access2, json!({})).await.status, 200);
    for refresh in [first, second] {
        let reply = b.post_json("/api/token/refresh/", json!({"refresh": refresh})).await;
        assert_eq!(reply.status, 401, "{}", reply.text);
    }
}

async fn rotation_is_exactly_once_across_replicas(backend: Backend) {
    let db = TestDb::new(backend).await;
    let replicas = [Replica::start(&db, &[]).await, Replica::start(&db, &[]).await];
    create_user(&db, "alice");
    for round in 0..3 {
        let (_, refresh) = replicas[0].login("alice", "correct horse").await;
        let attempts = (0..16).map(|i| replicas[i % 2].post_json("/api/token/refresh/", json!({"refresh": refresh})));
        let replies = futures::future::join_all(attempts).await;
        let winners: Vec<_> = replies.iter().filter(|r| r.status == 200).collect();
        assert_eq!(winners.len(), 1, "round {round}: {:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
        for loser in replies.iter().filter(|r| r.status != 200) {
            assert_eq!(loser.status, 401, "{}", loser.text);
        }
        // Racing within the grace window did not end the session: the winner's token works.
        let next = replicas[1].post_json("/api/token/refresh/", json!({"refresh": winners[0].field("refresh")})).await;
        assert_eq!(next.status, 200, "{}", next.text);
    }
}

async fn reuse_is_detected_across_replicas(backend: Backend) {
    let db = TestDb::new(backend).await;
    let settings = [("REFRESH_REUSE_GRACE", "1s")];
    let a = Replica::start(&db, &settings).await;
    let b = Replica::start(&db, &settings).await;
    create_user(&db, "alice");
    let (_, stolen) = a.login("alice", "correct horse").await;
    let newest = a.post_json("/api/token/refresh/", json!({"refresh": stolen})).await.field("refresh");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // The thief replays the old token on the other replica: the whole session dies...
    assert_eq!(b.post_json("/api/token/refresh/", json!({"refresh": stolen})).await.status, 401);
    // ...the newest token included, wherever it is presented.
    let reply = a.post_json("/api/token/refresh/", json!({"refresh": newest})).await;
    assert_eq!(reply.status, 401, "{}", reply.text);
    let audit = String::from_utf8(cli(&db, &["audit", "tail", "-n", "20"], None).stdout).unwrap();
    assert!(audit.contains("refresh_reuse_detected"), "{audit}");
}

async fn key_rotation_reaches_every_replica(backend: Backend) {
    let db = TestDb::new(backend).await;
    let settings = [("KEYS_RELOAD_INTERVAL", "1s")];
    let a = Replica::start(&db, &settings).await;
    let b = Replica::start(&db, &settings).await;
    create_user(&db, "alice");
    let (old_access, _) = a.login("alice", "correct horse").await;
    assert_eq!(jwks(&a).await, jwks(&b).await);
    let old_kid = header(&old_access)["kid"].clone();

    cli(&db, &["keys", "rotate"], None);
    let started = Instant::now();
    for replica in [&a, &b] {
        loop {
            let (access, _) = replica.login("alice", "correct horse").await;
            if header(&access)["kid"] != old_kid {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "a replica still signs with the old key after 60 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let (a_set, b_set) = (jwks(&a).await, jwks(&b).await);
    assert_eq!(a_set, b_set);
    assert_eq!(a_set["keys"].as_array().unwrap().len(), 2, "the old key stays published: {a_set}");
    // Tokens signed by the old key keep verifying everywhere until they expire.
    for replica in [&a, &b] {
        assert_eq!(replica.post_json("/api/token/verify/", json!({"token": old_access})).await.status, 200);
    }
    println!("key rotation reached both replicas in {:?}", started.elapsed());
    let _ = claims;
}

async fn webhook_dedup_holds_across_replicas(backend: Backend) {
    use base64::{Engine, engine::general_purpose::STANDARD};
    use hmac::{Hmac, Mac};
    let clerk = FakeClerk::start().await;
    let db = TestDb::new(backend).await;
    let key = b"replicas share one webhook secret";
    let secret = format!("whsec_{}", STANDARD.encode(key));
    let owned = clerk.settings();
    let mut settings: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    settings.push(("CLERK_WEBHOOK_SIGNING_SECRET", &secret));
    let a = Replica::start(&db, &settings).await;
    let b = Replica::start(&db, &settings).await;

    let body = json!({"type": "user.created", "data": crate::fake_clerk::clerk_user("user_rep", Some("rep"), "rep@example.com", true, crate::helpers::now() * 1000)}).to_string();
    let timestamp = crate::helpers::now().to_string();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("msg_shared.{timestamp}.{body}").as_bytes());
    let signature = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    let deliver = |replica: &Replica| {
        replica
            .client
            .post(replica.url("/webhooks/clerk/"))
            .header("content-type", "application/json")
            .header("svix-id", "msg_shared")
            .header("svix-timestamp", &timestamp)
            .header("svix-signature", &signature)
            .body(body.clone())
            .send()
    };
    assert_eq!(deliver(&a).await.unwrap().status(), 200);
    cli(&db, &["user", "deactivate", "rep"], None);
    // Svix redelivers the same message; the load balancer sends it to the other replica.
    assert_eq!(deliver(&b).await.unwrap().status(), 200);
    let users: Vec<Value> = serde_json::from_slice(&cli(&db, &["user", "list", "--json"], None).stdout).unwrap();
    let rep = users.iter().find(|u| u["username"] == "rep").unwrap();
    assert_eq!(rep["is_active"], false, "the redelivery was applied again on the other replica");
}
