//! `/api/admin/users/…`: list, create, read, edit and delete users, set a password, and (for
//! superusers) tokens for a user.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    AdminUser, ListParams, PageRequest, PathId, StaffCaller,
    page::Page,
    user_body::{UserCreate, UserPatch, read_create, read_patch},
};
use crate::{
    admin::Admin,
    http::{
        error::AppError,
        extract::{DrfRequest, Fields, JsonOrForm},
        schemas::{BadRequest, Empty, ErrorDetail},
    },
};

/// A page of users.
#[derive(Serialize, ToSchema)]
pub struct UserPage {
    pub count: i64,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<AdminUser>,
}

impl From<Page<AdminUser>> for UserPage {
    fn from(p: Page<AdminUser>) -> Self {
        Self { count: p.count, next: p.next, previous: p.previous, results: p.results }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct SetPasswordRequest {
    #[schema(min_length = 1, pattern = r"^[^\x00]+$")]
    pub password: String,
}

impl DrfRequest for SetPasswordRequest {}

/// A new session's tokens, for the user named in the path.
#[derive(Serialize, ToSchema)]
pub struct IssuedPair {
    pub refresh: String,
    pub access: String,
}

#[utoipa::path(
    get, path = "/api/admin/users/", tag = "admin", security(("bearer" = [])), params(ListParams),
    description = "Users by id, a DRF page; `search` matches username, email and names.",
    responses(
        (status = 200, description = "A page of users", body = UserPage),
        (status = 400, description = "Search too long", body = BadRequest),
        (status = 401, description = "No valid access token", body = ErrorDetail),
        (status = 403, description = "Not a staff user", body = ErrorDetail),
        (status = 404, description = "Invalid page", body = ErrorDetail),
        (status = 503, description = "Database unavailable", body = ErrorDetail),
    )
)]
pub async fn list_users(
    StaffCaller(staff): StaffCaller,
    State(admin): State<Admin>,
    request: PageRequest,
) -> Result<Json<UserPage>, AppError> {
    let found = admin.users(&staff, &request.terms()?, request.window()).await?;
    Ok(Json(request.page(found, AdminUser::new)?.into()))
}

#[utoipa::path(
    post, path = "/api/admin/users/", tag = "admin", security(("bearer" = [])),
    description = "Creates a user. Setting `is_staff` or `is_superuser` takes a superuser.",
    // Forms are read too (a repeated `groups` is the list), but a form cannot tell a list of one
    // from a single value, so the document shows the JSON body only.
    request_body(content((UserCreate = "application/json"))),
    responses(
        (status = 201, description = "Created", body = AdminUser),
        (status = 400, description = "Field errors (taken username, password policy, unknown group…)", body = BadRequest),
        (status = 401, description = "No valid access token", body = ErrorDetail),
        (status = 403, description = "Not a staff user, or flags that need a superuser", body = ErrorDetail),
        (status = 413, description = "Body too large", body = ErrorDetail),
        (status = 415, description = "Neither JSON nor a form", body = ErrorDetail),
        (status = 503, description = "Database unavailable", body = ErrorDetail),
    )
)]
pub async fn create_user(
    StaffCaller(staff): StaffCaller,
    State(admin): State<Admin>,
    fields: Fields,
) -> Result<Response, AppError> {
    let (new, refused) = read_create(fields);
    if !refused.is_empty() {
        return Err(super::with_checks(refused, admin.check_new_user(&staff, &new).await));
    }
    let user = admin.create_user(&staff, new).await?;
    Ok((StatusCode::CREATED, Json(AdminUser::new(user))).into_response())
}

#[utoipa::path(
    get, path = "/api/admin/users/{id}/", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The user's id")),
    responses(
        (status = 200, description = "The user", body = AdminUser),
        (status = 401, description = "No valid access token", body = ErrorDetail),
        (status = 403, description = "Not a staff user", body = ErrorDetail),
        (status = 404, description = "No such user", body = ErrorDetail),
        (status = 503, description = "Database unavailable", body = ErrorDetail),
    )
)]
pub async fn get_user(
    StaffCaller(staff): StaffCaller,
    State(admin): State<Admin>,
    PathId(id): PathId,
) -> Result<Json<AdminUser>, AppError> {
    Ok(Json(AdminUser::new(admin.user(&staff, id).await?)))
}

