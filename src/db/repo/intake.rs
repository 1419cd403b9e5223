//! Intake storage: the batch commit of the ingester (logs → bounty → credentials → attackers,
//! plus the ingest offset, all in ONE transaction), the credential-reuse pass, and the
//! read queries behind the intake routes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{json, Value};

use crate::db::models::intake::{
    Attacker, Credential, CredentialReuse, Log, NewBounty, NewCredential, NewLog, NewQuarantined,
    Quarantined,
};
use crate::db::models::StateEntry;
use crate::db::schema::{
    attacker_ext, attackers, bounty, credential_reuse, credentials, ingest_quarantine, logs, state,
};
use crate::db::{new_uuid, now_utc, AnyConnMut, AsAnyConn, Db, DbError, JsonText};
use crate::domain::syslog::credential::CredentialCaptured;
use crate::domain::syslog::observation::{
    iso, merge_profile, AttackerProfile, ObservationBatch, ObservedPayload, ScoredPayload,
};
use crate::domain::syslog::reuse::{self, CredentialRow, Finding, GroupKey};
use crate::domain::syslog::{
    parse_json_record, parse_line_bytes, CredentialDraft, Extraction, Record,
};
use crate::{db_run, db_tx};

/// Hex sha256 of a text (dedup keys).
pub fn text_hash(s: &str) -> String {
    bytes_hash(s.as_bytes())
}

/// Hex sha256 of received bytes (dedup keys of lines, computed before any lossy conversion).
pub fn bytes_hash(b: &[u8]) -> String {
    crate::domain::syslog::credential::sha256_hex(b)
}

/// Dedup key of a stored line (`logs.line_hash`): 16 hex digits of its timestamp
/// (microseconds since the epoch; zeros when it has none) followed by 128 bits of the line's
/// sha256. The time prefix keeps the unique index append-mostly, since lines arrive roughly
/// in time order: a batch touches a few index pages instead of one per row, which was the
/// largest single cost of a SQLite commit.
pub fn line_key(timestamp: Option<NaiveDateTime>, raw: impl AsRef<[u8]>) -> String {
    let micros = timestamp.map_or(0, |t| t.and_utc().timestamp_micros().max(0));
    let hash = bytes_hash(raw.as_ref());
    format!("{micros:016x}{}", &hash[..32])
}

/// One parsed line ready for the batch commit.
#[derive(Debug, Clone)]
pub struct PreparedRecord {
    /// The `logs` row.
    pub log: NewLog,
    /// The parsed record (attacker aggregation).
    pub record: Record,
    /// Bounties and credential of §6/§7.
    pub extraction: Extraction,
    /// `record` is what the profiler's own parse of the stored `raw_line` gives (the line
    /// went through the RFC 5424 parser, which stores the text it parsed): a [`FoldHint`]
    /// folds it as it is instead of parsing the stored text again.
    pub profile_exact: bool,
}

impl PreparedRecord {
    /// Build the row for `record`; `now` is used when its timestamp did not parse.
    /// `raw_bytes`: the received bytes when `record.raw_line` is not exactly them (see
    /// [`storable_text`](crate::domain::syslog::storable_text)); they are kept and keyed.
    pub fn new(
        record: Record,
        extraction: Extraction,
        now: NaiveDateTime,
        raw_bytes: Option<Vec<u8>>,
    ) -> Self {
        let line_hash = match &raw_bytes {
            Some(b) => line_key(record.timestamp, b),
            None => line_key(record.timestamp, &record.raw_line),
        };
        let log = NewLog {
            timestamp: record.timestamp.unwrap_or(now),
            decky: record.decky.clone(),
            service: record.service.clone(),
            event_type: record.event_type.clone(),
            attacker_ip: record.attacker_ip.clone(),
            raw_line: record.raw_line.clone(),
            fields: record.fields().to_json(),
            msg: (!record.msg.is_empty()).then(|| record.msg.clone()),
            source_worker: record.source_worker.clone(),
            line_hash,
            raw_bytes,
        };
        PreparedRecord {
            log,
            record,
            extraction,
            profile_exact: false,
        }
    }
}

/// Everything one batch commits.
#[derive(Debug, Clone, Default)]
pub struct CommitInput {
    /// Parsed lines in arrival order.
    pub records: Vec<PreparedRecord>,
    /// Lines that did not parse.
    pub quarantine: Vec<NewQuarantined>,
    /// `(state key, value)` written in the same transaction (the file offset).
    pub position: Option<(String, Value)>,
}

/// A mail artifact stored by a batch, with what its bus events need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailStored {
    /// Index into `CommitInput::records`.
    pub record: usize,
    /// The attacker row of its IP, when one already exists.
    pub attacker_uuid: Option<String>,
    /// The `artifact` bounty row.
    pub artifact_id: Option<i64>,
}

/// What a committed batch did (events are published by the caller after commit).
#[derive(Debug, Clone, Default)]
pub struct CommitOutcome {
    /// New `logs` rows.
    pub logs_inserted: usize,
    /// Lines already stored (replays).
    pub duplicates: usize,
    /// New quarantine rows.
    pub quarantined: usize,
    /// New bounty rows.
    pub bounties_inserted: usize,
    /// One per credential attempt (new or repeated).
    pub captured: Vec<CredentialCaptured>,
    /// Indexes (into `CommitInput::records`) of the lines stored by this batch.
    pub inserted: Vec<usize>,
    /// Stored mails (clause 12b) of this batch.
    pub mail: Vec<MailStored>,
    /// New credential rows.
    pub new_credentials: usize,
}

fn json_list<T: serde::de::DeserializeOwned>(text: &str) -> Vec<T> {
    serde_json::from_str(text).unwrap_or_default()
}

fn to_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned())
}

fn profile_of(a: &Attacker, all_deckies: Option<&String>) -> AttackerProfile {
    AttackerProfile {
        first_seen: a.first_seen,
        last_seen: a.last_seen,
        event_count: a.event_count,
        service_count: a.service_count,
        decky_count: a.decky_count,
        services: json_list(&a.services),
        deckies: json_list(&a.deckies),
        all_deckies: all_deckies.map(|t| json_list(t)).unwrap_or_default(),
        traversal_path: a.traversal_path.clone(),
        is_traversal: a.is_traversal,
        bounty_count: a.bounty_count,
        credential_count: a.credential_count,
        // The stored lists only ever grow by appending; [`attacker_write`] splices the new
        // items onto the stored text instead of decoding and re-encoding every old entry.
        fingerprints: Vec::new(),
        commands: Vec::new(),
    }
}

/// `stored` (a JSON array text) with `new` appended, without decoding the stored items.
/// Unreadable stored text is replaced by the new items alone.
fn append_json_list<T: serde::Serialize>(stored: Option<&str>, new: &[T]) -> String {
    let base = stored
        .map(str::trim)
        .filter(|t| t.starts_with('[') && t.ends_with(']'));
    let Some(base) = base else {
        return to_text(&new);
    };
    if new.is_empty() {
        return base.to_owned();
    }
    let added = to_text(&new);
    let inner = &added[1..added.len() - 1];
    let head = base[..base.len() - 1].trim_end();
    let mut out = String::with_capacity(head.len() + inner.len() + 2);
    out.push_str(head);
    if head.len() > 1 {
        out.push(',');
    }
    out.push_str(inner);
    out.push(']');
    out
}

/// The row to store: `p` from [`merge_profile`] over a [`profile_of`] (whose list columns
/// hold only the new items), list columns appended to `old`'s.
fn attacker_write(
    uuid: String,
    ip: &str,
    p: &AttackerProfile,
    old: Option<&Attacker>,
    now: NaiveDateTime,
) -> Attacker {
    Attacker {
        uuid,
        ip: ip.to_owned(),
        first_seen: p.first_seen,
        last_seen: p.last_seen,
        event_count: p.event_count,
        service_count: p.service_count,
        decky_count: p.decky_count,
        services: to_text(&p.services),
        deckies: to_text(&p.deckies),
        traversal_path: p.traversal_path.clone(),
        is_traversal: p.is_traversal,
        bounty_count: p.bounty_count,
        credential_count: p.credential_count,
        fingerprints: append_json_list(old.map(|a| a.fingerprints.as_str()), &p.fingerprints),
        commands: append_json_list(old.map(|a| a.commands.as_str()), &p.commands),
        updated_at: now,
    }
}

