//! HTTP API (placeholder until the HTTP platform lands).
pub mod openapi;
pub mod state;

use actix_web::{web, HttpResponse};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/api/v1/health",
        web::get()
            .to(|| async { HttpResponse::Ok().json(serde_json::json!({"status": "healthy"})) }),
    );
}
