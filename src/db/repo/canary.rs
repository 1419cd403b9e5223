//! Canary repository (canary.md §4.4): blobs deduped by sha256 (race-safe insert-or-ignore),
//! tokens (never deleted; the receiver sees only `planted` ones), triggers recorded with the
//! token counters in one transaction.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::models::canary::{CanaryBlob, CanaryToken, CanaryTrigger, TokenFilter};
use crate::db::schema::{attackers, canary_blobs, canary_tokens, canary_triggers};
use crate::db::{Db, DbError};
use crate::domain::canary as dom;
use crate::{db_run, db_tx};

/// Insert `blob` unless a row with its sha256 exists; return the stored row (the first
/// uploader's) and whether this call inserted it. Two concurrent uploads of the same bytes
/// both succeed with the same row.
pub async fn upsert_blob(db: &Db, blob: CanaryBlob) -> Result<(CanaryBlob, bool), DbError> {
    use canary_blobs::dsl as b;
    let sha = blob.sha256.clone();
    let n = db_run!(db, |c| diesel::insert_into(canary_blobs::table)
        .values(&blob)
        .on_conflict(b::sha256)
        .do_nothing()
        .execute(c)
        .await)?;
    let row = db_run!(db, |c| canary_blobs::table
        .filter(b::sha256.eq(&sha))
        .select(CanaryBlob::as_select())
        .first(c)
        .await)?;
    Ok((row, n > 0))
}

/// The blob `uuid`, if any.
pub async fn get_blob(db: &Db, uuid: &str) -> Result<Option<CanaryBlob>, DbError> {
    Ok(db_run!(db, |c| canary_blobs::table
        .find(uuid)
        .select(CanaryBlob::as_select())
        .first(c)
        .await
        .optional())?)
}

/// The blob with this sha256, if any.
pub async fn get_blob_by_sha256(db: &Db, sha: &str) -> Result<Option<CanaryBlob>, DbError> {
    use canary_blobs::dsl as b;
    Ok(db_run!(db, |c| canary_blobs::table
        .filter(b::sha256.eq(sha))
        .select(CanaryBlob::as_select())
        .first(c)
        .await
        .optional())?)
}

/// Number of blobs.
pub async fn count_blobs(db: &Db) -> Result<i64, DbError> {
    Ok(db_run!(db, |c| canary_blobs::table
        .count()
        .get_result(c)
        .await)?)
}

/// One page of blobs, newest upload first (then uuid), each with the number of tokens in any
/// state referencing it.
pub async fn list_blobs(
    db: &Db,
    limit: i64,
    offset: i64,
) -> Result<Vec<(CanaryBlob, i64)>, DbError> {
    use canary_blobs::dsl as b;
    let rows = db_run!(db, |c| canary_blobs::table
        .select(CanaryBlob::as_select())
        .order((b::uploaded_at.desc(), b::uuid.asc()))
        .limit(limit)
        .offset(offset)
        .load(c)
        .await)?;
    let ids: Vec<String> = rows.iter().map(|r| r.uuid.clone()).collect();
    let counts = blob_token_counts(db, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let n = counts.get(&r.uuid).copied().unwrap_or(0);
            (r, n)
        })
        .collect())
}

/// Tokens (any state) per blob uuid, for the given blobs.
pub async fn blob_token_counts(
    db: &Db,
    ids: &[String],
) -> Result<std::collections::HashMap<String, i64>, DbError> {
    use canary_tokens::dsl as t;
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let ids = ids.to_vec();
    let rows: Vec<(Option<String>, i64)> = db_run!(db, |c| canary_tokens::table
        .filter(t::blob_uuid.eq_any(&ids))
        .group_by(t::blob_uuid)
        .select((t::blob_uuid, diesel::dsl::count_star()))
        .load(c)
        .await)?;
    Ok(rows
        .into_iter()
        .filter_map(|(k, n)| k.map(|k| (k, n)))
        .collect())
}

/// Outcome of [`delete_blob`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobDelete {
    Deleted,
    NotFound,
    /// Some token (revoked included) references it.
    Referenced,
}

/// Delete the blob row unless a token references it (checked in the same transaction).
pub async fn delete_blob(db: &Db, uuid: &str) -> Result<BlobDelete, DbError> {
    use canary_tokens::dsl as t;
    let uuid = uuid.to_owned();
    db_tx!(db, |c| {
        let exists: i64 = canary_blobs::table
            .find(&uuid)
            .count()
            .get_result(c)
            .await?;
        if exists == 0 {
            return Ok(BlobDelete::NotFound);
        }
        let refs: i64 = canary_tokens::table
            .filter(t::blob_uuid.eq(&uuid))
            .count()
            .get_result(c)
            .await?;
        if refs > 0 {
            return Ok(BlobDelete::Referenced);
        }
        diesel::delete(canary_blobs::table.find(&uuid))
            .execute(c)
            .await?;
        Ok(BlobDelete::Deleted)
    })
}

