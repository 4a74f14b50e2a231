//! The server's life cycle: build every service from the configuration, serve, shut down.

use std::{
    net::SocketAddr,
    pin::pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use axum::{Router, http::Request};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
};
use tower::{Service, ServiceExt};

use super::{AppState, HttpSettings, metrics_handle, metrics_router, ops::Readiness, router};
use crate::{
    accounts::{Accounts, PasswordResets, Registrations},
    admin::Admin,
    config::Config,
    exchange::Exchange,
    external::{clerk::ClerkVerifier, clerk_api::ClerkApi, issuers::IssuerVerifier, svix::SvixVerifier},
    passwords::PasswordHasherPool,
    sessions::Sessions,
    store::Store,
    throttle::LoginThrottle,
    tokens::{KeyRing, TokenService},
    webhooks::ClerkWebhooks,
};

/// Connections the `METRICS_LISTEN_ADDR` listener serves at once (a few scrapers), on top of
/// `MAX_CONNECTIONS`.
const METRICS_MAX_CONNECTIONS: u32 = 16;

/// File descriptors kept for what is not a client connection: the database pool, outgoing
/// HTTPS (JWKS, Clerk), key files, logs.
const SPARE_DESCRIPTORS: u64 = 128;

/// A built server: database migrated, keys loaded, listeners bound.
pub struct Application {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    state: AppState,
    store: Store,
    keys_reload_interval: Duration,
    limits: ConnectionLimits,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        let store = Store::connect(&config.database).await.context("DATABASE_URL: cannot open the database")?;
        store.migrate().await.context("DATABASE_URL: cannot apply migrations")?;
        let keys = KeyRing::load(&config, &store).await.context("cannot load the signing keys")?;
        let tokens = Arc::new(TokenService::new(config.clone(), store.clone(), keys));
        let passwords = PasswordHasherPool::new(config.password_hash_concurrency)?;
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .map_err(|e| anyhow::anyhow!("LISTEN_ADDR: cannot listen on {}: {e}", config.listen_addr))?;
        let metrics_listener = match config.metrics_listen_addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("METRICS_LISTEN_ADDR: cannot listen on {addr}: {e}"))?,
            ),
            None => None,
        };
        let metrics_connections = if metrics_listener.is_some() { METRICS_MAX_CONNECTIONS } else { 0 };
        raise_descriptor_limit(
            u64::from(config.max_connections)
                + u64::from(metrics_connections)
                + u64::from(config.database.max_connections)
                + SPARE_DESCRIPTORS,
        );
        // One throttle: logins and password changes count against the same guesses.
        let throttle = LoginThrottle::new(&config, store.clone());
        let sessions = Sessions::new(&config, store.clone(), tokens.clone(), passwords.clone(), throttle.clone());
        let accounts = Accounts::new(&config, store.clone(), passwords, throttle);
        let resets = PasswordResets::new(config.mail.as_ref(), accounts.clone())
            .map_err(|e| anyhow::anyhow!("SMTP_URL: {e}"))?;
        let exchange = exchange(&config, &sessions, &accounts, &store);
        let verifier = config.clerk_webhook_signing_secret.as_ref().map(SvixVerifier::from_secret);
        let webhooks = ClerkWebhooks::new(verifier, config.clerk_roles.clone(), accounts.clone(), store.clone());
        let admin = Admin::new(accounts.clone(), sessions.clone());
        let state = AppState {
            sessions,
            registrations: Registrations::new(&config, accounts.clone(), store.clone()),
            accounts,
            resets,
            admin,
            exchange,
            webhooks,
            tokens,
            readiness: Readiness::new(store.clone(), config.database.acquire_timeout),
            settings: Arc::new(HttpSettings::new(&config)),
            metrics: metrics_handle(),
        };
        let limits =
            ConnectionLimits { header_timeout: config.request_timeout, max_connections: config.max_connections };
        Ok(Self { listener, metrics_listener, state, store, keys_reload_interval: config.keys_reload_interval, limits })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Where `/metrics` is served when `METRICS_LISTEN_ADDR` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    /// The database the server runs on (tests look at it from outside the API).
    pub fn store(&self) -> Store {
        self.store.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting, finishes the requests in flight
    /// and closes idle connections.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let tokens = self.state.tokens.clone();
        let interval = self.keys_reload_interval;
        let reloader = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                if let Err(e) = tokens.reload().await {
                    tracing::warn!(error = %e, "could not reload signing keys; keeping the current ones");
                }
            }
        });
        let (stop_tx, stop) = watch::channel(false);
        let signal = tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let metrics = self.state.metrics.clone();
        let api = serve(self.listener, router(self.state), self.limits, stop.clone());
        match self.metrics_listener {
            Some(listener) => {
                let limits = ConnectionLimits { max_connections: METRICS_MAX_CONNECTIONS, ..self.limits };
                let app = metrics_router(metrics, self.limits.header_timeout);
                tokio::join!(api, serve(listener, app, limits, stop));
            }
            None => api.await,
        }
        signal.abort();
        reloader.abort();
        self.store.close().await;
        Ok(())
    }
}

