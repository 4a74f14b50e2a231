//! Clerk's webhooks: the raw delivery goes to `webhooks::ClerkWebhooks`, which verifies,
//! deduplicates and applies it.

use axum::{Json, extract::State, http::HeaderMap};

use super::{
    error::AppError,
    extract::{ClientAddr, RawBody},
    schemas::{Empty, ErrorDetail},
};
use crate::webhooks::{ClerkWebhooks, Delivery};

#[utoipa::path(
    post, path = "/webhooks/clerk/", tag = "external",
    description = "Clerk's webhooks, signed by Svix. user.created / user.updated upsert the linked local user; \
                   user.deleted, or a banned or locked user, deactivates it and ends its sessions; session.ended / \
                   removed / revoked end the local sessions born from that Clerk session. A redelivery (same \
                   svix-id) and an update older than the stored one change nothing. Enabled by \
                   CLERK_WEBHOOK_SIGNING_SECRET.",
    request_body(content_type = "application/json", description = "A Clerk event: {\"type\", \"data\", …}"),
    params(
        ("svix-id" = String, Header, description = "Delivery id"),
        ("svix-timestamp" = String, Header, description = "Unix seconds; within 5 minutes of now"),
        ("svix-signature" = String, Header, description = "Space-separated `v1,<base64 HMAC-SHA256>`"),
    ),
    responses(
        (status = 200, description = "Applied, ignored, or already applied", body = Empty),
        (status = 400, description = "Missing or bad signature (code webhook_signature_invalid), or not an event", body = ErrorDetail),
        (status = 404, description = "Webhooks are not configured", body = ErrorDetail),
        (status = 503, description = "Not applied (database unavailable): Svix retries", body = ErrorDetail),
    )
)]
pub async fn clerk_webhook(
    State(webhooks): State<ClerkWebhooks>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<Empty>, AppError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let delivery = Delivery {
        id: header("svix-id"),
        timestamp: header("svix-timestamp"),
        signature: header("svix-signature"),
        body: &body,
    };
    webhooks.receive(delivery, &client).await?;
    Ok(Json(Empty {}))
}
