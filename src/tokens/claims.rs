//! What an access token says about its user besides the id: the attributes `TOKEN_CLAIMS`
//! names, read from the user record each time a token is minted (so a role change shows at the
//! next refresh), over the user's custom claims.

use serde::{Serialize, Serializer, ser::SerializeMap};
use serde_json::{Map, Value};

use crate::{config::UserClaim, domain::User};

/// The user's claims for an access token: custom claims first, then the configured attributes,
/// so that the record, not a stale custom claim, decides `is_staff` when both name it.
pub fn user_claims(user: &User, groups: &[String], attributes: &[UserClaim]) -> Map<String, Value> {
    let mut claims = user.custom_claims.as_map().clone();
    for attribute in attributes {
        let value = match attribute {
            UserClaim::Username => Value::from(user.username.as_str()),
            UserClaim::Email => Value::from(user.email.as_str()),
            UserClaim::FirstName => Value::from(user.first_name.as_str()),
            UserClaim::LastName => Value::from(user.last_name.as_str()),
            UserClaim::IsStaff => Value::from(user.is_staff),
            UserClaim::IsSuperuser => Value::from(user.is_superuser),
            UserClaim::Groups => Value::from(groups),
        };
        claims.insert(attribute.name().to_owned(), value);
    }
    claims
}

/// The user id under the claim name `USER_ID_CLAIM` gives, as a string (simplejwt 5.5).
pub(super) struct UserIdClaim<'a> {
    pub name: &'a str,
    pub id: i64,
}

impl Serialize for UserIdClaim<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.name, &self.id.to_string())?;
        map.end()
    }
}
