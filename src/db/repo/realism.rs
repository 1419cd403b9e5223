//! Realism repository (realism spec §1.6): orchestrator events, synthetic files, realism
//! config. (Emails belong to the MailDripper issue.)

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

use crate::db::models::realism::{
    clip_body, content_hash, NewOrchestratorEvent, NewSyntheticFile, OrchestratorEvent,
    RealismConfigRow, SyntheticFile, SyntheticFileFilter, SyntheticFilePatch,
};
use crate::db::schema::{orchestrator_events, realism_config, synthetic_files};
use crate::db::{new_uuid, now_utc, Db, DbError};
use crate::{db_run, db_tx};

/// Content classes that may be edited in place.
pub const EDITABLE_CLASSES: [&str; 6] =
    ["note", "todo", "draft", "script", "log_cron", "log_daemon"];

// ---- orchestrator_events ----------------------------------------------------------------

/// Record one planner event (`ts` = now); returns its uuid.
pub async fn record_orchestrator_event(
    db: &Db,
    ev: NewOrchestratorEvent,
) -> Result<String, DbError> {
    let row = OrchestratorEvent {
        uuid: new_uuid(),
        ts: now_utc(),
        kind: ev.kind,
        protocol: ev.protocol,
        action: ev.action,
        src_decky_uuid: ev.src_decky_uuid,
        dst_decky_uuid: ev.dst_decky_uuid,
        success: ev.success,
        payload: serde_json::to_string(&ev.payload)?,
    };
    db_run!(db, |c| diesel::insert_into(orchestrator_events::table)
        .values(&row)
        .execute(c)
        .await)?;
    Ok(row.uuid)
}

/// Events newest first, optionally of one `kind` and not older than `since`.
pub async fn list_orchestrator_events(
    db: &Db,
    limit: i64,
    offset: i64,
    kind: Option<&str>,
    since: Option<NaiveDateTime>,
) -> Result<Vec<OrchestratorEvent>, DbError> {
    use orchestrator_events::dsl as e;
    let kind = kind.map(str::to_owned);
    Ok(db_run!(db, |c| {
        let mut q = orchestrator_events::table
            .select(OrchestratorEvent::as_select())
            .order((e::ts.desc(), e::uuid.desc()))
            .limit(limit.max(0))
            .offset(offset.max(0))
            .into_boxed();
        if let Some(k) = &kind {
            q = q.filter(e::kind.eq(k.clone()));
        }
        if let Some(s) = since {
            q = q.filter(e::ts.ge(s));
        }
        q.load(c).await
    })?)
}

/// Number of events, optionally of one `kind`.
pub async fn count_orchestrator_events(db: &Db, kind: Option<&str>) -> Result<i64, DbError> {
    use orchestrator_events::dsl as e;
    let kind = kind.map(str::to_owned);
    Ok(db_run!(db, |c| {
        let mut q = orchestrator_events::table.count().into_boxed();
        if let Some(k) = &kind {
            q = q.filter(e::kind.eq(k.clone()));
        }
        q.get_result(c).await
    })?)
}

/// Failed events (`success = false`) since `since`, optionally of one `kind`.
pub async fn count_orchestrator_failures(
    db: &Db,
    since: NaiveDateTime,
    kind: Option<&str>,
) -> Result<i64, DbError> {
    use orchestrator_events::dsl as e;
    let kind = kind.map(str::to_owned);
    Ok(db_run!(db, |c| {
        let mut q = orchestrator_events::table
            .filter(e::success.eq(false))
            .filter(e::ts.ge(since))
            .count()
            .into_boxed();
        if let Some(k) = &kind {
            q = q.filter(e::kind.eq(k.clone()));
        }
        q.get_result(c).await
    })?)
}

/// Keep the newest `per_dst_cap` events of every destination decky; returns rows deleted.
pub async fn prune_orchestrator_events(db: &Db, per_dst_cap: i64) -> Result<usize, DbError> {
    prune_per_group!(
        db,
        orchestrator_events,
        dst_decky_uuid,
        ts,
        uuid,
        per_dst_cap.max(0)
    )
}

// ---- synthetic_files --------------------------------------------------------------------

/// Record a planted file (`created_at` = `last_modified` = now, `edit_count` 0, hash of the
/// full body, body clipped). A second row for the same (decky, path) fails with a unique
/// violation ([`DbError::is_unique_violation`]).
pub async fn record_synthetic_file(db: &Db, new: NewSyntheticFile) -> Result<String, DbError> {
    let now = now_utc();
    let (last_body, truncated) = clip_body(&new.body);
    let row = SyntheticFile {
        uuid: new_uuid(),
        decky_uuid: new.decky_uuid,
        path: new.path,
        persona: new.persona,
        content_class: new.content_class,
        created_at: now,
        last_modified: now,
        edit_count: 0,
        content_hash: content_hash(&new.body),
        last_body,
        truncated,
    };
    db_run!(db, |c| diesel::insert_into(synthetic_files::table)
        .values(&row)
        .execute(c)
        .await)?;
    Ok(row.uuid)
}

