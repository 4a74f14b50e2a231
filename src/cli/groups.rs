//! `tokensmith group …`: the groups access tokens list with `TOKEN_CLAIMS=groups`.

use super::{ACTOR, CliError, GroupCommand, users::refusal};
use crate::{config::Config, store::Store};

pub(super) async fn run(command: GroupCommand, config: &Config, store: &Store) -> Result<(), CliError> {
    let accounts = super::accounts(config, store)?;
    match command {
        GroupCommand::Create { name } => {
            let id = accounts.create_group(&name, ACTOR).await.map_err(refusal)?;
            println!("created group {name} (id {id})");
        }
        GroupCommand::List { json } => {
            let groups = accounts.list_groups().await.map_err(refusal)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&groups)?);
            } else {
                for g in groups {
                    println!("{}\t{}\t{} members", g.id, g.name, g.members);
                }
            }
        }
    }
    Ok(())
}
