//! `/api/admin/groups/…`: the groups users belong to (Django's `auth.Group`).

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ListParams, PageRequest, PathId, StaffCaller, user_body::read_group};
use crate::{
    admin::Admin,
    http::{
        error::AppError,
        extract::Fields,
        schemas::{BadRequest, ErrorDetail},
    },
    store::GroupSummary,
};

/// A group and how many users it has.
#[derive(Serialize, ToSchema)]
pub struct AdminGroup {
    pub id: i64,
    pub name: String,
    /// How many users belong to it.
    pub members: i64,
}

impl From<GroupSummary> for AdminGroup {
    fn from(g: GroupSummary) -> Self {
        Self { id: g.id, name: g.name, members: g.members }
    }
}

/// A page of groups.
#[derive(Serialize, ToSchema)]
pub struct GroupPage {
    pub count: i64,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<AdminGroup>,
}

/// A new group.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct GroupCreate {
    #[schema(min_length = 1, max_length = 150, pattern = r"^[^\x00-\x1f\x7f]+$")]
    name: String,
}

#[utoipa::path(
    get, path = "/api/admin/groups/", tag = "admin", security(("bearer" = [])), params(ListParams),
    description = "Groups by name, a DRF page; `search` matches the name.",
    responses(
        (status = 200, description = "A page of groups", body = GroupPage),
        (status = 400, description = "Search too long", body = BadRequest),
        (status = 401, description = "No valid access token", body = ErrorDetail),
        (status = 403, description = "Not a staff user", body = ErrorDetail),
        (status = 404, description = "Invalid page", body = ErrorDetail),
        (status = 503, description = "Database unavailable", body = ErrorDetail),
    )
)]
pub async fn list_groups(
    StaffCaller(staff): StaffCaller,
    State(admin): State<Admin>,
    request: PageRequest,
) -> Result<Json<GroupPage>, AppError> {
    let found = admin.groups(&staff, &request.terms()?, request.window()).await?;
    let page = request.page(found, AdminGroup::from)?;
    Ok(Json(GroupPage { count: page.count, next: page.next, previous: page.previous, results: page.results }))
}

#[utoipa::path(
    post, path = "/api/admin/groups/", tag = "admin", security(("bearer" = [])),
    request_body(content((GroupCreate = "application/json"), (GroupCreate = "application/x-www-form-urlencoded"))),
    responses(
        (status = 201, description = "Created", body = AdminGroup),
        (status = 400, description = "Name missing, invalid or taken", body = BadRequest),
        (status = 401, description = "No valid access token", body = ErrorDetail),
        (status = 403, description = "Not a staff user", body = ErrorDetail),
        (status = 413, description = "Body too large", body = ErrorDetail),
        (status = 415, description = "Neither JSON nor a form", body = ErrorDetail),
        (status = 503, description = "Database unavailable", body = ErrorDetail),
    )
)]
pub async fn create_group(
    StaffCaller(staff): StaffCaller,
    State(admin): State<Admin>,
    fields: Fields,
) -> Result<Response, AppError> {
    let name = read_group(fields).map_err(AppError::Validation)?;
    let id = admin.create_group(&staff, &name).await?;
    let group = AdminGroup { id, name, members: 0 };
    Ok((StatusCode::CREATED, Json(group)).into_response())
}

#[utoipa::path(
    delete, path = "/api/admin/groups/{id}/", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The group's id")),
    description = "Deletes the group; its members leave it.",
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid access token", body = ErrorDetail),
        (status = 403, description = "Not a staff user", body = ErrorDetail),
        (status = 404, description = "No such group", body = ErrorDetail),
        (status = 503, description = "Database unavailable", body = ErrorDetail),
    )
)]
pub async fn delete_group(
    StaffCaller(staff): StaffCaller,
    State(admin): State<Admin>,
    PathId(id): PathId,
) -> Result<StatusCode, AppError> {
    admin.delete_group(&staff, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