/// Record a planted file, or — when (`decky_uuid`, `path`) already has a row — patch that
/// row in one statement (`last_modified` = now, new hash and clipped body, `edit_count` + 1;
/// persona and class unchanged). Returns the row's uuid and whether it was created.
pub async fn upsert_synthetic_file(
    db: &Db,
    new: NewSyntheticFile,
) -> Result<(String, bool), DbError> {
    use synthetic_files::dsl as s;
    let now = now_utc();
    let (last_body, truncated) = clip_body(&new.body);
    let row = SyntheticFile {
        uuid: new_uuid(),
        decky_uuid: new.decky_uuid,
        path: new.path,
        persona: new.persona,
        content_class: new.content_class,
        created_at: now,
        last_modified: now,
        edit_count: 0,
        content_hash: content_hash(&new.body),
        last_body,
        truncated,
    };
    let uuid: String = db_run!(db, |c| diesel::insert_into(synthetic_files::table)
        .values(&row)
        .on_conflict((s::decky_uuid, s::path))
        .do_update()
        .set((
            s::last_modified.eq(excluded(s::last_modified)),
            s::content_hash.eq(excluded(s::content_hash)),
            s::last_body.eq(excluded(s::last_body)),
            s::truncated.eq(excluded(s::truncated)),
            s::edit_count.eq(s::edit_count + 1),
        ))
        .returning(s::uuid)
        .get_result(c)
        .await)?;
    let created = uuid == row.uuid;
    Ok((uuid, created))
}

/// Apply a partial update; returns whether the row exists (unknown uuid is a no-op).
pub async fn update_synthetic_file(
    db: &Db,
    uuid: &str,
    patch: SyntheticFilePatch,
) -> Result<bool, DbError> {
    use synthetic_files::dsl as s;
    let body = patch.body.as_deref().map(|b| {
        let (clipped, truncated) = clip_body(b);
        (content_hash(b), clipped, truncated)
    });
    db_tx!(db, |c| {
        let exists = synthetic_files::table
            .find(uuid)
            .select(s::uuid)
            .first::<String>(c)
            .await
            .optional()?
            .is_some();
        if !exists {
            return Ok(false);
        }
        if let Some(at) = patch.last_modified {
            diesel::update(synthetic_files::table.find(uuid))
                .set(s::last_modified.eq(at))
                .execute(c)
                .await?;
        }
        if let Some(n) = patch.edit_count {
            diesel::update(synthetic_files::table.find(uuid))
                .set(s::edit_count.eq(n))
                .execute(c)
                .await?;
        }
        if let Some((hash, clipped, truncated)) = &body {
            diesel::update(synthetic_files::table.find(uuid))
                .set((
                    s::content_hash.eq(hash),
                    s::last_body.eq(clipped),
                    s::truncated.eq(*truncated),
                ))
                .execute(c)
                .await?;
        }
        Ok(true)
    })
}

/// Mark a re-plant or edit: `last_modified` = `at`, `edit_count` + 1 and, when `body` is
/// given, new hash and clipped body — one atomic statement. Returns whether the row exists.
pub async fn bump_synthetic_file(
    db: &Db,
    uuid: &str,
    at: NaiveDateTime,
    body: Option<&str>,
) -> Result<bool, DbError> {
    use synthetic_files::dsl as s;
    let n = match body {
        Some(b) => {
            let (clipped, truncated) = clip_body(b);
            let hash = content_hash(b);
            db_run!(db, |c| diesel::update(synthetic_files::table.find(uuid))
                .set((
                    s::last_modified.eq(at),
                    s::edit_count.eq(s::edit_count + 1),
                    s::content_hash.eq(&hash),
                    s::last_body.eq(&clipped),
                    s::truncated.eq(truncated),
                ))
                .execute(c)
                .await)?
        }
        None => db_run!(db, |c| diesel::update(synthetic_files::table.find(uuid))
            .set((s::last_modified.eq(at), s::edit_count.eq(s::edit_count + 1)))
            .execute(c)
            .await)?,
    };
    Ok(n > 0)
}

