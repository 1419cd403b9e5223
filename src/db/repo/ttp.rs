//! TTP tags repository (issue #19 item 4): the tagger's cursor read of new log lines, the
//! one-transaction tag write + cursor advance, the campaign projection's phase entries
//! (clustering.md §2.4 `list_ttp_decky_phases`) and the by-attacker / by-identity reads.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp};
use diesel_async::RunQueryDsl;
use serde_json::json;

use crate::db::models::ttp::TtpTag;
use crate::db::models::StateEntry;
use crate::db::repo::intake::{ProfileCursor, PROFILE_CURSOR_KEY};
use crate::db::schema::clustering::observation_view::attackers;
use crate::db::schema::{logs, state, ttp_tags};
use crate::db::{Db, DbError, JsonText};
use crate::domain::clustering::campaign::TtpPhaseEntry;
use crate::{db_insert_batch, db_run, db_tx};

/// State key of the tagger cursor: `{"log_id": n}`, the last `logs.id` tagged.
pub const TTP_CURSOR_KEY: &str = "ttp_tag_cursor";

/// Rows per `IN (…)` list.
const IN_CHUNK: usize = 500;

/// A page of log lines the tagger has not seen yet.
#[derive(Debug, Clone, Default)]
pub struct UntaggedPage {
    /// `(logs.id, raw_line)` in id order.
    pub rows: Vec<(i64, String)>,
    /// The id the next cursor takes after this page (the last id read, or the old cursor).
    pub next_cursor: i64,
}

fn cursor_of(v: Option<JsonText>) -> i64 {
    v.and_then(|j| j.0.get("log_id").and_then(serde_json::Value::as_i64))
        .unwrap_or(0)
}

/// Up to `max` log lines above the tagger cursor and at or below the profiler cursor (so the
/// `attackers` row of every line exists when it is tagged).
pub async fn read_untagged(db: &Db, max: i64) -> Result<UntaggedPage, DbError> {
    let (mine, profile): (Option<JsonText>, Option<JsonText>) = db_run!(db, |c| {
        let mine = state::table
            .find(TTP_CURSOR_KEY)
            .select(state::value)
            .first::<JsonText>(c)
            .await
            .optional()?;
        let profile = state::table
            .find(PROFILE_CURSOR_KEY)
            .select(state::value)
            .first::<JsonText>(c)
            .await
            .optional()?;
        Ok::<_, diesel::result::Error>((mine, profile))
    })?;
    let cursor = cursor_of(mine);
    let upto = profile
        .and_then(|p| serde_json::from_value::<ProfileCursor>(p.0).ok())
        .map_or(0, |p| p.log_id);
    if upto <= cursor {
        return Ok(UntaggedPage {
            rows: Vec::new(),
            next_cursor: cursor,
        });
    }
    let rows: Vec<(i64, String)> = db_run!(db, |c| logs::table
        .filter(logs::id.gt(cursor))
        .filter(logs::id.le(upto))
        .order(logs::id)
        .limit(max)
        .select((logs::id, logs::raw_line))
        .load(c)
        .await)?;
    let next_cursor = rows.last().map_or(cursor, |r| r.0);
    Ok(UntaggedPage { rows, next_cursor })
}

/// `(attackers.uuid, identity_id)` per IP for the given IPs (IPs without a row are absent).
pub async fn attacker_uuids_by_ip(
    db: &Db,
    ips: &[&str],
) -> Result<HashMap<String, (String, Option<String>)>, DbError> {
    let mut out = HashMap::with_capacity(ips.len());
    for chunk in ips.chunks(IN_CHUNK) {
        let rows: Vec<(String, String, Option<String>)> = db_run!(db, |c| attackers::table
            .filter(attackers::ip.eq_any(chunk.iter().copied()))
            .select((attackers::ip, attackers::uuid, attackers::identity_id))
            .load(c)
            .await)?;
        out.extend(rows.into_iter().map(|(ip, u, i)| (ip, (u, i))));
    }
    Ok(out)
}

