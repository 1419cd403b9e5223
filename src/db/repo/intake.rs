//! Intake storage: the batch commit of the ingester (logs → bounty → credentials → attackers,
//! plus the ingest offset, all in ONE transaction), the credential-reuse pass, and the
//! read queries behind the intake routes.

use std::collections::{HashMap, HashSet};

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
    iso, merge_profile, AttackerProfile, CommandEntry, ObservationBatch, ObservedPayload,
    ScoredPayload,
};
use crate::domain::syslog::reuse::{self, CredentialRow, Finding, GroupKey};
use crate::domain::syslog::{CredentialDraft, Extraction, Record};
use crate::{db_insert_batch, db_run, db_tx};

/// Hex sha256 of a text (dedup keys).
pub fn text_hash(s: &str) -> String {
    crate::domain::syslog::credential::sha256_hex(s.as_bytes())
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
}

impl PreparedRecord {
    /// Build the row for `record`; `now` is used when its timestamp did not parse.
    pub fn new(record: Record, extraction: Extraction, now: NaiveDateTime) -> Self {
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
            line_hash: text_hash(&record.raw_line),
        };
        PreparedRecord {
            log,
            record,
            extraction,
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
    /// New credential rows.
    pub new_credentials: usize,
    /// `attacker.observed` payloads (rows created by this batch).
    pub observed: Vec<ObservedPayload>,
    /// `attacker.scored` payloads (rows written by this batch).
    pub scored: Vec<ScoredPayload>,
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
        fingerprints: json_list(&a.fingerprints),
        commands: json_list::<CommandEntry>(&a.commands),
    }
}

fn attacker_write(uuid: String, ip: &str, p: &AttackerProfile, now: NaiveDateTime) -> Attacker {
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
        fingerprints: to_text(&p.fingerprints),
        commands: to_text(&p.commands),
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
    }
}

/// Commit one batch atomically: new `logs` rows (lines whose hash is already stored are
/// skipped, so a replay adds nothing), their bounties (deduplicated), credential upserts,
/// the incremental attacker rows, the credential uuid back-fill, quarantined lines and the
/// ingest position. Nothing is visible unless everything is.
pub async fn commit_batch(db: &Db, input: &CommitInput) -> Result<CommitOutcome, DbError> {
    let now = now_utc();
    db_tx!(db, |c| {
        match c.as_any_conn() {
            // SQLite: the whole body in ONE blocking call on the connection thread (sync
            // diesel, cached prepared statements) instead of one pool round trip per statement.
            AnyConnMut::Sqlite(conn) => {
                let input = input.clone();
                Ok(conn
                    .spawn_blocking(move |sc| sqlite_sync::commit(sc, &input, now))
                    .await?)
            }
            AnyConnMut::Pg(conn) => commit_pg(conn, input, now).await,
        }
    })
}

