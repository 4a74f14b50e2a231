//! The `tokensmith` command line: serve, and the operator's chores.

use std::io::Read;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;

use crate::{
    auth::{
        exchange::{Applied, apply_clerk_user},
        keys::{self, unix_now},
        passwords,
    },
    config::Config,
    external::clerk_api::{ClerkApi, PAGE_SIZE},
    http::{self, Application},
    store::{AuditEvent, NewUser, Store},
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
    /// Clerk: pull users from the Backend API
    #[command(subcommand)]
    Clerk(ClerkCommand),
}

#[derive(Subcommand)]
pub enum ClerkCommand {
    /// Create or update the local user of every Clerk user (CLERK_SECRET_KEY, CLERK_API_URL)
    SyncUsers,
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
}

#[derive(Args)]
pub struct CreateUser {
    username: String,
    #[arg(long, default_value = "")]
    email: String,
    #[arg(long, default_value = "")]
    first_name: String,
    #[arg(long, default_value = "")]
    last_name: String,
    /// Mark the user as staff (`is_staff`)
    #[arg(long)]
    staff: bool,
    /// Mark the user as superuser (`is_superuser`)
    #[arg(long)]
    superuser: bool,
    /// Read the password from standard input; without it the user cannot log in with a password
    #[arg(long)]
    password_stdin: bool,
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
    if let Command::Openapi = command {
        println!("{}", http::openapi_document().to_pretty_json()?);
        return Ok(());
    }
    let config = Config::from_env()?;
    crate::init_tracing(&config, matches!(command, Command::Serve));
    if let Some(clerk) = &config.clerk
        && clerk.authorized_parties.is_empty()
    {
        tracing::warn!("CLERK_AUTHORIZED_PARTIES is not set: Clerk tokens from any origin will be accepted");
    }
    if let Command::Serve = command {
        let app = Application::build(config).await?;
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
        Command::User(c) => user(c, &store).await,
        Command::Keys(c) => keys_command(c, &config, &store).await,
        Command::Tokens(TokensCommand::FlushExpired) => {
            let now = unix_now();
            let deleted = store.flush_expired_tokens(now).await?;
            store.prune_webhook_deliveries(now - http::external::WEBHOOK_DEDUP_RETENTION_SECS).await?;
            store.prune_login_failures(now - keys::secs(config.login_failure_window)).await?;
            store.prune_audit_events(now - keys::secs(config.audit_retention)).await?;
            println!("deleted {deleted} expired refresh tokens");
            Ok(())
        }
        Command::Clerk(ClerkCommand::SyncUsers) => clerk_sync_users(&config, &store).await,
        Command::Audit(AuditCommand::Tail { n, json }) => audit_tail(&store, n, json).await,
    };
    store.close().await;
    result
}

/// Pages through Clerk's users and applies each as a `user.updated` webhook would.
async fn clerk_sync_users(config: &Config, store: &Store) -> Result<(), CliError> {
    let secret =
        config.clerk_secret_key.clone().ok_or_else(|| anyhow!("CLERK_SECRET_KEY: required for clerk sync-users"))?;
    let api = ClerkApi::new(&config.clerk_api_url, secret);
    let (mut seen, mut created, mut updated, mut deactivated, mut unchanged) = (0, 0, 0, 0, 0);
    loop {
        let page = api.users_page(seen).await?;
        for user in &page {
            match apply_clerk_user(store, user).await? {
                Applied::Created => created += 1,
                Applied::Updated => updated += 1,
                Applied::Deactivated => deactivated += 1,
                Applied::SessionsEnded(_) | Applied::Ignored => unchanged += 1,
            }
        }
        seen += page.len();
        if page.len() < PAGE_SIZE {
            break;
        }
    }
    println!(
        "synced {seen} Clerk users: {created} created, {updated} updated, {deactivated} deactivated, {unchanged} unchanged"
    );
    Ok(())
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(config).await.context("DATABASE_URL: cannot open the database")?;
    store.migrate().await.context("DATABASE_URL: cannot apply migrations")?;
    Ok(store)
}

/// The password on standard input, without the newline `echo` adds; never otherwise trimmed.
fn read_password_stdin() -> anyhow::Result<SecretString> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).context("--password-stdin: cannot read standard input")?;
    let password = input.strip_suffix('\n').map(|s| s.strip_suffix('\r').unwrap_or(s)).unwrap_or(&input);
    if password.is_empty() {
        bail!("--password-stdin: the password is empty");
    }
    Ok(SecretString::from(password.to_owned()))
}

/// Django's username rule: at most 150 letters, digits and @ . + - _
fn check_username(username: &str) -> anyhow::Result<()> {
    let valid = !username.is_empty()
        && username.chars().count() <= 150
        && username.chars().all(|c| c.is_alphanumeric() || "@.+-_".contains(c));
    if valid { Ok(()) } else { bail!("USERNAME: use at most 150 letters, digits and @ . + - _ (got {username:?})") }
}

async fn hash(password: SecretString) -> anyhow::Result<String> {
    use secrecy::ExposeSecret;
    Ok(tokio::task::spawn_blocking(move || passwords::hash_blocking(password.expose_secret())).await??)
}