/// Store the tags of one page and advance the cursor, in one transaction.
pub async fn commit_tags(db: &Db, tags: Vec<TtpTag>, next_cursor: i64) -> Result<(), DbError> {
    let entry = StateEntry {
        key: TTP_CURSOR_KEY.to_owned(),
        value: JsonText(json!({ "log_id": next_cursor })),
    };
    db_tx!(db, |c| {
        if !tags.is_empty() {
            db_insert_batch!(c, ttp_tags::table, tags)?;
        }
        diesel::insert_into(state::table)
            .values(&entry)
            .on_conflict(state::key)
            .do_update()
            .set(state::value.eq(diesel::upsert::excluded(state::value)))
            .execute(c)
            .await?;
        Ok(())
    })
}

#[derive(QueryableByName)]
struct PhaseRow {
    #[diesel(sql_type = Nullable<Text>)]
    identity_id: Option<String>,
    #[diesel(sql_type = Text)]
    decky_id: String,
    #[diesel(sql_type = Text)]
    tactic_id: String,
    #[diesel(sql_type = Timestamp)]
    observed_at: NaiveDateTime,
    #[diesel(sql_type = BigInt)]
    log_id: i64,
    #[diesel(sql_type = Text)]
    uuid: String,
}

/// One chunk of every identity's tags, in `uuid` order after the cursor (the primary key's
/// index serves both the range and the order, on both backends).
const PHASES_CHUNK_PG: &str = "SELECT a.identity_id AS identity_id, t.decky_id AS decky_id, \
     t.tactic_id AS tactic_id, t.observed_at AS observed_at, t.log_id AS log_id, t.uuid AS uuid \
     FROM ttp_tags t JOIN attackers a ON a.uuid = t.attacker_uuid \
     WHERE a.identity_id IS NOT NULL AND t.uuid > $1 ORDER BY t.uuid LIMIT $2";
const PHASES_CHUNK_SQLITE: &str = "SELECT a.identity_id AS identity_id, t.decky_id AS decky_id, \
     t.tactic_id AS tactic_id, t.observed_at AS observed_at, t.log_id AS log_id, t.uuid AS uuid \
     FROM ttp_tags t JOIN attackers a ON a.uuid = t.attacker_uuid \
     WHERE a.identity_id IS NOT NULL AND t.uuid > ? ORDER BY t.uuid LIMIT ?";

/// Rows per chunk of [`ttp_decky_phases_owned`]'s read.
pub const PHASES_CHUNK: i64 = 20_000;

/// `list_ttp_decky_phases` for every identity at once: the phase entries of each identity's
/// literal observations, in event-time order. The entry time is the tagged event's time (the
/// handoff window compares event times; the tagging time would squash a backlog together).
pub async fn ttp_decky_phases(db: &Db) -> Result<HashMap<String, Vec<TtpPhaseEntry>>, DbError> {
    ttp_decky_phases_owned(db, |identity| Some(identity.to_owned())).await
}

/// [`ttp_decky_phases`] with each tag attributed to `owner(literal identity)` (dropped on
/// `None`): the campaign tick gives a merged-out identity's tags to the identity its merge
/// chain ends on, which represents it.
///
/// The tags are read [`PHASES_CHUNK`] rows at a time and folded into compact entries as they
/// come (see [`PhaseGroups`]): read whole, the rows of the 100k-attacker bench set (half a
/// million tags) took the daemon from ~200 to ~650 MiB during the campaign tick's full pass.
pub async fn ttp_decky_phases_owned<F>(
    db: &Db,
    owner: F,
) -> Result<HashMap<String, Vec<TtpPhaseEntry>>, DbError>
where
    F: Fn(&str) -> Option<String>,
{
    ttp_decky_phases_chunked(db, owner, PHASES_CHUNK, None).await
}

