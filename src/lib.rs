//! tokensmith: a self-hosted JWT issuing service, simplejwt-compatible.

// Leaves first: each module uses only those above it (tests/module_graph.rs keeps it so).
pub mod clock;
pub mod domain;
pub mod key_material;
pub mod config;
pub mod mail;
pub mod passwords;
pub mod store;
pub mod throttle;
pub mod tokens;
pub mod accounts;
pub mod django_import;
pub mod sessions;
pub mod external;
pub mod exchange;
pub mod webhooks;
pub mod admin;
pub mod http;
pub mod cli;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// jsonwebtoken compiles without a crypto backend chosen and then panics at the first
/// signature; choose aws-lc-rs explicitly, once, before anything signs.
pub fn install_crypto_provider() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

/// Logs go to stderr (stdout is the CLI's output); `RUST_LOG` filters, `LOG_FORMAT=json` for machines.
pub fn init_tracing(config: &config::Config, serving: bool) {
    let default = if serving { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match config.log_format {
        config::LogFormat::Json => registry.with(fmt::layer().json().with_writer(std::io::stderr)).try_init(),
        config::LogFormat::Text => {
            let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
            registry.with(fmt::layer().with_ansi(colour).with_writer(std::io::stderr)).try_init()
        }
    };
}
