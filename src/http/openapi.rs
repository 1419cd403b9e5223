//! The OpenAPI 3 document (spec/platform.md §7.5), assembled from every area's
//! `#[derive(OpenApi)] pub struct ApiDoc`, then post-processed once:
//!
//! * the `bearer` (JWT) security scheme is added and required by every operation that does not
//!   declare its own `security` (login declares `security(())`, i.e. anonymous);
//! * every operation documents 400, 401, 403, 404 and 409 with the `{"detail"}` body unless it
//!   already documents them; 429 is *not* added here — only rate-limited and SSE routes
//!   declare it themselves;
//! * the pages answered through the page cache ([`crate::http::pages::REVALIDATED`]) take an
//!   optional `If-None-Match` header, answer `304` without a body when it names the current
//!   page, and send `ETag` and `Cache-Control` with both answers.
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
    clustering, fleet, health, intake, intel, mail, realism, stream, ttp, users, webhooks, workers,
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

const UNPROCESSABLE: &str = "A parameter or body field is out of range, too long or not an allowed value (the detail names it)";

/// A response with the `{"detail"}` body.
fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
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
}

/// `If-None-Match`, `304` and the `ETag`/`Cache-Control` response headers on `op`.
fn revalidated(op: &mut Operation) {
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::Type;
    use utoipa::openapi::{ObjectBuilder, Required};
    let string = || ObjectBuilder::new().schema_type(Type::String);
    // Optional string headers a cached page's answer depends on.
    for (name, description) in [
        (
            "If-None-Match",
            "Entity tags of pages the client holds (`*` = any): when one is the current \
             page's, the answer is 304 without a body",
        ),
        (
            "Accept-Encoding",
            "Content codings the client takes: a page of 1 KiB or more goes out \
             gzip-compressed (`Content-Encoding: gzip`, tag suffixed `-gzip`) when gzip is \
             preferred to the identity; otherwise, and for anything unreadable, as it is",
        ),
    ] {
        op.parameters.get_or_insert_with(Vec::new).push(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(description))
                .schema(Some(string()))
                .build(),
        );
    }
    let etag = || {
        HeaderBuilder::new()
            .schema(string())
            .description(Some(
                "Strong tag of the page's bytes (32 hex digits in quotes)",
            ))
            .build()
    };
    let no_cache = || {
        HeaderBuilder::new()
            .schema(string())
            .description(Some(
                "`no-cache`: revalidate with If-None-Match before reuse",
            ))
            .build()
    };
    let vary = || {
        HeaderBuilder::new()
            .schema(string())
            .description(Some(
                "`accept-encoding`: the body's coding follows the request's Accept-Encoding",
            ))
            .build()
    };
    if let Some(RefOr::T(ok)) = op.responses.responses.get_mut("200") {
        ok.headers.insert("ETag".into(), etag());
        ok.headers.insert("Cache-Control".into(), no_cache());
        ok.headers.insert("Vary".into(), vary());
        ok.headers.insert(
            "Content-Encoding".into(),
            HeaderBuilder::new()
                .schema(string())
                .description(Some(
                    "`gzip` when the body is gzip-compressed (see Accept-Encoding); absent otherwise",
                ))
                .build(),
        );
    }
    op.responses.responses.insert(
        "304".to_string(),
        RefOr::T(
            ResponseBuilder::new()
                .description("Not Modified: If-None-Match names the current page (no body)")
                .header("ETag", etag())
                .header("Cache-Control", no_cache())
                .header("Vary", vary())
                .build(),
        ),
    );
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
    for (path, item) in doc.paths.paths.iter_mut() {
        if crate::http::pages::REVALIDATED.contains(&path.as_str()) {
            if let Some(get) = item.get.as_mut() {
                revalidated(get);
            }
        }
        for op in operations(item) {
            if op.security.is_none() {
                op.security = Some(vec![SecurityRequirement::new(SCHEME, Vec::<String>::new())]);
            }
            let has_body = op.request_body.is_some();
            let has_params = has_body || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            if has_params {
                op.responses
                    .responses
                    .entry("422".to_string())
                    .or_insert_with(|| error_response(UNPROCESSABLE));
            }
            if has_body {
                op.responses
                    .responses
                    .entry("415".to_string())
                    .or_insert_with(|| {
                        RefOr::T(
                            ResponseBuilder::new()
                                .description("The body is not `application/json`")
                                .content(
                                    "text/plain",
                                    ContentBuilder::new()
                                        .schema(Some(
                                            utoipa::openapi::ObjectBuilder::new()
                                                .schema_type(utoipa::openapi::schema::Type::String),
                                        ))
                                        .build(),
                                )
                                .build(),
                        )
                    });
            }
            for (code, description) in BLANKET {
                op.responses
                    .responses
                    .entry(code.to_string())
                    .or_insert_with(|| error_response(description));
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
        mail::ApiDoc::openapi(),
        fleet::ApiDoc::openapi(),
        webhooks::ApiDoc::openapi(),
        crate::http::canary::ApiDoc::openapi(),
        ttp::ApiDoc::openapi(),
        crate::http::CompatDoc::openapi(),
    ] {
        doc.merge(part);
    }
    post_process(&mut doc);
    doc
}

/// Schemas that need JSON Schema keywords utoipa cannot build (`contains`), written into the
/// serialised document over their placeholders.
fn patch_json(doc: &mut serde_json::Value) {
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(serde_json::Value::as_object_mut)
    {
        schemas.insert("RealismConfigUpdate".into(), realism::update_schema());
    }
    forbid_nul_in_inputs(doc);
}

/// JSON Schema pattern of a string that holds no NUL character (every string input: the
/// server answers 422 to NUL in a path, a query parameter or a body field).
pub const NO_NUL_PATTERN: &str = "^[^\\u0000]*$";

/// Give every free-form string input (parameters and request-body fields, through `$ref`s
/// into components) the [`NO_NUL_PATTERN`], so the document states the NUL rule.
fn forbid_nul_in_inputs(doc: &mut serde_json::Value) {
    use serde_json::Value;
    fn constrain(schema: &mut Value, refs: &mut Vec<String>) {
        let Some(obj) = schema.as_object_mut() else {
            return;
        };
        if let Some(Value::String(r)) = obj.get("$ref") {
            if let Some(name) = r.strip_prefix("#/components/schemas/") {
                refs.push(name.to_string());
            }
            return;
        }
        let is_string = match obj.get("type") {
            Some(Value::String(t)) => t == "string",
            Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
            _ => false,
        };
        let constrained = ["pattern", "enum", "format", "const"]
            .iter()
            .any(|k| obj.contains_key(*k));
        if is_string && !constrained {
            obj.insert("pattern".into(), Value::from(NO_NUL_PATTERN));
        }
        for key in ["items", "contains", "additionalProperties", "not"] {
            if let Some(sub) = obj.get_mut(key) {
                constrain(sub, refs);
            }
        }
        if let Some(Value::Object(props)) = obj.get_mut("properties") {
            for sub in props.values_mut() {
                constrain(sub, refs);
            }
        }
        for key in ["allOf", "oneOf", "anyOf"] {
            if let Some(Value::Array(subs)) = obj.get_mut(key) {
                for sub in subs {
                    constrain(sub, refs);
                }
            }
        }
    }
    let mut refs = Vec::new();
    if let Some(Value::Object(paths)) = doc.get_mut("paths") {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in item.values_mut().filter_map(Value::as_object_mut) {
                if let Some(Value::Array(params)) = op.get_mut("parameters") {
                    for p in params {
                        if let Some(schema) = p.get_mut("schema") {
                            constrain(schema, &mut refs);
                        }
                    }
                }
                if let Some(Value::Object(content)) =
                    op.get_mut("requestBody").and_then(|b| b.get_mut("content"))
                {
                    for media in content.values_mut() {
                        if let Some(schema) = media.get_mut("schema") {
                            constrain(schema, &mut refs);
                        }
                    }
                }
            }
        }
    }
    let mut done = std::collections::HashSet::new();
    while let Some(name) = refs.pop() {
        if !done.insert(name.clone()) {
            continue;
        }
        if let Some(schema) = doc.pointer_mut(&format!("/components/schemas/{name}")) {
            constrain(schema, &mut refs);
        }
    }
}

