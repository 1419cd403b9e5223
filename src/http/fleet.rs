//! HTTP routes of the fleet area (filled by its owner). Register routes relative to `/api/v1`
//! in [`configure`]; write `#[utoipa::path]` with the full path (`/api/v1/...`) and list the
//! handlers in [`ApiDoc`], which `openapi.rs` merges into the served document.

pub fn configure(_cfg: &mut actix_web::web::ServiceConfig) {}

#[derive(utoipa::OpenApi)]
#[openapi()]
pub struct ApiDoc;
