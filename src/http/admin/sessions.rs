//! `/api/admin/users/{id}/sessions/…`: a user's live sessions; ending one, or all.

use axum::{Json, extract::State, http::StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use super::{PageParams, PageRequest, PathId, PathSession, StaffCaller};
use crate::{
    admin::Admin,
    clock::rfc3339,
    http::{error::AppError, schemas::ErrorDetail},
    store::SessionSummary,
};

/// A live session: one login (or exchange, or sliding token) and every token rotated from it.
#[derive(Serialize, ToSchema)]
pub struct AdminSession {
    /// The session's id (32 hex characters).
    pub id: String,
    #[schema(format = DateTime)]
    pub created: String,
    /// When its latest refresh token was issued.
    #[schema(format = DateTime)]
    pub last_used: String,
    /// The address that started it (null for sessions from before tokensmith recorded it).
    pub client_addr: Option<String>,
    /// `password`, a provider's name (`clerk`, …), `django` (imported) or `admin` (minted).
    pub provider: Option<String>,
}

impl AdminSession {
    fn new(s: SessionSummary) -> Self {
        Self {
            id: s.id,
            created: rfc3339(s.created_at),
            last_used: rfc3339(s.last_used_at),
            client_addr: s.client_addr,
            provider: s.provider,
        }
    }
}

/// A page of sessions.
#[derive(Serialize, ToSchema)]
pub struct SessionPage {
    pub count: i64,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<AdminSession>,
}

#[utoipa::path(
    get, path = "/api/admin/users/{id}/sessions/", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The user's id"), PageParams),
    description = "The user's live sessions, newest first.",
    responses(
        (status = 200, description = "A page of sessions", body = SessionPage),
        (status = 401, description = "No valid access token", body = ErrorDetail),
        (status = 403, description = "Not a staff user", body = ErrorDetail),
        (status = 404, description = "No such user, or an invalid page", body = ErrorDetail),
        (status = 503, description = "Database unavailable", body = ErrorDetail),
    )
)]
pub async fn list_sessions(
    StaffCaller(staff): StaffCaller,
    State(admin): State<Admin>,
    PathId(id): PathId,
    request: PageRequest,
) -> Result<Json<SessionPage>, AppError> {
    let found = admin.sessions(&staff, id, request.window()).await?;
    let page = request.page(found, AdminSession::new)?;
    Ok(Json(SessionPage { count: page.count, next: page.next, previous: page.previous, results: page.results }))
}

#[utoipa::path(
    delete, path = "/api/admin/users/{id}/sessions/{session_id}/", tag = "admin", security(("bearer" = [])),
    params(
        ("id" = i64, Path, minimum = 1, description = "The user's id"),
        ("session_id" = String, Path, pattern = "^[0-9a-f]{32}$", description = "The session's id"),
    ),
    description = "Ends one session: its refresh token stops working at once (access tokens already issued \
                   live out their few minutes).",
    responses(
        (status = 204, description = "Ended"),
        (status = 401, description = "No valid access token", body = ErrorDetail),
        (status = 403, description = "Not allowed to change this user", body = ErrorDetail),
        (status = 404, description = "No such user, or no such live session of theirs", body = ErrorDetail),
        (status = 503, description = "Database unavailable", body = ErrorDetail),
    )
)]
pub async fn end_session(
    StaffCaller(staff): StaffCaller,
    State(admin): State<Admin>,
    PathSession(id, session_id): PathSession,
) -> Result<StatusCode, AppError> {
    match admin.end_session(&staff, id, &session_id).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(AppError::NotFound),
    }
}

#[utoipa::path(
    delete, path = "/api/admin/users/{id}/sessions/", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The user's id")),
    description = "Ends every session of the user.",
    responses(
        (status = 204, description = "Ended"),
        (status = 401, description = "No valid access token", body = ErrorDetail),
        (status = 403, description = "Not allowed to change this user", body = ErrorDetail),
        (status = 404, description = "No such user", body = ErrorDetail),
        (status = 503, description = "Database unavailable", body = ErrorDetail),
    )
)]
pub async fn end_sessions(
    StaffCaller(staff): StaffCaller,
    State(admin): State<Admin>,
    PathId(id): PathId,
) -> Result<StatusCode, AppError> {
    admin.end_sessions(&staff, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
