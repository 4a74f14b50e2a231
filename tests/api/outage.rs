//! A database outage mid-run: tokensmith degrades to clean 503s, keeps what needs no database
//! working, and recovers by itself. The database is reached through a TCP proxy the test cuts.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use serde_json::json;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};

use crate::{
    helpers::{Backend, TestDb, base_env, run_cli},
    pg_test,
    process::Replica,
};

pg_test!(database_outage_degrades_cleanly_and_recovers);

/// Forwards TCP to `upstream` until cut: then open connections are dropped and new ones are
/// closed as soon as they are accepted, as when a database host goes away.
struct CuttableProxy {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
}

impl CuttableProxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, _) = watch::channel(false);
        let cut_signal = cut.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                let mut is_cut = cut_signal.subscribe();
                if *is_cut.borrow() {
                    continue; // dropped: the client sees the connection close
                }
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = is_cut.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Self { addr, cut }
    }

    fn cut(&self) {
        self.cut.send_replace(true);
    }

    fn restore(&self) {
        self.cut.send_replace(false);
    }
}

async fn database_outage_degrades_cleanly_and_recovers(backend: Backend) {
    let db = TestDb::new(backend).await;
    let mut direct = url::Url::parse(&db.url).unwrap();
    let upstream: SocketAddr =
        format!("{}:{}", direct.host_str().unwrap(), direct.port().unwrap_or(5432)).parse().unwrap();
    let proxy = CuttableProxy::start(upstream).await;
    direct.set_host(Some(&proxy.addr.ip().to_string())).unwrap();
    direct.set_port(Some(proxy.addr.port())).unwrap();
    let proxied = direct.to_string();

    let acquire_timeout = Duration::from_secs(1);
    let server = Replica::start(&db, &[("DATABASE_URL", &proxied), ("DATABASE_ACQUIRE_TIMEOUT", "1s")]).await;
    let out =
        run_cli(&base_env(&db), db.dir(), &["user", "create", "alice", "--password-stdin"], Some("correct horse"));
    assert!(out.status.success());
    let (access, refresh) = server.login("alice", "correct horse").await;

    proxy.cut();
    // Endpoints that need the database: a JSON 503 within the acquire timeout, never a hang or a 500.
    let needs_database = [
        (
            "login",
            server
                .client
                .post(server.url("/api/token/"))
                .json(&json!({"username": "alice", "password": "correct horse"})),
        ),
        ("refresh", server.client.post(server.url("/api/token/refresh/")).json(&json!({"refresh": refresh}))),
        ("me", server.client.get(server.url("/api/me/")).bearer_auth(&access)),
        ("readyz", server.client.get(server.url("/readyz"))),
    ];
    for (name, request) in needs_database {
        let started = Instant::now();
        let reply = crate::helpers::read(request.send().await.unwrap()).await;
        let took = started.elapsed();
        assert_eq!(reply.status, 503, "{name}: {}\n{}", reply.text, server.log());
        assert!(reply.json().is_object(), "{name}: {}", reply.text);
        assert!(took < acquire_timeout + Duration::from_secs(2), "{name} took {took:?}");
    }
    // What needs no database keeps working.
    assert_eq!(server.get("/healthz").await.status, 200);
    let verified = server.post_json("/api/token/verify/", json!({"token": access})).await;
    assert_eq!(verified.status, 200, "{}", verified.text);
    assert_eq!(server.get("/.well-known/jwks.json").await.status, 200);

    // The database comes back: the same process recovers, no restart.
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.get("/readyz").await.status != 200 {
        assert!(Instant::now() < deadline, "not ready 30 s after the database came back:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let refreshed = server.post_json("/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let (_, _) = server.login("alice", "correct horse").await;
    let mut server = server;
    assert!(server.is_running(), "the process died during the outage:\n{}", server.log());
    assert!(!server.log().contains("panicked"), "{}", server.log());
}
