//! The OpenAPI 3 document (spec/platform.md §7.5), assembled from every area's
//! `#[derive(OpenApi)] pub struct ApiDoc`, then post-processed once:
//!
//! * the `bearer` (JWT) security scheme is added and required by every operation that does not
//!   declare its own `security` (login declares `security(())`, i.e. anonymous);
//! * every operation documents 400, 401, 403, 404 and 409 with the `{"detail"}` body unless it
//!   already documents them; 429 is *not* added here — only rate-limited and SSE routes
//!   declare it themselves.
//!
//! Areas write their `#[utoipa::path]` with the full path (`/api/v1/...`).

use std::sync::OnceLock;

use actix_web::{web, HttpResponse};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{OpenApi, ToSchema};

use crate::http::state::AppState;
use crate::http::{
    clustering, fleet, health, intake, intel, realism, stream, users, webhooks, workers,
};

/// Body of every error response.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ErrorBody {
    /// Human-readable message (always a string).
    pub detail: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "decnetd API",
        description = "HTTP API of decnetd, the DECNET mothership daemon.",
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "Authentication", description = "Login, logout, password change, SSE tickets"),
        (name = "Config", description = "Dashboard settings and user management"),
        (name = "Observability", description = "Workers, health and the live stream"),
    )
)]
struct RootDoc;

const SCHEME: &str = "bearer";

const BLANKET: [(&str, &str); 5] = [
    ("400", "Bad request (structural schema violation)"),
    ("401", "Missing or invalid credentials"),
    (
        "403",
        "Insufficient permissions or password change required",
    ),
    ("404", "Not found"),
    ("409", "Conflict"),
];

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
        item.head.as_mut(),
        item.options.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn post_process(doc: &mut utoipa::openapi::OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        SCHEME,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    for item in doc.paths.paths.values_mut() {
        for op in operations(item) {
            if op.security.is_none() {
                op.security = Some(vec![SecurityRequirement::new(SCHEME, Vec::<String>::new())]);
            }
            for (code, description) in BLANKET {
                op.responses
                    .responses
                    .entry(code.to_string())
                    .or_insert_with(|| {
                        RefOr::T(
                            ResponseBuilder::new()
                                .description(description)
                                .content(
                                    "application/json",
                                    ContentBuilder::new()
                                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                                        .build(),
                                )
                                .build(),
                        )
                    });
            }
        }
    }
}

/// The whole document (built on every call; [`openapi_json`] caches the serialised form).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = RootDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    for part in [
        users::ApiDoc::openapi(),
        workers::ApiDoc::openapi(),
        health::ApiDoc::openapi(),
        stream::ApiDoc::openapi(),
        intake::ApiDoc::openapi(),
        clustering::ApiDoc::openapi(),
        intel::ApiDoc::openapi(),
        realism::ApiDoc::openapi(),
        fleet::ApiDoc::openapi(),
        webhooks::ApiDoc::openapi(),
        crate::http::CompatDoc::openapi(),
    ] {
        doc.merge(part);
    }
    post_process(&mut doc);
    doc
}

/// The serialised document, computed once.
pub fn openapi_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        openapi().to_pretty_json().unwrap_or_else(|e| {
            tracing::error!(error = %e, "OpenAPI serialisation failed");
            "{}".to_string()
        })
    })
}

/// The document as pretty JSON (the `decnetd openapi` subcommand).
pub fn document_json() -> String {
    openapi_json().to_string()
}

async fn serve_openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(openapi_json())
}

const DOCS_HTML: &str = r##"<!doctype html>
<html><head><meta charset="utf-8"><title>decnetd API</title>
<link rel="stylesheet" href="https://unpkg.com/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="https://unpkg.com/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script>
</body></html>"##;

/// Swagger UI, developer mode only (404 otherwise).
async fn serve_docs(state: web::Data<AppState>) -> HttpResponse {
    if state.settings.developer {
        HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(DOCS_HTML)
    } else {
        crate::http::error::not_found().await
    }
}

/// Mounts `/openapi.json` (always) and `/docs` (developer mode) at the root.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(serve_openapi))
        .route("/docs", web::get().to(serve_docs));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_has_security_blanket_and_scoped_429() {
        let doc = serde_json::to_value(openapi()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        let paths = doc["paths"].as_object().unwrap();
        let login = &paths["/api/v1/auth/login"]["post"];
        assert_eq!(
            login["security"],
            serde_json::json!([{}]),
            "login is anonymous"
        );
        assert!(login["responses"]["429"].is_object());
        let workers = &paths["/api/v1/workers"]["get"];
        assert_eq!(workers["security"], serde_json::json!([{"bearer": []}]));
        for code in ["200", "400", "401", "403", "404", "409"] {
            assert!(workers["responses"][code].is_object(), "{code}");
        }
        assert!(workers["responses"]["429"].is_null(), "no global 429");
        let stream = &paths["/api/v1/stream"]["get"];
        assert!(stream["responses"]["200"]["content"]["text/event-stream"].is_object());
        assert!(stream["responses"]["429"].is_object());
    }
}
