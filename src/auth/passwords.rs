//! argon2id hashing, off the async runtime and bounded: a login flood queues for a permit
//! instead of starving token verification or allocating 19 MiB per request without limit.

use std::sync::Arc;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed")]
    Hashing,
    #[error("password hashing task failed")]
    Task(#[from] tokio::task::JoinError),
}

#[derive(Clone)]
pub struct PasswordHasherPool {
    permits: Arc<Semaphore>,
    /// Verified against when the user does not exist, so an unknown username costs what a
    /// wrong password costs.
    dummy_hash: Arc<str>,
}

/// OWASP's argon2id parameters (m=19456 KiB, t=2, p=1) are argon2's defaults.
fn argon2() -> Argon2<'static> {
    Argon2::default()
}

pub fn hash_blocking(password: &str) -> Result<String, PasswordError> {
    argon2().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|_| PasswordError::Hashing)
}

fn verify_blocking(password: &str, hash: &str) -> bool {
    // Hashes moved over from Django's Argon2PasswordHasher are `argon2` + the PHC string.
    let phc = hash.strip_prefix("argon2").filter(|rest| rest.starts_with("$argon2")).unwrap_or(hash);
    argon2().verify_password(password.as_bytes(), phc).is_ok()
}

impl PasswordHasherPool {
    pub fn new(concurrency: usize) -> Result<Self, PasswordError> {
        let dummy_hash = hash_blocking("tokensmith dummy password for unknown users")?;
        Ok(Self { permits: Arc::new(Semaphore::new(concurrency)), dummy_hash: dummy_hash.into() })
    }

    pub async fn hash(&self, password: SecretString) -> Result<String, PasswordError> {
        let _permit = self.permits.acquire().await.expect("the semaphore is never closed");
        tokio::task::spawn_blocking(move || hash_blocking(password.expose_secret())).await?
    }

    /// Verifies `password` against `hash`, or against the dummy hash when there is none, so
    /// the time taken does not tell whether the account exists or has a password.
    pub async fn verify(&self, password: SecretString, hash: Option<&str>) -> Result<bool, PasswordError> {
        let (hash, real) = match hash {
            Some(h) => (Arc::<str>::from(h), true),
            None => (self.dummy_hash.clone(), false),
        };
        let _permit = self.permits.acquire().await.expect("the semaphore is never closed");
        let ok = tokio::task::spawn_blocking(move || verify_blocking(password.expose_secret(), &hash)).await?;
        Ok(ok && real)
    }
}
