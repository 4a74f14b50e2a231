//! `tokensmith import django`: a Django + simplejwt deployment's users (ids, profiles, flags,
//! dates, groups, password hashes) and live sessions (simplejwt's outstanding tokens), read from
//! a dumpdata file or from the Django database, checked whole, then written in one transaction.
//! Importing again applies only what changed in Django since (see `domain::django`), so the
//! cut-over can be import, switch the clients, import again.

mod dumpdata;
mod snapshot;

use std::{path::PathBuf, time::Duration};

use crate::{
    clock::unix_now,
    domain::django::{DjangoRecords, ImportCounts, RecordError},
    store::{ImportRun, Store, StoreError, read_django_database},
};

/// Where Django's records come from.
pub enum DjangoSource {
    /// `manage.py dumpdata auth.group auth.user token_blacklist` output.
    Dumpdata(PathBuf),
    /// The Django database itself (`sqlite://…`, `postgres://…`), read only.
    Database(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Record(#[from] RecordError),
    #[error("reading {path}: {problem}")]
    Dumpdata { path: String, problem: String },
    #[error("reading the Django database: {0}")]
    Database(StoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct ImportSettings {
    pub dry_run: bool,
    pub session_max_lifetime: Duration,
}

/// Reads, checks and writes (unless `dry_run`) the deployment; returns what was (or would be) done.
pub async fn import_django(
    store: &Store,
    source: &DjangoSource,
    settings: &ImportSettings,
) -> Result<ImportCounts, ImportError> {
    let records = read(source).await?;
    let now = unix_now();
    let snapshot = snapshot::check(records, now)?;
    let run = ImportRun {
        now,
        dry_run: settings.dry_run,
        session_max_lifetime: i64::try_from(settings.session_max_lifetime.as_secs()).unwrap_or(i64::MAX),
    };
    Ok(store.import_django(&snapshot, &run).await??)
}

async fn read(source: &DjangoSource) -> Result<DjangoRecords, ImportError> {
    match source {
        DjangoSource::Dumpdata(path) => {
            let unreadable = |problem: String| ImportError::Dumpdata { path: path.display().to_string(), problem };
            let json = tokio::fs::read_to_string(path).await.map_err(|e| unreadable(e.to_string()))?;
            Ok(dumpdata::parse(&json)?)
        }
        DjangoSource::Database(url) => read_django_database(url).await.map_err(ImportError::Database),
    }
}
