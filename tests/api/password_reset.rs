//! Password reset by email, against a real SMTP server (aiosmtpd, `tests/python/smtp_sink.py`):
//! the mail arrives with its link, the link's token works once, unknown addresses get the same
//! answer and no mail, tokens expire and die when the password changes, sessions end on reset,
//! and an SMTP server that is down fails no request (it is counted in `/metrics`).

use std::{
    io::{BufRead, BufReader},
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{config::serve_refuses, db_test, helpers::*, python};

const RESET_URL: &str = "http://app.test/reset?token={token}";
const LINK_PREFIX: &str = "http://app.test/reset?token=";
const NEW_PASSWORD: &str = "a brand new passphrase";
/// The bound on waiting for a mail that must come (the worker sends it after the response).
const MAIL_WAIT: Duration = Duration::from_secs(30);

/// The SMTP server, killed when dropped; every mail it receives, in order.
struct SmtpSink {
    port: u16,
    child: Child,
    _stdin: ChildStdin,
    mails: mpsc::Receiver<Value>,
}

impl SmtpSink {
    async fn start() -> Self {
        let python = tokio::task::spawn_blocking(python::python)
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let mut child = Command::new(python)
            .arg("smtp_sink.py")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .current_dir(python::scripts())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the venv's python runs");
        let stdout = child.stdout.take().unwrap();
        let (port_tx, port_rx) = mpsc::channel::<u16>();
        let (mail_tx, mails) = mpsc::channel::<Value>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("listening on ").and_then(|p| p.trim().parse().ok()) {
                    let _ = port_tx.send(port);
                } else if let Ok(mail) = serde_json::from_str(&line) {
                    let _ = mail_tx.send(mail);
                }
            }
        });
        let stdin = child.stdin.take().unwrap();
        let port = port_rx.recv_timeout(Duration::from_secs(60)).expect("the SMTP sink listens");
        Self { port, child, _stdin: stdin, mails }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The next mail; panics when none comes within `MAIL_WAIT`.
    async fn next_mail(&self) -> Value {
        let deadline = Instant::now() + MAIL_WAIT;
        loop {
            if let Ok(mail) = self.mails.try_recv() {
                return mail;
            }
            assert!(Instant::now() < deadline, "no mail within {} s", MAIL_WAIT.as_secs());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Mails received but not yet read.
    fn unread(&self) -> Vec<Value> {
        self.mails.try_iter().collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The token in a mail's link.
fn token_of(mail: &Value) -> String {
    let data = mail["data"].as_str().unwrap();
    let at = data.find(LINK_PREFIX).unwrap_or_else(|| panic!("no link in the mail:\n{data}"));
    data[at + LINK_PREFIX.len()..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}

async fn app_with_mail(backend: Backend, smtp_url: &str, extra: &[(&str, &str)]) -> TestApp {
    let settings =
        [("SMTP_URL", smtp_url), ("EMAIL_FROM", "Tokensmith <noreply@example.com>"), ("PASSWORD_RESET_URL", RESET_URL)];
    spawn_app_with(backend, &[&settings[..], extra].concat()).await
}

/// `alice` (password `correct horse`), email `Alice@Example.com`.
fn create_alice(app: &TestApp) {
    let args = ["user", "create", "alice", "--email", "Alice@Example.com", "--password-stdin"];
    let out = app.cli_with_stdin(&args, "correct horse");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

async fn request_reset(app: &TestApp, email: &str) {
    let reply = app.post_json("/api/password/reset/", json!({"email": email})).await;
    assert_eq!((reply.status, reply.text.as_str()), (200, "{}"));
}

async fn confirm(app: &TestApp, token: &str, password: &str) -> Reply {
    app.post_json("/api/password/reset/confirm/", json!({"token": token, "new_password": password})).await
}

fn mail_failures(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("tokensmith_mail_failures_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

db_test!(
    the_mailed_link_resets_the_password_once_and_ends_sessions,
    an_unknown_address_gets_the_same_answer_and_no_mail,
    an_expired_token_is_refused,
    a_password_change_after_the_mail_kills_the_token,
    an_smtp_server_that_is_down_fails_no_request,
    of_two_confirms_of_one_token_exactly_one_wins,
    reset_is_off_without_smtp_url,
);

async fn the_mailed_link_resets_the_password_once_and_ends_sessions(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = app_with_mail(backend, &sink.url(), &[]).await;
    create_alice(&app);
    let (_, refresh) = app.login("alice", "correct horse").await;
    // The address matches ignoring case.
    request_reset(&app, "alice@EXAMPLE.com").await;
    let mail = sink.next_mail().await;
    assert_eq!(mail["to"], json!(["Alice@Example.com"]));
    assert_eq!(mail["from"], "noreply@example.com");
    let token = token_of(&mail);
    assert!(token.len() >= 22, "at least 128 bits: {token}");

    // The policy applies to the new password.
    let weak = confirm(&app, &token, "alice").await;
    assert_eq!(weak.status, 400, "{}", weak.text);
    assert!(weak.json()["new_password"].is_array(), "{}", weak.text);

    let done = confirm(&app, &token, NEW_PASSWORD).await;
    assert_eq!((done.status, done.text.as_str()), (200, "{}"));
    app.login("alice", NEW_PASSWORD).await;
    assert_eq!(
        app.post_json("/api/token/", json!({"username": "alice", "password": "correct horse"})).await.status,
        401
    );
    let old = app.post_json("/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(old.status, 401, "sessions end on reset: {}", old.text);

    let again = confirm(&app, &token, "yet another passphrase").await;
    assert_eq!(again.status, 400);
    assert_eq!(again.json(), json!({"token": ["Invalid or expired token."]}));
    assert_eq!(confirm(&app, "not-a-token", "yet another passphrase").await.status, 400);
    let joined = String::from_utf8_lossy(&app.cli(&["audit", "tail", "--json"]).stdout).into_owned();
    assert!(joined.contains("password_reset_requested") && joined.contains("password_reset_completed"), "{joined}");
    assert!(!joined.contains(&token), "the audit trail never holds the token");
}

async fn an_unknown_address_gets_the_same_answer_and_no_mail(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = app_with_mail(backend, &sink.url(), &[]).await;
    create_alice(&app);
    request_reset(&app, "nobody@example.com").await;
    // Queued after the unknown one: when its mail is here, the unknown one was handled.
    request_reset(&app, "alice@example.com").await;
    let mail = sink.next_mail().await;
    assert_eq!(mail["to"], json!(["Alice@Example.com"]));
    assert!(sink.unread().is_empty(), "no mail for an unknown address");
    let bad = app.post_json("/api/password/reset/", json!({"email": "not an address"})).await;
    assert_eq!(bad.status, 400, "{}", bad.text);
}

async fn an_expired_token_is_refused(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = app_with_mail(backend, &sink.url(), &[("PASSWORD_RESET_TIMEOUT", "1s")]).await;
    create_alice(&app);
    request_reset(&app, "alice@example.com").await;
    let token = token_of(&sink.next_mail().await);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let reply = confirm(&app, &token, NEW_PASSWORD).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    app.login("alice", "correct horse").await;
}

async fn a_password_change_after_the_mail_kills_the_token(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = app_with_mail(backend, &sink.url(), &[]).await;
    create_alice(&app);
    request_reset(&app, "alice@example.com").await;
    let token = token_of(&sink.next_mail().await);
    let (access, _) = app.login("alice", "correct horse").await;
    let body = json!({"current_password": "correct horse", "new_password": "changed by alice herself"});
    assert_eq!(app.post_bearer("/api/password/change/", &access, body).await.status, 200);
    let reply = confirm(&app, &token, NEW_PASSWORD).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    app.login("alice", "changed by alice herself").await;
}

async fn an_smtp_server_that_is_down_fails_no_request(backend: Backend) {
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = app_with_mail(backend, &format!("smtp://127.0.0.1:{port}"), &[]).await;
    create_alice(&app);
    let before = mail_failures(&app.get("/metrics").await.text);
    request_reset(&app, "alice@example.com").await;
    let deadline = Instant::now() + MAIL_WAIT;
    while mail_failures(&app.get("/metrics").await.text) <= before {
        assert!(Instant::now() < deadline, "the failure was not counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn of_two_confirms_of_one_token_exactly_one_wins(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = app_with_mail(backend, &sink.url(), &[]).await;
    create_alice(&app);
    request_reset(&app, "alice@example.com").await;
    let token = token_of(&sink.next_mail().await);
    let (a, b) = tokio::join!(
        confirm(&app, &token, "first racing passphrase"),
        confirm(&app, &token, "second racing passphrase")
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 400], "{} / {}", a.text, b.text);
    let winner = if a.status == 200 { "first racing passphrase" } else { "second racing passphrase" };
    app.login("alice", winner).await;
}

async fn reset_is_off_without_smtp_url(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(app.post_json("/api/password/reset/", json!({"email": "a@example.com"})).await.status, 404);
    assert_eq!(confirm(&app, "x", NEW_PASSWORD).await.status, 404);
    // Whatever the body: off is not a field error.
    for path in ["/api/password/reset/", "/api/password/reset/confirm/"] {
        let empty = app.post_json(path, json!({})).await;
        assert_eq!((empty.status, empty.json()), (404, json!({"detail": "Not found."})), "{path}");
    }
}

#[test]
fn bad_mail_settings_stop_the_process_naming_the_variable() {
    let ok = [("EMAIL_FROM", "noreply@example.com"), ("PASSWORD_RESET_URL", RESET_URL)];
    let with = |var: &'static str, value: &'static str| {
        let mut env = vec![("SMTP_URL", "smtp://127.0.0.1:2525")];
        env.extend(ok.iter().filter(|(k, _)| *k != var));
        if !value.is_empty() {
            env.retain(|(k, _)| *k != var);
            env.push((var, value));
        }
        env
    };
    let line = serve_refuses(&with("SMTP_URL", "http://user:hunter2@mail.example.com"), "SMTP_URL");
    assert!(!line.contains("hunter2"), "the password stays out of the message: {line}");
    serve_refuses(&with("EMAIL_FROM", ""), "EMAIL_FROM");
    serve_refuses(&with("EMAIL_FROM", "not an address"), "EMAIL_FROM");
    serve_refuses(&with("PASSWORD_RESET_URL", "https://app.example.com/reset"), "PASSWORD_RESET_URL");
    let mut env = with("SMTP_URL", "smtps://mail.example.com");
    env.push(("PASSWORD_RESET_TIMEOUT", "soon"));
    serve_refuses(&env, "PASSWORD_RESET_TIMEOUT");
}