/// The serialised document, computed once.
pub fn openapi_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        serde_json::to_value(openapi())
            .map(|mut doc| {
                patch_json(&mut doc);
                doc
            })
            .and_then(|doc| serde_json::to_string_pretty(&doc))
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "OpenAPI serialisation failed");
                "{}".to_string()
            })
    })
}

/// One documented path template split into segments (`{name}` segments match any one segment).
struct Template {
    segments: Vec<Option<String>>,
    methods: Vec<actix_web::http::Method>,
}

/// Every documented route plus the two root routes mounted outside the document.
fn templates() -> &'static [Template] {
    static TEMPLATES: OnceLock<Vec<Template>> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        use actix_web::http::Method;
        let doc = openapi();
        let mut out: Vec<Template> = doc
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let methods = [
                    (item.get.is_some(), Method::GET),
                    (item.put.is_some(), Method::PUT),
                    (item.post.is_some(), Method::POST),
                    (item.delete.is_some(), Method::DELETE),
                    (item.patch.is_some(), Method::PATCH),
                    (item.head.is_some(), Method::HEAD),
                ]
                .into_iter()
                .filter_map(|(present, m)| present.then_some(m))
                .collect();
                Template {
                    segments: split_template(path),
                    methods,
                }
            })
            .collect();
        for path in ["/openapi.json", "/docs"] {
            out.push(Template {
                segments: split_template(path),
                methods: vec![Method::GET],
            });
        }
        out
    })
}