#[utoipa::path(
    patch, path = "/api/admin/users/{id}/", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The user's id")),
    description = "Changes the fields sent. `is_active: false` ends the user's sessions. Changing `is_staff` or \
                   `is_superuser`, or any field of a superuser, takes a superuser; nobody deactivates or demotes \
                   themselves.",
    request_body(content((UserPatch = "application/json"))),
    responses(
        (status = 200, description = "The user after the change", body = AdminUser),
        (status = 400, description = "Field errors", body = BadRequest),
        (status = 401, description = "No valid access token", body = ErrorDetail),
        (status = 403, description = "Not allowed to make this change", body = ErrorDetail),
        (status = 404, description = "No such user", body = ErrorDetail),
        (status = 413, description = "Body too large", body = ErrorDetail),
        (status = 415, description = "Neither JSON nor a form", body = ErrorDetail),
        (status = 503, description = "Database unavailable", body = ErrorDetail),
    )
)]
pub async fn patch_user(
    StaffCaller(staff): StaffCaller,
    State(admin): State<Admin>,
    PathId(id): PathId,
    fields: Fields,
) -> Result<Json<AdminUser>, AppError> {
    let (edit, refused) = read_patch(fields);
    if !refused.is_empty() {
        return Err(super::with_checks(refused, admin.check_edit(&staff, id, &edit).await));
    }
    Ok(Json(AdminUser::new(admin.edit_user(&staff, id, edit).await?)))
}

#[utoipa::path(
    delete, path = "/api/admin/users/{id}/", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The user's id")),
    description = "Deletes the user; its sessions end with it. Nobody deletes themselves.",
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid access token", body = ErrorDetail),
        (status = 403, description = "Not allowed to delete this user", body = ErrorDetail),
        (status = 404, description = "No such user", body = ErrorDetail),
        (status = 503, description = "Database unavailable", body = ErrorDetail),
    )
)]
pub async fn delete_user(
    StaffCaller(staff): StaffCaller,
    State(admin): State<Admin>,
    PathId(id): PathId,
) -> Result<StatusCode, AppError> {
    admin.delete_user(&staff, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post, path = "/api/admin/users/{id}/set-password/", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The user's id")),
    description = "Sets the user's password (the password policy applies); every session of the user ends.",
    request_body(content(
        (SetPasswordRequest = "application/json"),
        (SetPasswordRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Set", body = Empty),
        (status = 400, description = "The password policy refused it, or the field is missing", body = BadRequest),
        (status = 401, description = "No valid access token", body = ErrorDetail),
        (status = 403, description = "Not allowed to change this user", body = ErrorDetail),
        (status = 404, description = "No such user", body = ErrorDetail),
        (status = 413, description = "Body too large", body = ErrorDetail),
        (status = 415, description = "Neither JSON nor a form", body = ErrorDetail),
        (status = 503, description = "Database unavailable", body = ErrorDetail),
    )
)]
pub async fn set_password(
    StaffCaller(staff): StaffCaller,
    State(admin): State<Admin>,
    PathId(id): PathId,
    JsonOrForm(request): JsonOrForm<SetPasswordRequest>,
) -> Result<Json<Empty>, AppError> {
    admin.set_password(&staff, id, SecretString::from(request.password)).await?;
    Ok(Json(Empty {}))
}

#[utoipa::path(
    post, path = "/api/admin/users/{id}/tokens/", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The user's id")),
    description = "A new session of the user, for superusers only (support, provisioning); audited as \
                   `admin_tokens_issued`. The pair is always in the body, never a cookie.",
    responses(
        (status = 200, description = "The user's new pair", body = IssuedPair),
        (status = 400, description = "The user is inactive", body = BadRequest),
        (status = 401, description = "No valid access token", body = ErrorDetail),
        (status = 403, description = "Not a superuser", body = ErrorDetail),
        (status = 404, description = "No such user", body = ErrorDetail),
        (status = 503, description = "Database unavailable", body = ErrorDetail),
    )
)]
pub async fn issue_tokens(
    StaffCaller(staff): StaffCaller,
    State(admin): State<Admin>,
    PathId(id): PathId,
) -> Result<Json<IssuedPair>, AppError> {
    let pair = admin.issue_tokens(&staff, id).await?;
    Ok(Json(IssuedPair { refresh: pair.refresh, access: pair.access }))
}
