//! Real `tokensmith serve` processes: for behaviour that only shows across processes
//! (replicas on one database) or must not share the test process's metrics.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use crate::helpers::{Http, TestDb, base_env, binary};

/// One `tokensmith serve` process (`Deref`s to its `Http` client). Killed when dropped.
pub struct Replica {
    pub http: Http,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl std::ops::Deref for Replica {
    type Target = Http;
    fn deref(&self) -> &Http {
        &self.http
    }
}

impl Replica {
    /// Starts a server on `db` with the test defaults plus `settings`, on a port of its own, and
    /// waits until it listens.
    pub async fn start(db: &TestDb, settings: &[(&str, &str)]) -> Self {
        let mut env = base_env(db);
        env.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Self::start_with_env(&env, db).await
    }

    pub async fn start_with_env(env: &HashMap<String, String>, db: &TestDb) -> Self {
        let mut child = Command::new(binary())
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env)
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .current_dir(db.dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tokensmith serve starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<SocketAddr>();
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        // Reads the log to its end (a full pipe would stall the server), reporting the address.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line)
                    && entry["fields"]["message"] == "tokensmith listening"
                    && let Some(addr) = entry["fields"]["addr"].as_str().and_then(|a| a.parse().ok())
                {
                    let _ = tx.send(addr);
                }
                lines.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            if let Ok(addr) = rx.try_recv() {
                break addr;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("tokensmith serve exited with {status}: {}", log.lock().unwrap().join("\n"));
            }
            assert!(Instant::now() < deadline, "tokensmith serve did not listen: {}", log.lock().unwrap().join("\n"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Self { http: Http::new(addr), child, log }
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
