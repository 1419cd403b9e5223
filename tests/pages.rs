//! The API's page cache (`http::pages`) on a real daemon, SQLite file and PostgreSQL: a page
//! is reused while its tables' stamps hold, a new or changed row shows at once, a change the
//! stamps cannot see shows within `page_cache_ms`, concurrent requests get identical bodies,
//! and a page larger than one slice goes out whole with its exact length. A page carries an
//! `ETag`; asking again with it in `If-None-Match` gets `304` and no body until the page changes.
//!
//! PostgreSQL cases: `eval "$(scripts/pg start)"; cargo test --test pages; scripts/pg stop`.

#[macro_use]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use decnetd::actors::ingester::ingest_files;
use decnetd::app::RunningApp;
use decnetd::config::{IngestSettings, Settings};
use decnetd::db::Db;
use decnetd::testkit;

const TTL_MS: u64 = 1500;

fn line(i: u32) -> String {
    format!(
        "<134>1 2026-05-14T00:{:02}:{:02}.000000+00:00 web-01 http - request [relay@55555 remote_addr=\"198.18.{}.{}\" method=\"GET\" path=\"/wp-admin/{i}\" user_agent=\"pages-test/{i} (compatible; a long user agent so that a page of a few hundred attackers is well above one 64 KiB slice)\"]",
        (i / 60) % 60,
        i % 60,
        i / 250,
        i % 250 + 1
    )
}

async fn ingest(app: &RunningApp, dir: &Path, name: &str, lines: &[String]) {
    let file = dir.join(name);
    std::fs::write(&file, lines.join("\n") + "\n").expect("write corpus");
    ingest_files(
        &app.state.db,
        None,
        &app.state.settings.ingest,
        &[file],
        false,
    )
    .await
    .expect("ingest");
}

async fn exec(db: &Db, sql: &str) -> Result<usize, decnetd::db::DbError> {
    use diesel_async::RunQueryDsl;
    decnetd::db_run!(db, |c| Ok(diesel::sql_query(sql).execute(c).await?))
}

fn settings(dir: &Path, db_url: Option<String>) -> Settings {
    let mut s = testkit::settings(dir, db_url);
    s.ingest = IngestSettings {
        log_file: dir.join("ingest.log"),
        ..IngestSettings::default()
    };
    s.api.page_cache_ms = TTL_MS;
    s.workers.disabled = decnetd::actors::supervisor::DISPLAY_ORDER
        .iter()
        .filter(|n| !matches!(**n, "heartbeat" | "api" | "bus"))
        .map(|n| n.to_string())
        .collect();
    s
}

