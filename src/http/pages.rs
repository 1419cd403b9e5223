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
//!
//! A client whose `Accept-Encoding` takes gzip (every browser) gets a page of [`GZIP_MIN`]
//! bytes or more gzip-compressed, with `Content-Encoding: gzip` and the tag `"<tag>-gzip"`.
//! The compression is done once per built page, by the first request that asks for it, and the
//! compressed bytes are shared with every later request for that page. Every page answer carries
//! `Vary: Accept-Encoding`. The compressed copies are not counted in `page_cache_mib`; each is
//! smaller than the page it compresses (else it is not kept).
//!
//! A page rebuilt with the same bytes (its time-to-live ran out but nothing it shows changed)
//! is answered with the live one, so that its bytes are held once and compressed once, however
//! many answers of the earlier build are still being sent.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use actix_web::body::SizedStream;
use actix_web::http::header::{
    self, AcceptEncoding, CacheControl, CacheDirective, ContentType, ETag, Encoding, EntityTag,
    Header, HeaderValue, IfNoneMatch, TryIntoHeaderValue,
};
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;
use futures::stream;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

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
    /// Each live page of [`GZIP_MIN`] bytes or more by its tag: a page rebuilt with the same
    /// bytes (every time-to-live, when nothing it shows changed) is answered with the live one,
    /// its bytes and its gzip form, so that the megabytes are neither compressed again nor held
    /// twice while answers of the old build are still being sent.
    live: parking_lot::Mutex<HashMap<Box<str>, Weak<PageInner>>>,
}

impl Pages {
    /// Drop the pages older than the time-to-live (they can no longer answer), returning their
    /// memory; see [`StampCache::sweep`].
    pub fn sweep(&self) -> usize {
        let dropped = self.bodies.sweep();
        self.live.lock().retain(|_, page| page.strong_count() > 0);
        dropped
    }

    /// The live page with the same tag (the same bytes) as `page` when there is one, else
    /// `page` (then remembered).
    fn share(&self, page: Page) -> Page {
        if page.body.len() < GZIP_MIN {
            return page;
        }
        let mut live = self.live.lock();
        match live.get(&page.tag).and_then(Weak::upgrade) {
            Some(inner) => Page(inner),
            None => {
                live.insert(page.tag.clone(), Arc::downgrade(&page.0));
                page
            }
        }
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
        live: parking_lot::Mutex::default(),
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
    actix_web::rt::task::spawn_blocking(|| {
        let body = build();
        // The rows and views freed above would otherwise stay with this thread until it
        // allocates again or exits.
        crate::memory::release_thread_heap();
        body
    })
    .await
    .map_err(|e| ApiError::internal(format!("page build: {e}")))?
}

/// Pages from this size on are also sent gzip-compressed to a client that accepts it; a
/// smaller page gains less than the compression costs.
pub const GZIP_MIN: usize = 1024;

/// A built page: its JSON body, the strong entity tag of those bytes, and (made on the first
/// request that accepts it, then shared by every copy of the page) its gzip-compressed form.
/// Cloning shares it.
#[derive(Clone, Debug)]
pub struct Page(Arc<PageInner>);

/// What a [`Page`] shares.
#[derive(Debug)]
pub struct PageInner {
    body: Bytes,
    /// 32 hex digits: the first 128 bits of the body's SHA-256.
    tag: Box<str>,
    gzip: OnceCell<Option<Bytes>>,
}

impl std::ops::Deref for Page {
    type Target = PageInner;
    fn deref(&self) -> &PageInner {
        &self.0
    }
}

/// The form of a page an answer carries.
enum Coding {
    Identity,
    Gzip,
}

impl Page {
    /// `body` with its tag.
    pub fn new(body: Bytes) -> Self {
        let digest = Sha256::digest(&body);
        Page(Arc::new(PageInner {
            tag: hex::encode(&digest[..16]).into_boxed_str(),
            body,
            gzip: OnceCell::new(),
        }))
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

    /// The coding `req` gets: gzip when its `Accept-Encoding` prefers it to the identity (RFC
    /// 9110 §12.5.3 negotiation) and the page is [`GZIP_MIN`] bytes or more; else the identity
    /// (also when the header is absent, unreadable, or refuses both).
    fn coding(&self, req: &HttpRequest) -> Coding {
        if self.body.len() < GZIP_MIN {
            return Coding::Identity;
        }
        let Ok(accept) = AcceptEncoding::parse(req) else {
            return Coding::Identity;
        };
        let supported = [Encoding::gzip(), Encoding::identity()];
        match accept.negotiate(supported.iter()) {
            Some(e) if e == Encoding::gzip() => Coding::Gzip,
            _ => Coding::Identity,
        }
    }

    /// The gzip form of the body (compressed once per page, on a blocking thread when the page
    /// is large), or `None` when compression does not make it smaller.
    async fn gzipped(&self) -> Option<Bytes> {
        self.gzip
            .get_or_init(|| async {
                let body = self.body.clone();
                if body.len() < OFFLOAD {
                    return gzip(&body);
                }
                actix_web::rt::task::spawn_blocking(move || gzip(&body))
                    .await
                    .ok()
                    .flatten()
            })
            .await
            .clone()
    }

    /// The answer to `req`: `304 Not Modified` when its `If-None-Match` names the form of this
    /// page it would get (or is `*`), else that form: gzip-compressed when the request accepts
    /// it (see [`Page::coding`]; its tag is the page's with `-gzip` appended), else the JSON
    /// as it is. Every answer carries the `ETag` of its form, `Cache-Control: no-cache` and
    /// `Vary: Accept-Encoding`.
    pub async fn respond(self, req: &HttpRequest) -> HttpResponse {
        let held = IfNoneMatch::parse(req).ok();
        // The weak comparison of RFC 9110 §13.1.2; an absent or unreadable header names nothing.
        let names = |tag: &EntityTag| match &held {
            Some(IfNoneMatch::Any) => true,
            Some(IfNoneMatch::Items(items)) => items.iter().any(|t| t.weak_eq(tag)),
            None => false,
        };
        let gzip_tag = EntityTag::new_strong(format!("{}-gzip", self.tag));
        let wants_gzip = matches!(self.coding(req), Coding::Gzip);
        // A client naming the gzip form holds it (that tag only ever goes out with a compressed
        // body): answered without compressing the page first.
        if wants_gzip && matches!(held, Some(IfNoneMatch::Items(_))) && names(&gzip_tag) {
            return with_page_headers(HttpResponse::NotModified().finish(), gzip_tag);
        }
        let gzipped = match wants_gzip {
            true => self.gzipped().await,
            false => None,
        };
        let tag = match gzipped {
            Some(_) => gzip_tag,
            None => EntityTag::new_strong(self.tag.to_string()),
        };
        let resp = if names(&tag) {
            HttpResponse::NotModified().finish()
        } else {
            match gzipped {
                Some(compressed) => {
                    let mut resp = json_response(compressed);
                    resp.headers_mut()
                        .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                    resp
                }
                None => json_response(self.body.clone()),
            }
        };
        with_page_headers(resp, tag)
    }
}

/// `resp` with the headers of every page answer: its form's `ETag`, `Cache-Control: no-cache`
/// and `Vary: Accept-Encoding`.
fn with_page_headers(mut resp: HttpResponse, tag: EntityTag) -> HttpResponse {
    let headers = resp.headers_mut();
    if let Ok(v) = ETag(tag).try_into_value() {
        headers.insert(ETag::name(), v);
    }
    if let Ok(v) = CacheControl(vec![CacheDirective::NoCache]).try_into_value() {
        headers.insert(CacheControl::name(), v);
    }
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    resp
}

/// `body` gzip-compressed at the fastest level (a page is compressed once and sent many
/// times; level 1 already halves a page of uuids and shrinks a page of rows several times),
/// or `None` when that is not smaller.
fn gzip(body: &[u8]) -> Option<Bytes> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 2),
        flate2::Compression::fast(),
    );
    enc.write_all(body).ok()?;
    let out = enc.finish().ok()?;
    (out.len() < body.len()).then(|| Bytes::from(out))
}

