//! HTTP error type and the edges that turn every failure into `{"detail": "<string>"}`
//! (spec/platform.md §7.3, dashboard-contract.md §1.3).
//!
//! * [`ApiError`] is what handlers return; its [`ResponseError`] impl renders the body.
//! * [`json_config`], [`query_config`], [`path_config`] map extractor failures to 400/415/422
//!   with a string `detail` that names the offending field.
//! * [`require_json_body`] is the 415 middleware; [`normalize_errors`] rewrites empty error
//!   bodies (unknown routes, wrong methods) to JSON; [`catch_panics`] turns a handler panic into
//!   an opaque 500 with an `error_id` that is also logged.

use std::borrow::Cow;
use std::panic::AssertUnwindSafe;

use actix_web::body::{BodySize, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, ResponseError};
use futures_util::FutureExt as _;
use serde::Serialize;

use crate::db::DbError;

/// Exact body of a 400 raised for a structural schema violation (reference wording).
pub const STRUCTURAL_VIOLATION: &str =
    "Bad Request: Schema structural violation (wrong type, extra fields, or invalid length).";
/// Exact body of a 422 raised for any other parameter failure (reference wording).
pub const INVALID_PARAMETERS: &str = "Invalid request parameters";
/// 401 body of every failed token validation.
pub const INVALID_CREDENTIALS: &str = "Could not validate credentials";
/// 403 body while the user still has to change the password.
pub const MUST_CHANGE_PASSWORD: &str = "Password change required before accessing this resource";
/// 403 body of a role failure.
pub const INSUFFICIENT_PERMISSIONS: &str = "Insufficient permissions";
/// Body of the 415 answer (plain text, per §7.3).
pub const UNSUPPORTED_MEDIA_TYPE: &str =
    "Unsupported Media Type — Content-Type must be application/json";

