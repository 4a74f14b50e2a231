//! Response shapes shared by every endpoint, as the OpenAPI document names them.

use serde::Serialize;
use utoipa::ToSchema;

/// An empty object: success with nothing to say.
#[derive(Serialize, ToSchema)]
pub struct Empty {}

/// An error as DRF reports it.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// Field name → messages, e.g. `{"username": ["This field is required."]}`.
#[derive(Serialize, ToSchema)]
#[schema(as = FieldErrors)]
pub struct FieldErrorsSchema(std::collections::HashMap<String, Vec<String>>);

/// A 400 as DRF sends it: messages per field, or a `detail` (a body that is not valid JSON).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum BadRequest {
    Fields(FieldErrorsSchema),
    Detail(ErrorDetail),
}