fn new_credential(d: &CredentialDraft, at: NaiveDateTime) -> NewCredential {
    NewCredential {
        attacker_ip: d.attacker_ip.clone(),
        decky_name: d.decky_name.clone(),
        service: d.service.clone(),
        principal: d.principal.clone(),
        principal_key: d.principal_key.clone(),
        secret_kind: d.secret_kind.clone(),
        secret_sha256: d.secret_sha256.clone(),
        secret_b64: Some(d.secret_b64.clone()),
        secret_printable: d.secret_printable.clone(),
        outcome: d.outcome.clone(),
        fields: d.fields_json.clone(),
        first_seen: at,
        last_seen: at,
        attempt_count: 1,
        touched_seq: 0,
    }
}

diesel::define_sql_function! {
    /// SQL `COALESCE` over two nullable texts (a declared function keeps the upsert cacheable
    /// as a prepared statement, unlike a raw SQL fragment).
    fn coalesce(x: diesel::sql_types::Nullable<diesel::sql_types::Text>, y: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>;
}

/// Rows per multi-row statement of the batch commit (both backends; keeps binds far under
/// SQLite's 32 766 and PostgreSQL's 65 535 limits).
const CHUNK_ROWS: usize = 1000;

/// State key of the profiler cursor.
pub const PROFILE_CURSOR_KEY: &str = "attacker_profile_cursor";

/// State key of the credential-reuse cursor: `{"seq": n}`, the highest `credentials.touched_seq`
/// the last pass correlated.
pub const REUSE_CURSOR_KEY: &str = "credential_reuse_cursor";

/// How far the `attackers` rows reflect the intake tables: every `logs`, `bounty` and
/// `credentials` row with an id at or below these is folded in, none above.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProfileCursor {
    /// Last `logs.id` folded in.
    pub log_id: i64,
    /// Last `bounty.id` folded in.
    pub bounty_id: i64,
    /// Last `credentials.id` folded in.
    pub credential_id: i64,
}

/// What one profiler pass wrote (events are published by the caller after commit).
#[derive(Debug, Clone, Default)]
pub struct ProfileOutcome {
    /// Rows folded in: logs, bounties, credentials.
    pub folded: (usize, usize, usize),
    /// `attacker.observed` payloads with the uuid of the row just created.
    pub observed: Vec<(ObservedPayload, String)>,
    /// `attacker.scored` payloads with the row uuid.
    pub scored: Vec<(ScoredPayload, String)>,
    /// The cursor after the pass.
    pub cursor: ProfileCursor,
    /// The log rows came from a [`FoldHint`] (not read and parsed again).
    pub hinted: bool,
}

/// The full bounty row object stored in `attackers.fingerprints`.
fn fingerprint_row(
    id: i64,
    at: NaiveDateTime,
    decky: &str,
    service: &str,
    ip: &str,
    bounty_type: &str,
    payload: &str,
) -> Value {
    json!({
        "id": id,
        "timestamp": iso(at),
        "decky": decky,
        "service": service,
        "attacker_ip": ip,
        "bounty_type": bounty_type,
        "payload": serde_json::from_str::<Value>(payload).unwrap_or(Value::Null),
    })
}

/// A `bounty` row as the profiler reads it.
type BountyRow = (i64, NaiveDateTime, String, String, String, String, String);

/// The record the profiler folds for a stored `logs.raw_line` (its own parse of the stored
/// text, spec §3.9): a JSON object when the text is one, else an RFC 5424 line; `None` when
/// it does not parse.
fn profile_record(raw: &str) -> Option<Record> {
    if raw.starts_with('{') {
        parse_json_record(raw).ok()
    } else {
        parse_line_bytes(raw.as_bytes()).ok()
    }
}

/// Fold stored log rows into `obs`, in id order (parsing is per line, in parallel).
fn observe_logs(obs: &mut ObservationBatch, log_rows: &[(i64, String)]) {
    let records = crate::domain::par::map(log_rows, |(_, raw)| profile_record(raw));
    for rec in records.into_iter().flatten() {
        let _ = obs.observe(&rec);
    }
}

/// Fold stored bounty and credential rows into `obs` (after the log rows, as a pass does).
fn observe_rest(
    obs: &mut ObservationBatch,
    bounty_rows: &[BountyRow],
    credential_ips: &[(i64, String)],
) {
    for (id, at, decky, service, ip, bounty_type, payload) in bounty_rows {
        let fp = (bounty_type == "fingerprint")
            .then(|| fingerprint_row(*id, *at, decky, service, ip, bounty_type, payload));
        obs.add_bounty(ip, fp);
    }
    for (_, ip) in credential_ips {
        obs.add_credential(ip);
    }
}

/// Most log rows a [`FoldHint`] folds before it gives up (the next pass then reads them).
pub const FOLD_HINT_MAX_ROWS: usize = 1_000_000;

/// The `logs` rows this process committed since the profiler cursor, already folded as the
/// next pass would fold them, so that the pass need not read and parse them again.
///
/// The commit parsed every line moments before; a record that came from the RFC 5424 parser
/// is the record the pass would parse from the stored text (the stored `raw_line` is the text
/// it was parsed from), so it is folded as it is. Any other record (a JSON object whose
/// `raw_line` field is stored instead of the object) is folded from its stored text, as the
/// pass does. A pass uses the hint only when it still describes the table: the stored cursor
/// is the one the hint starts after and the table holds exactly the hint's rows above it (no
/// row of another process, no commit the hint missed); otherwise it reads the rows as before.
#[derive(Debug, Clone)]
pub struct FoldHint {
    after: i64,
    rows: usize,
    obs: ObservationBatch,
}

impl FoldHint {
    /// An empty hint for the rows above `logs.id` = `after` (the cursor a pass just stored).
    pub fn after(after: i64) -> Self {
        Self {
            after,
            rows: 0,
            obs: ObservationBatch::new(),
        }
    }

    /// Log rows folded so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Fold the rows a committed batch inserted (`inserted`: [`CommitOutcome::inserted`]), in
    /// insertion (= id) order.
    pub fn add(&mut self, input: &CommitInput, inserted: &[usize]) {
        for r in inserted.iter().filter_map(|&i| input.records.get(i)) {
            self.rows += 1;
            if r.profile_exact {
                let _ = self.obs.observe(&r.record);
            } else if let Some(rec) = profile_record(&r.log.raw_line) {
                let _ = self.obs.observe(&rec);
            }
        }
    }
}

/// Credential attempts of one batch folded per dedup key: first occurrence's columns,
/// `attempt_count` = attempts in the batch, `last_seen` = last attempt, `outcome` = last
/// non-null outcome.
fn fold_credentials<'a>(
    attempts: impl Iterator<Item = (&'a CredentialDraft, NaiveDateTime)>,
) -> Vec<NewCredential> {
    let mut rows: Vec<NewCredential> = Vec::new();
    let mut index: HashMap<(String, String, String, String, String, String), usize> =
        HashMap::new();
    for (d, at) in attempts {
        let key = (
            d.attacker_ip.clone(),
            d.decky_name.clone(),
            d.service.clone(),
            d.secret_kind.clone(),
            d.secret_sha256.clone(),
            d.principal_key.clone(),
        );
        match index.get(&key) {
            Some(&i) => {
                let r = &mut rows[i];
                r.attempt_count += 1;
                r.last_seen = at;
                if d.outcome.is_some() {
                    r.outcome.clone_from(&d.outcome);
                }
            }
            None => {
                index.insert(key, rows.len());
                rows.push(new_credential(d, at));
            }
        }
    }
    rows
}