/// [`ttp_decky_phases_owned`] keeping, per identity and decky, only the first and the last
/// entry in event order among the tags whose tactic `counts`: all that a campaign feature
/// reads of them (the first and last phase and time on each decky), so the campaign tick's
/// full pass holds at most two entries per identity and decky instead of every tag.
pub async fn ttp_decky_phase_bounds_owned<F>(
    db: &Db,
    owner: F,
    counts: fn(&str) -> bool,
) -> Result<HashMap<String, Vec<TtpPhaseEntry>>, DbError>
where
    F: Fn(&str) -> Option<String>,
{
    ttp_decky_phases_chunked(db, owner, PHASES_CHUNK, Some(counts)).await
}

/// [`ttp_decky_phases_owned`] (or, with `bounds`, [`ttp_decky_phase_bounds_owned`]) reading
/// `chunk` rows at a time (public for the tests: the result does not depend on it).
pub async fn ttp_decky_phases_chunked<F>(
    db: &Db,
    owner: F,
    chunk: i64,
    bounds: Option<fn(&str) -> bool>,
) -> Result<HashMap<String, Vec<TtpPhaseEntry>>, DbError>
where
    F: Fn(&str) -> Option<String>,
{
    let chunk = chunk.max(1);
    let sql = match db {
        Db::Sqlite(_) => PHASES_CHUNK_SQLITE,
        Db::Pg(_) => PHASES_CHUNK_PG,
    };
    let mut groups = PhaseGroups {
        bounds,
        ..PhaseGroups::default()
    };
    let mut after = String::new();
    loop {
        let from = after.clone();
        let rows: Vec<PhaseRow> = db_run!(db, |c| diesel::sql_query(sql)
            .bind::<Text, _>(from)
            .bind::<BigInt, _>(chunk)
            .load(c)
            .await)?;
        let Some(last) = rows.last() else { break };
        after.clone_from(&last.uuid);
        let full = rows.len() as i64 == chunk;
        groups.add(rows, &owner);
        if !full {
            break;
        }
    }
    Ok(groups.finish())
}

/// The tie-break of two tags of one event: their uuids, compared as the strings they are. A
/// canonical (lowercase, hyphenated) uuid, which is what the tagger writes, is kept as its 128
/// bits, whose order is the string's; anything else is kept as it is.
#[derive(Debug, PartialEq, Eq)]
enum TagKey {
    Canonical([u64; 2]),
    Other(Box<str>),
}

impl TagKey {
    fn of(uuid: &str) -> Self {
        if let Ok(u) = uuid::Uuid::try_parse(uuid) {
            let mut buf = uuid::Uuid::encode_buffer();
            if u.hyphenated().encode_lower(&mut buf) == uuid {
                let (hi, lo) = u.as_u64_pair();
                return TagKey::Canonical([hi, lo]);
            }
        }
        TagKey::Other(uuid.into())
    }

    fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            TagKey::Canonical([hi, lo]) => uuid::Uuid::from_u64_pair(*hi, *lo)
                .hyphenated()
                .to_string()
                .into(),
            TagKey::Other(s) => s.as_ref().into(),
        }
    }
}

impl Ord for TagKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self, other) {
            (TagKey::Canonical(a), TagKey::Canonical(b)) => a.cmp(b),
            _ => self.text().cmp(&other.text()),
        }
    }
}

impl PartialOrd for TagKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One tag as kept between the read and the sort.
struct PhaseTag {
    observed_at: NaiveDateTime,
    log_id: i64,
    key: TagKey,
    decky: Arc<str>,
    tactic: Arc<str>,
}

impl PhaseTag {
    /// Event order: tag `observed_at`, then `log_id`, then tag uuid (a total order).
    fn event_cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.observed_at, self.log_id, &self.key).cmp(&(
            other.observed_at,
            other.log_id,
            &other.key,
        ))
    }
}