/// Insert a token row.
pub async fn create_token(db: &Db, token: &CanaryToken) -> Result<(), DbError> {
    db_run!(db, |c| diesel::insert_into(canary_tokens::table)
        .values(token)
        .execute(c)
        .await)?;
    Ok(())
}

/// The token `uuid` in any state.
pub async fn get_token(db: &Db, uuid: &str) -> Result<Option<CanaryToken>, DbError> {
    Ok(db_run!(db, |c| canary_tokens::table
        .find(uuid)
        .select(CanaryToken::as_select())
        .first(c)
        .await
        .optional())?)
}

/// The `planted` token whose slug is `slug` (exact; slugs are minted lowercase), else none.
pub async fn get_token_by_slug(db: &Db, slug: &str) -> Result<Option<CanaryToken>, DbError> {
    use canary_tokens::dsl as t;
    Ok(db_run!(db, |c| canary_tokens::table
        .filter(t::callback_token.eq(slug))
        .filter(t::state.eq(crate::domain::canary::STATE_PLANTED))
        .select(CanaryToken::as_select())
        .first(c)
        .await
        .optional())?)
}

macro_rules! filtered_tokens {
    ($f:expr) => {{
        use canary_tokens::dsl as t;
        let mut q = canary_tokens::table.into_boxed();
        if let Some(v) = &$f.decky_name {
            q = q.filter(t::decky_name.eq(v.clone()));
        }
        if let Some(v) = &$f.state {
            q = q.filter(t::state.eq(v.clone()));
        }
        if let Some(v) = &$f.kind {
            q = q.filter(t::kind.eq(v.clone()));
        }
        if let Some(v) = &$f.topology_id {
            q = q.filter(t::topology_id.eq(v.clone()));
        }
        q
    }};
}

/// Tokens matching `f`.
pub async fn count_tokens(db: &Db, f: &TokenFilter) -> Result<i64, DbError> {
    Ok(db_run!(db, |c| filtered_tokens!(f)
        .count()
        .get_result(c)
        .await)?)
}

/// One page of tokens matching `f`, newest `placed_at` first (then uuid).
pub async fn list_tokens(
    db: &Db,
    f: &TokenFilter,
    limit: i64,
    offset: i64,
) -> Result<Vec<CanaryToken>, DbError> {
    use canary_tokens::dsl as t;
    Ok(db_run!(db, |c| filtered_tokens!(f)
        .select(CanaryToken::as_select())
        .order((t::placed_at.desc(), t::uuid.asc()))
        .limit(limit)
        .offset(offset)
        .load(c)
        .await)?)
}

/// Set state and `last_error` (cleared when `None`); whether the row exists.
pub async fn update_token_state(
    db: &Db,
    uuid: &str,
    state: &str,
    last_error: Option<&str>,
) -> Result<bool, DbError> {
    use canary_tokens::dsl as t;
    let n = db_run!(db, |c| diesel::update(canary_tokens::table.find(uuid))
        .set((t::state.eq(state), t::last_error.eq(last_error)))
        .execute(c)
        .await)?;
    Ok(n > 0)
}

/// Insert `triggers` and bump each token's `trigger_count` / `last_triggered_at` (by the
/// number of its triggers, to the latest `occurred_at`), all in one transaction (§4.4).
pub async fn record_triggers(db: &Db, triggers: &[CanaryTrigger]) -> Result<(), DbError> {
    record_triggers_revoking(db, triggers, &[]).await
}

/// A trigger as stored: every text column NUL-free and bounded the same way on both
/// backends (PostgreSQL refuses NUL in text; SQLite would keep it).
fn storable(t: &CanaryTrigger) -> CanaryTrigger {
    let opt = |v: &Option<String>, max| v.as_deref().map(|s| dom::clean_text(s, max));
    CanaryTrigger {
        uuid: t.uuid.clone(),
        token_uuid: t.token_uuid.clone(),
        occurred_at: t.occurred_at,
        src_ip: dom::clean_text(&t.src_ip, dom::MAX_SRC_IP),
        user_agent: opt(&t.user_agent, dom::MAX_USER_AGENT),
        request_path: opt(&t.request_path, dom::MAX_REQUEST_PATH),
        dns_qname: opt(&t.dns_qname, dom::MAX_QNAME),
        raw_headers: dom::bounded_headers(&t.raw_headers),
        attacker_id: t.attacker_id.clone(),
    }
}