/// Take the profiler lock: a no-op write to the cursor row. On PostgreSQL the row lock is
/// held to the end of the transaction, so batch commits and profiler passes of concurrent
/// processes run one at a time and ids become visible in order (a pass can never skip an id
/// that commits later); on SQLite `BEGIN IMMEDIATE` already serialises writers.
macro_rules! lock_profile_cursor {
    ($c:ident $(, $aw:ident)?) => {{
        let seed = StateEntry {
            key: PROFILE_CURSOR_KEY.to_owned(),
            value: JsonText(json!(ProfileCursor::default())),
        };
        diesel::insert_into(state::table)
            .values(&seed)
            .on_conflict(state::key)
            .do_nothing()
            .execute(&mut *$c)
            $(.$aw)??;
        diesel::update(state::table.find(PROFILE_CURSOR_KEY))
            .set(state::value.eq(state::value))
            .execute(&mut *$c)
            $(.$aw)??;
    }};
}

/// The batch body, written once for both backends: expanded with `.await` for PostgreSQL
/// (diesel-async) and without it for SQLite (sync diesel on the connection's own thread, so a
/// batch costs one hop to that thread instead of one per statement).
/// Run one insert statement over `$rows`, summing the affected counts. The PostgreSQL
/// expansion (the one with `await`) sends one multi-row statement per [`CHUNK_ROWS`] (a round
/// trip each); the SQLite one runs a statement per row, because diesel cannot batch an
/// upsert there and an in-process statement costs no round trip.
macro_rules! insert_each {
    ($c:ident, $rows:expr, |$v:ident| $stmt:expr) => {{
        let mut n = 0usize;
        for $v in $rows.iter() {
            n += $stmt.execute(&mut *$c)?;
        }
        n
    }};
    ($c:ident, $rows:expr, |$v:ident| $stmt:expr, $aw:ident) => {{
        let mut n = 0usize;
        for $v in $rows.chunks(CHUNK_ROWS) {
            n += $stmt.execute(&mut *$c).$aw?;
        }
        n
    }};
}

/// `attackers.all_deckies` for `(uuid, list)` pairs: a statement per row on SQLite, one
/// `UPDATE … FROM unnest(…)` per chunk on PostgreSQL (the column lives in [`attacker_ext`],
/// which diesel cannot upsert together with [`attackers`]).
macro_rules! set_all_deckies {
    ($c:ident, $pairs:expr) => {
        for (uuid, list) in $pairs.iter() {
            diesel::update(attacker_ext::table.find(uuid))
                .set(attacker_ext::all_deckies.eq(list))
                .execute(&mut *$c)?;
        }
    };
    ($c:ident, $pairs:expr, $aw:ident) => {
        for chunk in $pairs.chunks(CHUNK_ROWS) {
            let (uuids, lists): (Vec<&str>, Vec<&str>) =
                chunk.iter().map(|(u, l)| (u.as_str(), l.as_str())).unzip();
            diesel::sql_query(
                "UPDATE attackers AS a SET all_deckies = v.d \
                 FROM unnest($1::text[], $2::text[]) AS v(uuid, d) WHERE a.uuid = v.uuid",
            )
            .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(uuids)
            .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(lists)
            .execute(&mut *$c)
            .$aw?;
        }
    };
}

/// `(highest stored credentials.touched_seq, reuse-pass cursor)`. A writer takes one above
/// both as its sequence (so rows written after a manual purge still land above the cursor);
/// that is exact because every writer holds the profile-cursor lock
/// ([`lock_profile_cursor!`]) until it commits. The reuse pass reads the same two marks.
macro_rules! credential_seq_marks {
    ($c:ident $(, $aw:ident)?) => {{
        let stored: Option<i64> = credentials::table
            .select(diesel::dsl::max(credentials::touched_seq))
            .get_result(&mut *$c)
            $(.$aw)??;
        let cursor: Option<StateEntry> = state::table
            .find(REUSE_CURSOR_KEY)
            .select(StateEntry::as_select())
            .first(&mut *$c)
            $(.$aw)?
            .optional()?;
        let cursor = cursor.and_then(|e| e.value.0.get("seq").and_then(serde_json::Value::as_i64));
        (stored.unwrap_or(0), cursor.unwrap_or(0))
    }};
}

/// The next credential write sequence (see [`credential_seq_marks!`]).
macro_rules! next_credential_seq {
    ($c:ident $(, $aw:ident)?) => {{
        let (stored, cursor) = credential_seq_marks!($c $(, $aw)?);
        stored.max(cursor) + 1
    }};
}

macro_rules! commit_body {
    ($c:ident, $input:expr $(, $aw:ident)?) => {{
        let input: &CommitInput = $input;
        let mut out = CommitOutcome::default();
        lock_profile_cursor!($c $(, $aw)?);

        // 1. logs, deduplicated on the line key (stored rows and repeats inside the batch).
        let mut existing: HashSet<String> = HashSet::new();
        for chunk in input.records.chunks(CHUNK_ROWS) {
            let found: Vec<String> = logs::table
                .filter(logs::line_hash.eq_any(chunk.iter().map(|r| r.log.line_hash.as_str())))
                .select(logs::line_hash)
                .load(&mut *$c)
                $(.$aw)??;
            existing.extend(found);
        }
        let mut fresh: Vec<&PreparedRecord> = Vec::with_capacity(input.records.len());
        for (i, r) in input.records.iter().enumerate() {
            if existing.insert(r.log.line_hash.clone()) {
                fresh.push(r);
                out.inserted.push(i);
            } else {
                out.duplicates += 1;
            }
        }
        let rows: Vec<&NewLog> = fresh.iter().map(|r| &r.log).collect();
        for chunk in rows.chunks(CHUNK_ROWS) {
            out.logs_inserted += diesel::insert_into(logs::table)
                .values(chunk.to_vec())
                .execute(&mut *$c)
                $(.$aw)??;
        }

        // 2. bounties: repeats inside the batch need no statement; stored ones are skipped by
        // the unique index (an index probe, no write).
        let mut seen: HashSet<(&str, &str, String)> = HashSet::new();
        let mut new_bounties: Vec<NewBounty> = Vec::new();
        for r in &fresh {
            for b in &r.extraction.bounties {
                let payload_hash = text_hash(&b.payload);
                if seen.insert((b.bounty_type, b.attacker_ip.as_str(), payload_hash.clone())) {
                    new_bounties.push(NewBounty {
                        timestamp: r.log.timestamp,
                        decky: b.decky.clone(),
                        service: b.service.clone(),
                        attacker_ip: b.attacker_ip.clone(),
                        bounty_type: b.bounty_type.to_owned(),
                        payload: b.payload.clone(),
                        payload_hash,
                    });
                }
            }
        }
        out.bounties_inserted += insert_each!($c, new_bounties, |v| {
            diesel::insert_into(bounty::table)
                .values(v)
                .on_conflict((bounty::bounty_type, bounty::attacker_ip, bounty::payload_hash))
                .do_nothing()
        } $(, $aw)?);

        // 3. credentials: one upsert per dedup key, attempts of the batch folded in.
        let attempts: Vec<(&CredentialDraft, NaiveDateTime)> = fresh
            .iter()
            .filter_map(|r| match &r.extraction.credential {
                Some(Ok(d)) => Some((d, r.log.timestamp)),
                _ => None,
            })
            .collect();
        out.captured = attempts.iter().map(|(d, _)| d.captured_event()).collect();
        // New rows are counted from the ids (RETURNING doubles the cost of an SQLite upsert);
        // exact because batch commits are serialised by the cursor lock.
        let last_id: Option<i64> = credentials::table
            .select(diesel::dsl::max(credentials::id))
            .get_result(&mut *$c)
            $(.$aw)??;
        // One statement per chunk: the fold leaves each conflict key once, as PostgreSQL's
        // multi-row `ON CONFLICT DO UPDATE` requires.
        let mut folded = fold_credentials(attempts.into_iter());
        if !folded.is_empty() {
            let seq = next_credential_seq!($c $(, $aw)?);
            for row in &mut folded {
                row.touched_seq = seq;
            }
        }
        insert_each!($c, folded, |v| {
            diesel::insert_into(credentials::table)
                .values(v)
                .on_conflict((
                    credentials::attacker_ip,
                    credentials::decky_name,
                    credentials::service,
                    credentials::secret_kind,
                    credentials::secret_sha256,
                    credentials::principal_key,
                ))
                .do_update()
                .set((
                    credentials::attempt_count
                        .eq(credentials::attempt_count + excluded(credentials::attempt_count)),
                    credentials::last_seen.eq(excluded(credentials::last_seen)),
                    credentials::outcome
                        .eq(coalesce(excluded(credentials::outcome), credentials::outcome)),
                    credentials::touched_seq.eq(excluded(credentials::touched_seq)),
                ))
        } $(, $aw)?);
        let created: i64 = credentials::table
            .filter(credentials::id.gt(last_id.unwrap_or(0)))
            .count()
            .get_result(&mut *$c)
            $(.$aw)??;
        out.new_credentials = usize::try_from(created).unwrap_or(0);

        // 4. stored mails (rare): the attacker row and artifact row their events name.
        for &i in &out.inserted {
            let r = &input.records[i];
            if !r.extraction.email_received {
                continue;
            }
            let ip = r.record.attacker_ip.as_str();
            let attacker_uuid: Option<String> = attackers::table
                .filter(attackers::ip.eq(ip))
                .select(attackers::uuid)
                .first(&mut *$c)
                $(.$aw)?
                .optional()?;
            let artifact_id: Option<i64> = match r
                .extraction
                .bounties
                .iter()
                .find(|b| b.bounty_type == "artifact")
            {
                Some(b) => bounty::table
                    .filter(bounty::bounty_type.eq("artifact"))
                    .filter(bounty::attacker_ip.eq(&b.attacker_ip))
                    .filter(bounty::payload_hash.eq(text_hash(&b.payload)))
                    .select(bounty::id)
                    .first(&mut *$c)
                    $(.$aw)?
                    .optional()?,
                None => None,
            };
            out.mail.push(MailStored {
                record: i,
                attacker_uuid,
                artifact_id,
            });
        }

        // 5. quarantine (identical garbage collapses to one row).
        for q in &input.quarantine {
            out.quarantined += diesel::insert_into(ingest_quarantine::table)
                .values(q)
                .on_conflict(ingest_quarantine::line_hash)
                .do_nothing()
                .execute(&mut *$c)
                $(.$aw)??;
        }

        // 6. the position, in the same transaction: a crash can never separate rows from it.
        if let Some((key, value)) = &input.position {
            let row = StateEntry {
                key: key.clone(),
                value: JsonText(value.clone()),
            };
            diesel::insert_into(state::table)
                .values(&row)
                .on_conflict(state::key)
                .do_update()
                .set(state::value.eq(excluded(state::value)))
                .execute(&mut *$c)
                $(.$aw)??;
        }
        Ok(out)
    }};
}

