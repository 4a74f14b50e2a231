//! Password hashing and checking on a fixed pool of threads, off the async runtime and bounded:
//! a login flood queues for a hashing thread instead of starving token verification. New
//! passwords are hashed with argon2id (`phc`); stored hashes may also be any of Django's
//! (`django`), moved over with their users, and are checked on the same threads.
//!
//! Each hashing thread owns its 19 MiB argon2 working memory and reuses it for every hash.
//! Allocating it per hash (what `Argon2::hash_password` does) costs page faults on every login,
//! and spread over many threads the allocator keeps the freed blocks: hundreds of MB under a
//! login flood. Here memory stays at threads × 19 MiB, plus, while one runs, what a costlier
//! stored hash asks for (at most 256 MiB, see the ceilings in `phc` and `django`).
//!
//! A password that matches a hash in another format, or at other parameters, is hashed again
//! as new passwords are, in the same job: the login that checked it stores the new hash, so each
//! user pays for an imported hash once.

mod django;
mod phc;
mod policy;

use std::{
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex, mpsc},
};

use ::argon2::Block;
use secrecy::{ExposeSecret, SecretString};

pub use self::phc::hash_with_memory;
pub use self::policy::{PasswordOwner, PasswordPolicy, PasswordRejected};
use self::{django::DjangoHash, phc::Argon2Hash};

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed")]
    Hashing,
    #[error("the password hashing threads are gone")]
    PoolGone,
}

/// Why a stored password hash can never match: a short phrase that names the fault and never
/// repeats the hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsupportedHash {
    #[error("unknown hasher {0:?}")]
    UnknownHasher(String),
    #[error("not a password hash in a known format")]
    Unrecognised,
    #[error("longer than {} characters", django::MAX_STORED_CHARS)]
    TooLong,
    #[error("{hasher} {why}")]
    Invalid { hasher: &'static str, why: &'static str },
    #[error("{hasher} {what} above the {ceiling} ceiling")]
    AboveCeiling { hasher: &'static str, what: &'static str, ceiling: &'static str },
}

/// What checking a password against a stored hash found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Wrong password; or no hash, an unusable one (`!…`), or one that can never match.
    Mismatch,
    /// The password matches a hash tokensmith would make now.
    Matched,
    /// The password matches a hash of another format or parameters (`from` names it);
    /// `rehash` is the same password hashed as new passwords are, to store in its place.
    MatchedOutdated { rehash: String, from: &'static str },
}

impl Verdict {
    pub fn matched(&self) -> bool {
        !matches!(self, Self::Mismatch)
    }
}

/// A hash of a password nobody has, at the parameters new hashes get: an unknown username, or a
/// hash that can never match, is checked against it, so it costs what a wrong password costs.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$JSYoQaB204eVdBz8hCMekg$tvNfh5GmAirsOBtv2JvQ1XyNKbUbZvCtT5CV+BEPkUA";

/// Whether `hash` can be stored as a user's password hash: one tokensmith or Django made, within
/// the ceilings on its cost, or an unusable one (empty or `!…`, which no password matches). For
/// the importer, which refuses the rest naming the fault.
pub fn check_stored_hash(hash: &str) -> Result<(), UnsupportedHash> {
    StoredHash::parse(hash).map(drop)
}

/// A stored hash that may match: tokensmith's argon2 PHC string, or one of Django's formats.
enum StoredHash<'a> {
    Phc(Argon2Hash),
    Django(DjangoHash<'a>),
}

impl<'a> StoredHash<'a> {
    /// `None` for an unusable hash: empty, or Django's `!…` (`set_unusable_password`).
    fn parse(stored: &'a str) -> Result<Option<Self>, UnsupportedHash> {
        if stored.is_empty() || stored.starts_with('!') {
            return Ok(None);
        }
        if stored.len() > django::MAX_STORED_CHARS {
            return Err(UnsupportedHash::TooLong);
        }
        if stored.starts_with("$argon2") {
            return Ok(Some(Self::Phc(Argon2Hash::parse(stored, "argon2")?)));
        }
        Ok(Some(Self::Django(DjangoHash::parse(stored)?)))
    }

    fn verify(&self, password: &[u8], memory: &mut Vec<Block>) -> bool {
        match self {
            Self::Phc(hash) => hash.verify(password, memory),
            Self::Django(hash) => hash.verify(password, memory),
        }
    }

    /// The hasher a rehash replaces, or `None` for a hash tokensmith would make now.
    fn outdated(&self) -> Option<&'static str> {
        match self {
            Self::Phc(hash) if hash.is_current() => None,
            Self::Phc(hash) => Some(hash.variant()),
            Self::Django(hash) => Some(hash.hasher()),
        }
    }
}