/// Tags grouped by the identity that owns them, folded in chunk by chunk: each decky and
/// tactic name is held once and shared by every entry that names it.
#[derive(Default)]
struct PhaseGroups {
    names: HashSet<Arc<str>>,
    groups: HashMap<String, Vec<PhaseTag>>,
    /// Keep only tags whose tactic counts, and of those only the first and the last per
    /// identity and decky.
    bounds: Option<fn(&str) -> bool>,
}

/// Add `tag` to `group`, which holds at most the first and the last tag of each decky: the
/// tag replaces the one it comes before or after, or is dropped when it lies between them.
fn keep_bounds(group: &mut Vec<PhaseTag>, tag: PhaseTag) {
    let mut same = group
        .iter()
        .enumerate()
        .filter(|(_, t)| t.decky == tag.decky)
        .map(|(at, _)| at);
    let (Some(x), Some(y)) = (same.next(), same.next()) else {
        group.push(tag);
        return;
    };
    let (first, last) = if group[x].event_cmp(&group[y]).is_le() {
        (x, y)
    } else {
        (y, x)
    };
    if tag.event_cmp(&group[first]).is_lt() {
        group[first] = tag;
    } else if tag.event_cmp(&group[last]).is_gt() {
        group[last] = tag;
    }
}

impl PhaseGroups {
    fn name(&mut self, s: String) -> Arc<str> {
        if let Some(n) = self.names.get(s.as_str()) {
            return Arc::clone(n);
        }
        let n: Arc<str> = s.into();
        self.names.insert(Arc::clone(&n));
        n
    }

    /// Add `rows`, each to the group of `owner(literal identity)` (dropped on `None`).
    fn add<F>(&mut self, rows: Vec<PhaseRow>, owner: &F)
    where
        F: Fn(&str) -> Option<String>,
    {
        for r in rows {
            let Some(o) = r.identity_id.as_deref().and_then(owner) else {
                continue;
            };
            if self.bounds.is_some_and(|counts| !counts(&r.tactic_id)) {
                continue;
            }
            let tag = PhaseTag {
                observed_at: r.observed_at,
                log_id: r.log_id,
                key: TagKey::of(&r.uuid),
                decky: self.name(r.decky_id),
                tactic: self.name(r.tactic_id),
            };
            let group = self.groups.entry(o).or_default();
            if self.bounds.is_some() {
                keep_bounds(group, tag);
            } else {
                group.push(tag);
            }
        }
    }

    /// Each group in event order: tag `observed_at`, then `log_id`, then tag uuid (a total
    /// order, whichever reads and chunks the rows came from).
    fn finish(self) -> HashMap<String, Vec<TtpPhaseEntry>> {
        self.groups
            .into_iter()
            .map(|(identity, mut tags)| {
                tags.sort_by(PhaseTag::event_cmp);
                let entries = tags
                    .into_iter()
                    .map(|t| TtpPhaseEntry {
                        decky_id: Some(t.decky),
                        tactic: Some(t.tactic),
                        created_at_ts: Some(t.observed_at.and_utc().timestamp() as f64),
                    })
                    .collect();
                (identity, entries)
            })
            .collect()
    }
}

/// Group the rows by `owner` of their literal identity, each group in event order (see
/// [`PhaseGroups::finish`]).
fn phase_map<F>(rows: Vec<PhaseRow>, owner: F) -> HashMap<String, Vec<TtpPhaseEntry>>
where
    F: Fn(&str) -> Option<String>,
{
    let mut groups = PhaseGroups::default();
    groups.add(rows, &owner);
    groups.finish()
}

const PHASES_OF_SQLITE: &str = "SELECT a.identity_id AS identity_id, t.decky_id AS decky_id, \
     t.tactic_id AS tactic_id, t.observed_at AS observed_at, t.log_id AS log_id, t.uuid AS uuid \
     FROM ttp_tags t JOIN attackers a ON a.uuid = t.attacker_uuid \
     WHERE a.identity_id IN (SELECT value FROM json_each(?))";
