//! `tokensmith keys …`, `tokens flush-expired`, `audit tail` and `clerk sync-users`.

use anyhow::anyhow;

use super::{CliError, KeysCommand};
use crate::{
    accounts::Applied,
    clock::{rfc3339, secs, unix_now},
    config::Config,
    domain::{AuditEvent, AuditKind},
    external::clerk_api::{ClerkApi, PAGE_SIZE},
    store::Store,
    tokens::{self, KeyRing},
    webhooks::{self, apply_clerk_user},
};

pub(super) async fn keys(command: KeysCommand, config: &Config, store: &Store) -> Result<(), CliError> {
    match command {
        KeysCommand::Rotate => {
            // Make sure there is a current key to retire, so its tokens keep verifying.
            KeyRing::load(config, store).await?;
            let key = tokens::rotate(config, store).await?;
            let event = AuditEvent::new(AuditKind::KeyRotated).client("cli").detail(&key.kid);
            store.record_audit_event(&event, unix_now()).await?;
            println!(
                "new signing key {} ({}); running servers use it within {}",
                key.kid,
                key.algorithm,
                humantime::format_duration(config.keys_reload_interval)
            );
        }
        KeysCommand::List => {
            let published_for = secs(config.longest_token_lifetime());
            let published_after = unix_now() - published_for;
            for key in store.all_signing_keys().await? {
                let status = match key.retired_at {
                    None => "signing".to_owned(),
                    Some(at) if at > published_after => format!("published until {}", rfc3339(at + published_for)),
                    Some(_) => "retired".to_owned(),
                };
                println!("{}\t{}\t{}\tcreated {}", key.kid, key.algorithm, status, rfc3339(key.created_at));
            }
        }
    }
    Ok(())
}

pub(super) async fn flush_expired(config: &Config, store: &Store) -> Result<(), CliError> {
    let now = unix_now();
    let deleted = store.flush_expired_tokens(now).await?;
    store.prune_webhook_deliveries(now - webhooks::DEDUP_RETENTION_SECS).await?;
    store.prune_login_failures(now - secs(config.login_failure_window)).await?;
    store.prune_registrations(now - crate::throttle::REGISTRATION_WINDOW_SECS).await?;
    // Reset requests outside the throttle's window count for nothing; nor do expired tokens.
    store.prune_password_resets(now - secs(crate::accounts::RESET_THROTTLE_WINDOW)).await?;
    store.prune_audit_events(now - secs(config.audit_retention)).await?;
    println!("deleted {deleted} expired refresh tokens");
    Ok(())
}

pub(super) async fn audit_tail(store: &Store, n: i64, json: bool) -> Result<(), CliError> {
    if n < 1 {
        return Err(anyhow!("-n: must be at least 1").into());
    }
    for event in store.latest_audit_events(n).await? {
        if json {
            println!("{}", serde_json::to_string(&event)?);
        } else {
            // Usernames (a failed login's is whatever the client sent) and details are
            // untrusted: escaped, so they can neither forge a line nor drive the terminal.
            let who = event.username.as_deref().map(escaped).or(event.user_id.map(|id| id.to_string()));
            let by = event.actor_username.as_deref().map(|name| format!("\tby={}", escaped(name)));
            println!(
                "{}\t{}\tuser={}\taddr={}{}\t{}",
                rfc3339(event.occurred_at),
                escaped(&event.event),
                who.unwrap_or_default(),
                escaped(event.client_addr.as_deref().unwrap_or_default()),
                by.unwrap_or_default(),
                escaped(&event.detail)
            );
        }
    }
    Ok(())
}

/// `text` with control characters (tabs and newlines among them: the line's own separators),
/// the characters that reorder text on screen, and backslashes written as Rust escapes
/// (`\n`, `\u{1b}`, `\\`), so one event is one line and prints as the bytes it holds.
fn escaped(text: &str) -> String {
    let reorders = |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || reorders(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// Pages through Clerk's users and applies each as a `user.updated` webhook would.
pub(super) async fn clerk_sync_users(config: &Config, store: &Store) -> Result<(), CliError> {
    let secret =
        config.clerk_secret_key.clone().ok_or_else(|| anyhow!("CLERK_SECRET_KEY: required for clerk sync-users"))?;
    let api = ClerkApi::new(&config.clerk_api_url, secret);
    let accounts = super::accounts(config, store)?;
    let mut counts = SyncCounts::default();
    loop {
        let page = api.users_page(counts.seen).await?;
        for user in &page {
            counts.add(apply_clerk_user(&accounts, user, config.clerk_roles.as_ref(), "cli").await?);
        }
        if page.len() < PAGE_SIZE {
            break;
        }
    }
    let SyncCounts { seen, created, linked, updated, deactivated, unchanged, skipped } = counts;
    println!(
        "synced {seen} Clerk users: {created} created, {linked} linked, {updated} updated, {deactivated} deactivated, \
         {unchanged} unchanged, {skipped} skipped"
    );
    Ok(())
}

/// What `clerk sync-users` did, user by user. `linked`: existing local users their
/// `external_id` named; `skipped`: users whose `external_id` named a local user linked to another
/// Clerk user (each a warning and an `identity_link_refused` audit event).
#[derive(Default)]
struct SyncCounts {
    seen: usize,
    created: usize,
    linked: usize,
    updated: usize,
    deactivated: usize,
    unchanged: usize,
    skipped: usize,
}

impl SyncCounts {
    fn add(&mut self, applied: Applied) {
        self.seen += 1;
        let count = match applied {
            Applied::Created => &mut self.created,
            Applied::Linked => &mut self.linked,
            Applied::Updated => &mut self.updated,
            Applied::Deactivated => &mut self.deactivated,
            Applied::SessionsEnded(_) | Applied::Ignored => &mut self.unchanged,
            Applied::Skipped => &mut self.skipped,
        };
        *count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::escaped;

    #[test]
    fn control_and_reordering_characters_are_escaped() {
        assert_eq!(escaped("alice"), "alice");
        assert_eq!(escaped("élodie 名前"), "élodie 名前");
        assert_eq!(escaped("a\nb\tc\r"), "a\\nb\\tc\\r");
        assert_eq!(escaped("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(escaped("\u{7f}\u{9b}\u{0}"), "\\u{7f}\\u{9b}\\u{0}");
        assert_eq!(escaped("a\u{202e}b\u{2028}"), "a\\u{202e}b\\u{2028}");
        // A backslash is escaped too, so a client's literal `\n` cannot pass for an escaped newline.
        assert_eq!(escaped("a\\nb"), "a\\\\nb");
    }
}
