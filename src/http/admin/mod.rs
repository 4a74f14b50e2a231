//! The admin API (`/api/admin/…`): users, their sessions, and groups, for staff access tokens.
//! Handlers are thin: who may do what is `crate::admin`'s rule, what an account may be is
//! `Accounts`'. Here: the caller as a `Staff` (checked before anything else, so a non-staff
//! caller learns nothing, not even whether an id exists), ids from the path (anything that is not
//! one is a 404, as Django's `<int:pk>` routes answer), and the JSON the endpoints speak.

pub mod groups;
mod page;
pub mod sessions;
mod user_body;
pub mod users;

use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{FromRef, FromRequestParts, Path},
    http::request::Parts,
    routing::{MethodRouter, delete, get, post},
};
use serde::Serialize;
use utoipa::ToSchema;

pub use self::page::PageRequest;
use super::{
    AppState, HttpSettings,
    error::{AppError, FieldErrors},
    extract::{Authenticated, ClientAddr},
};
use crate::{
    admin::{AdminError, Staff},
    clock::rfc3339,
    domain::User,
    sessions::Sessions,
};

/// The admin API's routes (each also without its trailing slash).
pub fn routes() -> [(&'static str, MethodRouter<AppState>); 8] {
    [
        ("/api/admin/users/", get(users::list_users).post(users::create_user)),
        ("/api/admin/users/{id}/", get(users::get_user).patch(users::patch_user).delete(users::delete_user)),
        ("/api/admin/users/{id}/set-password/", post(users::set_password)),
        ("/api/admin/users/{id}/tokens/", post(users::issue_tokens)),
        ("/api/admin/users/{id}/sessions/", get(sessions::list_sessions).delete(sessions::end_sessions)),
        ("/api/admin/users/{id}/sessions/{session_id}/", delete(sessions::end_session)),
        ("/api/admin/groups/", get(groups::list_groups).post(groups::create_group)),
        ("/api/admin/groups/{id}/", delete(groups::delete_group)),
    ]
}

/// The caller, an active staff user as their record says now.
pub struct StaffCaller(pub Staff);

impl<S: Send + Sync> FromRequestParts<S> for StaffCaller
where
    Sessions: FromRef<S>,
    Arc<HttpSettings>: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let caller = Authenticated::from_request_parts(parts, state).await?;
        let ClientAddr(client) = ClientAddr::from_request_parts(parts, state).await?;
        Ok(Self(Staff::new(caller.user, client)?))
    }
}

/// A body's refused fields, with what the service's checks of the rest say: a refusal that is
/// not about fields (403, 404) wins; field errors join those of the body (DRF reports every bad
/// field at once), a field the body already refused keeping the body's message.
fn with_checks(refused: FieldErrors, checked: Result<(), AdminError>) -> AppError {
    let Err(error) = checked else { return AppError::Validation(refused) };
    match AppError::from(error) {
        AppError::Validation(more) => {
            let mut fields = refused;
            for (name, messages) in more {
                fields.entry(name).or_insert(messages);
            }
            AppError::Validation(fields)
        }
        other => other,
    }
}

/// A numeric id from the path (`{id}`): anything else names nothing.
pub struct PathId(pub i64);

/// A session id from the path (`{session_id}`), and the user's id.
pub struct PathSession(pub i64, pub String);

async fn path_params<S: Send + Sync>(parts: &mut Parts, state: &S) -> Result<HashMap<String, String>, AppError> {
    let Path(params) =
        Path::<HashMap<String, String>>::from_request_parts(parts, state).await.map_err(|_| AppError::NotFound)?;
    Ok(params)
}

fn id(params: &HashMap<String, String>) -> Result<i64, AppError> {
    // Digits only: `+5` and ` 5` name no user either.
    let text = params.get("id").filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()));
    text.and_then(|t| t.parse::<i64>().ok()).filter(|id| *id > 0).ok_or(AppError::NotFound)
}

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        Ok(Self(id(&path_params(parts, state).await?)?))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PathSession {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let params = path_params(parts, state).await?;
        let session = params.get("session_id").filter(|s| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()));
        Ok(Self(id(&params)?, session.ok_or(AppError::NotFound)?.clone()))
    }
}

/// A user as the admin API shows one (never its password hash).
#[derive(Serialize, ToSchema)]
pub struct AdminUser {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub date_joined: String,
    /// RFC 3339, UTC; null until the first login.
    #[schema(format = DateTime)]
    pub last_login: Option<String>,
    /// The names of the user's groups.
    pub groups: Vec<String>,
    /// The custom claims merged into the user's access tokens.
    #[schema(value_type = Object)]
    pub claims: serde_json::Map<String, serde_json::Value>,
}

impl AdminUser {
    pub fn new((user, groups): (User, Vec<String>)) -> Self {
        Self {
            id: user.id,
            date_joined: rfc3339(user.created_at),
            last_login: user.last_login.map(rfc3339),
            claims: user.custom_claims.as_map().clone(),
            username: user.username,
            email: user.email,
            first_name: user.first_name,
            last_name: user.last_name,
            is_active: user.is_active,
            is_staff: user.is_staff,
            is_superuser: user.is_superuser,
            groups,
        }
    }
}

/// The query parameters of a searchable list, as the OpenAPI document shows them.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListParams {
    /// 1-based page number; any other is 404 "Invalid page.".
    page: Option<String>,
    /// Rows per page: an integer, default 50, at most 500; anything else is taken as the
    /// default, as DRF does.
    page_size: Option<String>,
    /// Terms (split on spaces and commas) that must all appear, ignoring case.
    #[param(max_length = 200)]
    search: Option<String>,
}

/// The query parameters of a list that is not searched.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageParams {
    /// 1-based page number; any other is 404 "Invalid page.".
    page: Option<String>,
    /// Rows per page: an integer, default 50, at most 500; anything else is taken as the default.
    page_size: Option<String>,
}