const PHASES_OF_PG: &str = "SELECT a.identity_id AS identity_id, t.decky_id AS decky_id, \
     t.tactic_id AS tactic_id, t.observed_at AS observed_at, t.log_id AS log_id, t.uuid AS uuid \
     FROM ttp_tags t JOIN attackers a ON a.uuid = t.attacker_uuid \
     WHERE a.identity_id = ANY($1)";

/// The phase entries of the observations literally FK'd to `identities`, each tag attributed
/// to `owner(literal identity)` as in [`ttp_decky_phases_owned`] (the campaign tick's scope).
pub async fn ttp_decky_phases_of<F>(
    db: &Db,
    identities: &[String],
    owner: F,
) -> Result<HashMap<String, Vec<TtpPhaseEntry>>, DbError>
where
    F: Fn(&str) -> Option<String>,
{
    let mut rows: Vec<PhaseRow> = Vec::new();
    for chunk in identities.chunks(IN_CHUNK) {
        // The list travels as one bind: a JSON array on SQLite, an array on PostgreSQL.
        rows.extend(match db {
            Db::Sqlite(pool) => {
                let list = serde_json::Value::from(chunk.to_vec()).to_string();
                let mut c = pool.get().await?;
                diesel::sql_query(PHASES_OF_SQLITE)
                    .bind::<Text, _>(&list)
                    .load::<PhaseRow>(&mut c)
                    .await?
            }
            Db::Pg(pool) => {
                let mut c = pool.get().await?;
                diesel::sql_query(PHASES_OF_PG)
                    .bind::<Array<Text>, _>(chunk)
                    .load::<PhaseRow>(&mut c)
                    .await?
            }
        });
    }
    Ok(phase_map(rows, owner))
}

#[derive(QueryableByName)]
struct IdentityIdRow {
    #[diesel(sql_type = Text)]
    identity_id: String,
}

const TAGGED_IN_SQLITE: &str = "SELECT DISTINCT a.identity_id AS identity_id \
     FROM ttp_tags t JOIN attackers a ON a.uuid = t.attacker_uuid \
     WHERE t.decky_id = ? AND t.observed_at >= ? AND t.observed_at <= ? \
     AND a.identity_id IS NOT NULL";
const TAGGED_IN_PG: &str = "SELECT DISTINCT a.identity_id AS identity_id \
     FROM ttp_tags t JOIN attackers a ON a.uuid = t.attacker_uuid \
     WHERE t.decky_id = $1 AND t.observed_at >= $2 AND t.observed_at <= $3 \
     AND a.identity_id IS NOT NULL";