/// Errors every handler can return. Each variant maps to one status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401 with `WWW-Authenticate: Bearer`; the detail is a fixed, non-revealing string.
    #[error("unauthorized: {0}")]
    Unauthorized(Cow<'static, str>),
    #[error("forbidden: {0}")]
    Forbidden(Cow<'static, str>),
    #[error("not found: {0}")]
    NotFound(Cow<'static, str>),
    #[error("conflict: {0}")]
    Conflict(Cow<'static, str>),
    /// 400: structural problem (missing field, wrong type, extra field, too short).
    #[error("bad request: {0}")]
    BadRequest(Cow<'static, str>),
    /// 422: any other validation failure (too long, out of range, bad enum value…).
    #[error("unprocessable: {0}")]
    Unprocessable(Cow<'static, str>),
    #[error("gone: {0}")]
    Gone(Cow<'static, str>),
    #[error("payload too large: {0}")]
    PayloadTooLarge(Cow<'static, str>),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 429 from a rate limiter; `limit` reads like `10 per 5 minute`.
    #[error("rate limit exceeded: {limit}")]
    RateLimited {
        limit: String,
        retry_after_secs: u64,
    },
    /// 429 from the per-user SSE connection cap.
    #[error("SSE connection limit ({0}) reached")]
    SseLimit(usize),
    #[error("bad gateway: {0}")]
    BadGateway(Cow<'static, str>),
    #[error("service unavailable: {0}")]
    Unavailable(Cow<'static, str>),
    /// 500; the message is logged with an error id and never sent to the client.
    #[error("internal error: {0}")]
    Internal(String),
    #[error("database error: {0}")]
    Db(#[from] DbError),
}

#[derive(Serialize)]
struct DetailBody<'a> {
    detail: &'a str,
}

impl ApiError {
    pub fn unauthorized() -> Self {
        ApiError::Unauthorized(Cow::Borrowed(INVALID_CREDENTIALS))
    }
    pub fn forbidden(detail: impl Into<Cow<'static, str>>) -> Self {
        ApiError::Forbidden(detail.into())
    }
    pub fn not_found(detail: impl Into<Cow<'static, str>>) -> Self {
        ApiError::NotFound(detail.into())
    }
    pub fn conflict(detail: impl Into<Cow<'static, str>>) -> Self {
        ApiError::Conflict(detail.into())
    }
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::Internal(message.into())
    }
    pub fn unavailable(detail: impl Into<Cow<'static, str>>) -> Self {
        ApiError::Unavailable(detail.into())
    }

    /// 400 naming the field: missing, wrong type, extra, or shorter than allowed.
    pub fn structural(field: &str, problem: &str) -> Self {
        ApiError::BadRequest(Cow::Owned(format!(
            "{STRUCTURAL_VIOLATION} Field '{field}': {problem}"
        )))
    }

    /// 422 naming the field: too long, out of range, not one of the allowed values…
    pub fn invalid_field(field: &str, problem: &str) -> Self {
        ApiError::Unprocessable(Cow::Owned(format!(
            "{INVALID_PARAMETERS}: '{field}' {problem}"
        )))
    }

    /// Human detail string rendered in the body.
    fn detail(&self) -> Cow<'_, str> {
        match self {
            ApiError::Unauthorized(d)
            | ApiError::Forbidden(d)
            | ApiError::NotFound(d)
            | ApiError::Conflict(d)
            | ApiError::BadRequest(d)
            | ApiError::Unprocessable(d)
            | ApiError::Gone(d)
            | ApiError::PayloadTooLarge(d)
            | ApiError::BadGateway(d)
            | ApiError::Unavailable(d) => Cow::Borrowed(d.as_ref()),
            ApiError::UnsupportedMediaType => Cow::Borrowed(UNSUPPORTED_MEDIA_TYPE),
            ApiError::RateLimited { limit, .. } => {
                Cow::Owned(format!("Rate limit exceeded: {limit}"))
            }
            ApiError::SseLimit(n) => Cow::Owned(format!("SSE connection limit ({n}) reached")),
            ApiError::Internal(_) | ApiError::Db(_) => Cow::Borrowed("Internal Server Error"),
        }
    }
}

/// A fresh 32-hex error id.
pub fn new_error_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The opaque 500 body; `cause` is logged with the id and never sent.
pub fn internal_response(cause: &dyn std::fmt::Display) -> HttpResponse {
    let error_id = new_error_id();
    tracing::error!(error_id = %error_id, "unhandled error: {cause}");
    HttpResponse::InternalServerError().json(serde_json::json!({
        "detail": "Internal Server Error",
        "error_id": error_id,
    }))
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited { .. } | ApiError::SseLimit(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) | ApiError::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(_) | ApiError::Db(_) => internal_response(self),
            ApiError::UnsupportedMediaType => HttpResponse::UnsupportedMediaType()
                .content_type("text/plain; charset=utf-8")
                .body(UNSUPPORTED_MEDIA_TYPE),
            ApiError::Unauthorized(d) => HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
                .json(DetailBody { detail: d }),
            ApiError::RateLimited {
                limit,
                retry_after_secs,
            } => {
                let message = format!("Rate limit exceeded: {limit}");
                HttpResponse::TooManyRequests()
                    .insert_header((header::RETRY_AFTER, retry_after_secs.max(&1).to_string()))
                    .json(serde_json::json!({ "error": message, "detail": message }))
            }
            other => HttpResponse::build(other.status_code()).json(DetailBody {
                detail: &other.detail(),
            }),
        }
    }
}

// ---- extractor error handlers --------------------------------------------------------------

/// Strip serde_json's ` at line X column Y` suffix.
fn strip_position(msg: &str) -> &str {
    match msg.find(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    }
}

/// Classify a serde (JSON or urlencoded) message: structural problems are 400, the rest 422.
fn classify_deserialize(msg: &str, source: &str) -> ApiError {
    let msg = strip_position(msg);
    let structural = msg.starts_with("missing field")
        || msg.starts_with("unknown field")
        || msg.starts_with("invalid type")
        || msg.starts_with("invalid length");
    if structural {
        ApiError::BadRequest(Cow::Owned(format!(
            "{STRUCTURAL_VIOLATION} {source}: {msg}"
        )))
    } else {
        ApiError::Unprocessable(Cow::Owned(format!("{INVALID_PARAMETERS}: {source}: {msg}")))
    }
}

/// Map a JSON body error to 400/413/415/422.
pub fn json_error(err: &JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::PayloadTooLarge(Cow::Borrowed("Request body too large"))
        }
        JsonPayloadError::Deserialize(e) => {
            if e.is_data() {
                classify_deserialize(&e.to_string(), "body")
            } else {
                // syntax error / EOF: not JSON at all
                ApiError::BadRequest(Cow::Owned(format!(
                    "{STRUCTURAL_VIOLATION} body: malformed JSON ({})",
                    strip_position(&e.to_string())
                )))
            }
        }
        _ => ApiError::BadRequest(Cow::Borrowed("Bad Request: unreadable request body")),
    }
}

/// Parse a JSON body by hand (handlers that must check auth/rate limits before validation).
/// A string holding NUL (`\u0000`) is refused with a 422 naming its field on every backend:
/// PostgreSQL text cannot store it, and no API field has a use for it.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let parsed =
        serde_json::from_slice(body).map_err(|e| json_error(&JsonPayloadError::Deserialize(e)))?;
    if contains_escaped_nul(body) {
        if let Some(field) = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .as_ref()
            .and_then(nul_field)
        {
            return Err(ApiError::invalid_field(&field, NUL_PROBLEM));
        }
    }
    Ok(parsed)
}

/// [`parse_json`] without the NUL rule, for a body whose strings never reach storage verbatim.
pub fn parse_json_allowing_nul<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| json_error(&JsonPayloadError::Deserialize(e)))
}