/// The value of header `name` of `r` (empty when absent or not text).
fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn page_cache_on_a_daemon(db_url: Option<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = testkit::start(settings(dir.path(), db_url))
        .await
        .expect("start");
    let token = testkit::token_for(&app, "pageviewer", "viewer").await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}/api/v1{path}", app.base_url());
    let get = |path: &str| {
        let req = client.get(url(path)).bearer_auth(&token);
        async move {
            let r = req.send().await.expect("request");
            let status = r.status().as_u16();
            let length = r.content_length();
            let bytes = r.bytes().await.expect("body");
            (status, length, bytes)
        }
    };
    let json = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).expect("json body");
    // (status, ETag, Cache-Control, body) of a request with `If-None-Match: inm`.
    let get_if = |path: &str, inm: &str, auth: bool| {
        let mut req = client.get(url(path)).header("If-None-Match", inm);
        if auth {
            req = req.bearer_auth(&token);
        }
        async move {
            let r = req.send().await.expect("request");
            let status = r.status().as_u16();
            let (etag, cache) = (header(&r, "etag"), header(&r, "cache-control"));
            (status, etag, cache, r.bytes().await.expect("body"))
        }
    };

    ingest(
        &app,
        dir.path(),
        "a.log",
        &(0..300).map(line).collect::<Vec<_>>(),
    )
    .await;
    let (st, length, body) = get("/attackers?limit=300").await;
    assert_eq!(st, 200);
    assert!(
        body.len() > 2 * decnetd::http::pages::SLICE,
        "the page must span several slices: {} bytes",
        body.len()
    );
    assert_eq!(length, Some(body.len() as u64), "exact content-length");
    let page = json(&body);
    assert_eq!(page["total"], 300);
    assert_eq!(page["data"].as_array().map(Vec::len), Some(300));

    // 32 concurrent requests for the same page: one body.
    let many = futures::future::join_all((0..32).map(|_| get("/attackers?limit=300"))).await;
    for (st, _, b) in &many {
        assert_eq!(*st, 200);
        assert_eq!(b, &body);
    }

    // Revalidation: the page's tag in If-None-Match gets 304 and no body (also in its weak
    // form, in a list, or as `*`); another tag, or one that is not a tag, gets the page.
    let (st, etag, cache, b) = get_if("/attackers?limit=300", "\"0000\"", true).await;
    assert_eq!((st, cache.as_str()), (200, "no-cache"));
    assert_eq!(b, body);
    assert!(
        etag.len() == 34 && etag.starts_with('"') && etag.ends_with('"'),
        "strong tag: {etag}"
    );
    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"x\", {etag}"),
        "*".to_owned(),
    ] {
        let (st, tag, cache, b) = get_if("/attackers?limit=300", &inm, true).await;
        assert_eq!(st, 304, "If-None-Match: {inm}");
        assert!(b.is_empty(), "a 304 has no body");
        assert_eq!((tag.as_str(), cache.as_str()), (etag.as_str(), "no-cache"));
    }
    let (st, _, _, b) = get_if("/attackers?limit=300", "not a tag", true).await;
    assert_eq!((st, b.len()), (200, body.len()));
    // Another page has another tag; the tag does not stand in for the token.
    let (_, other, _, _) = get_if("/attackers?limit=299", "\"0000\"", true).await;
    assert_ne!(other, etag);
    let (st, tag, _, _) = get_if("/attackers?limit=300", &etag, false).await;
    assert_eq!(st, 401);
    assert!(tag.is_empty(), "no tag without a token");

    // gzip: a client that takes it gets the page compressed, with a tag of its own; the
    // bytes decompress to the very page. Revalidating with that tag gets 304. A client that
    // refuses gzip, prefers the identity, or sends nothing gets the page as it is.
    let get_enc = |path: &str, accept: &str, inm: &str| {
        let req = client
            .get(url(path))
            .bearer_auth(&token)
            .header("Accept-Encoding", accept)
            .header("If-None-Match", inm);
        async move {
            let r = req.send().await.expect("request");
            let status = r.status().as_u16();
            let heads = [
                header(&r, "content-encoding"),
                header(&r, "etag"),
                header(&r, "vary"),
            ];
            (status, heads, r.bytes().await.expect("body"))
        }
    };
    let gunzip = |b: &[u8]| {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(b)
            .read_to_end(&mut out)
            .expect("a gzip body");
        out
    };
    let varies = |vary: &str| {
        vary.split(',')
            .any(|v| v.trim().eq_ignore_ascii_case("accept-encoding"))
    };
    let (st, [coding, gz_tag, vary], gz) =
        get_enc("/attackers?limit=300", "gzip, deflate, br", "").await;
    assert_eq!((st, coding.as_str()), (200, "gzip"));
    assert!(varies(&vary), "Vary: {vary}");
    assert_eq!(gunzip(&gz), body, "the gzip body is the page");
    assert!(
        gz.len() * 3 < body.len(),
        "compressed: {} of {}",
        gz.len(),
        body.len()
    );
    assert_eq!(gz_tag, format!("{}-gzip\"", &etag[..etag.len() - 1]));
    let (st, [_, tag, _], b) = get_enc("/attackers?limit=300", "gzip", &gz_tag).await;
    assert_eq!((st, tag.as_str(), b.len()), (304, gz_tag.as_str(), 0));
    // The identity's tag does not revalidate the gzip form, nor the other way round.
    let (st, _, b) = get_enc("/attackers?limit=300", "gzip", &etag).await;
    assert_eq!((st, b.len()), (200, gz.len()));
    let (st, _, b) = get_enc("/attackers?limit=300", "identity", &gz_tag).await;
    assert_eq!((st, &b), (200, &body));
    for accept in [
        "gzip;q=0",
        "identity",
        "br",
        "gzip;q=0.5, identity",
        "x;;;=",
        "",
    ] {
        let (st, [coding, tag, vary], b) = get_enc("/attackers?limit=300", accept, "").await;
        assert_eq!(
            (st, coding.as_str()),
            (200, ""),
            "Accept-Encoding: {accept}"
        );
        assert_eq!(tag, etag);
        assert!(varies(&vary), "Vary: {vary}");
        assert_eq!(b, body);
    }
    // A page under 1 KiB goes out as it is.
    let (st, [coding, _, _], b) = get_enc("/attackers?limit=1&search=nomatch", "gzip", "").await;
    assert!(
        b.len() < decnetd::http::pages::GZIP_MIN,
        "{} bytes",
        b.len()
    );
    assert_eq!((st, coding.as_str()), (200, ""));

    // A new attacker moves the stamp: the next request shows it at once.
    ingest(&app, dir.path(), "b.log", &[line(300)]).await;
    let started = Instant::now();
    let (_, _, b) = get("/attackers?limit=1").await;
    assert_eq!(json(&b)["total"], 301);
    let (_, _, b) = get("/attackers?limit=300").await;
    assert_eq!(
        json(&b)["total"],
        301,
        "a cached page must not hide an insert"
    );
    assert!(started.elapsed() < Duration::from_millis(TTL_MS));
    // The old tag no longer names the page: the new page comes with a new tag.
    let (st, tag, _, b) = get_if("/attackers?limit=300", &etag, true).await;
    assert_eq!(st, 200, "a changed page is not answered 304");
    assert_eq!(json(&b)["total"], 301);
    assert_ne!(tag, etag);

    // A change the stamp cannot see (a column written without moving `updated_at`) is served
    // from the cache until the time-to-live runs out, then shows.
    let (_, _, before) = get("/attackers?limit=5").await;
    let cached_at = Instant::now();
    exec(
        &app.state.db,
        "UPDATE attackers SET country_code = 'ZZ' WHERE country_code IS NULL",
    )
    .await
    .expect("update");
    let (_, _, again) = get("/attackers?limit=5").await;
    if cached_at.elapsed() < Duration::from_millis(TTL_MS) {
        assert_eq!(again, before, "within the TTL the cached page is served");
    }
    tokio::time::sleep(Duration::from_millis(TTL_MS + 100)).await;
    let (_, _, after) = get("/attackers?limit=5").await;
    assert_ne!(after, before, "after the TTL the page is built again");
    assert!(json(&after)["data"]
        .as_array()
        .expect("data")
        .iter()
        .all(|a| a["country_code"] == "ZZ"));

    // An error answer keeps its status through the cache path.
    for _ in 0..2 {
        let (st, _, _) = get("/credential-reuse/no-such-finding").await;
        assert_eq!(st, 404);
    }
    // Viewers only: the cached page is not served without a token.
    let r = client
        .get(url("/attackers?limit=300"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 401);
    app.stop().await;
}