fn split_template(path: &str) -> Vec<Option<String>> {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') && seg.ends_with('}') {
                None
            } else {
                Some(seg.to_string())
            }
        })
        .collect()
}

/// The methods the server answers on `path` (from the document, which describes every route),
/// sorted and deduplicated; empty when no route has this path. Trailing slashes are
/// significant, as they are for the router.
pub fn allowed_methods(path: &str) -> Vec<actix_web::http::Method> {
    let segments: Vec<&str> = path.split('/').collect();
    let mut methods: Vec<actix_web::http::Method> = templates()
        .iter()
        .filter(|t| {
            t.segments.len() == segments.len()
                && t.segments.iter().zip(&segments).all(|(t, s)| match t {
                    Some(lit) => lit == s,
                    None => !s.is_empty(),
                })
        })
        .flat_map(|t| t.methods.iter().cloned())
        .collect();
    methods.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    methods.dedup();
    methods
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
        HttpResponse::NotFound().json(ErrorBody {
            detail: "Not Found".into(),
        })
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

    #[test]
    fn revalidated_pages_document_if_none_match_and_304() {
        let doc = serde_json::to_value(openapi()).unwrap();
        for path in crate::http::pages::REVALIDATED {
            let get = &doc["paths"][*path]["get"];
            assert!(get.is_object(), "{path} is not in the document");
            assert!(
                get["responses"]["304"]["headers"]["ETag"].is_object(),
                "{path}: 304"
            );
            assert!(get["responses"]["200"]["headers"]["ETag"].is_object());
            assert!(
                get["responses"]["200"]["headers"]["Content-Encoding"].is_object(),
                "{path}: Content-Encoding"
            );
            assert!(
                get["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["name"] == "Accept-Encoding" && p["in"] == "header"),
                "{path}: Accept-Encoding"
            );
            let params = get["parameters"].as_array().unwrap();
            assert!(
                params
                    .iter()
                    .any(|p| p["name"] == "If-None-Match" && p["in"] == "header"),
                "{path}: If-None-Match"
            );
        }
        let health = &doc["paths"]["/api/v1/health"]["get"];
        assert!(health["responses"]["304"].is_null());
    }
}