/// The 422 problem text of a NUL byte.
pub const NUL_PROBLEM: &str = "must not contain NUL bytes";

/// Whether JSON text may hold an escaped NUL (raw NUL is not valid inside JSON strings).
fn contains_escaped_nul(body: &[u8]) -> bool {
    body.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000"))
}

/// Dotted path (`a.b[2]`, `body` for the root) of the first key or string value holding NUL.
pub fn nul_field(v: &serde_json::Value) -> Option<String> {
    fn walk(v: &serde_json::Value, path: &str) -> Option<String> {
        match v {
            serde_json::Value::String(s) => s.contains('\0').then(|| path.to_string()),
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, x)| walk(x, &format!("{path}[{i}]"))),
            serde_json::Value::Object(map) => map.iter().find_map(|(k, x)| {
                let here = if path == "body" {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if k.contains('\0') {
                    Some(here)
                } else {
                    walk(x, &here)
                }
            }),
            _ => None,
        }
    }
    walk(v, "body")
}

/// The field of a request line that holds a NUL byte: `path`, or the query parameter's name
/// (`query` when the query string does not decode). Pure; used by [`reject_nul`].
pub fn nul_in_request_line(path: &str, query: &str) -> Option<String> {
    let has = |s: &str| s.contains('\0') || s.to_ascii_lowercase().contains("%00");
    if has(path) {
        return Some("path".into());
    }
    if !has(query) {
        return None;
    }
    match web::Query::<Vec<(String, String)>>::from_query(query) {
        Ok(pairs) => pairs
            .iter()
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
            .map(|(k, _)| k.trim_matches('\0').to_string())
            .map(|k| if k.is_empty() { "query".to_string() } else { k }),
        Err(_) => Some("query".into()),
    }
}

/// A JSON request body, parsed by [`parse_json`] (so NUL-bearing strings are a 422 naming the
/// field) with the same 400/413/422 mapping as `web::Json`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T> JsonBody<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for JsonBody<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: serde::de::DeserializeOwned + 'static> actix_web::FromRequest for JsonBody<T> {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(
        req: &actix_web::HttpRequest,
        payload: &mut actix_web::dev::Payload,
    ) -> Self::Future {
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await.map_err(|e| {
                if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge(Cow::Borrowed("Request body too large"))
                } else {
                    ApiError::BadRequest(Cow::Borrowed("Bad Request: unreadable request body"))
                }
            })?;
            Ok(JsonBody(parse_json(&bytes)?))
        })
    }
}

/// Bodies read as bytes (login, change-password, [`JsonBody`]): the same cap as JSON bodies.
pub fn payload_config() -> web::PayloadConfig {
    web::PayloadConfig::default().limit(1024 * 1024)
}

pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(1024 * 1024)
        .error_handler(|err, _req| json_error(&err).into())
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        match &err {
            QueryPayloadError::Deserialize(e) => classify_deserialize(&e.to_string(), "query"),
            _ => ApiError::Unprocessable(Cow::Borrowed(INVALID_PARAMETERS)),
        }
        .into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _req| {
        match &err {
            PathError::Deserialize(e) => {
                ApiError::Unprocessable(Cow::Owned(format!("{INVALID_PARAMETERS}: path: {e}")))
            }
            _ => ApiError::Unprocessable(Cow::Borrowed(INVALID_PARAMETERS)),
        }
        .into()
    })
}

// ---- middleware ----------------------------------------------------------------------------

/// Paths that take multipart uploads and are exempt from the JSON content-type rule.
const MULTIPART_PATHS: [&str; 2] = ["/api/v1/deckies/files", "/api/v1/canary/blobs"];

/// Whether a request must be rejected with 415 (pure; unit-tested).
pub fn needs_415(
    method: &Method,
    path: &str,
    content_length: Option<&HeaderValue>,
    chunked: bool,
    content_type: Option<&HeaderValue>,
) -> bool {
    if !(method == Method::POST || method == Method::PUT || method == Method::PATCH) {
        return false;
    }
    if !path.starts_with("/api/") || MULTIPART_PATHS.contains(&path) {
        return false;
    }
    let has_body = chunked
        || content_length
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0);
    if !has_body {
        return false;
    }
    let ct = content_type
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    !ct.starts_with("application/json")
}

