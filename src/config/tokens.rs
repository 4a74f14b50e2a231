//! The simplejwt settings users customise their tokens with (the contract's "Tokens users
//! customise"): which user attributes tokens carry, the user id claim's name, what login is by,
//! the accepted `Authorization` prefixes, and the sliding tokens' lifetimes.

use std::time::Duration;

use super::{
    ConfigError,
    vars::{Vars, positive_duration},
};

/// A user attribute `TOKEN_CLAIMS` copies into access (and sliding) tokens, under its own name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserClaim {
    Username,
    Email,
    FirstName,
    LastName,
    IsStaff,
    IsSuperuser,
    /// The names of the user's groups, as a list.
    Groups,
}

impl UserClaim {
    pub const ALL: [Self; 7] =
        [Self::Username, Self::Email, Self::FirstName, Self::LastName, Self::IsStaff, Self::IsSuperuser, Self::Groups];

    /// The claim's name in the token, which is also the attribute's name on Django's user.
    pub fn name(self) -> &'static str {
        match self {
            Self::Username => "username",
            Self::Email => "email",
            Self::FirstName => "first_name",
            Self::LastName => "last_name",
            Self::IsStaff => "is_staff",
            Self::IsSuperuser => "is_superuser",
            Self::Groups => "groups",
        }
    }
}

/// What a password login names the user by (simplejwt's `USERNAME_FIELD`, Django's model's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsernameField {
    Username,
    /// Login takes `{"email","password"}`, matched ignoring case; emails are unique.
    Email,
}

impl UsernameField {
    /// The request field naming the user.
    pub fn name(self) -> &'static str {
        match self {
            Self::Username => "username",
            Self::Email => "email",
        }
    }
}

/// Claims tokensmith writes itself: neither `USER_ID_CLAIM` nor a user's custom claims may
/// take these names (the id claim's own name is reserved beside them). The contract lists the
/// first nine; the organization claims of exchanged sessions, and the session id `sid`, are
/// written by tokensmith too.
pub const RESERVED_CLAIMS: [&str; 13] = [
    "exp",
    "iat",
    "nbf",
    "jti",
    "token_type",
    "sub",
    "iss",
    "aud",
    "refresh_exp",
    "org_id",
    "org_role",
    "org_slug",
    "sid",
];

#[derive(Debug, Clone)]
pub struct TokenCustomisation {
    /// `TOKEN_CLAIMS`, in the order given, each once.
    pub claims: Vec<UserClaim>,
    /// `USER_ID_CLAIM`: where tokens carry the user id (a string); `sub` carries it too.
    pub user_id_claim: String,
    pub username_field: UsernameField,
    /// `AUTH_HEADER_TYPES`: accepted `Authorization` prefixes; the first names the scheme in
    /// `WWW-Authenticate`.
    pub auth_header_types: Vec<String>,
    pub sliding_token_lifetime: Duration,
    pub sliding_token_refresh_lifetime: Duration,
}

impl TokenCustomisation {
    pub(super) fn read(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let settings = Self {
            claims: token_claims(&vars.list("TOKEN_CLAIMS")).map_err(|m| ConfigError::new("TOKEN_CLAIMS", m))?,
            user_id_claim: vars.parsed("USER_ID_CLAIM", "user_id", user_id_claim)?,
            username_field: vars.parsed("USERNAME_FIELD", "username", username_field)?,
            auth_header_types: auth_header_types(&vars.list("AUTH_HEADER_TYPES"))
                .map_err(|m| ConfigError::new("AUTH_HEADER_TYPES", m))?,
            sliding_token_lifetime: vars.parsed("SLIDING_TOKEN_LIFETIME", "5m", positive_duration)?,
            sliding_token_refresh_lifetime: vars.parsed("SLIDING_TOKEN_REFRESH_LIFETIME", "1d", positive_duration)?,
        };
        if let Some(claim) = settings.claims.iter().find(|c| c.name() == settings.user_id_claim) {
            let message = format!("{:?} is also in TOKEN_CLAIMS; a token holds one claim of a name", claim.name());
            return Err(ConfigError::new("USER_ID_CLAIM", message));
        }
        Ok(settings)
    }

    /// Whether `name` may not be a user's custom claim.
    /// The user attributes (`is_staff`, `username`, …) are reserved too, whether or not
    /// `TOKEN_CLAIMS` copies them: a token's `is_superuser` comes from the record or is absent,
    /// so whoever may edit custom claims (staff, over the admin API) cannot make a token say
    /// more than the record does to services that read it (simplejwt's `TokenUser`).
    pub fn is_reserved_claim(&self, name: &str) -> bool {
        RESERVED_CLAIMS.contains(&name) || name == self.user_id_claim || UserClaim::ALL.iter().any(|c| c.name() == name)
    }
}

fn token_claims(names: &[String]) -> Result<Vec<UserClaim>, String> {
    let mut claims = Vec::new();
    for name in names {
        let claim = UserClaim::ALL.into_iter().find(|c| c.name() == name).ok_or_else(|| {
            let known: Vec<_> = UserClaim::ALL.iter().map(|c| c.name()).collect();
            format!("unknown user attribute {name:?}; use some of {}", known.join(", "))
        })?;
        if !claims.contains(&claim) {
            claims.push(claim);
        }
    }
    Ok(claims)
}

fn user_id_claim(s: &str) -> Result<String, String> {
    if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') || s.len() > 64 {
        return Err(format!("a claim name is letters, digits, _ and -, at most 64 of them; got {s:?}"));
    }
    if RESERVED_CLAIMS.contains(&s) {
        return Err(format!("{s:?} is a claim tokensmith writes itself"));
    }
    Ok(s.to_owned())
}

fn username_field(s: &str) -> Result<UsernameField, String> {
    match s {
        "username" => Ok(UsernameField::Username),
        "email" => Ok(UsernameField::Email),
        _ => Err(format!("expected username or email, got {s:?}")),
    }
}

fn auth_header_types(types: &[String]) -> Result<Vec<String>, String> {
    if types.is_empty() {
        return Ok(vec!["Bearer".to_owned()]);
    }
    for t in types {
        // RFC 9110's auth-scheme is a token.
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if !t.chars().all(token) || t.len() > 32 {
            return Err(format!("not an authorization scheme: {t:?}"));
        }
    }
    Ok(types.to_vec())
}