/// The batch body on PostgreSQL (inside the caller's transaction).
async fn commit_pg(
    c: &mut AsyncPgConnection,
    input: &CommitInput,
    now: NaiveDateTime,
) -> Result<CommitOutcome, DbError> {
    let mut out = CommitOutcome::default();

    // 1. logs, deduplicated on the line hash (stored rows and repeats inside the batch).
    let mut existing: HashSet<String> = HashSet::new();
    let hashes: Vec<&String> = input.records.iter().map(|r| &r.log.line_hash).collect();
    for chunk in hashes.chunks(500) {
        let found: Vec<String> = logs::table
            .filter(logs::line_hash.eq_any(chunk.iter().copied()))
            .select(logs::line_hash)
            .load(c)
            .await?;
        existing.extend(found);
    }
    let mut fresh: Vec<&PreparedRecord> = Vec::with_capacity(input.records.len());
    for r in &input.records {
        if existing.insert(r.log.line_hash.clone()) {
            fresh.push(r);
        } else {
            out.duplicates += 1;
        }
    }
    let rows: Vec<NewLog> = fresh.iter().map(|r| r.log.clone()).collect();
    out.logs_inserted = db_insert_batch!(c, logs::table, rows)?;

    // 2. bounties + credentials, record by record, feeding the attacker aggregation.
    let mut obs = ObservationBatch::new();
    // Bounties already stored for the batch's IPs are skipped without a statement each
    // (the unique index still guards the insert below).
    let mut seen_bounties: HashSet<(String, String, String)> = HashSet::new();
    let bounty_ips: Vec<&str> = fresh
        .iter()
        .flat_map(|r| r.extraction.bounties.iter().map(|b| b.attacker_ip.as_str()))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    for chunk in bounty_ips.chunks(500) {
        let known: Vec<(String, String, String)> = bounty::table
            .filter(bounty::attacker_ip.eq_any(chunk.iter().copied()))
            .select((
                bounty::bounty_type,
                bounty::attacker_ip,
                bounty::payload_hash,
            ))
            .load(c)
            .await?;
        seen_bounties.extend(known);
    }
    for r in &fresh {
        let _ = obs.observe(&r.record);
        let at = r.log.timestamp;
        for b in &r.extraction.bounties {
            let payload_hash = text_hash(&b.payload);
            // identical bounties repeated inside one batch need no second statement
            if !seen_bounties.insert((
                b.bounty_type.to_owned(),
                b.attacker_ip.clone(),
                payload_hash.clone(),
            )) {
                continue;
            }
            let nb = NewBounty {
                timestamp: at,
                decky: b.decky.clone(),
                service: b.service.clone(),
                attacker_ip: b.attacker_ip.clone(),
                bounty_type: b.bounty_type.to_owned(),
                payload: b.payload.clone(),
                payload_hash,
            };
            let id: Option<i64> = diesel::insert_into(bounty::table)
                .values(&nb)
                .on_conflict((
                    bounty::bounty_type,
                    bounty::attacker_ip,
                    bounty::payload_hash,
                ))
                .do_nothing()
                .returning(bounty::id)
                .get_result(c)
                .await
                .optional()?;
            if let Some(id) = id {
                out.bounties_inserted += 1;
                let fp = (b.bounty_type == "fingerprint").then(|| {
                    json!({
                        "id": id,
                        "timestamp": iso(at),
                        "decky": b.decky,
                        "service": b.service,
                        "attacker_ip": b.attacker_ip,
                        "bounty_type": b.bounty_type,
                        "payload": serde_json::from_str::<Value>(&b.payload).unwrap_or(Value::Null),
                    })
                });
                obs.add_bounty(&b.attacker_ip, fp);
            }
        }
        if let Some(Ok(d)) = &r.extraction.credential {
            let nc = new_credential(d, at);
            let (_, attempts): (i64, i64) = diesel::insert_into(credentials::table)
                .values(&nc)
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
                    credentials::attempt_count.eq(credentials::attempt_count + 1),
                    credentials::last_seen.eq(excluded(credentials::last_seen)),
                    credentials::outcome.eq(diesel::dsl::sql::<
                        diesel::sql_types::Nullable<diesel::sql_types::Text>,
                    >(
                        "COALESCE(excluded.outcome, credentials.outcome)"
                    )),
                ))
                .returning((credentials::id, credentials::attempt_count))
                .get_result(c)
                .await?;
            if attempts == 1 {
                out.new_credentials += 1;
                obs.add_credential(&d.attacker_ip);
            }
            out.captured.push(d.captured_event());
        }
    }

    // 3. attacker rows, merged incrementally (no re-parse of old logs).
    let deltas = obs.into_deltas();
    let ips: Vec<&str> = deltas.iter().map(|d| d.ip.as_str()).collect();
    let mut stored: HashMap<String, Attacker> = HashMap::new();
    let mut stored_deckies: HashMap<String, String> = HashMap::new();
    for chunk in ips.chunks(500) {
        let rows: Vec<Attacker> = attackers::table
            .filter(attackers::ip.eq_any(chunk.iter().copied()))
            .select(Attacker::as_select())
            .load(c)
            .await?;
        stored.extend(rows.into_iter().map(|a| (a.ip.clone(), a)));
        let lists: Vec<(String, String)> = attacker_ext::table
            .filter(attacker_ext::ip.eq_any(chunk.iter().copied()))
            .select((attacker_ext::ip, attacker_ext::all_deckies))
            .load(c)
            .await?;
        stored_deckies.extend(lists);
    }
    for d in &deltas {
        let old = stored.get(&d.ip);
        let old_profile = old.map(|a| profile_of(a, stored_deckies.get(&d.ip)));
        let Some(p) = merge_profile(old_profile.as_ref(), d) else {
            continue;
        };
        let (uuid, created) = match old {
            Some(a) => (a.uuid.clone(), false),
            None => (new_uuid(), true),
        };
        let w = attacker_write(uuid.clone(), &d.ip, &p, now);
        if created {
            diesel::insert_into(attackers::table)
                .values(&w)
                .execute(c)
                .await?;
            if let Some(o) = d.observed_payload() {
                out.observed.push(o);
            }
        } else {
            diesel::update(attackers::table.find(&uuid))
                .set(&w)
                .execute(c)
                .await?;
        }
        let old_deckies = old_profile.as_ref().map(|o| o.all_deckies.len());
        if created || old_deckies != Some(p.all_deckies.len()) {
            diesel::update(attacker_ext::table.find(&uuid))
                .set(attacker_ext::all_deckies.eq(to_text(&p.all_deckies)))
                .execute(c)
                .await?;
        }
        // Only rows without a uuid need it: new credentials of this batch, or older ones
        // captured before the attacker row existed.
        if created || d.credential_count > 0 {
            diesel::update(
                credentials::table
                    .filter(credentials::attacker_ip.eq(&d.ip))
                    .filter(credentials::attacker_uuid.is_null()),
            )
            .set(credentials::attacker_uuid.eq(&uuid))
            .execute(c)
            .await?;
        }
        out.scored.push(p.scored_payload(&d.ip));
    }

    // 4. quarantine (identical garbage collapses to one row).
    for q in &input.quarantine {
        out.quarantined += diesel::insert_into(ingest_quarantine::table)
            .values(q)
            .on_conflict(ingest_quarantine::line_hash)
            .do_nothing()
            .execute(c)
            .await?;
    }

    // 5. the position, in the same transaction: a crash can never separate rows from it.
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
            .execute(c)
            .await?;
    }
    Ok(out)
}