/// The profiler pass body (both backends, see [`commit_body`]): fold every intake row above
/// the cursor into the `attackers` rows, back-fill `credentials.attacker_uuid`, advance the
/// cursor.
macro_rules! profile_body {
    ($c:ident, $now:expr, $hint:expr $(, $aw:ident)?) => {{
        let now: NaiveDateTime = $now;
        let hint: Option<FoldHint> = $hint;
        let mut out = ProfileOutcome::default();
        let mut laps = crate::metrics::Laps::new("profile_pass");
        lock_profile_cursor!($c $(, $aw)?);
        let stored: StateEntry = state::table
            .find(PROFILE_CURSOR_KEY)
            .select(StateEntry::as_select())
            .first(&mut *$c)
            $(.$aw)??;
        let cursor: ProfileCursor = serde_json::from_value(stored.value.0).unwrap_or_default();
        // The hint stands for the log rows above the cursor only if it starts there and the
        // table holds exactly its rows above it.
        let hinted = match hint {
            Some(h) if h.after == cursor.log_id => {
                let (n, last): (i64, Option<i64>) = logs::table
                    .filter(logs::id.gt(cursor.log_id))
                    .select((diesel::dsl::count_star(), diesel::dsl::max(logs::id)))
                    .first(&mut *$c)
                    $(.$aw)??;
                (usize::try_from(n).ok() == Some(h.rows)).then(|| (h, last))
            }
            _ => None,
        };
        let (mut obs, log_count, last_log) = match hinted {
            Some((h, last)) => {
                out.hinted = true;
                (h.obs, h.rows, last.unwrap_or(cursor.log_id))
            }
            None => {
                let log_rows: Vec<(i64, String)> = logs::table
                    .filter(logs::id.gt(cursor.log_id))
                    .order(logs::id)
                    .select((logs::id, logs::raw_line))
                    .load(&mut *$c)
                    $(.$aw)??;
                let last = log_rows.last().map_or(cursor.log_id, |r| r.0);
                let mut obs = ObservationBatch::new();
                observe_logs(&mut obs, &log_rows);
                (obs, log_rows.len(), last)
            }
        };
        let bounty_rows: Vec<BountyRow> = bounty::table
            .filter(bounty::id.gt(cursor.bounty_id))
            .order(bounty::id)
            .select((
                bounty::id,
                bounty::timestamp,
                bounty::decky,
                bounty::service,
                bounty::attacker_ip,
                bounty::bounty_type,
                bounty::payload,
            ))
            .load(&mut *$c)
            $(.$aw)??;
        let credential_ips: Vec<(i64, String)> = credentials::table
            .filter(credentials::id.gt(cursor.credential_id))
            .order(credentials::id)
            .select((credentials::id, credentials::attacker_ip))
            .load(&mut *$c)
            $(.$aw)??;
        laps.lap("read");
        out.folded = (log_count, bounty_rows.len(), credential_ips.len());
        out.cursor = ProfileCursor {
            log_id: last_log,
            bounty_id: bounty_rows.last().map_or(cursor.bounty_id, |r| r.0),
            credential_id: credential_ips.last().map_or(cursor.credential_id, |r| r.0),
        };
        observe_rest(&mut obs, &bounty_rows, &credential_ips);
        let deltas = obs.into_deltas();
        drop((bounty_rows, credential_ips));
        laps.lap("parse");

        // Stored rows of the touched IPs, merged with their deltas (no re-parse of old logs).
        let ips: Vec<&str> = deltas.iter().map(|d| d.ip.as_str()).collect();
        let mut known: HashMap<String, Attacker> = HashMap::new();
        let mut known_deckies: HashMap<String, String> = HashMap::new();
        for chunk in ips.chunks(CHUNK_ROWS) {
            let rows: Vec<Attacker> = attackers::table
                .filter(attackers::ip.eq_any(chunk.iter().copied()))
                .select(Attacker::as_select())
                .load(&mut *$c)
                $(.$aw)??;
            known.extend(rows.into_iter().map(|a| (a.ip.clone(), a)));
            let lists: Vec<(String, String)> = attacker_ext::table
                .filter(attacker_ext::ip.eq_any(chunk.iter().copied()))
                .select((attacker_ext::ip, attacker_ext::all_deckies))
                .load(&mut *$c)
                $(.$aw)??;
            known_deckies.extend(lists);
        }
        laps.lap("known");
        let mut writes: Vec<Attacker> = Vec::with_capacity(deltas.len());
        let mut decky_lists: Vec<(String, String)> = Vec::new();
        for d in &deltas {
            let old = known.get(&d.ip);
            let old_profile = old.map(|a| profile_of(a, known_deckies.get(&d.ip)));
            let Some(p) = merge_profile(old_profile.as_ref(), d) else {
                continue;
            };
            let (uuid, created) = match old {
                Some(a) => (a.uuid.clone(), false),
                None => (new_uuid(), true),
            };
            if created {
                if let Some(o) = d.observed_payload() {
                    out.observed.push((o, uuid.clone()));
                }
            }
            let old_deckies = old_profile.as_ref().map(|o| o.all_deckies.len());
            if created || old_deckies != Some(p.all_deckies.len()) {
                decky_lists.push((uuid.clone(), to_text(&p.all_deckies)));
            }
            writes.push(attacker_write(uuid.clone(), &d.ip, &p, old, now));
            out.scored.push((p.scored_payload(&d.ip), uuid));
        }
        laps.lap("merge");
        // New and known rows alike in one upsert (multi-row on PostgreSQL).
        insert_each!($c, writes, |v| {
            diesel::insert_into(attackers::table)
                .values(v)
                .on_conflict(attackers::uuid)
                .do_update()
                .set((
                    attackers::ip.eq(excluded(attackers::ip)),
                    attackers::first_seen.eq(excluded(attackers::first_seen)),
                    attackers::last_seen.eq(excluded(attackers::last_seen)),
                    attackers::event_count.eq(excluded(attackers::event_count)),
                    attackers::service_count.eq(excluded(attackers::service_count)),
                    attackers::decky_count.eq(excluded(attackers::decky_count)),
                    attackers::services.eq(excluded(attackers::services)),
                    attackers::deckies.eq(excluded(attackers::deckies)),
                    attackers::traversal_path.eq(excluded(attackers::traversal_path)),
                    attackers::is_traversal.eq(excluded(attackers::is_traversal)),
                    attackers::bounty_count.eq(excluded(attackers::bounty_count)),
                    attackers::credential_count.eq(excluded(attackers::credential_count)),
                    attackers::fingerprints.eq(excluded(attackers::fingerprints)),
                    attackers::commands.eq(excluded(attackers::commands)),
                    attackers::updated_at.eq(excluded(attackers::updated_at)),
                ))
        } $(, $aw)?);
        laps.lap("upsert");
        set_all_deckies!($c, decky_lists $(, $aw)?);
        laps.lap("deckies");
        // One statement for every credential row without a uuid whose attacker row exists
        // (new credentials of this window, and older ones captured before the row existed).
        // A back-filled uuid grows a reuse finding: the rows get a new write sequence.
        let seq = next_credential_seq!($c $(, $aw)?);
        let owner = attackers::table.filter(attackers::ip.eq(credentials::attacker_ip));
        diesel::update(
            credentials::table
                .filter(credentials::attacker_uuid.is_null())
                .filter(diesel::dsl::exists(owner)),
        )
        .set((
            credentials::attacker_uuid.eq(owner.select(attackers::uuid).single_value()),
            credentials::touched_seq.eq(seq),
        ))
        .execute(&mut *$c)
        $(.$aw)??;
        laps.lap("credentials");
        diesel::update(state::table.find(PROFILE_CURSOR_KEY))
            .set(state::value.eq(JsonText(json!(out.cursor))))
            .execute(&mut *$c)
            $(.$aw)??;
        laps.lap("cursor");
        Ok(out)
    }};
}