/// 422 naming the field when the path or a query parameter holds a NUL byte (raw or `%00`),
/// before any handler can hand it to the database (PostgreSQL text cannot hold NUL).
pub async fn reject_nul(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if let Some(field) = nul_in_request_line(req.uri().path(), req.query_string()) {
        let res = ApiError::invalid_field(&field, NUL_PROBLEM).error_response();
        return Ok(req.into_response(res).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// 415 for non-JSON bodies on POST/PUT/PATCH under `/api/` (§7.3).
pub async fn require_json_body(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let headers = req.headers();
    let chunked = headers
        .get(header::TRANSFER_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if needs_415(
        req.method(),
        req.path(),
        headers.get(header::CONTENT_LENGTH),
        chunked,
        headers.get(header::CONTENT_TYPE),
    ) {
        let res = ApiError::UnsupportedMediaType.error_response();
        return Ok(req.into_response(res).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Give error responses that carry no body a JSON `detail` (unknown route 404, 405, …).
pub async fn normalize_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let res = next.call(req).await?;
    let status = res.status();
    let empty = matches!(
        res.response().body().size(),
        BodySize::Sized(0) | BodySize::None
    );
    if !(status.is_client_error() || status.is_server_error()) || !empty {
        return Ok(res.map_into_left_body());
    }
    let (req, old) = res.into_parts();
    let mut new = if status == StatusCode::INTERNAL_SERVER_ERROR {
        internal_response(&"error response without body")
    } else {
        let detail = status.canonical_reason().unwrap_or("Error");
        HttpResponse::build(status).json(DetailBody { detail })
    };
    // keep headers such as Allow / WWW-Authenticate set by the inner response
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().insert(name.clone(), value.clone());
        }
    }
    Ok(ServiceResponse::new(req, new).map_into_right_body())
}

/// Contain a panic in a handler: opaque 500 with a logged error id, never the panic text.
/// (The request is not cloned before routing — the router needs it unshared — so the 500 is
/// returned as an error that actix renders through [`ApiError`]'s `ResponseError`.)
pub async fn catch_panics(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let what = format!("{} {}", req.method(), req.path());
    match AssertUnwindSafe(next.call(req)).catch_unwind().await {
        Ok(res) => res,
        Err(_panic) => Err(ApiError::internal(format!("handler panicked: {what}")).into()),
    }
}

/// 405 with `Allow` when the server routes `req`'s path with other methods only (the
/// document lists every route), `None` otherwise.
pub fn method_not_allowed(req: &actix_web::HttpRequest) -> Option<HttpResponse> {
    let allowed = crate::http::openapi::allowed_methods(req.path());
    if allowed.is_empty() || allowed.contains(req.method()) {
        return None;
    }
    let allow = allowed
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    Some(
        HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, allow))
            .json(DetailBody {
                detail: "Method Not Allowed",
            }),
    )
}

/// Default service of the API scope and the root. A wrong method on a routed path answers 405
/// with `Allow` (the routes are public in `/openapi.json`); any other path asks for
/// authentication before saying anything (401 anonymous), then 404 `{"detail":"Not Found"}`.
pub async fn fallback(req: actix_web::HttpRequest) -> Result<HttpResponse, ApiError> {
    use actix_web::FromRequest as _;
    if let Some(res) = method_not_allowed(&req) {
        return Ok(res);
    }
    crate::http::auth::AnyUser::extract(&req).await?;
    Ok(HttpResponse::NotFound().json(DetailBody {
        detail: "Not Found",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;
    use actix_web::dev::Service as _;

    async fn body_json(res: HttpResponse) -> serde_json::Value {
        let bytes = to_bytes(res.into_body()).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[actix_web::test]
    async fn detail_is_a_string_everywhere() {
        for err in [
            ApiError::unauthorized(),
            ApiError::forbidden(INSUFFICIENT_PERMISSIONS),
            ApiError::not_found("User not found"),
            ApiError::conflict("Username already exists"),
            ApiError::structural("username", "missing"),
            ApiError::invalid_field("role", "must be admin or viewer"),
            ApiError::SseLimit(5),
            ApiError::unavailable("bus unavailable"),
        ] {
            let status = err.status_code();
            let v = body_json(err.error_response()).await;
            assert!(v["detail"].is_string(), "{status}: {v}");
        }
    }

    #[actix_web::test]
    async fn unauthorized_has_bearer_challenge() {
        let res = ApiError::unauthorized().error_response();
        assert_eq!(res.status(), 401);
        assert_eq!(res.headers().get("www-authenticate").unwrap(), "Bearer");
        assert_eq!(
            body_json(res).await,
            serde_json::json!({"detail": INVALID_CREDENTIALS})
        );
    }

    #[actix_web::test]
    async fn internal_is_opaque_with_error_id() {
        let res = ApiError::internal("secret=hunter2 exploded").error_response();
        assert_eq!(res.status(), 500);
        let v = body_json(res).await;
        assert_eq!(v["detail"], "Internal Server Error");
        let id = v["error_id"].as_str().unwrap();
        assert_eq!(id.len(), 32);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(!v.to_string().contains("hunter2"));
    }

    #[actix_web::test]
    async fn rate_limited_body_and_retry_after() {
        let res = ApiError::RateLimited {
            limit: "10 per 5 minute".into(),
            retry_after_secs: 30,
        }
        .error_response();
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers().get("retry-after").unwrap(), "30");
        let v = body_json(res).await;
        assert_eq!(v["error"], "Rate limit exceeded: 10 per 5 minute");
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        username: String,
        n: u8,
    }

    #[test]
    fn json_errors_classify_and_name_the_field() {
        let cases: [(&str, u16, &str); 5] = [
            (r#"{"n":1}"#, 400, "username"),
            (r#"{"username":"a","n":1,"x":2}"#, 400, "x"),
            (r#"{"username":5,"n":1}"#, 400, "invalid type"),
            (r#"{"username":"a","n":300}"#, 422, "300"),
            ("not json", 400, "malformed"),
        ];
        for (body, status, needle) in cases {
            let err = parse_json::<Body>(body.as_bytes()).unwrap_err();
            assert_eq!(err.status_code().as_u16(), status, "{body}");
            let d = err.detail();
            assert!(d.contains(needle), "{d} should mention {needle}");
            assert!(!d.contains("line 1"), "{d}");
        }
    }

    #[actix_web::test]
    async fn panics_and_empty_errors_become_json() {
        use actix_web::middleware::from_fn;
        use actix_web::test::{call_service, init_service, TestRequest};
        use actix_web::App;
        let app = init_service(
            App::new().service(
                web::scope("")
                    .wrap(from_fn(catch_panics))
                    .wrap(from_fn(normalize_errors))
                    .route(
                        "/boom",
                        web::get().to(|| async {
                            panic!("secret=hunter2");
                            #[allow(unreachable_code)]
                            HttpResponse::Ok().finish()
                        }),
                    )
                    .route(
                        "/empty",
                        web::get().to(|| async { HttpResponse::Forbidden().finish() }),
                    ),
            ),
        )
        .await;
        // the panic surfaces as an error rendered by ApiError: opaque body with an error id
        let err = app
            .call(TestRequest::get().uri("/boom").to_request())
            .await
            .expect_err("panic contained as an error");
        let res = err.error_response();
        assert_eq!(res.status(), 500);
        let v = body_json(res).await;
        assert_eq!(v["detail"], "Internal Server Error");
        assert_eq!(v["error_id"].as_str().unwrap().len(), 32);
        assert!(!v.to_string().contains("hunter2"));
        // the worker survives: the next request is served
        let res = call_service(&app, TestRequest::get().uri("/empty").to_request()).await;
        assert_eq!(res.status(), 403);
        let bytes = actix_web::body::to_bytes(res.into_body()).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v, serde_json::json!({"detail": "Forbidden"}));
    }

    #[test]
    fn nul_bytes_are_found_and_named() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct B {
            username: String,
            tags: Vec<String>,
        }
        let err = parse_json::<B>(br#"{"username":"a\u0000b","tags":[]}"#).unwrap_err();
        assert_eq!(err.status_code(), 422);
        assert!(err.detail().contains("'username'"), "{}", err.detail());
        let err = parse_json::<B>(br#"{"username":"a","tags":["x","\u0000"]}"#).unwrap_err();
        assert!(err.detail().contains("'tags[1]'"), "{}", err.detail());
        // an escaped backslash followed by u0000 is not a NUL
        assert!(parse_json::<B>(br#"{"username":"a\\u0000","tags":[]}"#).is_ok());
        let v = serde_json::json!({"a": {"b\u{0}": 1}});
        assert_eq!(nul_field(&v).as_deref(), Some("a.b\u{0}"));
        assert_eq!(nul_in_request_line("/api/v1/x%00", ""), Some("path".into()));
        assert_eq!(
            nul_in_request_line("/api/v1/x", "search=a%00&limit=1"),
            Some("search".into())
        );
        assert_eq!(
            nul_in_request_line("/api/v1/x", "a=1&q%00=2"),
            Some("q".into())
        );
        assert_eq!(nul_in_request_line("/api/v1/x", "search=ab&limit=1"), None);
        assert!(nul_in_request_line("/api/v1/x", "search=%FF%00").is_some());
    }

    #[test]
    fn content_type_rule() {
        let len = HeaderValue::from_static("2");
        let zero = HeaderValue::from_static("0");
        let json = HeaderValue::from_static("application/json; charset=utf-8");
        let text = HeaderValue::from_static("text/plain");
        let p = "/api/v1/config/users";
        assert!(needs_415(&Method::POST, p, Some(&len), false, Some(&text)));
        assert!(needs_415(&Method::PUT, p, Some(&len), false, None));
        assert!(needs_415(&Method::PATCH, p, None, true, Some(&text)));
        assert!(!needs_415(&Method::POST, p, Some(&len), false, Some(&json)));
        assert!(!needs_415(&Method::POST, p, Some(&zero), false, None));
        assert!(!needs_415(&Method::POST, p, None, false, None));
        assert!(!needs_415(&Method::GET, p, Some(&len), false, Some(&text)));
        assert!(!needs_415(
            &Method::DELETE,
            p,
            Some(&len),
            false,
            Some(&text)
        ));
        let multipart = HeaderValue::from_static("multipart/form-data; boundary=x");
        for exempt in MULTIPART_PATHS {
            assert!(!needs_415(
                &Method::POST,
                exempt,
                Some(&len),
                false,
                Some(&multipart)
            ));
        }
        assert!(!needs_415(&Method::POST, "/other", Some(&len), false, None));
    }
}