/// The recorder's write (§13.2, batched so it keeps up with the receivers): insert
/// `triggers` (multi-row, text made storable), bump each token's counters once for all its
/// triggers of the batch, and set the `planted` tokens among `revoke` to `revoked`
/// (fingerprint collected) — one transaction, one commit per batch.
pub async fn record_triggers_revoking(
    db: &Db,
    triggers: &[CanaryTrigger],
    revoke: &[String],
) -> Result<(), DbError> {
    use canary_tokens::dsl as t;
    if triggers.is_empty() && revoke.is_empty() {
        return Ok(());
    }
    let mut per_token: HashMap<&str, (i64, NaiveDateTime)> = HashMap::new();
    for tr in triggers {
        let e = per_token
            .entry(tr.token_uuid.as_str())
            .or_insert((0, tr.occurred_at));
        e.0 += 1;
        e.1 = e.1.max(tr.occurred_at);
    }
    let mut per_token: Vec<(&str, i64, NaiveDateTime)> = per_token
        .into_iter()
        .map(|(u, (n, at))| (u, n, at))
        .collect();
    // a fixed lock order, so two writers of overlapping batches cannot deadlock (PostgreSQL)
    per_token.sort_unstable_by_key(|(u, _, _)| *u);
    let rows: Vec<CanaryTrigger> = triggers.iter().map(storable).collect();
    let revoke = revoke.to_vec();
    db_tx!(db, |c| {
        if !rows.is_empty() {
            crate::db_insert_batch!(c, canary_triggers::table, rows)?;
        }
        for (uuid, n, at) in &per_token {
            diesel::update(canary_tokens::table.find(*uuid))
                .set((
                    t::trigger_count.eq(t::trigger_count + *n),
                    t::last_triggered_at.eq(Some(*at)),
                ))
                .execute(c)
                .await?;
        }
        if !revoke.is_empty() {
            diesel::update(
                canary_tokens::table
                    .filter(t::uuid.eq_any(&revoke))
                    .filter(t::state.eq(dom::STATE_PLANTED)),
            )
            .set((
                t::state.eq(dom::STATE_REVOKED),
                t::last_error.eq(None::<String>),
            ))
            .execute(c)
            .await?;
        }
        Ok(())
    })
}

/// The lookup keys that can match a stored value: text holding NUL can match nothing (no
/// stored value holds one) and PostgreSQL would refuse the whole query for it.
fn storable_keys(keys: &[String]) -> Vec<&str> {
    keys.iter()
        .map(String::as_str)
        .filter(|k| !k.contains('\0'))
        .collect()
}

/// The `planted` tokens whose slugs are among `slugs` (one query; the recorder asks for at
/// most one batch of slugs).
pub async fn planted_tokens_by_slugs(
    db: &Db,
    slugs: &[String],
) -> Result<Vec<CanaryToken>, DbError> {
    use canary_tokens::dsl as t;
    let slugs = storable_keys(slugs);
    if slugs.is_empty() {
        return Ok(Vec::new());
    }
    Ok(db_run!(db, |c| canary_tokens::table
        .filter(t::callback_token.eq_any(&slugs))
        .filter(t::state.eq(crate::domain::canary::STATE_PLANTED))
        .select(CanaryToken::as_select())
        .load(c)
        .await)?)
}

/// Triggers of a token.
pub async fn count_triggers(db: &Db, token_uuid: &str) -> Result<i64, DbError> {
    use canary_triggers::dsl as g;
    Ok(db_run!(db, |c| canary_triggers::table
        .filter(g::token_uuid.eq(token_uuid))
        .count()
        .get_result(c)
        .await)?)
}

/// One page of a token's triggers, newest first (then uuid).
pub async fn list_triggers(
    db: &Db,
    token_uuid: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<CanaryTrigger>, DbError> {
    use canary_triggers::dsl as g;
    Ok(db_run!(db, |c| canary_triggers::table
        .filter(g::token_uuid.eq(token_uuid))
        .select(CanaryTrigger::as_select())
        .order((g::occurred_at.desc(), g::uuid.asc()))
        .limit(limit)
        .offset(offset)
        .load(c)
        .await)?)
}

/// Set `attacker_id` of a trigger (idempotent); whether the row exists.
pub async fn attribute_trigger(
    db: &Db,
    trigger_uuid: &str,
    attacker_id: &str,
) -> Result<bool, DbError> {
    use canary_triggers::dsl as g;
    let n = db_run!(db, |c| diesel::update(
        canary_triggers::table.find(trigger_uuid)
    )
    .set(g::attacker_id.eq(Some(attacker_id)))
    .execute(c)
    .await)?;
    Ok(n > 0)
}

/// `(ip, attacker uuid)` of the attackers among `ips` the intake has seen.
pub async fn attackers_for_ips(db: &Db, ips: &[String]) -> Result<Vec<(String, String)>, DbError> {
    use attackers::dsl as a;
    let ips = storable_keys(ips);
    if ips.is_empty() {
        return Ok(Vec::new());
    }
    Ok(db_run!(db, |c| attackers::table
        .filter(a::ip.eq_any(&ips))
        .select((a::ip, a::uuid))
        .load::<(String, String)>(c)
        .await)?)
}

/// The attacker (observation) row uuid of `ip`, if the intake has seen it.
pub async fn attacker_for_ip(db: &Db, ip: &str) -> Result<Option<String>, DbError> {
    use attackers::dsl as a;
    Ok(db_run!(db, |c| attackers::table
        .filter(a::ip.eq(ip))
        .select(a::uuid)
        .first::<String>(c)
        .await
        .optional())?)
}