async fn user(command: UserCommand, store: &Store) -> Result<(), CliError> {
    match command {
        UserCommand::Create(args) => {
            check_username(&args.username)?;
            if !args.email.is_empty() && !args.email.contains('@') {
                return Err(anyhow!("--email: not an email address: {:?}", args.email).into());
            }
            let password_hash = match args.password_stdin {
                true => Some(hash(read_password_stdin()?).await?),
                false => None,
            };
            let new = NewUser {
                username: &args.username,
                email: &args.email,
                first_name: &args.first_name,
                last_name: &args.last_name,
                password_hash: password_hash.as_deref(),
                is_staff: args.staff,
                is_superuser: args.superuser,
                created_at: unix_now(),
            };
            let user = store
                .create_user(&new)
                .await?
                .ok_or_else(|| anyhow!("USERNAME: a user named {:?} already exists", args.username))?;
            audit(store, "user_created", user.id, &user.username).await?;
            println!("created user {} (id {})", user.username, user.id);
        }
        UserCommand::SetPassword { username, .. } => {
            let user = existing_user(store, &username).await?;
            let hash = hash(read_password_stdin()?).await?;
            store.set_password_hash(user.id, &hash).await?;
            let ended = store.revoke_user_sessions(user.id, None, unix_now()).await?;
            audit(store, "password_set", user.id, &username).await?;
            println!("password set for {username}; {ended} sessions ended");
        }
        UserCommand::Deactivate { username } => {
            let user = existing_user(store, &username).await?;
            store.set_user_active(&username, false).await?;
            let ended = store.revoke_user_sessions(user.id, None, unix_now()).await?;
            audit(store, "user_deactivated", user.id, &username).await?;
            println!("deactivated {username}; {ended} sessions ended");
        }
        UserCommand::Activate { username } => {
            let user = existing_user(store, &username).await?;
            store.set_user_active(&username, true).await?;
            audit(store, "user_activated", user.id, &username).await?;
            println!("activated {username}");
        }
        UserCommand::List { json } => {
            let users = store.list_users().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                for u in users {
                    // "inactive" whenever it is so: a deactivated admin must stand out too.
                    let flags = [
                        (true, if u.is_active { "active" } else { "inactive" }),
                        (u.is_staff, "staff"),
                        (u.is_superuser, "superuser"),
                    ]
                    .iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, name)| *name)
                    .collect::<Vec<_>>()
                    .join(",");
                    println!("{}\t{}\t{}\t{}", u.id, u.username, u.email, flags);
                }
            }
        }
    }
    Ok(())
}

async fn existing_user(store: &Store, username: &str) -> anyhow::Result<crate::store::User> {
    store.user_by_username(username).await?.ok_or_else(|| anyhow!("USERNAME: no user named {username:?}"))
}

async fn audit(store: &Store, event: &str, user_id: i64, username: &str) -> anyhow::Result<()> {
    let event =
        AuditEvent { event, user_id: Some(user_id), username: Some(username), client_addr: Some("cli"), detail: "" };
    Ok(store.record_audit_event(&event, unix_now()).await?)
}

async fn keys_command(command: KeysCommand, config: &Config, store: &Store) -> Result<(), CliError> {
    match command {
        KeysCommand::Rotate => {
            // Make sure there is a current key to retire, so its tokens keep verifying.
            keys::KeyRing::load(config, store).await?;
            let key = keys::rotate(config, store).await?;
            let event =
                AuditEvent { event: "key_rotated", client_addr: Some("cli"), detail: &key.kid, ..Default::default() };
            store.record_audit_event(&event, unix_now()).await?;
            println!(
                "new signing key {} ({}); running servers use it within {}",
                key.kid,
                key.algorithm,
                humantime::format_duration(config.keys_reload_interval)
            );
        }
        KeysCommand::List => {
            let published_after = unix_now() - keys::secs(config.longest_token_lifetime());
            for key in store.all_signing_keys().await? {
                let status = match key.retired_at {
                    None => "signing".to_owned(),
                    Some(at) if at > published_after => {
                        format!("published until {}", rfc3339(at + keys::secs(config.longest_token_lifetime())))
                    }
                    Some(_) => "retired".to_owned(),
                };
                println!("{}\t{}\t{}\tcreated {}", key.kid, key.algorithm, status, rfc3339(key.created_at));
            }
        }
    }
    Ok(())
}

async fn audit_tail(store: &Store, n: i64, json: bool) -> Result<(), CliError> {
    if n < 1 {
        return Err(anyhow!("-n: must be at least 1").into());
    }
    for event in store.latest_audit_events(n).await? {
        if json {
            println!("{}", serde_json::to_string(&event)?);
        } else {
            println!(
                "{}\t{}\tuser={}\taddr={}\t{}",
                rfc3339(event.occurred_at),
                event.event,
                event
                    .username
                    .as_deref()
                    .map(str::to_owned)
                    .or(event.user_id.map(|id| id.to_string()))
                    .unwrap_or_default(),
                event.client_addr.unwrap_or_default(),
                event.detail
            );
        }
    }
    Ok(())
}

fn rfc3339(unix: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}