/// What one listener allows its connections.
#[derive(Debug, Clone, Copy)]
struct ConnectionLimits {
    /// How long a connection may take to send a request's complete headers, counted from its
    /// start or from the previous response (hyper's header-read timeout). An idle keep-alive
    /// connection is closed after it too.
    header_timeout: Duration,
    /// Connections served at once; more wait in the kernel's accept queue.
    max_connections: u32,
}

/// Serves `app` over HTTP/1.1 on `listener` until `stop` turns true; then stops accepting,
/// lets every connection finish the request it is serving, closes idle ones, and returns when
/// all are closed.
///
/// `axum::serve` runs hyper without a timer, so it cannot time out a connection that never
/// completes its headers; this is the same loop with hyper's header-read timeout and a cap.
async fn serve(mut listener: TcpListener, app: Router, limits: ConnectionLimits, stop: watch::Receiver<bool>) {
    let mut make_service = app.into_make_service_with_connect_info::<SocketAddr>();
    // One permit per open connection: all permits back means every connection is closed.
    let slots = Arc::new(Semaphore::new(limits.max_connections as usize));
    // HTTP/1 only, as `axum::serve` with axum's default features: no HTTP/2 (h2c) to guard.
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    loop {
        // A permit before accepting: past the cap, connections wait to be accepted.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = stopped(stop.clone()) => break,
        };
        // axum's accept: retries on errors, pausing 1 s when out of file descriptors.
        let (stream, remote) = tokio::select! {
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            () = stopped(stop.clone()) => break,
        };
        // Puts `ConnectInfo<SocketAddr>` on every request of the connection (`ClientAddr` reads it).
        let service = match make_service.call(remote).await {
            Ok(service) => service,
            Err(never) => match never {},
        };
        // Set once a request's headers have arrived and it is being served.
        let asked = Arc::new(AtomicBool::new(false));
        let service = service.map_request({
            let asked = asked.clone();
            move |request: Request<_>| {
                asked.store(true, Ordering::Release);
                request
            }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)).into_owned();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut connection = pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => Some(result),
                () = stopped(stop) => if asked.load(Ordering::Acquire) {
                    // Finishes the request in flight, if any (closes at once when idle).
                    connection.as_mut().graceful_shutdown();
                    Some(connection.await)
                } else {
                    // No request yet: nothing to finish. (hyper would close a connection that
                    // sent nothing, but keep one with half its headers until the timeout.)
                    None
                },
            };
            if let Some(Err(e)) = result {
                // Timeouts and clients that hang up: routine, and the client's doing.
                tracing::debug!(error = %e, client = %remote, "connection closed");
            }
            drop(slot);
        });
    }
    drop(listener);
    let _ = slots.acquire_many(limits.max_connections).await;
}

/// Completes once `stop` is true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Raises the soft limit on open files towards `needed` (as far as the hard limit allows), and
/// warns when it stays below: past it, connections fail to be accepted whatever `MAX_CONNECTIONS`
/// says. Many systems start processes with a soft limit of 1024 and a far higher hard limit.
#[cfg(unix)]
#[allow(clippy::useless_conversion)] // rlim_t is u64 here, u32 on some 32-bit targets.
fn raise_descriptor_limit(needed: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    let current = u64::from(limit.rlim_cur);
    if current >= needed {
        return;
    }
    let raised = libc::rlimit {
        rlim_cur: libc::rlim_t::try_from(needed.min(u64::from(limit.rlim_max))).unwrap_or(limit.rlim_max),
        ..limit
    };
    // SAFETY: setrlimit only reads the struct it is given; the hard limit is unchanged.
    let allowed = if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        u64::from(raised.rlim_cur)
    } else {
        current
    };
    if allowed < needed {
        tracing::warn!(
            open_files_limit = allowed,
            needed,
            "MAX_CONNECTIONS (plus the database pool and spare files) needs more open files than the \
             process may have: lower MAX_CONNECTIONS or raise the limit (ulimit -n, LimitNOFILE)"
        );
    }
}

#[cfg(not(unix))]
fn raise_descriptor_limit(_needed: u64) {}

/// The exchange of external tokens, with the verifiers the configuration asks for.
fn exchange(config: &Config, sessions: &Sessions, accounts: &Accounts, store: &Store) -> Exchange {
    let clerk = config.clerk.as_ref().map(|clerk| ClerkVerifier::new(clerk, config.clerk_roles.as_ref()));
    let clerk_api = match (&clerk, &config.clerk_secret_key) {
        (Some(_), Some(secret)) => Some(ClerkApi::new(&config.clerk_api_url, secret.clone())),
        _ => None,
    };
    let issuers = config.external_issuers.iter().cloned().map(IssuerVerifier::new).collect();
    Exchange::new(clerk, clerk_api, issuers, sessions.clone(), accounts.clone(), store.clone())
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
