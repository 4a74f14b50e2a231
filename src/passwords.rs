//! argon2id hashing on a fixed pool of threads, off the async runtime and bounded: a login
//! flood queues for a hashing thread instead of starving token verification.
//!
//! Each hashing thread owns its 19 MiB argon2 working memory and reuses it for every hash.
//! Allocating it per hash (what `Argon2::hash_password` does) costs page faults on every login,
//! and spread over many threads the allocator keeps the freed blocks: hundreds of MB under a
//! login flood. Here memory stays at threads × 19 MiB.

use std::{
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex, mpsc},
};

use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version, password_hash::phc};
use secrecy::{ExposeSecret, SecretString};

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed")]
    Hashing,
    #[error("the password hashing threads are gone")]
    PoolGone,
}

/// A hash of a password nobody has, at the parameters new hashes get: an unknown username is
/// checked against it, so it costs what a wrong password costs.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$JSYoQaB204eVdBz8hCMekg$tvNfh5GmAirsOBtv2JvQ1XyNKbUbZvCtT5CV+BEPkUA";

/// Bytes of random salt per hash (the PHC string format recommends 16).
const SALT_LEN: usize = 16;

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

#[derive(Clone)]
pub struct PasswordHasherPool {
    jobs: mpsc::Sender<Job>,
}

/// OWASP's argon2id parameters (m=19456 KiB, t=2, p=1) are argon2's defaults.
fn params() -> Params {
    Params::default()
}

/// One hash with working memory of its own: for the CLI, which hashes once.
pub fn hash_blocking(password: &str) -> Result<String, PasswordError> {
    hash_with_memory(password.as_bytes(), &mut Vec::new())
}

/// One hash in `memory` (grown as needed), as the hashing threads do it.
pub fn hash_with_memory(password: &[u8], memory: &mut Vec<Block>) -> Result<String, PasswordError> {
    let params = params();
    let mut salt = [0u8; SALT_LEN];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| PasswordError::Hashing)?;
    let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
    fit(memory, params.block_count());
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, &salt, &mut output, &mut memory[..params.block_count()])
        .map_err(|_| PasswordError::Hashing)?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: (&params).try_into().map_err(|_| PasswordError::Hashing)?,
        salt: Some(phc::Salt::new(&salt).map_err(|_| PasswordError::Hashing)?),
        hash: Some(phc::Output::new(&output).map_err(|_| PasswordError::Hashing)?),
    };
    Ok(hash.to_string())
}

/// Recomputes the hash of `password` with the algorithm, parameters and salt in `stored` and
/// compares in constant time (`phc::Output`'s equality). A malformed hash never matches.
fn verify_with_memory(password: &[u8], stored: &str, memory: &mut Vec<Block>) -> bool {
    // Hashes moved over from Django's Argon2PasswordHasher are `argon2` + the PHC string.
    let phc = stored.strip_prefix("argon2").filter(|rest| rest.starts_with("$argon2")).unwrap_or(stored);
    let Ok(hash) = PasswordHash::new(phc) else { return false };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else { return false };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm.as_str()) else { return false };
    let Ok(version) = hash.version.map(Version::try_from).transpose() else { return false };
    let Ok(params) = Params::try_from(&hash) else { return false };
    let blocks = params.block_count();
    let mut output = vec![0u8; expected.len()];
    fit(memory, blocks);
    let argon2 = Argon2::new(algorithm, version.unwrap_or_default(), params);
    if argon2.hash_password_into_with_memory(password, salt, &mut output, &mut memory[..blocks]).is_err() {
        return false;
    }
    phc::Output::new(&output).is_ok_and(|computed| &computed == expected)
}

/// Hashing threads yield the CPU to the async runtime: a login flood then slows logins, not
/// the verification and refresh requests served beside it. Linux nice values are per thread.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority has no memory effects; `0` names the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, HASHING_NICENESS);
    }
}

/// Nice 5: a nice-0 thread gets about three times the CPU share of a hashing thread when
/// both want it, so logins still progress under heavy token traffic.
#[cfg(target_os = "linux")]
const HASHING_NICENESS: libc::c_int = 5;

/// Grows the thread's working memory when a stored hash asks for more than the default.
fn fit(memory: &mut Vec<Block>, blocks: usize) {
    if memory.len() < blocks {
        memory.resize(blocks, Block::new());
    }
}

impl PasswordHasherPool {
    /// Starts `threads` hashing threads, each with its working memory.
    pub fn new(threads: usize) -> Result<Self, PasswordError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("tokensmith-argon2-{n}"))
                .spawn(move || {
                    lower_priority();
                    let mut memory = vec![Block::new(); params().block_count()];
                    // Ends when every sender is gone (the server shut down).
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        // A panicking job loses its answer (its caller sees an error), not the thread.
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut memory)));
                    }
                })
                .map_err(|_| PasswordError::PoolGone)?;
        }
        Ok(Self { jobs })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _ = answer.send(work(memory));
        });
        self.jobs.send(job).map_err(|_| PasswordError::PoolGone)?;
        metrics::counter!("tokensmith_password_hashes_total").increment(1);
        answered.await.map_err(|_| PasswordError::PoolGone)
    }

    pub async fn hash(&self, password: SecretString) -> Result<String, PasswordError> {
        self.run(move |memory| hash_with_memory(password.expose_secret().as_bytes(), memory)).await?
    }

    /// Verifies `password` against `hash`, or against the dummy hash when there is none, so
    /// the time taken does not tell whether the account exists or has a password.
    pub async fn verify(&self, password: SecretString, hash: Option<&str>) -> Result<bool, PasswordError> {
        let real = hash.is_some();
        let hash = hash.unwrap_or(DUMMY_HASH).to_owned();
        let ok = self.run(move |memory| verify_with_memory(password.expose_secret().as_bytes(), &hash, memory)).await?;
        Ok(ok && real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_here_and_with_the_reference_implementation() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let mut memory = Vec::new();
        let hash = hash_with_memory(b"correct horse", &mut memory).unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify_with_memory(b"correct horse", &hash, &mut memory));
        assert!(!verify_with_memory(b"correct horsf", &hash, &mut memory));
        // The argon2 crate's own verifier accepts our hashes...
        assert!(Argon2::default().verify_password(b"correct horse", hash.as_str()).is_ok());
        // ...and ours accepts the argon2 crate's own hashes.
        let reference = Argon2::default().hash_password_with_salt(b"battery staple", b"reference-salt16").unwrap();
        let reference = reference.to_string();
        assert!(verify_with_memory(b"battery staple", &reference, &mut memory), "{reference}");
        assert!(!verify_with_memory(b"battery stapler", &reference, &mut memory));
        // The dummy hash is a real hash at the current parameters.
        assert!(verify_with_memory(b"tokensmith dummy password for unknown users", DUMMY_HASH, &mut memory));
        assert!(!verify_with_memory(b"x", "not a hash", &mut memory));
        assert!(!verify_with_memory(b"x", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$", &mut memory));
    }
}
