//! One integration-test binary: HTTP in, JSON out, against a real listener.

mod helpers;
mod fake_clerk;
mod process;
mod replicas;
mod outage;
mod throttle;

mod tokens;
mod cli;
mod cookie;
mod config;
mod hostile;
mod issuers;
mod keys;
mod clerk;
mod clerk_sync;
mod clerk_webhooks;
mod ops;
