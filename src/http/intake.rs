//! HTTP routes of the intake area (filled by its owner). Register routes relative to `/api/v1`
//! in [`configure`]; write `#[utoipa::path]` with the full path (`/api/v1/...`) and list the
//! handlers in [`ApiDoc`], which `openapi.rs` merges into the served document.

pub fn configure(_cfg: &mut actix_web::web::ServiceConfig) {}

/// The database-backed source of `GET /api/v1/stream` (log rows, attacker and decky counts
/// live in the intake tables): return `Some(Arc::new(YourSource { db: db.clone() }))` with a
/// [`LiveSource`](crate::http::stream::LiveSource) implementation. `None` = no log store
/// (the stream then reports zero counts and no rows).
pub fn live_source(
    _db: &crate::db::Db,
) -> Option<std::sync::Arc<dyn crate::http::stream::LiveSource>> {
    None
}

#[derive(utoipa::OpenApi)]
#[openapi()]
pub struct ApiDoc;