/// Checks `password` against `stored` in `memory`, as the hashing threads do it, as its format
/// says. Whatever cannot match (no hash, an unusable or unsupported one) costs a check against
/// the dummy hash instead; a wrong password against a hash of another format or parameters
/// costs one too, so that a hash cheaper than tokensmith's own (salted MD5, the PBKDF2 of old
/// Django versions) does not answer faster than an unknown username does.
pub fn verify_with_memory(password: &[u8], stored: Option<&str>, memory: &mut Vec<Block>) -> Verdict {
    let hash = match stored.map(StoredHash::parse) {
        Some(Ok(Some(hash))) => hash,
        _ => {
            check_dummy(password, memory);
            return Verdict::Mismatch;
        }
    };
    if !hash.verify(password, memory) {
        if hash.outdated().is_some() {
            check_dummy(password, memory);
        }
        return Verdict::Mismatch;
    }
    let Some(from) = hash.outdated() else { return Verdict::Matched };
    match hash_with_memory(password, memory) {
        Ok(rehash) => Verdict::MatchedOutdated { rehash, from },
        // The password is right all the same: the hash is upgraded at a later login.
        Err(_) => Verdict::Matched,
    }
}

/// What a wrong password against a hash tokensmith makes now costs.
fn check_dummy(password: &[u8], memory: &mut Vec<Block>) {
    if let Ok(dummy) = Argon2Hash::parse(DUMMY_HASH, "argon2") {
        dummy.verify(password, memory);
    }
}

/// Compares in constant time (in the contents; lengths are not secret).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

#[derive(Clone)]
pub struct PasswordHasherPool {
    jobs: mpsc::Sender<Job>,
}

/// One hash with working memory of its own: for the CLI, which hashes once.
pub fn hash_blocking(password: &str) -> Result<String, PasswordError> {
    hash_with_memory(password.as_bytes(), &mut Vec::new())
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
                    let mut memory = vec![Block::new(); phc::params().block_count()];
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

    /// Checks `password` against `hash` (tokensmith's or one of Django's), or against the dummy
    /// hash when there is none or it can never match, so the time taken does not tell whether
    /// the account exists or has a usable password, beyond what the stored hash's own cost tells.
    pub async fn verify(&self, password: SecretString, hash: Option<&str>) -> Result<Verdict, PasswordError> {
        let hash = hash.map(str::to_owned);
        self.run(move |memory| verify_with_memory(password.expose_secret().as_bytes(), hash.as_deref(), memory)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_is_a_real_hash_at_the_current_parameters() {
        let mut memory = Vec::new();
        let Ok(Some(StoredHash::Phc(dummy))) = StoredHash::parse(DUMMY_HASH) else { panic!("the dummy hash parses") };
        assert!(dummy.is_current());
        assert!(dummy.verify(b"tokensmith dummy password for unknown users", &mut memory));
    }

    #[test]
    fn verdicts_say_whether_it_matched_and_what_replaces_an_outdated_hash() {
        let mut memory = Vec::new();
        let current = hash_blocking("correct horse").unwrap();
        assert_eq!(verify_with_memory(b"correct horse", Some(&current), &mut memory), Verdict::Matched);
        assert_eq!(verify_with_memory(b"correct horsf", Some(&current), &mut memory), Verdict::Mismatch);
        assert_eq!(verify_with_memory(b"correct horse", None, &mut memory), Verdict::Mismatch);
        // Django's Argon2PasswordHasher stores "argon2" and the PHC string.
        let django = format!("argon2{current}");
        let Verdict::MatchedOutdated { rehash, from } =
            verify_with_memory(b"correct horse", Some(&django), &mut memory)
        else {
            panic!("Django's argon2 at tokensmith's parameters is still rewritten without its prefix")
        };
        assert_eq!(from, "argon2");
        assert!(rehash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{rehash}");
        assert_eq!(verify_with_memory(b"correct horse", Some(&rehash), &mut memory), Verdict::Matched);
        for unusable in ["", "!", "!abcdef", "not a hash"] {
            assert_eq!(verify_with_memory(b"", Some(unusable), &mut memory), Verdict::Mismatch, "{unusable:?}");
            assert_eq!(verify_with_memory(unusable.as_bytes(), Some(unusable), &mut memory), Verdict::Mismatch);
        }
    }

    /// Salted MD5, or PBKDF2 at the iterations of old Django versions, takes far less than
    /// tokensmith's argon2id: a wrong password against one does the dummy hash's work too (its
    /// working memory is used), so it takes no less than an unknown username does.
    #[test]
    fn a_wrong_password_against_a_cheaper_hash_costs_what_an_unknown_user_costs() {
        for cheap in [
            "md5$seasalt2024abcdefgh$684f470ce5580bb18626457290b9b092",
            "pbkdf2_sha256$1000$seasalt$rm4xNGznWUi/NcYgguI9Fx1GzxmmnVaA8KPX69eUAvE=",
        ] {
            let mut memory = Vec::new();
            assert_eq!(verify_with_memory(b"wrong", Some(cheap), &mut memory), Verdict::Mismatch);
            assert_eq!(memory.len(), phc::params().block_count(), "{cheap}: the dummy hash was checked too");
        }
    }
}
