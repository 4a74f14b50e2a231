//! The server's life cycle: build every service from the configuration, serve, shut down.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use tokio::net::TcpListener;

use super::{AppState, HttpSettings, metrics_handle, ops::Readiness, router};
use crate::{
    accounts::Accounts,
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

/// A built server: database migrated, keys loaded, listener bound.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    store: Store,
    keys_reload_interval: Duration,
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
        let sessions = Sessions::new(&config, store.clone(), tokens.clone(), passwords.clone());
        let accounts = Accounts::new(store.clone(), passwords, LoginThrottle::new(&config, store.clone()));
        let exchange = exchange(&config, &sessions, &accounts, &store);
        let verifier = config.clerk_webhook_signing_secret.as_ref().map(SvixVerifier::from_secret);
        let webhooks = ClerkWebhooks::new(verifier, accounts.clone(), store.clone());
        let state = AppState {
            sessions,
            accounts,
            exchange,
            webhooks,
            tokens,
            readiness: Readiness::new(store.clone(), config.database.acquire_timeout),
            settings: Arc::new(HttpSettings::new(&config)),
            metrics: metrics_handle(),
        };
        Ok(Self { listener, state, store, keys_reload_interval: config.keys_reload_interval })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The database the server runs on (tests look at it from outside the API).
    pub fn store(&self) -> Store {
        self.store.clone()
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
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
        let app = router(self.state).into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(self.listener, app).with_graceful_shutdown(shutdown).await;
        reloader.abort();
        self.store.close().await;
        served
    }
}

/// The exchange of external tokens, with the verifiers the configuration asks for.
fn exchange(config: &Config, sessions: &Sessions, accounts: &Accounts, store: &Store) -> Exchange {
    let clerk = config.clerk.as_ref().map(ClerkVerifier::new);
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