/// Serialize `value` as the JSON body of a page.
pub fn to_body<T: serde::Serialize>(value: &T) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(format!("page serialization: {e}")))
}

/// [`to_body`] into a buffer of `estimate` bytes to begin with. A page of megabytes whose size
/// is known about in advance is then written without the copies of a growing buffer, and kept
/// at about its size: a `Vec` that doubled its way there holds up to twice the page, and the
/// page keeps that allocation. A buffer more than an eighth too large is handed back to the
/// allocator to shrink (mimalloc keeps a block in place while at least half of it is used, so
/// the estimate, not the shrink, is what keeps a page at its size).
pub fn to_body_sized<T: serde::Serialize>(value: &T, estimate: usize) -> Result<Bytes, ApiError> {
    let mut out = Vec::with_capacity(estimate);
    serde_json::to_writer(&mut out, value)
        .map_err(|e| ApiError::internal(format!("page serialization: {e}")))?;
    if out.capacity() - out.len() > out.len() / 8 {
        out.shrink_to_fit();
    }
    Ok(Bytes::from(out))
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
        return Ok(Page::of(build().await?).await.respond(req).await);
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
            let page = Page::of(build().await?).await;
            Ok::<_, ApiError>(state.pages.share(page))
        })
        .await?;
    Ok(page.respond(req).await)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use bytes::Bytes;

    /// A body serialized into a buffer of an estimated size is the body `to_body` gives,
    /// whether the estimate is short, exact or far too large.
    #[test]
    fn sized_bodies_are_the_same_bytes() {
        let value = serde_json::json!({"total": 2, "data": [{"a": "x\ny", "b": [1, 2, 3]}, "é"]});
        let plain = super::to_body(&value).unwrap();
        for estimate in [0, 1, plain.len(), plain.len() + 1, 100 * plain.len()] {
            assert_eq!(
                super::to_body_sized(&value, estimate).unwrap(),
                plain,
                "{estimate}"
            );
        }
    }

    /// A page rebuilt with the same bytes is answered with the live one (bytes and gzip form);
    /// other bytes are not; a page no one holds any more is forgotten at the sweep.
    #[test]
    fn rebuilt_pages_share_the_live_one() {
        let cache = super::pages(1000, 16);
        let body = |n: u8| Bytes::from(vec![n; 2 * super::GZIP_MIN]);
        let first = cache.share(super::Page::new(body(1)));
        let again = cache.share(super::Page::new(body(1)));
        assert!(Arc::ptr_eq(&first.0, &again.0));
        let other = cache.share(super::Page::new(body(2)));
        assert!(!Arc::ptr_eq(&first.0, &other.0));
        let small = cache.share(super::Page::new(Bytes::from_static(b"[]")));
        assert_eq!(cache.live.lock().len(), 2, "small pages are not remembered");
        drop((first, again, small));
        cache.sweep();
        assert_eq!(cache.live.lock().len(), 1, "only the live page is kept");
        let fresh = cache.share(super::Page::new(body(1)));
        assert!(!Arc::ptr_eq(&fresh.0, &other.0));
    }

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
