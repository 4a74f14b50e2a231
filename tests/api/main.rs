//! One integration-test binary: HTTP in, JSON out, against a real listener.

mod helpers;

mod tokens;
mod cli;
mod config;
mod hostile;
mod keys;
mod ops;