/// The batch body on SQLite with sync diesel, run on the connection's blocking thread inside
/// the caller's `BEGIN IMMEDIATE` transaction. Mirrors [`commit_pg`] statement for statement.
mod sqlite_sync {
    use std::collections::{HashMap, HashSet};

    use chrono::NaiveDateTime;
    use diesel::prelude::*;
    use diesel::upsert::excluded;
    use diesel::RunQueryDsl;
    use serde_json::{json, Value};

    use super::{
        attacker_write, new_credential, profile_of, text_hash, to_text, CommitInput, CommitOutcome,
        PreparedRecord,
    };
    use crate::db::models::intake::{Attacker, NewBounty, NewLog};
    use crate::db::models::StateEntry;
    use crate::db::schema::{
        attacker_ext, attackers, bounty, credentials, ingest_quarantine, logs, state,
    };
    use crate::db::{new_uuid, JsonText};
    use crate::domain::syslog::observation::{iso, merge_profile, ObservationBatch};

    pub(super) fn commit(
        c: &mut SqliteConnection,
        input: &CommitInput,
        now: NaiveDateTime,
    ) -> QueryResult<CommitOutcome> {
        let mut out = CommitOutcome::default();

        // 1. logs, deduplicated on the line hash (stored rows and repeats inside the batch).
        let mut existing: HashSet<String> = HashSet::new();
        let hashes: Vec<&String> = input.records.iter().map(|r| &r.log.line_hash).collect();
        for chunk in hashes.chunks(500) {
            let found: Vec<String> = logs::table
                .filter(logs::line_hash.eq_any(chunk.iter().copied()))
                .select(logs::line_hash)
                .load(c)?;
            existing.extend(found);
        }
        let mut fresh: Vec<&PreparedRecord> = Vec::with_capacity(input.records.len());
        for r in &input.records {
            if existing.insert(r.log.line_hash.clone()) {
                fresh.push(r);
            } else {
                out.duplicates += 1;
            }
        }
        let rows: Vec<NewLog> = fresh.iter().map(|r| r.log.clone()).collect();
        out.logs_inserted = diesel::insert_into(logs::table).values(&rows).execute(c)?;

        // 2. bounties + credentials, record by record, feeding the attacker aggregation.
        let mut obs = ObservationBatch::new();
        // Bounties already stored for the batch's IPs are skipped without a statement each
        // (the unique index still guards the insert below).
        let mut seen_bounties: HashSet<(String, String, String)> = HashSet::new();
        let bounty_ips: Vec<&str> = fresh
            .iter()
            .flat_map(|r| r.extraction.bounties.iter().map(|b| b.attacker_ip.as_str()))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        for chunk in bounty_ips.chunks(500) {
            let known: Vec<(String, String, String)> = bounty::table
                .filter(bounty::attacker_ip.eq_any(chunk.iter().copied()))
                .select((
                    bounty::bounty_type,
                    bounty::attacker_ip,
                    bounty::payload_hash,
                ))
                .load(c)?;
            seen_bounties.extend(known);
        }
        for r in &fresh {
            let _ = obs.observe(&r.record);
            let at = r.log.timestamp;
            for b in &r.extraction.bounties {
                let payload_hash = text_hash(&b.payload);
                // identical bounties repeated inside one batch need no second statement
                if !seen_bounties.insert((
                    b.bounty_type.to_owned(),
                    b.attacker_ip.clone(),
                    payload_hash.clone(),
                )) {
                    continue;
                }
                let nb = NewBounty {
                    timestamp: at,
                    decky: b.decky.clone(),
                    service: b.service.clone(),
                    attacker_ip: b.attacker_ip.clone(),
                    bounty_type: b.bounty_type.to_owned(),
                    payload: b.payload.clone(),
                    payload_hash,
                };
                let id: Option<i64> = diesel::insert_into(bounty::table)
                    .values(&nb)
                    .on_conflict((
                        bounty::bounty_type,
                        bounty::attacker_ip,
                        bounty::payload_hash,
                    ))
                    .do_nothing()
                    .returning(bounty::id)
                    .get_result(c)
                    .optional()?;
                if let Some(id) = id {
                    out.bounties_inserted += 1;
                    let fp = (b.bounty_type == "fingerprint").then(|| {
                        json!({
                            "id": id,
                            "timestamp": iso(at),
                            "decky": b.decky,
                            "service": b.service,
                            "attacker_ip": b.attacker_ip,
                            "bounty_type": b.bounty_type,
                            "payload": serde_json::from_str::<Value>(&b.payload).unwrap_or(Value::Null),
                        })
                    });
                    obs.add_bounty(&b.attacker_ip, fp);
                }
            }
            if let Some(Ok(d)) = &r.extraction.credential {
                let nc = new_credential(d, at);
                let (_, attempts): (i64, i64) = diesel::insert_into(credentials::table)
                    .values(&nc)
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
                        credentials::attempt_count.eq(credentials::attempt_count + 1),
                        credentials::last_seen.eq(excluded(credentials::last_seen)),
                        credentials::outcome.eq(diesel::dsl::sql::<
                            diesel::sql_types::Nullable<diesel::sql_types::Text>,
                        >(
                            "COALESCE(excluded.outcome, credentials.outcome)",
                        )),
                    ))
                    .returning((credentials::id, credentials::attempt_count))
                    .get_result(c)?;
                if attempts == 1 {
                    out.new_credentials += 1;
                    obs.add_credential(&d.attacker_ip);
                }
                out.captured.push(d.captured_event());
            }
        }

        // 3. attacker rows, merged incrementally (no re-parse of old logs).
        let deltas = obs.into_deltas();
        let ips: Vec<&str> = deltas.iter().map(|d| d.ip.as_str()).collect();
        let mut stored: HashMap<String, Attacker> = HashMap::new();
        let mut stored_deckies: HashMap<String, String> = HashMap::new();
        for chunk in ips.chunks(500) {
            let rows: Vec<Attacker> = attackers::table
                .filter(attackers::ip.eq_any(chunk.iter().copied()))
                .select(Attacker::as_select())
                .load(c)?;
            stored.extend(rows.into_iter().map(|a| (a.ip.clone(), a)));
            let lists: Vec<(String, String)> = attacker_ext::table
                .filter(attacker_ext::ip.eq_any(chunk.iter().copied()))
                .select((attacker_ext::ip, attacker_ext::all_deckies))
                .load(c)?;
            stored_deckies.extend(lists);
        }
        for d in &deltas {
            let old = stored.get(&d.ip);
            let old_profile = old.map(|a| profile_of(a, stored_deckies.get(&d.ip)));
            let Some(p) = merge_profile(old_profile.as_ref(), d) else {
                continue;
            };
            let (uuid, created) = match old {
                Some(a) => (a.uuid.clone(), false),
                None => (new_uuid(), true),
            };
            let w = attacker_write(uuid.clone(), &d.ip, &p, now);
            if created {
                diesel::insert_into(attackers::table)
                    .values(&w)
                    .execute(c)?;
                if let Some(o) = d.observed_payload() {
                    out.observed.push(o);
                }
            } else {
                diesel::update(attackers::table.find(&uuid))
                    .set(&w)
                    .execute(c)?;
            }
            let old_deckies = old_profile.as_ref().map(|o| o.all_deckies.len());
            if created || old_deckies != Some(p.all_deckies.len()) {
                diesel::update(attacker_ext::table.find(&uuid))
                    .set(attacker_ext::all_deckies.eq(to_text(&p.all_deckies)))
                    .execute(c)?;
            }
            // Only rows without a uuid need it: new credentials of this batch, or older ones
            // captured before the attacker row existed.
            if created || d.credential_count > 0 {
                diesel::update(
                    credentials::table
                        .filter(credentials::attacker_ip.eq(&d.ip))
                        .filter(credentials::attacker_uuid.is_null()),
                )
                .set(credentials::attacker_uuid.eq(&uuid))
                .execute(c)?;
            }
            out.scored.push(p.scored_payload(&d.ip));
        }

        // 4. quarantine (identical garbage collapses to one row).
        for q in &input.quarantine {
            out.quarantined += diesel::insert_into(ingest_quarantine::table)
                .values(q)
                .on_conflict(ingest_quarantine::line_hash)
                .do_nothing()
                .execute(c)?;
        }

        // 5. the position, in the same transaction: a crash can never separate rows from it.
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
                .execute(c)?;
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------- credential reuse

