//! `tokensmith user …`: the operator's account chores, through `Accounts`.

use std::io::Read;

use anyhow::{Context, bail};
use secrecy::SecretString;

use super::{ACTOR, CliError, UserCommand};
use crate::{
    accounts::{AccountError, Accounts, NewAccount, check_profile},
    config::Config,
    store::Store,
};

pub(super) async fn run(command: UserCommand, config: &Config, store: &Store) -> Result<(), CliError> {
    let accounts = super::accounts(config, store)?;
    match command {
        UserCommand::Create(args) => {
            check_profile(&args.username, &args.email).map_err(refusal)?;
            let password = if args.password_stdin { Some(read_password_stdin()?) } else { None };
            let new = NewAccount {
                username: &args.username,
                email: &args.email,
                first_name: &args.first_name,
                last_name: &args.last_name,
                password,
                is_staff: args.staff,
                is_superuser: args.superuser,
                is_active: true,
                groups: &[],
                claims: None,
            };
            let user = accounts.create(new, ACTOR).await.map_err(refusal)?;
            println!("created user {} (id {})", user.username, user.id);
        }
        UserCommand::SetPassword { username, .. } => {
            let user = accounts.by_username(&username).await.map_err(refusal)?;
            let ended = accounts.set_password(&user, read_password_stdin()?, ACTOR).await.map_err(refusal)?;
            println!("password set for {username}; {ended} sessions ended");
        }
        UserCommand::Deactivate { username } => {
            let user = accounts.by_username(&username).await.map_err(refusal)?;
            let ended = accounts.deactivate(&user, ACTOR).await.map_err(refusal)?;
            println!("deactivated {username}; {ended} sessions ended");
        }
        UserCommand::Activate { username } => {
            let user = accounts.by_username(&username).await.map_err(refusal)?;
            if accounts.activate(&user, ACTOR).await.map_err(refusal)? {
                println!("activated {username}");
            } else {
                println!("activated {username}; still inactive: its identity provider refuses it");
            }
        }
        UserCommand::List { json } => list(&accounts, json).await?,
        UserCommand::AddGroup { username, group } => {
            let user = accounts.by_username(&username).await.map_err(refusal)?;
            let added = accounts.add_to_group(&user, &group, ACTOR).await.map_err(refusal)?;
            let news = if added { "now" } else { "already" };
            println!("{username} is {news} in {group}");
        }
        UserCommand::RemoveGroup { username, group } => {
            let user = accounts.by_username(&username).await.map_err(refusal)?;
            let removed = accounts.remove_from_group(&user, &group, ACTOR).await.map_err(refusal)?;
            let news = if removed { "no longer" } else { "was not" };
            println!("{username} {news} in {group}");
        }
        UserCommand::SetClaims { username, claims } => {
            let user = accounts.by_username(&username).await.map_err(refusal)?;
            let claims = accounts.set_claims(&user, &claims, ACTOR).await.map_err(refusal)?;
            println!(
                "{username}'s access tokens carry {} custom claims from their next refresh",
                claims.as_map().len()
            );
        }
    }
    Ok(())
}

async fn list(accounts: &Accounts, json: bool) -> Result<(), CliError> {
    let users = accounts.list().await.map_err(refusal)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&users)?);
        return Ok(());
    }
    for u in users {
        // "inactive" whenever it is so: a deactivated admin must stand out too.
        let state = if u.is_active { "active" } else { "inactive" };
        let flags = [(true, state), (u.is_staff, "staff"), (u.is_superuser, "superuser")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, name)| *name)
            .collect::<Vec<_>>()
            .join(",");
        println!("{}\t{}\t{}\t{}", u.id, u.username, u.email, flags);
    }
    Ok(())
}

/// An account refusal as one line naming the argument at fault.
pub(super) fn refusal(error: AccountError) -> CliError {
    let argument = match error {
        AccountError::InvalidUsername(_) | AccountError::UsernameTaken(_) | AccountError::NoSuchUser(_) => "USERNAME",
        AccountError::InvalidEmail(_) | AccountError::EmailTaken(_) => "--email",
        AccountError::NoSuchGroup(_) | AccountError::TooManyGroups => "GROUP",
        AccountError::InvalidGroupName(_) | AccountError::GroupTaken(_) => "NAME",
        AccountError::InvalidClaims(_) => "CLAIMS",
        AccountError::WeakPassword(_) => "--password-stdin",
        other => return CliError::from(other),
    };
    CliError::from(anyhow::anyhow!("{argument}: {error}"))
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