/// Commit one batch atomically: new `logs` rows (lines whose key is already stored are
/// skipped, so a replay adds nothing), their bounties (deduplicated), folded credential
/// upserts, quarantined lines and the ingest position. Nothing is visible unless everything
/// is. The `attackers` rows follow in [`profile_pass`].
pub async fn commit_batch(db: &Db, input: Arc<CommitInput>) -> Result<CommitOutcome, DbError> {
    db_tx!(db, |c| {
        match c.as_any_conn() {
            AnyConnMut::Sqlite(conn) => {
                // shared, not copied: the batch holds every raw line
                let input = Arc::clone(&input);
                Ok(conn
                    .spawn_blocking(move |sc| sync_bodies::commit(sc, &input))
                    .await?)
            }
            AnyConnMut::Pg(conn) => commit_async(conn, &input).await,
        }
    })
}

/// The SQLite expansions, in a module of their own so that only sync diesel's
/// `RunQueryDsl` is in scope there.
mod sync_bodies {
    use super::*;
    use diesel::RunQueryDsl;

    pub(super) fn commit(
        c: &mut diesel::SqliteConnection,
        input: &CommitInput,
    ) -> QueryResult<CommitOutcome> {
        commit_body!(c, input)
    }

    pub(super) fn profile(
        c: &mut diesel::SqliteConnection,
        now: NaiveDateTime,
        hint: Option<FoldHint>,
    ) -> QueryResult<ProfileOutcome> {
        profile_body!(c, now, hint)
    }
}

async fn commit_async(
    c: &mut AsyncPgConnection,
    input: &CommitInput,
) -> Result<CommitOutcome, DbError> {
    commit_body!(c, input, await)
}

/// One profiler pass (spec §8, incremental): every `logs`/`bounty`/`credentials` row above
/// the stored [`ProfileCursor`] is folded into its attacker row, in one transaction with the
/// cursor update. Driven by the database, not by memory, so it is exact after a crash, after
/// a failed pass and with several ingesting processes.
///
/// `hint`: the log rows this process committed since the cursor, already folded
/// ([`FoldHint`]); used only when it still matches the table, else the rows are read.
pub async fn profile_pass(db: &Db, hint: Option<FoldHint>) -> Result<ProfileOutcome, DbError> {
    let now = now_utc();
    let mut hint = hint;
    db_tx!(db, |c| {
        let hint = hint.take();
        match c.as_any_conn() {
            AnyConnMut::Sqlite(conn) => Ok(conn
                .spawn_blocking(move |sc| sync_bodies::profile(sc, now, hint))
                .await?),
            AnyConnMut::Pg(conn) => profile_async(conn, now, hint).await,
        }
    })
}

async fn profile_async(
    c: &mut AsyncPgConnection,
    now: NaiveDateTime,
    hint: Option<FoldHint>,
) -> Result<ProfileOutcome, DbError> {
    profile_body!(c, now, hint, await)
}

// ---------------------------------------------------------------- credential reuse

fn reuse_row_of(f: &Finding) -> CredentialReuse {
    CredentialReuse {
        id: f.id.clone(),
        secret_sha256: f.secret_sha256.clone(),
        secret_kind: f.secret_kind.clone(),
        principal: f.principal.clone(),
        principal_key: f.principal_key.clone(),
        attacker_uuids: to_text(&f.attacker_uuids),
        attacker_ips: to_text(&f.attacker_ips),
        deckies: to_text(&f.deckies),
        services: to_text(&f.services),
        target_count: f.target_count,
        attempt_count: f.attempt_count,
        confidence: f.confidence,
        first_seen: f.first_seen,
        last_seen: f.last_seen,
        updated_at: f.updated_at,
    }
}

fn finding_of(r: &CredentialReuse) -> Finding {
    Finding {
        id: r.id.clone(),
        secret_sha256: r.secret_sha256.clone(),
        secret_kind: r.secret_kind.clone(),
        principal: r.principal.clone(),
        principal_key: r.principal_key.clone(),
        attacker_uuids: json_list(&r.attacker_uuids),
        attacker_ips: json_list(&r.attacker_ips),
        deckies: json_list(&r.deckies),
        services: json_list(&r.services),
        target_count: r.target_count,
        attempt_count: r.attempt_count,
        confidence: r.confidence,
        first_seen: r.first_seen,
        last_seen: r.last_seen,
        updated_at: r.updated_at,
    }
}

/// The `credentials` columns the correlator reads (not `fields` or the secret itself).
#[derive(Queryable, Selectable)]
#[diesel(table_name = credentials)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct CorrelatorColumns {
    id: i64,
    attacker_uuid: Option<String>,
    attacker_ip: String,
    decky_name: String,
    service: String,
    principal: Option<String>,
    principal_key: String,
    secret_kind: String,
    secret_sha256: String,
    attempt_count: i64,
    first_seen: NaiveDateTime,
    last_seen: NaiveDateTime,
}

impl From<CorrelatorColumns> for CredentialRow {
    fn from(r: CorrelatorColumns) -> Self {
        CredentialRow {
            id: r.id,
            attacker_uuid: r.attacker_uuid,
            attacker_ip: r.attacker_ip,
            decky_name: r.decky_name,
            service: r.service,
            principal: r.principal,
            principal_key: r.principal_key,
            secret_kind: r.secret_kind,
            secret_sha256: r.secret_sha256,
            attempt_count: r.attempt_count,
            first_seen: r.first_seen,
            last_seen: r.last_seen,
        }
    }
}

/// The secrets of the credential rows written after the reuse cursor `cursor`, one per row
/// (the caller removes repeats). A pass with nothing new must not read the table: with
/// `DISTINCT` here SQLite walked the whole secret index in its order to produce distinct values
/// (0.3 s and the writer's page cache filled, every minute on an idle daemon at 300 000
/// credentials) instead of searching the `touched_seq` index for the few new rows.
pub fn changed_secrets_query(
    cursor: i64,
) -> diesel::dsl::Select<
    diesel::dsl::Filter<credentials::table, diesel::dsl::Gt<credentials::touched_seq, i64>>,
    credentials::secret_sha256,
