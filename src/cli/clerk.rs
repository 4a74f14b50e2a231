//! `tokensmith clerk …`: `sync-users` (a chore), and `link` / `unlink`, with which the operator
//! links an existing local user to a Clerk user by hand (when no `external_id` names it), or
//! undoes a link.

use anyhow::anyhow;

use super::{ClerkCommand, CliError, users::refusal};
use crate::{
    accounts::AccountError,
    config::Config,
    external::clerk::{self, MAX_USER_ID_CHARS},
    store::Store,
};

pub(super) async fn run(command: ClerkCommand, config: &Config, store: &Store) -> Result<(), CliError> {
    let accounts = || super::accounts(config, store);
    match command {
        ClerkCommand::SyncUsers => return super::chores::clerk_sync_users(config, store).await,
        ClerkCommand::Link { username, clerk_user_id } => {
            if !clerk::is_user_id(&clerk_user_id) {
                return Err(anyhow!(
                    "CLERK_USER_ID: not a Clerk user id (user_ followed by 1 to {MAX_USER_ID_CHARS} letters and digits)"
                )
                .into());
            }
            let accounts = accounts()?;
            let user = accounts.by_username(&username).await.map_err(refusal)?;
            if accounts.link(&user, clerk::PROVIDER, &clerk_user_id, "cli").await.map_err(link_refusal)? {
                println!("linked {username} (id {}) to Clerk user {clerk_user_id}", user.id);
            } else {
                println!("{username} is already linked to Clerk user {clerk_user_id}");
            }
        }
        ClerkCommand::Unlink { username } => {
            let accounts = accounts()?;
            let user = accounts.by_username(&username).await.map_err(refusal)?;
            let unlinked = accounts.unlink(&user, clerk::PROVIDER, "cli").await.map_err(link_refusal)?;
            let reactivated = if unlinked.active && !unlinked.was_active { "; active again" } else { "" };
            println!(
                "unlinked {username} from Clerk user {}; {} sessions exchanged from Clerk ended{reactivated}",
                unlinked.subject, unlinked.sessions_ended
            );
        }
    }
    Ok(())
}

/// A refused link or unlink as one line naming the argument at fault.
fn link_refusal(error: AccountError) -> CliError {
    let line = match &error {
        AccountError::IdentityLinkedElsewhere { subject, username } => {
            format!(
                "CLERK_USER_ID: Clerk user {subject} is already linked to user {username:?}; unlink that user first"
            )
        }
        AccountError::UserLinkedElsewhere { username, subject } => {
            format!("USERNAME: {username:?} is already linked to Clerk user {subject}; unlink it first")
        }
        AccountError::NotLinked(username) => format!("USERNAME: {username:?} is not linked to a Clerk user"),
        _ => return refusal(error),
    };
    CliError::from(anyhow!(line))
}
