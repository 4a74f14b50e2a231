//! Self-service sign-up (`ALLOW_REGISTRATION`, `POST /api/register/`): anyone creates a password
//! user, never staff, through `Accounts::create` as the CLI and the admin API do (the same checks,
//! the password policy among them, and a `user_created` audit event naming the client address),
//! at most `REGISTRATION_LIMIT` an hour from one address.

use secrecy::SecretString;

use super::{AccountError, Accounts, Actor, NewAccount, Result};
use crate::{config::Config, config::UsernameField, domain::User, store::Store, throttle::RegistrationThrottle};

/// What a person signs up with.
pub struct Applicant<'a> {
    pub username: &'a str,
    /// Empty: none (required under `USERNAME_FIELD=email`, where it is what they log in with).
    pub email: &'a str,
    pub password: SecretString,
}

#[derive(Clone)]
pub struct Registrations {
    accounts: Accounts,
    throttle: RegistrationThrottle,
    allowed: bool,
    email_required: bool,
}

impl Registrations {
    pub fn new(config: &Config, accounts: Accounts, store: Store) -> Self {
        Self {
            accounts,
            throttle: RegistrationThrottle::new(config, store),
            allowed: config.allow_registration,
            email_required: config.tokens.username_field == UsernameField::Email,
        }
    }

    /// `ALLOW_REGISTRATION`.
    pub fn allowed(&self) -> bool {
        self.allowed
    }

    /// Creates the applicant's user, from `client`. Whatever can be refused before the password
    /// is hashed is checked before a place in the limit is taken, so a refused registration (a
    /// taken username, a weak password) neither counts nor costs an argon2 hash; one refused
    /// after (the username or email taken meanwhile) gives its place back.
    pub async fn register(&self, applicant: Applicant<'_>, client: &str) -> Result<User> {
        let new = NewAccount {
            username: applicant.username,
            email: applicant.email,
            first_name: "",
            last_name: "",
            password: Some(applicant.password),
            is_staff: false,
            is_superuser: false,
            is_active: true,
            groups: &[],
            claims: None,
        };
        let email = match self.email_required && applicant.email.is_empty() {
            true => Err(AccountError::EmailRequired),
            false => Ok(()),
        };
        let free = match self.accounts.by_username(applicant.username).await {
            Ok(_) => Err(AccountError::UsernameTaken(applicant.username.to_owned())),
            Err(AccountError::NoSuchUser(_)) => Ok(()),
            Err(e) => Err(e),
        };
        AccountError::all([self.accounts.check_new(&new).await, free, email])?;
        let slot = self.throttle.reserve(client).await?;
        match self.accounts.create(new, Actor::client(client)).await {
            Ok(user) => Ok(user),
            Err(refused) => {
                self.throttle.release(slot).await?;
                Err(refused)
            }
        }
    }
}
