//! `tokensmith import django (--dumpdata FILE | --database URL) [--dry-run]`.

use std::path::PathBuf;

use clap::{ArgGroup, Args};

use super::CliError;
use crate::{
    config::Config,
    django_import::{DjangoSource, ImportSettings, import_django},
    store::Store,
};

#[derive(Args)]
#[command(group(ArgGroup::new("source").required(true).args(["dumpdata", "database"])))]
pub struct DjangoImport {
    /// The JSON of `manage.py dumpdata auth.group auth.user token_blacklist`
    #[arg(long, value_name = "FILE")]
    dumpdata: Option<PathBuf>,
    /// The Django database, read only: sqlite://PATH or postgres://…
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Check and count everything, write nothing
    #[arg(long)]
    dry_run: bool,
}

pub(super) async fn django(args: DjangoImport, config: &Config, store: &Store) -> Result<(), CliError> {
    let source = match (args.dumpdata, args.database) {
        (Some(path), _) => DjangoSource::Dumpdata(path),
        (None, Some(url)) => DjangoSource::Database(url),
        (None, None) => unreachable!("clap requires one source"),
    };
    let settings = ImportSettings { dry_run: args.dry_run, session_max_lifetime: config.session_max_lifetime };
    let counts = import_django(store, &source, &settings).await?;
    let done = if args.dry_run { "django import (dry run, nothing written)" } else { "django import" };
    println!("{done}: {counts}");
    Ok(())
}
