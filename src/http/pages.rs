//! Serialized list pages, reused while nothing they show has changed.
//!
//! A dashboard asks for the same pages over and over (every open tab polls its list and
//! refetches on every stream event), and a page of attackers is ~150 KB of JSON, a page of
//! credential-reuse findings can be megabytes: building it costs far more than sending it.
//! [`Pages`] keeps the serialized body of each (path, query) together with the **stamps** of
//! the tables it was read from ([`Stamp`]: indexed `max` probes that move with every insert
//! and update) and answers from it while the stamps hold, for at most `page_cache_ms`
//! (`[api]`, default 1 s). Concurrent requests for the same page wait for one build and share
//! its bytes. What a stamp cannot see — a change to a column that does not move its table's
//! stamp (a clusterer link on an attacker row, an enrichment), a deleted row — shows within
//! that time-to-live.
//!
//! The body is sent in slices of [`SLICE`] bytes (views into the one shared buffer), so that
//! many clients downloading a large page do not each copy all of it into their socket buffer.
//!
//! Every page carries a strong `ETag` (a hash of its bytes, taken once per build) and
//! `Cache-Control: no-cache`: a browser stores the page and asks again with `If-None-Match`,
//! and a page that has not changed is answered `304 Not Modified` without its body. The
//! answer is the same as a full one would be: the tag is checked against the page the request
//! would otherwise get (stamps and time-to-live as above). A credential-reuse page is megabytes
//! when common secrets were tried by thousands of attackers; a dashboard that polls it then
//! moves a few hundred bytes instead.

use std::future::Future;
use std::time::Duration;

use actix_web::body::SizedStream;
use actix_web::http::header::{
    CacheControl, CacheDirective, ContentType, ETag, EntityTag, Header, IfNoneMatch,
    TryIntoHeaderValue,
};
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;
use futures::stream;
use sha2::{Digest, Sha256};

use crate::db::coalesce::Coalescer;
use crate::db::repo::live::{stamps, Stamp};
use crate::db::totals::StampCache;

use super::error::ApiError;
use super::state::AppState;

/// Serialized pages by request path and query, and the stamp probes that validate them.
#[derive(Debug)]
pub struct Pages {
    bodies: StampCache<Page>,
    /// One stamp probe at a time per set of tables: concurrent requests share the next one
    /// (see [`Coalescer`]), so the probes cost one blocking round trip per set, not per request.
    probes: Coalescer<Vec<Stamp>, String>,
}

impl Pages {
    /// Drop the pages older than the time-to-live (they can no longer answer), returning their
    /// memory; see [`StampCache::sweep`].
    pub fn sweep(&self) -> usize {
        self.bodies.sweep()
    }
}

/// Bodies above this size go out as a stream of slices of this size.
pub const SLICE: usize = 64 * 1024;

/// The page cache of `[api]` `page_cache_ms` / `page_cache_mib` (0 ms: every request builds).
pub fn pages(ttl_ms: u64, budget_mib: usize) -> Pages {
    Pages {
        bodies: StampCache::with_budget(
            Duration::from_millis(ttl_ms),
            budget_mib.saturating_mul(1024 * 1024),
            |key, page| key.len() + page.body.len() + page.tag.len(),
        ),
        probes: Coalescer::default(),
    }
}

/// A JSON body as a 200 response: one piece when small, else slices of one shared buffer.
pub fn json_response(body: Bytes) -> HttpResponse {
    if body.len() <= SLICE {
        return HttpResponse::Ok()
            .content_type(ContentType::json())
            .body(body);
    }
    let len = body.len() as u64;
    let slices = (0..body.len())
        .step_by(SLICE)
        .map(move |at| {
            Ok::<_, std::convert::Infallible>(body.slice(at..(at + SLICE).min(body.len())))
        })
        .collect::<Vec<_>>();
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(SizedStream::new(len, stream::iter(slices)))
}

/// The routes answered through [`cached`]: they send an `ETag` and answer `304` to a matching
/// `If-None-Match` (the OpenAPI document says so for these paths).
pub const REVALIDATED: &[&str] = &[
    "/api/v1/attackers",
    "/api/v1/attackers/{uuid}",
    "/api/v1/attackers/{uuid}/attribution",
    "/api/v1/attackers/{uuid}/commands",
    "/api/v1/campaigns",
    "/api/v1/campaigns/{uuid}",
    "/api/v1/campaigns/{uuid}/identities",
    "/api/v1/credential-reuse",
    "/api/v1/credential-reuse/{id}",
    "/api/v1/credentials",
    "/api/v1/identities",
    "/api/v1/identities/{uuid}",
    "/api/v1/identities/{uuid}/observations",
    "/api/v1/logs",
    "/api/v1/ttp/by-attacker/{uuid}",
    "/api/v1/ttp/by-identity/{uuid}",
];

/// Pages from this size on are hashed, and [`off_worker`] builds are run, on a blocking thread.
pub const OFFLOAD: usize = 256 * 1024;

/// Run `build` (turning rows into a page body) on a blocking thread, so that the HTTP worker
/// that asked goes on answering its other connections meanwhile. For the pages that can be
/// megabytes (credential-reuse findings list every attacker that tried the secret): building
/// one on the worker held every connection of that worker for the whole build.
pub async fn off_worker<F>(build: F) -> Result<Bytes, ApiError>
where
    F: FnOnce() -> Result<Bytes, ApiError> + Send + 'static,
{
    actix_web::rt::task::spawn_blocking(build)
        .await
        .map_err(|e| ApiError::internal(format!("page build: {e}")))?
}