> {
    credentials::table
        .filter(credentials::touched_seq.gt(cursor))
        .select(credentials::secret_sha256)
}

/// One correlator pass (spec §10): candidate groups are found in SQL, each group's finding is
/// computed by [`reuse::correlate`] and written when it changed. Returns the findings to
/// publish (inserted or grown), in one transaction.
pub async fn reuse_pass(db: &Db, min_targets: usize) -> Result<Vec<Finding>, DbError> {
    let now = now_utc();
    let min = min_targets.max(1);
    db_tx!(db, |c| {
        // Only secrets with a row written since the last pass can change a finding.
        let (high, cursor) = credential_seq_marks!(c, await);
        let mut shas: Vec<String> = changed_secrets_query(cursor).load(c).await?;
        shas.sort_unstable();
        shas.dedup();
        let mut rows: Vec<CredentialRow> = Vec::new();
        let mut findings: HashMap<GroupKey, Finding> = HashMap::new();
        for chunk in shas.chunks(500) {
            let creds: Vec<CorrelatorColumns> = credentials::table
                .filter(credentials::secret_sha256.eq_any(chunk))
                .select(CorrelatorColumns::as_select())
                .order(credentials::id.asc())
                .load(c)
                .await?;
            rows.extend(creds.into_iter().map(CredentialRow::from));
            let found: Vec<CredentialReuse> = credential_reuse::table
                .filter(credential_reuse::secret_sha256.eq_any(chunk))
                .select(CredentialReuse::as_select())
                .load(c)
                .await?;
            for f in found {
                let key = GroupKey {
                    secret_sha256: f.secret_sha256.clone(),
                    secret_kind: f.secret_kind.clone(),
                    principal_key: f.principal_key.clone(),
                };
                findings.insert(key, finding_of(&f));
            }
        }
        let mut publish = Vec::new();
        for g in reuse::candidate_groups(rows, min) {
            let existing = findings.get(&g.key);
            let (f, change) = reuse::correlate(&g, existing, now, new_uuid);
            if !change.writes() {
                continue;
            }
            let row = reuse_row_of(&f);
            if existing.is_some() {
                diesel::update(credential_reuse::table.find(&row.id))
                    .set(&row)
                    .execute(c)
                    .await?;
            } else {
                diesel::insert_into(credential_reuse::table)
                    .values(&row)
                    .execute(c)
                    .await?;
            }
            if change.publishes() {
                publish.push(f);
            }
        }
        if high > cursor {
            let value = JsonText(json!({ "seq": high }));
            diesel::insert_into(state::table)
                .values(StateEntry {
                    key: REUSE_CURSOR_KEY.to_owned(),
                    value: value.clone(),
                })
                .on_conflict(state::key)
                .do_update()
                .set(state::value.eq(value))
                .execute(c)
                .await?;
        }
        Ok(publish)
    })
}

// ---------------------------------------------------------------- reads

/// Number of stored log rows.
pub async fn count_logs(db: &Db) -> Result<i64, DbError> {
    Ok(db_run!(db, |c| logs::table.count().get_result(c).await)?)
}

/// All log rows ordered by id (tests and tools).
pub async fn all_logs(db: &Db) -> Result<Vec<Log>, DbError> {
    Ok(db_run!(db, |c| logs::table
        .select(Log::as_select())
        .order(logs::id.asc())
        .load(c)
        .await)?)
}

/// All attackers ordered by ip (tests and tools).
pub async fn all_attackers(db: &Db) -> Result<Vec<Attacker>, DbError> {
    Ok(db_run!(db, |c| attackers::table
        .select(Attacker::as_select())
        .order(attackers::ip.asc())
        .load(c)
        .await)?)
}

/// All credentials ordered by id.
pub async fn all_credentials(db: &Db) -> Result<Vec<Credential>, DbError> {
    Ok(db_run!(db, |c| credentials::table
        .select(Credential::as_select())
        .order(credentials::id.asc())
        .load(c)
        .await)?)
}

/// All bounty rows ordered by id: (type, ip, payload).
pub async fn all_bounties(db: &Db) -> Result<Vec<(String, String, String)>, DbError> {
    Ok(db_run!(db, |c| bounty::table
        .select((bounty::bounty_type, bounty::attacker_ip, bounty::payload))
        .order(bounty::id.asc())
        .load(c)
        .await)?)
}

/// All credential-reuse rows.
pub async fn all_reuse(db: &Db) -> Result<Vec<CredentialReuse>, DbError> {
    Ok(db_run!(db, |c| credential_reuse::table
        .select(CredentialReuse::as_select())
        .order(credential_reuse::id.asc())
        .load(c)
        .await)?)
}

/// Quarantined lines, newest first.
pub async fn list_quarantine(
    db: &Db,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<Quarantined>), DbError> {
    db_tx!(db, |c| {
        let total: i64 = ingest_quarantine::table.count().get_result(c).await?;
        let rows = ingest_quarantine::table
            .select(Quarantined::as_select())
            .order(ingest_quarantine::id.desc())
            .limit(limit)
            .offset(offset)
            .load(c)
            .await?;
        Ok((total, rows))
    })
}

// ---------------------------------------------------------------- API reads

use crate::db::models::intake::AttackerExt;
use crate::domain::syslog::search::{escape_like, parse_search, SearchToken};

/// Sort order of the attackers list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttackerSort {
    /// `last_seen` desc.
    Recent,
    /// `event_count` desc, then `last_seen` desc, then `uuid`.
    Active,
    /// `is_traversal` desc, then `last_seen` desc, then `uuid`.
    Traversals,
}

/// An attacker row with its other columns.
pub type AttackerFull = (Attacker, Option<AttackerExt>);

fn json_contains_pattern(name: &str) -> String {
    let quoted = serde_json::to_string(name).unwrap_or_default();
    format!("%{}%", escape_like(&quoted))
}

macro_rules! attackers_query {
    ($search:expr, $service:expr) => {{
        let mut q = attackers::table.into_boxed();
        if let Some(s) = $search {
            q = q.filter(
                attackers::ip
                    .like(format!("%{}%", escape_like(s)))
                    .escape('\\'),
            );
        }
        if let Some(svc) = $service {
            q = q.filter(
                attackers::services
                    .like(json_contains_pattern(svc))
                    .escape('\\'),
            );
        }
        q
    }};
}

/// `$q` ordered as `sort` lists attackers.
macro_rules! attackers_order {
    ($q:expr, $sort:expr) => {
        match $sort {
            AttackerSort::Recent => $q.order((attackers::last_seen.desc(), attackers::uuid.asc())),
            // `uuid` last: a total order, so pages at consecutive offsets neither overlap nor
            // skip a row among ties (migration 000019 puts it in the page indexes).
            AttackerSort::Active => $q.order((
                attackers::event_count.desc(),
                attackers::last_seen.desc(),
                attackers::uuid.asc(),
            )),
            AttackerSort::Traversals => $q.order((
                attackers::is_traversal.desc(),
                attackers::last_seen.desc(),
                attackers::uuid.asc(),
            )),
        }
    };
}

async fn load_ext(db: &Db, uuids: Vec<String>) -> Result<HashMap<String, AttackerExt>, DbError> {
    if uuids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<AttackerExt> = db_run!(db, |c| attacker_ext::table
        .filter(attacker_ext::uuid.eq_any(&uuids))
        .select(AttackerExt::as_select())
        .load(c)
        .await)?;
    Ok(rows.into_iter().map(|e| (e.uuid.clone(), e)).collect())
}

