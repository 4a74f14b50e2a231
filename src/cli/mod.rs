//! The `tokensmith` command line: serve, and the operator's chores, over the same services the
//! HTTP API uses. Errors are one line naming the argument or variable at fault.

mod chores;
mod clerk;
mod groups;
mod import;
mod users;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::{
    accounts::{Accounts, Actor},
    config::Config,
    http::{self, Application},
    passwords::PasswordHasherPool,
    store::Store,
    throttle::LoginThrottle,
};

#[derive(Parser)]
#[command(name = "tokensmith", version, about = "A self-hosted JWT issuing service, simplejwt-compatible")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default)
    Serve,
    /// Apply database migrations and exit
    Migrate,
    /// Manage users
    #[command(subcommand)]
    User(UserCommand),
    /// Manage groups (access tokens list a user's groups with TOKEN_CLAIMS=groups)
    #[command(subcommand)]
    Group(GroupCommand),
    /// Manage signing keys
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Housekeeping of refresh-token records
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Print the OpenAPI document the server serves
    Openapi,
    /// Read the security audit trail
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Clerk: pull users from the Backend API; link existing users to Clerk users
    #[command(subcommand)]
    Clerk(ClerkCommand),
    /// Bring users and live sessions over from another deployment
    #[command(subcommand)]
    Import(ImportCommand),
}

#[derive(Subcommand)]
pub enum ImportCommand {
    /// Django + simplejwt: users (ids, hashes, groups) and outstanding refresh tokens, in one transaction
    Django(import::DjangoImport),
}

#[derive(Subcommand)]
pub enum ClerkCommand {
    /// Create or update the local user of every Clerk user (CLERK_SECRET_KEY, CLERK_API_URL)
    SyncUsers,
    /// Link an existing local user to a Clerk user: that Clerk user's exchanges sign in as it
    /// (its password login and sessions stay)
    Link {
        username: String,
        /// The Clerk user id, user_…
        clerk_user_id: String,
    },
    /// Unlink a local user from its Clerk user: Clerk has no further say over it, and the
    /// sessions exchanged from Clerk end (its password login and password sessions stay)
    Unlink { username: String },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user
    Create(CreateUser),
    /// Set a user's password (read from stdin) and end every session of the user
    SetPassword {
        username: String,
        /// Read the password from standard input (required)
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Deactivate a user: no login, no refresh, every session ended
    Deactivate { username: String },
    /// Activate a user again
    Activate { username: String },
    /// List users, one per line
    List {
        /// Print a JSON array instead
        #[arg(long)]
        json: bool,
    },
    /// Add a user to a group
    AddGroup { username: String, group: String },
    /// Remove a user from a group
    RemoveGroup { username: String, group: String },
    /// Set the custom claims merged into a user's access tokens (a JSON object; {} clears them)
    SetClaims { username: String, claims: String },
}

#[derive(Subcommand)]
pub enum GroupCommand {
    /// Create a group
    Create { name: String },
    /// List groups, one per line, with their member counts
    List {
        /// Print a JSON array instead
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct CreateUser {
    pub username: String,
    #[arg(long, default_value = "")]
    pub email: String,
    #[arg(long, default_value = "")]
    pub first_name: String,
    #[arg(long, default_value = "")]
    pub last_name: String,
    /// Mark the user as staff (`is_staff`)
    #[arg(long)]
    pub staff: bool,
    /// Mark the user as superuser (`is_superuser`)
    #[arg(long)]
    pub superuser: bool,
    /// Read the password from standard input; without it the user cannot log in with a password
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Make a new signing key; older public keys stay published until their tokens expire
    Rotate,
    /// List signing keys
    List,
}

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Delete expired refresh-token records and print how many
    FlushExpired,
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Print the latest security events, oldest first
    Tail {
        /// How many events
        #[arg(short = 'n', default_value_t = 20)]
        n: i64,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
}

/// What the audit trail names as the actor of an operator's command.
const ACTOR: Actor<'static> = Actor::CLI;

/// A failure the operator must fix; `main` prints it as one line.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    /// Configuration errors exit 2, everything else 1.
    pub code: u8,
}

impl<E: Into<anyhow::Error>> From<E> for CliError {
    fn from(e: E) -> Self {
        let e: anyhow::Error = e.into();
        let code = if e.is::<crate::config::ConfigError>() { 2 } else { 1 };
        Self { message: format!("{e:#}").replace('\n', " "), code }
    }
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    let command = cli.command.unwrap_or(Command::Serve);
    let config = Config::from_env()?;
    if let Command::Openapi = command {
        println!("{}", http::openapi_document(&config).to_pretty_json()?);
        return Ok(());
    }
    crate::init_tracing(&config, matches!(command, Command::Serve));
    if let Some(clerk) = &config.clerk
        && clerk.authorized_parties.is_empty()
    {
        tracing::warn!("CLERK_AUTHORIZED_PARTIES is not set: Clerk tokens from any origin will be accepted");
    }
    if let Command::Serve = command {
        let app = Application::build(config).await?;
        if let Some(addr) = app.metrics_addr() {
            tracing::info!(addr = %addr, "metrics listening (METRICS_LISTEN_ADDR)");
        }
        tracing::info!(addr = %app.local_addr(), "tokensmith listening");
        app.run_until(http::shutdown_signal()).await?;
        return Ok(());
    }
    let store = open_store(&config).await?;
    let result = match command {
        Command::Serve | Command::Openapi => unreachable!("handled above"),
        Command::Migrate => {
            println!("migrations applied");
            Ok(())
        }
        Command::User(c) => users::run(c, &config, &store).await,
        Command::Group(c) => groups::run(c, &config, &store).await,
        Command::Keys(c) => chores::keys(c, &config, &store).await,
        Command::Tokens(TokensCommand::FlushExpired) => chores::flush_expired(&config, &store).await,
        Command::Clerk(c) => clerk::run(c, &config, &store).await,
        Command::Audit(AuditCommand::Tail { n, json }) => chores::audit_tail(&store, n, json).await,
        Command::Import(ImportCommand::Django(args)) => import::django(args, &config, &store).await,
    };
    store.close().await;
    result
}

/// The accounts service for an operator's command: one hashing thread, for at most one password.
fn accounts(config: &Config, store: &Store) -> anyhow::Result<Accounts> {
    let passwords = PasswordHasherPool::new(1)?;
    Ok(Accounts::new(config, store.clone(), passwords, LoginThrottle::new(config, store.clone())))
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(&config.database).await.context("DATABASE_URL: cannot open the database")?;
    store.migrate().await.context("DATABASE_URL: cannot apply migrations")?;
    Ok(store)
}
