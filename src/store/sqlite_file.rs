//! The SQLite file holds the private signing keys and password hashes: it is created readable
//! by its owner only (0600) before SQLite opens it, and SQLite gives its `-wal` and `-shm` files
//! the database file's permissions. An existing file readable by others is reported at start.

use std::path::Path;

/// Creates the database file owner-only when the URL lets SQLite create it (`mode=rwc`) and it
/// does not exist yet; warns when an existing one is readable by group or others.
pub(super) fn prepare(url: &str, path: &Path) {
    let creates = url.split(['?', '&']).any(|part| part == "mode=rwc");
    if path.as_os_str().is_empty() || path == Path::new(":memory:") {
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match std::fs::metadata(path) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                let mode = meta.permissions().mode() & 0o777;
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{mode:o}"),
                    "the database file (signing keys, password hashes) is readable by others; chmod 600 it"
                );
            }
            Ok(_) => {}
            // SQLite reports a file it cannot create or open itself, naming DATABASE_URL.
            Err(_) if creates => {
                let _ = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path);
            }
            Err(_) => {}
        }
    }
}