/// Attackers page: substring `search` on ip, exact `service` in the services list.
pub async fn list_attackers(
    db: &Db,
    search: Option<&str>,
    service: Option<&str>,
    sort: AttackerSort,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<AttackerFull>), DbError> {
    let (stamp, rows): (String, Vec<Attacker>) = db_run!(db, |c| {
        let stamp: Option<NaiveDateTime> = attackers::table
            .select(diesel::dsl::max(attackers::updated_at))
            .get_result(c)
            .await?;
        // The page's keys are found first, in a subquery that walks the page index alone
        // (PostgreSQL: an index-only scan), and only those rows are read: a deep offset no
        // longer reads every row before it. PostgreSQL planned `offset=80000` as a parallel
        // scan and sort of the whole table (240–340 ms; 12 ms so).
        let keys = attackers_query!(search, service).select(attackers::uuid);
        let keys = attackers_order!(keys, sort).limit(limit).offset(offset);
        let q = attackers::table
            .filter(attackers::uuid.eq_any(keys))
            .select(Attacker::as_select())
            .into_boxed();
        let rows = attackers_order!(q, sort).load(c).await?;
        (format!("{stamp:?}"), rows)
    });
    // Every write to an attacker row moves `updated_at` (ip and services are the filters).
    let key = format!("attackers\0{search:?}\0{service:?}");
    let total = db
        .totals()
        .get(&key, stamp, || async {
            Ok(db_run!(db, |c| attackers_query!(search, service)
                .count()
                .get_result::<i64>(c)
                .await)?)
        })
        .await?;
    let mut ext = load_ext(db, rows.iter().map(|a| a.uuid.clone()).collect()).await?;
    Ok((
        total,
        rows.into_iter()
            .map(|a| {
                let e = ext.remove(&a.uuid);
                (a, e)
            })
            .collect(),
    ))
}

/// One attacker by uuid.
pub async fn get_attacker(db: &Db, uuid: &str) -> Result<Option<AttackerFull>, DbError> {
    let a: Option<Attacker> = db_run!(db, |c| attackers::table
        .find(uuid)
        .select(Attacker::as_select())
        .first(c)
        .await
        .optional())?;
    let Some(a) = a else { return Ok(None) };
    let mut ext = load_ext(db, vec![a.uuid.clone()]).await?;
    let e = ext.remove(&a.uuid);
    Ok(Some((a, e)))
}

/// Distinct (service, event_type) seen from `ip`.
pub async fn service_events(db: &Db, ip: &str) -> Result<Vec<(String, String)>, DbError> {
    Ok(db_run!(db, |c| logs::table
        .filter(logs::attacker_ip.eq(ip))
        .select((logs::service, logs::event_type))
        .distinct()
        .load(c)
        .await)?)
}

/// Newest `ip_leak` bounties (payload text) and their total.
pub async fn ip_leaks(db: &Db, ip: &str, limit: i64) -> Result<(i64, Vec<String>), DbError> {
    Ok(db_run!(db, |c| {
        let q = || {
            bounty::table
                .filter(bounty::attacker_ip.eq(ip))
                .filter(bounty::bounty_type.eq("ip_leak"))
        };
        let total: i64 = q().count().get_result(c).await?;
        let rows: Vec<String> = q()
            .select(bounty::payload)
            .order(bounty::id.desc())
            .limit(limit)
            .load(c)
            .await?;
        (total, rows)
    }))
}

/// Newest log rows of `ip` with `event_type` (at most `limit`) and their total.
pub async fn logs_of_type(
    db: &Db,
    ip: &str,
    event_type: &str,
    limit: i64,
) -> Result<(i64, Vec<Log>), DbError> {
    Ok(db_run!(db, |c| {
        let total: i64 = logs::table
            .filter(logs::attacker_ip.eq(ip))
            .filter(logs::event_type.eq(event_type))
            .count()
            .get_result(c)
            .await?;
        let rows: Vec<Log> = logs::table
            .filter(logs::attacker_ip.eq(ip))
            .filter(logs::event_type.eq(event_type))
            .select(Log::as_select())
            .order(logs::id.desc())
            .limit(limit)
            .load(c)
            .await?;
        (total.min(limit), rows)
    }))
}

/// The newest `limit` recipient-naming SMTP events of an ip (`event_type`, `fields`,
/// `timestamp`), for [`crate::domain::syslog::mail::smtp_targets`].
pub async fn smtp_rcpt_events(
    db: &Db,
    ip: &str,
    limit: i64,
) -> Result<Vec<(String, String, NaiveDateTime)>, DbError> {
    use crate::domain::syslog::mail::RCPT_EVENT_TYPES;
    Ok(db_run!(db, |c| logs::table
        .filter(logs::attacker_ip.eq(ip))
        .filter(logs::event_type.eq_any(RCPT_EVENT_TYPES))
        .select((logs::event_type, logs::fields, logs::timestamp))
        .order(logs::id.desc())
        .limit(limit)
        .load(c)
        .await)?)
}

macro_rules! credentials_query {
    ($search:expr, $service:expr, $ip:expr) => {{
        let mut q = credentials::table.into_boxed();
        if let Some(s) = $search {
            let p = format!("%{}%", escape_like(s));
            q = q.filter(
                credentials::decky_name
                    .like(p.clone())
                    .escape('\\')
                    .or(credentials::service.like(p.clone()).escape('\\'))
                    .or(credentials::principal.like(p.clone()).escape('\\'))
                    .or(credentials::secret_printable.like(p).escape('\\')),
            );
        }
        if let Some(s) = $service {
            q = q.filter(credentials::service.eq(s));
        }
        if let Some(ip) = $ip {
            q = q.filter(credentials::attacker_ip.eq(ip));
        }
        q
    }};
}

/// Credentials page, `last_seen` desc.
pub async fn list_credentials(
    db: &Db,
    search: Option<&str>,
    service: Option<&str>,
    attacker_ip: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<Credential>), DbError> {
    let (stamp, rows) = db_run!(db, |c| {
        let stamp: Option<i64> = credentials::table
            .select(diesel::dsl::max(credentials::touched_seq))
            .get_result(c)
            .await?;
        let rows = credentials_query!(search, service, attacker_ip)
            .select(Credential::as_select())
            .order((credentials::last_seen.desc(), credentials::id.desc()))
            .limit(limit)
            .offset(offset)
            .load(c)
            .await?;
        (format!("{stamp:?}"), rows)
    });
    // Every insert or update of a credential takes the next `touched_seq`.
    let key = format!("credentials\0{search:?}\0{service:?}\0{attacker_ip:?}");
    let total = db
        .totals()
        .get(&key, stamp, || async {
            Ok(db_run!(db, |c| credentials_query!(
                search,
                service,
                attacker_ip
            )
            .count()
            .get_result::<i64>(c)
            .await)?)
        })
        .await?;
    Ok((total, rows))
}

/// A reuse row with the grafted secret columns.
pub type ReuseWithSecret = (CredentialReuse, Option<String>, Option<String>);

async fn graft_secrets(
    db: &Db,
    rows: Vec<CredentialReuse>,
) -> Result<Vec<ReuseWithSecret>, DbError> {
    type Key = (String, String, String);
    type Secret = (Option<String>, Option<String>);
    let keys: Vec<Key> = rows
        .iter()
        .map(|r| {
            (
                r.secret_sha256.clone(),
                r.secret_kind.clone(),
                r.principal_key.clone(),
            )
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    // The first credential row per (sha, kind, principal) holds the secret shown. One indexed
    // point lookup per key (`ix_credentials_secret_first`): a common secret has thousands of
    // rows, and loading them all to keep the first cost a whole table's worth per page.
    let mut first: HashMap<Key, Secret> = HashMap::with_capacity(keys.len());
    if !keys.is_empty() {
        let found: Vec<(Key, Secret)> = db_run!(db, |c| {
            let mut found = Vec::with_capacity(keys.len());
            for key in &keys {
                let secret: Option<Secret> = credentials::table
                    .filter(credentials::secret_sha256.eq(&key.0))
                    .filter(credentials::secret_kind.eq(&key.1))
                    .filter(credentials::principal_key.eq(&key.2))
                    .order(credentials::id.asc())
                    .select((credentials::secret_printable, credentials::secret_b64))
                    .first(c)
                    .await
                    .optional()?;
                if let Some(secret) = secret {
                    found.push((key.clone(), secret));
                }
            }
            found
        });
        first.extend(found);
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let key = (
                r.secret_sha256.clone(),
                r.secret_kind.clone(),
                r.principal_key.clone(),
            );
            let (p, b) = first.get(&key).cloned().unwrap_or((None, None));
            (r, p, b)
        })
        .collect())
}

