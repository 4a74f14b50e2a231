//! One integration-test binary: HTTP in, JSON out, against a real listener.

mod fake_clerk;
mod helpers;
mod outage;
mod process;
mod python;
mod replicas;
mod throttle;

mod algorithms;
mod algorithms_pyjwt;
mod auth_header;
mod clerk;
mod clerk_links;
mod clerk_roles;
mod clerk_roles_order;
mod clerk_sync;
mod clerk_webhooks;
mod claims;
mod cli;
mod config;
mod django_hashes;
mod connections;
mod cookie;
mod discovery;
mod django_import;
mod django_sessions;
mod downstream;
mod hostile;
mod issuers;
mod keys;
mod login_by_email;
mod ops;
mod password_policy;
mod sliding;
mod sliding_downstream;
mod tokens;