#[actix_rt::test]
async fn page_cache_sqlite() {
    page_cache_on_a_daemon(None).await;
}

#[actix_rt::test]
async fn page_cache_postgres() {
    let Some(url) = common::pg_database_url().await else {
        return;
    };
    page_cache_on_a_daemon(Some(url)).await;
}

/// The list queries read a page's keys from the page index first and then only those rows
/// (`repo::intake::list_attackers`, `repo::clustering::list_identities`, `list_campaigns`),
/// and every order ends with the uuid. Pages of 7 at every offset, on each backend, put
/// together are exactly the whole list in its order, with ties on every sort key; merged
/// identities and campaigns stay out, and the attackers' filters apply before the offset.
/// Without the uuid at the end of the activity and traversal orders, PostgreSQL gave one
/// attacker on two pages and another on none.
async fn deep_pages(name: &str, db: &Db, dir: &Path) {
    use decnetd::db::models::intake::Attacker;
    use decnetd::db::repo::clustering::{list_campaigns, list_identities};
    use decnetd::db::repo::intake::{list_attackers, AttackerSort};

    // 90 attackers: three per second (ties on `last_seen`); every fifth makes two requests
    // (ties on `event_count` 2), every seventh is also seen by a second decky (a traversal).
    let mut lines: Vec<String> = Vec::new();
    for i in 0..90u32 {
        let at = format!(
            "2026-05-14T01:{:02}:{:02}.000000+00:00",
            i / 3 / 60,
            i / 3 % 60
        );
        let ip = format!("198.18.{}.{}", i % 3, i + 1);
        let request = |host: &str, path: &str| {
            format!(
                "<134>1 {at} {host} http - request [relay@55555 remote_addr=\"{ip}\" \
                 method=\"GET\" path=\"{path}\"]"
            )
        };
        lines.push(request("web-01", "/"));
        if i % 5 == 0 {
            lines.push(request("web-01", "/again"));
        }
        if i % 7 == 0 {
            lines.push(request("web-02", "/"));
        }
    }
    let file = dir.join(format!("deep-{name}.log"));
    std::fs::write(&file, lines.join("\n") + "\n").expect("write corpus");
    let ingest = IngestSettings {
        log_file: dir.join(format!("deep-{name}-tail.log")),
        ..IngestSettings::default()
    };
    ingest_files(db, None, &ingest, &[file], false)
        .await
        .expect("ingest");

    for sort in [
        AttackerSort::Recent,
        AttackerSort::Active,
        AttackerSort::Traversals,
    ] {
        for (search, service) in [
            (None, None),
            (Some("198.18.1."), None),
            (None, Some("http")),
        ] {
            let what = format!("{name} {sort:?} {search:?} {service:?}");
            let (_, all) = list_attackers(db, search, service, sort, 1000, 0)
                .await
                .expect("whole list");
            let mut want: Vec<Attacker> = all.into_iter().map(|(a, _)| a).collect();
            assert_eq!(want.len(), if search.is_some() { 30 } else { 90 }, "{what}");
            // The sort's keys, descending, then the uuid ascending.
            let key = |a: &Attacker| match sort {
                AttackerSort::Recent => (0, a.last_seen),
                AttackerSort::Active => (a.event_count, a.last_seen),
                AttackerSort::Traversals => (i64::from(a.is_traversal), a.last_seen),
            };
            want.sort_by(|a, b| key(b).cmp(&key(a)).then(a.uuid.cmp(&b.uuid)));
            assert!(want.iter().any(|a| a.event_count == 2) && want.iter().any(|a| a.is_traversal));
            let mut paged = Vec::new();
            for offset in (0..).step_by(7) {
                let (_, page) = list_attackers(db, search, service, sort, 7, offset)
                    .await
                    .expect("page");
                if page.is_empty() {
                    break;
                }
                assert!(page.len() <= 7, "{what}");
                paged.extend(page.into_iter().map(|(a, _)| a.uuid));
            }
            let want: Vec<String> = want.into_iter().map(|a| a.uuid).collect();
            assert_eq!(paged, want, "{what}: pages");
        }
    }

    // 40 identities and 40 campaigns, updated in fours (ties on `updated_at`), every sixth
    // merged into another.
    let uuid = |i: u32| format!("{:08x}-0000-4000-8000-{i:012}", (i * 7919) % 40);
    for table in ["attacker_identities", "campaigns"] {
        for i in 0..40u32 {
            exec(
                db,
                &format!(
                    "INSERT INTO {table} (uuid, created_at, updated_at) VALUES ('{}', \
                     '2026-05-14 00:00:00', '2026-05-14 02:00:{:02}')",
                    uuid(i),
                    i / 4
                ),
            )
            .await
            .expect("insert");
        }
        for i in (0..40u32).filter(|i| i % 6 == 0) {
            exec(
                db,
                &format!(
                    "UPDATE {table} SET merged_into_uuid = '{}' WHERE uuid = '{}'",
                    uuid(1),
                    uuid(i)
                ),
            )
            .await
            .expect("merge");
        }
    }
    let active: Vec<u32> = (0..40).filter(|i| i % 6 != 0).collect();
    // Newest `updated_at` first, then uuid.
    let mut want: Vec<(u32, String)> = active.iter().map(|&i| (i / 4, uuid(i))).collect();
    want.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let want: Vec<String> = want.into_iter().map(|(_, u)| u).collect();
    let (mut identities, mut campaigns) = (Vec::new(), Vec::new());
    for offset in (0..).step_by(7) {
        let page = list_identities(db, 7, offset).await.expect("identities");
        let more = list_campaigns(db, 7, offset).await.expect("campaigns");
        if page.is_empty() && more.is_empty() {
            break;
        }
        identities.extend(page.into_iter().map(|r| r.uuid));
        campaigns.extend(more.into_iter().map(|r| r.uuid));
    }
    assert_eq!(identities, want, "{name}: identity pages");
    assert_eq!(campaigns, want, "{name}: campaign pages");
}