/// Reuse findings with `target_count ≥ min_target_count` (and kind), target_count desc,
/// last_seen desc, secrets grafted.
pub async fn list_reuse(
    db: &Db,
    min_target_count: i64,
    secret_kind: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<ReuseWithSecret>), DbError> {
    macro_rules! q {
        () => {{
            let mut q = credential_reuse::table
                .filter(credential_reuse::target_count.ge(min_target_count))
                .into_boxed();
            if let Some(k) = secret_kind {
                q = q.filter(credential_reuse::secret_kind.eq(k.to_owned()));
            }
            q
        }};
    }
    let (stamp, rows): (String, Vec<CredentialReuse>) = db_run!(db, |c| {
        // Inserts and updates of a finding set `updated_at` to now.
        let stamp: Option<NaiveDateTime> = credential_reuse::table
            .select(diesel::dsl::max(credential_reuse::updated_at))
            .get_result(c)
            .await?;
        let rows = q!()
            .select(CredentialReuse::as_select())
            .order((
                credential_reuse::target_count.desc(),
                credential_reuse::last_seen.desc(),
                credential_reuse::id.asc(),
            ))
            .limit(limit)
            .offset(offset)
            .load(c)
            .await?;
        (format!("{stamp:?}"), rows)
    });
    let key = format!("credential_reuse\0{min_target_count}\0{secret_kind:?}");
    let total = db
        .totals()
        .get(&key, stamp, || async {
            Ok(db_run!(db, |c| q!().count().get_result::<i64>(c).await)?)
        })
        .await?;
    Ok((total, graft_secrets(db, rows).await?))
}

/// One reuse finding by id, secrets grafted.
pub async fn get_reuse(db: &Db, id: &str) -> Result<Option<ReuseWithSecret>, DbError> {
    let row: Option<CredentialReuse> = db_run!(db, |c| credential_reuse::table
        .find(id)
        .select(CredentialReuse::as_select())
        .first(c)
        .await
        .optional())?;
    Ok(match row {
        Some(r) => graft_secrets(db, vec![r]).await?.into_iter().next(),
        None => None,
    })
}

macro_rules! logs_query {
    ($tokens:expr, $start:expr, $end:expr) => {{
        let mut q = logs::table.into_boxed();
        for t in $tokens {
            q = match t {
                SearchToken::Decky(v) => q.filter(logs::decky.eq(v.clone())),
                SearchToken::Service(v) => q.filter(logs::service.eq(v.clone())),
                SearchToken::Event(v) => q.filter(logs::event_type.eq(v.clone())),
                SearchToken::Attacker(v) => q.filter(logs::attacker_ip.eq(v.clone())),
                SearchToken::Field(k, v) => {
                    let mut needle = String::new();
                    crate::domain::syslog::fields::write_json_str(&mut needle, k, false);
                    needle.push(':');
                    crate::domain::syslog::fields::write_json_str(&mut needle, v, false);
                    q.filter(
                        logs::fields
                            .like(format!("%{}%", escape_like(&needle)))
                            .escape('\\'),
                    )
                }
                SearchToken::Bare(v) => {
                    let p = format!("%{}%", escape_like(v));
                    q.filter(
                        logs::raw_line
                            .like(p.clone())
                            .escape('\\')
                            .or(logs::decky.like(p.clone()).escape('\\'))
                            .or(logs::service.like(p.clone()).escape('\\'))
                            .or(logs::attacker_ip.like(p).escape('\\')),
                    )
                }
            };
        }
        if let Some(s) = $start {
            q = q.filter(logs::timestamp.ge(s));
        }
        if let Some(e) = $end {
            q = q.filter(logs::timestamp.le(e));
        }
        q
    }};
}

/// Logs page, newest first.
pub async fn list_logs(
    db: &Db,
    search: Option<&str>,
    start: Option<NaiveDateTime>,
    end: Option<NaiveDateTime>,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<Log>), DbError> {
    let tokens = search.map(parse_search).unwrap_or_default();
    let (stamp, rows) = db_run!(db, |c| {
        let stamp: Option<i64> = logs::table
            .select(diesel::dsl::max(logs::id))
            .get_result(c)
            .await?;
        let rows = logs_query!(&tokens, start, end)
            .select(Log::as_select())
            .order(logs::id.desc())
            .limit(limit)
            .offset(offset)
            .load(c)
            .await?;
        (format!("{stamp:?}"), rows)
    });
    // Log rows are only ever inserted: the newest id moves with every insert.
    let key = format!("logs\0{search:?}\0{start:?}\0{end:?}");
    let total = db
        .totals()
        .get(&key, stamp, || async {
            Ok(db_run!(db, |c| logs_query!(&tokens, start, end)
                .count()
                .get_result::<i64>(c)
                .await)?)
        })
        .await?;
    Ok((total, rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(h: u32, us: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 5, 14)
            .and_then(|d| d.and_hms_micro_opt(h, 0, 0, us))
            .expect("valid time")
    }

    #[test]
    fn line_keys_sort_by_time_and_differ_by_content() {
        let a = line_key(Some(at(1, 5)), "x");
        let b = line_key(Some(at(1, 6)), "x");
        let c = line_key(Some(at(2, 0)), "a");
        assert!(a < b && b < c, "{a} {b} {c}");
        assert_ne!(line_key(Some(at(1, 5)), "x"), line_key(Some(at(1, 5)), "y"));
        assert_eq!(line_key(Some(at(1, 5)), "x"), a, "deterministic");
        assert_eq!(a.len(), 48);
        assert!(line_key(None, "x").starts_with("0000000000000000"));
        let before_epoch = NaiveDate::from_ymd_opt(1960, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .expect("valid");
        assert!(line_key(Some(before_epoch), "x").starts_with("0000000000000000"));
    }

    #[test]
    fn appending_to_a_stored_list_equals_re_encoding_it() {
        let old = vec![json!({"id": 1, "payload": {"a": "]"}}), json!({"id": 2})];
        let new = vec![json!({"id": 3, "s": "x,]"})];
        let stored = to_text(&old);
        let mut all = old.clone();
        all.extend(new.clone());
        let spliced = append_json_list(Some(&stored), &new);
        assert_eq!(serde_json::from_str::<Vec<Value>>(&spliced).unwrap(), all);
        assert_eq!(append_json_list(Some("[]"), &new), to_text(&new));
        assert_eq!(append_json_list(Some(" [ ] "), &new), to_text(&new));
        assert_eq!(append_json_list(None, &new), to_text(&new));
        assert_eq!(append_json_list(Some("garbage"), &new), to_text(&new));
        assert_eq!(append_json_list::<Value>(Some(&stored), &[]), stored);
    }

    fn draft(ip: &str, secret: &str, outcome: Option<&str>) -> CredentialDraft {
        CredentialDraft {
            attacker_ip: ip.into(),
            decky_name: "d1".into(),
            service: "ssh".into(),
            principal: Some("root".into()),
            principal_key: "root".into(),
            secret_kind: "plaintext".into(),
            secret_sha256: crate::domain::syslog::credential::sha256_hex(secret.as_bytes()),
            secret_b64: String::new(),
            secret_printable: Some(secret.into()),
            outcome: outcome.map(str::to_owned),
            fields_json: "{}".into(),
            truncated: Vec::new(),
        }
    }

    #[test]
    fn credential_attempts_fold_per_key() {
        let a = draft("192.0.2.1", "pw", None);
        let b = draft("192.0.2.1", "pw", Some("failure"));
        let c = draft("192.0.2.1", "pw", None);
        let other = draft("192.0.2.2", "pw", None);
        let rows = fold_credentials(
            [
                (&a, at(1, 0)),
                (&other, at(1, 1)),
                (&b, at(1, 2)),
                (&c, at(1, 3)),
            ]
            .into_iter(),
        );
        assert_eq!(rows.len(), 2);
        let r = &rows[0];
        assert_eq!(r.attacker_ip, "192.0.2.1");
        assert_eq!(r.attempt_count, 3);
        assert_eq!(r.first_seen, at(1, 0));
        assert_eq!(r.last_seen, at(1, 3));
        assert_eq!(
            r.outcome.as_deref(),
            Some("failure"),
            "last non-null outcome"
        );
        assert_eq!(rows[1].attempt_count, 1);
    }
}