#[derive(QueryableByName)]
struct GroupKeyRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    secret_sha256: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    secret_kind: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    principal_key: String,
}

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

/// One correlator pass (spec §10): candidate groups are found in SQL, each group's finding is
/// computed by [`reuse::correlate`] and written when it changed. Returns the findings to
/// publish (inserted or grown), in one transaction.
pub async fn reuse_pass(db: &Db, min_targets: usize) -> Result<Vec<Finding>, DbError> {
    let now = now_utc();
    let min = min_targets.max(1);
    // `min` is an integer we control, inlined because placeholders differ per backend.
    let group_sql = format!(
        "SELECT secret_sha256, secret_kind, principal_key FROM credentials \
         GROUP BY secret_sha256, secret_kind, principal_key \
         HAVING COUNT(DISTINCT decky_name || ':' || service) >= {min}"
    );
    db_tx!(db, |c| {
        let keys: Vec<GroupKeyRow> = diesel::sql_query(group_sql.as_str()).load(c).await?;
        let wanted: HashSet<GroupKey> = keys
            .into_iter()
            .map(|k| GroupKey {
                secret_sha256: k.secret_sha256,
                secret_kind: k.secret_kind,
                principal_key: k.principal_key,
            })
            .collect();
        let shas: Vec<String> = wanted
            .iter()
            .map(|k| k.secret_sha256.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut rows: Vec<CredentialRow> = Vec::new();
        let mut findings: HashMap<GroupKey, Finding> = HashMap::new();
        for chunk in shas.chunks(500) {
            let creds: Vec<Credential> = credentials::table
                .filter(credentials::secret_sha256.eq_any(chunk))
                .select(Credential::as_select())
                .order(credentials::id.asc())
                .load(c)
                .await?;
            rows.extend(creds.into_iter().map(|r| CredentialRow {
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
            }));
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
            if !wanted.contains(&g.key) {
                continue;
            }
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
    /// `event_count` desc.
    Active,
    /// `is_traversal` desc.
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
    let (total, rows): (i64, Vec<Attacker>) = db_run!(db, |c| {
        let total: i64 = attackers_query!(search, service)
            .count()
            .get_result(c)
            .await?;
        let q = attackers_query!(search, service).select(Attacker::as_select());
        let q = match sort {
            AttackerSort::Recent => q.order((attackers::last_seen.desc(), attackers::uuid.asc())),
            AttackerSort::Active => {
                q.order((attackers::event_count.desc(), attackers::last_seen.desc()))
            }
            AttackerSort::Traversals => {
                q.order((attackers::is_traversal.desc(), attackers::last_seen.desc()))
            }
        };
        let rows = q.limit(limit).offset(offset).load(c).await?;
        (total, rows)
    });
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
    Ok(db_run!(db, |c| {
        let total: i64 = credentials_query!(search, service, attacker_ip)
            .count()
            .get_result(c)
            .await?;
        let rows = credentials_query!(search, service, attacker_ip)
            .select(Credential::as_select())
            .order((credentials::last_seen.desc(), credentials::id.desc()))
            .limit(limit)
            .offset(offset)
            .load(c)
            .await?;
        (total, rows)
    }))
}

/// A reuse row with the grafted secret columns.
pub type ReuseWithSecret = (CredentialReuse, Option<String>, Option<String>);

async fn graft_secrets(
    db: &Db,
    rows: Vec<CredentialReuse>,
) -> Result<Vec<ReuseWithSecret>, DbError> {
    let shas: Vec<String> = rows
        .iter()
        .map(|r| r.secret_sha256.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    type SecretRow = (String, String, String, Option<String>, Option<String>);
    // ONE query for the whole page; the first row per (sha, kind, principal) wins.
    let found: Vec<SecretRow> = if shas.is_empty() {
        Vec::new()
    } else {
        db_run!(db, |c| credentials::table
            .filter(credentials::secret_sha256.eq_any(&shas))
            .select((
                credentials::secret_sha256,
                credentials::secret_kind,
                credentials::principal_key,
                credentials::secret_printable,
                credentials::secret_b64,
            ))
            .order(credentials::id.asc())
            .load(c)
            .await)?
    };
    type Secret = (Option<String>, Option<String>);
    let mut first: HashMap<(String, String, String), Secret> = HashMap::new();
    for (sha, kind, pk, printable, b64) in found {
        first.entry((sha, kind, pk)).or_insert((printable, b64));
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
    let (total, rows): (i64, Vec<CredentialReuse>) = db_run!(db, |c| {
        let q = || {
            let mut q = credential_reuse::table
                .filter(credential_reuse::target_count.ge(min_target_count))
                .into_boxed();
            if let Some(k) = secret_kind {
                q = q.filter(credential_reuse::secret_kind.eq(k.to_owned()));
            }
            q
        };
        let total: i64 = q().count().get_result(c).await?;
        let rows = q()
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
        (total, rows)
    });
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
    Ok(db_run!(db, |c| {
        let total: i64 = logs_query!(&tokens, start, end)
            .count()
            .get_result(c)
            .await?;
        let rows = logs_query!(&tokens, start, end)
            .select(Log::as_select())
            .order(logs::id.desc())
            .limit(limit)
            .offset(offset)
            .load(c)
            .await?;
        (total, rows)
    }))
}