/// A built page: its JSON body and the strong entity tag of those bytes.
#[derive(Clone, Debug)]
pub struct Page {
    body: Bytes,
    /// 32 hex digits: the first 128 bits of the body's SHA-256.
    tag: Box<str>,
}

impl Page {
    /// `body` with its tag.
    pub fn new(body: Bytes) -> Self {
        let digest = Sha256::digest(&body);
        Page {
            tag: hex::encode(&digest[..16]).into_boxed_str(),
            body,
        }
    }

    /// `body` with its tag, hashed on a blocking thread when it is [`OFFLOAD`] bytes or more.
    pub async fn of(body: Bytes) -> Self {
        if body.len() < OFFLOAD {
            return Page::new(body);
        }
        let shared = body.clone();
        match actix_web::rt::task::spawn_blocking(move || Page::new(shared)).await {
            Ok(page) => page,
            // The blocking pool is gone (shutdown): hash here.
            Err(_) => Page::new(body),
        }
    }

    /// The answer to `req`: `304 Not Modified` when its `If-None-Match` names this page (or
    /// is `*`), else the page. Both carry the `ETag` and `Cache-Control: no-cache`.
    pub fn respond(self, req: &HttpRequest) -> HttpResponse {
        let tag = EntityTag::new_strong(self.tag.into_string());
        let matches = match IfNoneMatch::parse(req) {
            Ok(IfNoneMatch::Any) => true,
            // The weak comparison of RFC 9110 §13.1.2.
            Ok(IfNoneMatch::Items(items)) => items.iter().any(|t| t.weak_eq(&tag)),
            // Absent or unreadable: answered as if absent.
            Err(_) => false,
        };
        let mut resp = if matches {
            HttpResponse::NotModified().finish()
        } else {
            json_response(self.body)
        };
        let headers = resp.headers_mut();
        if let Ok(v) = ETag(tag).try_into_value() {
            headers.insert(ETag::name(), v);
        }
        if let Ok(v) = CacheControl(vec![CacheDirective::NoCache]).try_into_value() {
            headers.insert(CacheControl::name(), v);
        }
        resp
    }
}

/// Serialize `value` as the JSON body of a page.
pub fn to_body<T: serde::Serialize>(value: &T) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(format!("page serialization: {e}")))
}

/// The page for this request: the cached body while the stamps of `tables` hold and it is
/// younger than the time-to-live, else `build()`'s (then cached). The stamps are read before
/// building, so a write during the build makes the next request build again. A request whose
/// `If-None-Match` names that page gets `304` (see [`Page::respond`]); a route answered here
/// belongs in [`REVALIDATED`].
pub async fn cached<F, Fut>(
    state: &AppState,
    req: &HttpRequest,
    tables: &[Stamp],
    build: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Bytes, ApiError>>,
{
    let key = match req.uri().path_and_query() {
        Some(pq) => pq.as_str().to_owned(),
        None => req.path().to_owned(),
    };
    if state.pages.bodies.is_off() {
        return Ok(Page::of(build().await?).await.respond(req));
    }
    let stamp = state
        .pages
        .probes
        .run(&tables.to_vec(), || stamps(&state.db, tables))
        .await
        .map_err(|e| ApiError::internal(format!("page stamps: {e}")))?;
    let page = state
        .pages
        .bodies
        .get_with(&key, stamp, || async {
            Ok::<_, ApiError>(Page::of(build().await?).await)
        })
        .await?;
    Ok(page.respond(req))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// The handlers' sources: every `#[utoipa::path]` whose handler answers through
    /// [`super::cached`] is in [`super::REVALIDATED`], and nothing else is, so that the
    /// OpenAPI document names exactly the routes that send `ETag` and may answer `304`.
    #[test]
    fn revalidated_lists_exactly_the_cached_routes() {
        let sources = [
            include_str!("auth.rs"),
            include_str!("canary.rs"),
            include_str!("clustering.rs"),
            include_str!("fleet.rs"),
            include_str!("health.rs"),
            include_str!("intake.rs"),
            include_str!("intel.rs"),
            include_str!("live.rs"),
            include_str!("mail.rs"),
            include_str!("mod.rs"),
            include_str!("realism.rs"),
            include_str!("stream.rs"),
            include_str!("ttp.rs"),
            include_str!("users.rs"),
            include_str!("webhooks.rs"),
            include_str!("workers.rs"),
        ];
        let mut cached = BTreeSet::new();
        for source in sources {
            // Each piece: one route's attribute and its handler, up to the next route.
            for piece in source.split("#[utoipa::path(").skip(1) {
                let Some(at) = piece.find("path = \"") else {
                    continue;
                };
                let path = &piece[at + 8..];
                let path = &path[..path.find('"').unwrap_or(0)];
                if piece.contains("pages::cached(") {
                    cached.insert(path.to_owned());
                }
            }
        }
        let listed: BTreeSet<String> = super::REVALIDATED.iter().map(|p| p.to_string()).collect();
        assert_eq!(cached, listed);
    }
}