/// Identities (literal FK of the tagged observation) with a tag on `decky` observed in
/// `[from, to]`: the handoff candidates of a campaign tick.
pub async fn identities_tagged_in(
    db: &Db,
    decky: &str,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Result<Vec<String>, DbError> {
    let sql = match db {
        Db::Sqlite(_) => TAGGED_IN_SQLITE,
        Db::Pg(_) => TAGGED_IN_PG,
    };
    let rows: Vec<IdentityIdRow> = db_run!(db, |c| diesel::sql_query(sql)
        .bind::<Text, _>(decky)
        .bind::<Timestamp, _>(from)
        .bind::<Timestamp, _>(to)
        .load(c)
        .await)?;
    Ok(rows.into_iter().map(|r| r.identity_id).collect())
}

const TAGGED_AFTER_SQLITE: &str = "SELECT DISTINCT a.identity_id AS identity_id \
     FROM ttp_tags t JOIN attackers a ON a.uuid = t.attacker_uuid \
     WHERE t.log_id > ? AND t.log_id <= ? AND a.identity_id IS NOT NULL";
const TAGGED_AFTER_PG: &str = "SELECT DISTINCT a.identity_id AS identity_id \
     FROM ttp_tags t JOIN attackers a ON a.uuid = t.attacker_uuid \
     WHERE t.log_id > $1 AND t.log_id <= $2 AND a.identity_id IS NOT NULL";

/// State key of the campaign clusterer's tag cursor: `{"log_id": n}`, the highest tag
/// `log_id` whose identity it has processed.
pub const CAMPAIGN_TAG_CURSOR_KEY: &str = "campaign_tag_cursor";

/// Identities whose observations got tags since the campaign clusterer's cursor, and the
/// cursor to store once they are processed (`None`: no new tag).
pub async fn identities_tagged_since_cursor(
    db: &Db,
) -> Result<(Vec<String>, Option<i64>), DbError> {
    let cursor: Option<JsonText> = db_run!(db, |c| state::table
        .find(CAMPAIGN_TAG_CURSOR_KEY)
        .select(state::value)
        .first(c)
        .await
        .optional())?;
    let cursor = cursor_of(cursor);
    let top: Option<i64> = db_run!(db, |c| ttp_tags::table
        .select(diesel::dsl::max(ttp_tags::log_id))
        .get_result(c)
        .await)?;
    let Some(top) = top.filter(|&t| t > cursor) else {
        return Ok((Vec::new(), None));
    };
    let sql = match db {
        Db::Sqlite(_) => TAGGED_AFTER_SQLITE,
        Db::Pg(_) => TAGGED_AFTER_PG,
    };
    let rows: Vec<IdentityIdRow> = db_run!(db, |c| diesel::sql_query(sql)
        .bind::<BigInt, _>(cursor)
        .bind::<BigInt, _>(top)
        .load(c)
        .await)?;
    Ok((rows.into_iter().map(|r| r.identity_id).collect(), Some(top)))
}

/// The state row that stores the campaign clusterer's tag cursor.
pub fn campaign_tag_cursor_entry(log_id: i64) -> StateEntry {
    StateEntry {
        key: CAMPAIGN_TAG_CURSOR_KEY.to_owned(),
        value: JsonText(json!({ "log_id": log_id })),
    }
}

/// Tags of one observation, newest first, at most `limit`.
pub async fn tags_for_attacker(
    db: &Db,
    attacker: &str,
    limit: i64,
) -> Result<Vec<TtpTag>, DbError> {
    Ok(db_run!(db, |c| ttp_tags::table
        .filter(ttp_tags::attacker_uuid.eq(attacker))
        .select(TtpTag::as_select())
        .order((
            ttp_tags::observed_at.desc(),
            ttp_tags::log_id.desc(),
            ttp_tags::rule_id.asc()
        ))
        .limit(limit)
        .load(c)
        .await)?)
}

/// Tags of every observation literally FK'd to `identity`, newest first, at most `limit`,
/// each with that observation's uuid.
pub async fn tags_for_identity(
    db: &Db,
    identity: &str,
    limit: i64,
) -> Result<Vec<TtpTag>, DbError> {
    let members: Vec<String> = db_run!(db, |c| attackers::table
        .filter(attackers::identity_id.eq(identity))
        .select(attackers::uuid)
        .load(c)
        .await)?;
    let mut out: Vec<TtpTag> = Vec::new();
    for chunk in members.chunks(IN_CHUNK) {
        let rows: Vec<TtpTag> = db_run!(db, |c| ttp_tags::table
            .filter(ttp_tags::attacker_uuid.eq_any(chunk))
            .select(TtpTag::as_select())
            .order((ttp_tags::observed_at.desc(), ttp_tags::log_id.desc()))
            .limit(limit)
            .load(c)
            .await)?;
        out.extend(rows);
    }
    out.sort_by(|a, b| {
        (b.observed_at, b.log_id)
            .cmp(&(a.observed_at, a.log_id))
            .then_with(|| a.rule_id.cmp(&b.rule_id))
    });
    out.truncate(usize::try_from(limit).unwrap_or(0));
    Ok(out)
}

/// Whether an observation with this uuid exists.
pub async fn attacker_exists(db: &Db, uuid: &str) -> Result<bool, DbError> {
    let n: i64 = db_run!(db, |c| attackers::table
        .filter(attackers::uuid.eq(uuid))
        .count()
        .get_result(c)
        .await)?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        identity: &str,
        decky: &str,
        tactic: &str,
        secs: i64,
        log_id: i64,
        uuid: &str,
    ) -> PhaseRow {
        PhaseRow {
            identity_id: Some(identity.to_owned()),
            decky_id: decky.to_owned(),
            tactic_id: tactic.to_owned(),
            observed_at: chrono::DateTime::from_timestamp(secs, 0)
                .expect("time")
                .naive_utc(),
            log_id,
            uuid: uuid.to_owned(),
        }
    }

    fn copy(rows: &[PhaseRow]) -> Vec<PhaseRow> {
        rows.iter()
            .map(|r| {
                row(
                    r.identity_id.as_deref().unwrap_or(""),
                    &r.decky_id,
                    &r.tactic_id,
                    r.observed_at.and_utc().timestamp(),
                    r.log_id,
                    &r.uuid,
                )
            })
            .collect()
    }

    /// Tag keys order exactly as their uuid strings do, canonical or not.
    #[test]
    fn tag_keys_order_as_their_strings() {
        let mut texts = vec![
            "ffffffff-0000-4000-8000-000000000000".to_owned(),
            "00000000-0000-4000-8000-00000000000a".to_owned(),
            "00000000-0000-4000-8000-000000000009".to_owned(),
            "0000000A-0000-4000-8000-000000000000".to_owned(),
            "00000000000040008000000000000001".to_owned(),
            "not-a-uuid".to_owned(),
            String::new(),
            "zzz".to_owned(),
        ];
        for i in 0..40u128 {
            texts.push(
                uuid::Uuid::from_u128(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834))
                    .to_string(),
            );
        }
        assert!(matches!(TagKey::of(&texts[0]), TagKey::Canonical(_)));
        assert!(
            matches!(TagKey::of(&texts[3]), TagKey::Other(_)),
            "uppercase is kept as text"
        );
        assert!(
            matches!(TagKey::of(&texts[4]), TagKey::Other(_)),
            "simple form is kept as text"
        );
        let mut by_key: Vec<(TagKey, String)> =
            texts.iter().map(|t| (TagKey::of(t), t.clone())).collect();
        by_key.sort_by(|a, b| a.0.cmp(&b.0));
        let mut by_text = texts.clone();
        by_text.sort();
        assert_eq!(
            by_key.into_iter().map(|(_, t)| t).collect::<Vec<_>>(),
            by_text
        );
        for t in &texts {
            assert_eq!(TagKey::of(t).text(), t.as_str());
        }
    }

    /// Kept bounds give every owner the features all its tags give, in any chunking and row
    /// order, from at most two entries per decky; tags of tactics that do not count are left
    /// out (one of them first or last on a decky must not hide a counted one).
    #[test]
    fn bounds_give_the_features_of_every_tag() {
        use crate::domain::clustering::campaign::{ukc_phase_for_tactic, IdentityFeatures};
        use rand::{Rng, SeedableRng};
        let tactics = [
            "TA0011", "TA0003", "TA0007", "TA0008", "TA0006", "TA9999", "X",
        ];
        let counts: fn(&str) -> bool = |t| ukc_phase_for_tactic(t).is_some();
        for seed in 0..200u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let n = rng.gen_range(0..60);
            let make = |rng: &mut rand::rngs::StdRng, k: u128| {
                row(
                    &format!("i{}", rng.gen_range(0..4)),
                    &format!("d{}", rng.gen_range(0..3)),
                    tactics[rng.gen_range(0..tactics.len())],
                    rng.gen_range(0..6),
                    rng.gen_range(0..4),
                    &uuid::Uuid::from_u128(k.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_string(),
                )
            };
            let mut rows: Vec<PhaseRow> = (0..n).map(|k| make(&mut rng, k)).collect();
            let owner = |l: &str| Some(l.to_owned());
            let whole = phase_map(copy(&rows), owner);
            let mut groups = PhaseGroups {
                bounds: Some(counts),
                ..PhaseGroups::default()
            };
            let chunk = rng.gen_range(1..8);
            if rng.gen_bool(0.5) {
                rows.reverse();
            }
            while !rows.is_empty() {
                let rest = rows.split_off(rows.len().min(chunk));
                groups.add(std::mem::replace(&mut rows, rest), &owner);
            }
            let bounds = groups.finish();
            for (id, entries) in &whole {
                let kept = bounds.get(id).map_or(&[][..], Vec::as_slice);
                assert_eq!(
                    IdentityFeatures::from_stored(id, None, None, None, kept),
                    IdentityFeatures::from_stored(id, None, None, None, entries),
                    "seed {seed}, {id}"
                );
                for d in 0..3 {
                    let on = kept
                        .iter()
                        .filter(|e| e.decky_id.as_deref() == Some(&*format!("d{d}")))
                        .count();
                    assert!(on <= 2, "seed {seed}: {on} entries on d{d}");
                }
                assert!(kept.iter().all(|e| e.tactic.as_deref().is_some_and(counts)));
            }
        }
    }

    /// Rows folded in several chunks, in any order, give each owner its entries in event order
    /// (time, log id, tag uuid), with one shared copy of each name.
    #[test]
    fn groups_are_in_event_order_whatever_the_chunks() {
        let u = |n: u128| uuid::Uuid::from_u128(n).to_string();
        let rows = vec![
            row("i1", "d2", "TA0011", 20, 7, &u(3)),
            row("i1", "d1", "TA0006", 10, 5, &u(9)),
            row("i2", "d1", "TA0007", 15, 6, &u(1)),
            row("i1", "d1", "TA0003", 20, 7, &u(2)),
            row("merged", "d3", "TA0007", 5, 1, &u(4)),
            row("gone", "d3", "TA0007", 5, 1, &u(5)),
            row("i1", "d1", "TA0007", 20, 6, &u(8)),
        ];
        let owner = |l: &str| match l {
            "merged" => Some("i2".to_owned()),
            "gone" => None,
            other => Some(other.to_owned()),
        };
        let whole = phase_map(copy(&rows), owner);
        let mut groups = PhaseGroups::default();
        let mut rows = rows;
        rows.reverse();
        while !rows.is_empty() {
            let rest = rows.split_off(rows.len().min(2));
            groups.add(std::mem::replace(&mut rows, rest), &owner);
        }
        let chunked = groups.finish();
        assert_eq!(chunked, whole);
        let seq = |id: &str| {
            chunked[id]
                .iter()
                .map(|e| {
                    (
                        e.decky_id.as_deref().unwrap_or(""),
                        e.tactic.as_deref().unwrap_or(""),
                        e.created_at_ts,
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            seq("i1"),
            vec![
                ("d1", "TA0006", Some(10.0)),
                ("d1", "TA0007", Some(20.0)),
                ("d1", "TA0003", Some(20.0)),
                ("d2", "TA0011", Some(20.0)),
            ],
            "time, then log id, then uuid"
        );
        assert_eq!(
            seq("i2"),
            vec![("d3", "TA0007", Some(5.0)), ("d1", "TA0007", Some(15.0))]
        );
        assert_eq!(chunked.len(), 2, "a tag without owner is dropped");
        let d1: Vec<&Arc<str>> = chunked
            .values()
            .flatten()
            .filter_map(|e| e.decky_id.as_ref())
            .filter(|d| d.as_ref() == "d1")
            .collect();
        assert!(
            d1.len() == 4 && d1.iter().all(|d| Arc::ptr_eq(d, d1[0])),
            "one shared name"
        );
    }
}