#[actix_rt::test]
async fn pages_at_every_offset_make_up_the_whole_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, db, _keep) in common::all_backends().await {
        deep_pages(name, &db, dir.path()).await;
    }
}

/// On SQLite, the key subqueries of the list pages walk a page index alone, in its order: a
/// covering index and no sort. Without `uuid` in the activity and traversal indexes the order
/// needed a sort, and without `merged_into_uuid` in the identities and campaigns indexes each
/// entry the offset walked read its table row (migration 000019).
#[tokio::test]
async fn page_keys_come_from_covering_indexes_on_sqlite() {
    use diesel::sql_types::Text;
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct PlanRow {
        #[diesel(sql_type = Text)]
        detail: String,
    }
    let (_dir, db) = common::sqlite_db().await;
    for (keys, index) in [
        (
            "FROM attackers ORDER BY last_seen DESC, uuid",
            "ix_attackers_recent_page",
        ),
        (
            "FROM attackers ORDER BY event_count DESC, last_seen DESC, uuid",
            "ix_attackers_active_page",
        ),
        (
            "FROM attackers ORDER BY is_traversal DESC, last_seen DESC, uuid",
            "ix_attackers_traversal_page",
        ),
        (
            "FROM attacker_identities WHERE merged_into_uuid IS NULL ORDER BY updated_at DESC, uuid",
            "ix_attacker_identities_active_page",
        ),
        (
            "FROM campaigns WHERE merged_into_uuid IS NULL ORDER BY updated_at DESC, uuid",
            "ix_campaigns_active_page",
        ),
    ] {
        let sql = format!("EXPLAIN QUERY PLAN SELECT uuid {keys} LIMIT 50 OFFSET 1000");
        let rows = async {
            let rows: Vec<PlanRow> = decnetd::db_run!(&db, |c| diesel::sql_query(sql.clone())
                .load(c)
                .await
                .map_err(decnetd::db::DbError::from))?;
            Ok::<_, decnetd::db::DbError>(rows)
        }
        .await
        .expect("plan");
        let plan: Vec<String> = rows.into_iter().map(|r| r.detail).collect();
        assert!(
            plan.iter()
                .any(|d| d.contains(&format!("USING COVERING INDEX {index}"))),
            "{sql}: {plan:?}"
        );
        assert!(!plan.iter().any(|d| d.contains("TEMP B-TREE")), "{sql}: {plan:?}");
    }
}