/// The row of (`decky_uuid`, `path`), if any.
pub async fn find_synthetic_file(
    db: &Db,
    decky_uuid: &str,
    path: &str,
) -> Result<Option<SyntheticFile>, DbError> {
    use synthetic_files::dsl as s;
    Ok(db_run!(db, |c| synthetic_files::table
        .filter(s::decky_uuid.eq(decky_uuid))
        .filter(s::path.eq(path))
        .select(SyntheticFile::as_select())
        .first(c)
        .await
        .optional())?)
}

/// The row with this uuid, if any.
pub async fn get_synthetic_file(db: &Db, uuid: &str) -> Result<Option<SyntheticFile>, DbError> {
    Ok(db_run!(db, |c| synthetic_files::table
        .find(uuid)
        .select(SyntheticFile::as_select())
        .first(c)
        .await
        .optional())?)
}

/// Rows matching `filter`, most recently modified first.
pub async fn list_synthetic_files(
    db: &Db,
    filter: &SyntheticFileFilter,
    limit: i64,
    offset: i64,
) -> Result<Vec<SyntheticFile>, DbError> {
    use synthetic_files::dsl as s;
    let f = filter.clone();
    Ok(db_run!(db, |c| {
        let mut q = synthetic_files::table
            .select(SyntheticFile::as_select())
            .order((s::last_modified.desc(), s::uuid.desc()))
            .limit(limit.max(0))
            .offset(offset.max(0))
            .into_boxed();
        if let Some(v) = &f.decky_uuid {
            q = q.filter(s::decky_uuid.eq(v.clone()));
        }
        if let Some(v) = &f.persona {
            q = q.filter(s::persona.eq(v.clone()));
        }
        if let Some(v) = &f.content_class {
            q = q.filter(s::content_class.eq(v.clone()));
        }
        q.load(c).await
    })?)
}

/// Number of rows matching `filter`.
pub async fn count_synthetic_files(db: &Db, filter: &SyntheticFileFilter) -> Result<i64, DbError> {
    use synthetic_files::dsl as s;
    let f = filter.clone();
    Ok(db_run!(db, |c| {
        let mut q = synthetic_files::table.count().into_boxed();
        if let Some(v) = &f.decky_uuid {
            q = q.filter(s::decky_uuid.eq(v.clone()));
        }
        if let Some(v) = &f.persona {
            q = q.filter(s::persona.eq(v.clone()));
        }
        if let Some(v) = &f.content_class {
            q = q.filter(s::content_class.eq(v.clone()));
        }
        q.get_result(c).await
    })?)
}

/// A uniformly random editable row of `decky_uuid` modified in the last `max_age_days`
/// (relative to `now`), if any.
pub async fn pick_random_synthetic_file_for_edit(
    db: &Db,
    decky_uuid: &str,
    max_age_days: i64,
    now: NaiveDateTime,
) -> Result<Option<SyntheticFile>, DbError> {
    use synthetic_files::dsl as s;
    let cutoff = now - TimeDelta::days(max_age_days.max(0));
    Ok(db_run!(db, |c| synthetic_files::table
        .filter(s::decky_uuid.eq(decky_uuid))
        .filter(s::content_class.eq_any(EDITABLE_CLASSES))
        .filter(s::last_modified.ge(cutoff))
        .order(diesel::dsl::sql::<diesel::sql_types::Double>("RANDOM()"))
        .select(SyntheticFile::as_select())
        .first(c)
        .await
        .optional())?)
}

// ---- realism_config ---------------------------------------------------------------------

/// The row stored under `key`, if any.
pub async fn get_realism_config(db: &Db, key: &str) -> Result<Option<RealismConfigRow>, DbError> {
    use realism_config::dsl as r;
    Ok(db_run!(db, |c| realism_config::table
        .filter(r::key.eq(key))
        .select(RealismConfigRow::as_select())
        .first(c)
        .await
        .optional())?)
}

/// Store `value` under `key` (upsert, last write wins, `updated_at` = now).
pub async fn set_realism_config(
    db: &Db,
    key: &str,
    value: &serde_json::Value,
) -> Result<RealismConfigRow, DbError> {
    use realism_config::dsl as r;
    let row = RealismConfigRow {
        uuid: new_uuid(),
        key: key.to_owned(),
        value: serde_json::to_string(value)?,
        updated_at: now_utc(),
    };
    db_run!(db, |c| diesel::insert_into(realism_config::table)
        .values(&row)
        .on_conflict(r::key)
        .do_update()
        .set((
            r::value.eq(excluded(r::value)),
            r::updated_at.eq(excluded(r::updated_at))
        ))
        .execute(c)
        .await)?;
    get_realism_config(db, key)
        .await?
        .ok_or(DbError::Query(diesel::result::Error::NotFound))
}
