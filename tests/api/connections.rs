//! Connections over real TCP: slow and idle ones are closed after `REQUEST_TIMEOUT`, at most
//! `MAX_CONNECTIONS` are served at once, a shutdown finishes the requests in flight, and
//! `/metrics` moves to `METRICS_LISTEN_ADDR` when that is set.

use std::time::{Duration, Instant};

use tokensmith::{config::Config, http::Application};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::{sleep, timeout},
};

use crate::helpers::*;

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

/// Reads (and discards) until the server closes the connection, by EOF or reset; returns how
/// long after `since` that was, or `None` when it is still open `limit` after `since`.
async fn closed_after(stream: &mut (impl AsyncRead + Unpin), since: Instant, limit: Duration) -> Option<Duration> {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::from_std(since + limit);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(since.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Reads one `/healthz` answer from a keep-alive connection (its body ends the response).
async fn healthz_answer(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let read = timeout(Duration::from_secs(5), async {
        while !answer.ends_with(br#"{"status":"ok"}"#) {
            let n = stream.read(&mut buf).await.expect("the answer arrives");
            assert!(n > 0, "closed before answering: {}", String::from_utf8_lossy(&answer));
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    read.unwrap_or_else(|_| panic!("no answer in 5 s: {}", String::from_utf8_lossy(&answer)));
    String::from_utf8_lossy(&answer).into_owned()
}

/// Hundreds of connections that send nothing, half a request line, or headers a byte at a time
/// are all closed once `REQUEST_TIMEOUT` has passed since they opened, and `/healthz` answers
/// while they hang.
async fn slow_and_silent_connections_are_closed_after_request_timeout(backend: Backend) {
    let app = spawn_app_with(backend, &[("REQUEST_TIMEOUT", "1s")]).await;
    let mut readers = Vec::new();
    // Dropping a write half sends FIN, which the server would rightly take as a close.
    let mut writers = Vec::new();
    let mut drips = Vec::new();
    for i in 0..300 {
        let stream = TcpStream::connect(app.addr).await.expect("connect");
        let opened = Instant::now();
        let (reader, mut writer) = stream.into_split();
        match i % 3 {
            0 => writers.push(writer),
            1 => {
                writer.write_all(b"GET /heal").await.unwrap();
                writers.push(writer);
            }
            _ => drips.push(tokio::spawn(async move {
                let _ = writer.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Drip: ").await;
                for _ in 0..25 {
                    sleep(Duration::from_millis(200)).await;
                    if writer.write_all(b"a").await.is_err() {
                        break;
                    }
                }
            })),
        }
        readers.push((i, reader, opened));
    }

    let health = timeout(Duration::from_secs(2), app.get("/healthz")).await.expect("/healthz answers in 2 s");
    assert_eq!(health.status, 200, "{}", health.text);

    let closed =
        futures::future::join_all(readers.iter_mut().map(|(i, reader, opened)| async move {
            (*i, closed_after(reader, *opened, Duration::from_secs(5)).await)
        }))
        .await;
    for (i, after) in closed {
        let kind = ["silent", "half a request line", "dripping headers"][i % 3];
        let after = after.unwrap_or_else(|| panic!("connection {i} ({kind}) still open 5 s after it opened"));
        assert!(
            after >= Duration::from_millis(900),
            "connection {i} ({kind}) closed after {after:?}, before the timeout"
        );
        assert!(after < Duration::from_secs(4), "connection {i} ({kind}) closed only after {after:?}");
    }
    drips.iter().for_each(|d| d.abort());
    drop(writers);
    // A fresh client: the first one's idle connection is itself closed about now.
    assert_eq!(Http::new(app.addr).get("/healthz").await.status, 200);
}

/// An idle keep-alive connection is closed `REQUEST_TIMEOUT` after its last response; the wait
/// starts again at every response, so a connection that keeps asking in time lives on.
async fn idle_keep_alive_connections_are_closed_after_request_timeout(backend: Backend) {
    let app = spawn_app_with(backend, &[("REQUEST_TIMEOUT", "1s")]).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let opened = Instant::now();
    for _ in 0..3 {
        stream.write_all(HEALTHZ).await.unwrap();
        let answer = healthz_answer(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        sleep(Duration::from_millis(600)).await;
    }
    assert!(opened.elapsed() > Duration::from_millis(1500), "the connection outlived one timeout");
    stream.write_all(HEALTHZ).await.unwrap();
    healthz_answer(&mut stream).await;
    let answered = Instant::now();
    let after = closed_after(&mut stream, answered, Duration::from_secs(5)).await.expect("closed within 5 s");
    assert!(after >= Duration::from_millis(900), "closed {after:?} after the response, before the timeout");
    assert!(after < Duration::from_secs(3), "closed only {after:?} after the response");
}

/// With `MAX_CONNECTIONS=4` and four connections open, a fifth waits to be accepted, and is
/// served as soon as one of the four closes.
async fn connections_past_max_connections_wait_to_be_accepted(backend: Backend) {
    let app = spawn_app_with(backend, &[("MAX_CONNECTIONS", "4")]).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        // Answered, so accepted for sure; then idle, kept open (REQUEST_TIMEOUT is 30s).
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream.write_all(HEALTHZ).await.unwrap();
        healthz_answer(&mut stream).await;
        held.push(stream);
    }
    // The kernel completes the handshake; the server does not accept it yet.
    let mut fifth = TcpStream::connect(app.addr).await.unwrap();
    fifth.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let early = timeout(Duration::from_millis(800), fifth.read(&mut buf)).await;
    assert!(early.is_err(), "the fifth connection was answered past MAX_CONNECTIONS=4: {early:?}");

    drop(held.pop());
    let mut answer = Vec::new();
    timeout(Duration::from_secs(3), fifth.read_to_end(&mut answer))
        .await
        .expect("served once a connection closed")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(r#"{"status":"ok"}"#), "{answer}");
}

/// A shutdown stops accepting, closes idle connections and those whose request has not fully
/// arrived at once, finishes the request in flight, and only then returns.
async fn shutdown_finishes_requests_in_flight(backend: Backend) {
    let db = TestDb::new(backend).await;
    let env = base_env(&db);
    tokensmith::install_crypto_provider();
    let config = Config::from_lookup(&|name| env.get(name).cloned()).unwrap();
    let app = Application::build(config).await.unwrap();
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));

    // In flight: its headers and part of its body have arrived.
    let body = br#"{"token":"not-a-token"}"#;
    let head = format!(
        "POST /api/token/verify/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut in_flight = TcpStream::connect(addr).await.unwrap();
    in_flight.write_all(head.as_bytes()).await.unwrap();
    in_flight.write_all(&body[..5]).await.unwrap();
    // Idle after one answer, and silent from the start.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(HEALTHZ).await.unwrap();
    healthz_answer(&mut idle).await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut half_sent = TcpStream::connect(addr).await.unwrap();
    half_sent.write_all(b"GET /heal").await.unwrap();
    sleep(Duration::from_millis(200)).await;

    stop.send(()).unwrap();
    let signalled = Instant::now();
    assert!(closed_after(&mut idle, signalled, Duration::from_secs(2)).await.is_some(), "idle connection kept");
    // REQUEST_TIMEOUT is 30s: only the shutdown can close this one so soon.
    assert!(closed_after(&mut silent, signalled, Duration::from_secs(2)).await.is_some(), "silent connection kept");
    let half_closed = closed_after(&mut half_sent, signalled, Duration::from_secs(2)).await;
    assert!(half_closed.is_some(), "connection with half a request line kept");
    let refused = async {
        while let Ok(extra) = TcpStream::connect(addr).await {
            drop(extra);
            sleep(Duration::from_millis(50)).await;
        }
    };
    timeout(Duration::from_secs(2), refused).await.expect("new connections are refused after the shutdown signal");
    sleep(Duration::from_millis(200)).await;
    assert!(!server.is_finished(), "the server stopped with a request in flight");

    in_flight.write_all(&body[5..]).await.unwrap();
    let mut answer = Vec::new();
    timeout(Duration::from_secs(5), in_flight.read_to_end(&mut answer))
        .await
        .expect("the request in flight is answered, then its connection closed")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.ends_with(TOKEN_INVALID), "{answer}");
    timeout(Duration::from_secs(5), server)
        .await
        .expect("run_until returns once the last request is answered")
        .unwrap()
        .unwrap();
}

/// `METRICS_LISTEN_ADDR` set: `/metrics` is served there and nowhere else; unset, on the API.
async fn metrics_listen_addr_moves_metrics_off_the_api(backend: Backend) {
    let app = spawn_app_with(backend, &[("METRICS_LISTEN_ADDR", "127.0.0.1:0")]).await;
    let metrics_addr = app.metrics_addr.expect("a metrics listener");
    assert_ne!(metrics_addr, app.addr);
    for path in ["/metrics", "/metrics/"] {
        let api = app.get(path).await;
        assert_eq!(api.status, 404, "{path} on the API listener: {}", api.text);
        assert_eq!(api.json()["detail"], "Not found.", "{}", api.text);
    }
    assert_eq!(app.get("/healthz").await.status, 200);

    let metrics = Http::new(metrics_addr);
    for path in ["/metrics", "/metrics/"] {
        let reply = metrics.get(path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert!(reply.header("content-type").unwrap_or("").starts_with("text/plain"));
        assert!(reply.text.contains("http_requests_total"), "{}", reply.text);
    }
    // The API's requests are counted, and the API is not served on the metrics listener.
    assert!(metrics.get("/metrics").await.text.contains(r#"route="/healthz""#));
    for path in ["/healthz", "/api/token/", "/openapi.json", "/docs/"] {
        assert_eq!(metrics.get(path).await.status, 404, "{path} on the metrics listener");
    }
    assert_eq!(metrics.post_json("/metrics", serde_json::json!({})).await.status, 405);

    let unset = spawn_app(backend).await;
    assert!(unset.metrics_addr.is_none());
    let reply = unset.get("/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(reply.text.contains("http_requests_total"), "{}", reply.text);
}

/// A metrics address already taken stops the server at start, naming the variable.
async fn a_taken_metrics_address_is_named(backend: Backend) {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let db = TestDb::new(backend).await;
    let mut env = base_env(&db);
    env.insert("METRICS_LISTEN_ADDR".to_owned(), taken.local_addr().unwrap().to_string());
    tokensmith::install_crypto_provider();
    let config = Config::from_lookup(&|name| env.get(name).cloned()).unwrap();
    let error = Application::build(config).await.err().expect("the address is taken");
    assert!(error.to_string().starts_with("METRICS_LISTEN_ADDR: cannot listen on"), "{error:#}");
}

/// `tokensmith serve` started by `sh` under `ulimit_args`; returns it once `/healthz` answers,
/// with its log so far.
async fn serve_under_ulimit(db: &TestDb, ulimit_args: &str) -> (std::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = db.dir().join(format!("serve-{port}.log"));
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit {ulimit_args} && exec \"$0\" serve"))
        .arg(binary())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(base_env(db))
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .current_dir(db.dir())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("sh runs");
    let http = Http::new(format!("127.0.0.1:{port}").parse().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = http.client.get(http.url("/healthz")).send().await
            && response.status() == 200
        {
            break;
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(Instant::now() < deadline, "serve under ulimit {ulimit_args} never answered: {text}");
        sleep(Duration::from_millis(100)).await;
    }
    (child, std::fs::read_to_string(&log).unwrap())
}

/// The soft limit on open files of a running process, from /proc.
fn open_files_soft_limit(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("a Max open files line");
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// A soft open-files limit below what `MAX_CONNECTIONS` needs is raised at start; a hard limit
/// below it is reported at start, naming `MAX_CONNECTIONS`.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_files_limit_is_raised_to_fit_max_connections() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (mut raised, log) = serve_under_ulimit(&db, "-S -n 256").await;
    // 1024 connections, a pool of 5 (the tests' DATABASE_MAX_CONNECTIONS), and spare files.
    let soft = open_files_soft_limit(raised.id());
    let _ = raised.kill();
    let _ = raised.wait();
    assert!(soft >= 1024 + 5, "the soft limit stayed at {soft}: {log}");
    assert!(!log.contains("MAX_CONNECTIONS"), "warned though the limit could be raised: {log}");

    let (mut capped, log) = serve_under_ulimit(&db, "-n 256").await;
    let _ = capped.kill();
    let _ = capped.wait();
    let warning = log.lines().find(|l| l.contains("MAX_CONNECTIONS")).unwrap_or_else(|| panic!("no warning: {log}"));
    assert!(warning.contains("WARN") && warning.contains("256"), "{warning}");
}

crate::db_test!(
    slow_and_silent_connections_are_closed_after_request_timeout,
    idle_keep_alive_connections_are_closed_after_request_timeout,
    connections_past_max_connections_wait_to_be_accepted,
    shutdown_finishes_requests_in_flight,
    metrics_listen_addr_moves_metrics_off_the_api,
    a_taken_metrics_address_is_named,
);
