//! Fleet repository (platform spec §6.3) and the running-decky union view (§6.6).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;

use crate::db::models::fleet::{
    decode_services, DeckySource, EmittedServices, FleetDecky, FleetDeckyUpsert, RunningDecky,
};
use crate::db::schema::{fleet_deckies, fleet_emitted_services};
use crate::db::{now_utc, Db, DbError};
use crate::db_run;
use crate::domain::fleet::LOCAL_HOST;

/// `fleet_deckies.state` of a running decky.
const RUNNING: &str = "running";

fn host_or_local(host: Option<&str>) -> String {
    host.filter(|h| !h.is_empty())
        .unwrap_or(LOCAL_HOST)
        .to_owned()
}

/// Insert or replace the row (`host_uuid`, `name`); `host_uuid` `None`/empty → `local`;
/// lists and objects are serialised; `updated_at` = now. Returns the stored row.
pub async fn upsert(db: &Db, up: FleetDeckyUpsert) -> Result<FleetDecky, DbError> {
    let row = FleetDecky {
        host_uuid: host_or_local(up.host_uuid.as_deref()),
        name: up.name,
        services: serde_json::to_string(&up.services)?,
        decky_config: up
            .decky_config
            .as_ref()
            .map(serde_json::to_string)
            .transpose()?,
        decky_ip: up.decky_ip,
        state: up.state,
        last_error: up.last_error,
        compose_hash: up.compose_hash,
        last_seen: up.last_seen,
        updated_at: now_utc(),
    };
    use fleet_deckies::dsl as f;
    db_run!(db, |c| diesel::insert_into(fleet_deckies::table)
        .values(&row)
        .on_conflict((f::host_uuid, f::name))
        .do_update()
        .set((
            f::services.eq(excluded(f::services)),
            f::decky_config.eq(excluded(f::decky_config)),
            f::decky_ip.eq(excluded(f::decky_ip)),
            f::state.eq(excluded(f::state)),
            f::last_error.eq(excluded(f::last_error)),
            f::compose_hash.eq(excluded(f::compose_hash)),
            f::last_seen.eq(excluded(f::last_seen)),
            f::updated_at.eq(excluded(f::updated_at)),
        ))
        .execute(c)
        .await)?;
    Ok(row)
}

/// Delete the row (`host_uuid`, `name`); returns whether it existed (absent is a no-op).
pub async fn delete(db: &Db, host_uuid: Option<&str>, name: &str) -> Result<bool, DbError> {
    let host = host_or_local(host_uuid);
    let n = db_run!(db, |c| diesel::delete(
        fleet_deckies::table.find((&host, name))
    )
    .execute(c)
    .await)?;
    Ok(n > 0)
}

/// The row (`host_uuid` or `local`, `name`), if any.
pub async fn get(
    db: &Db,
    host_uuid: Option<&str>,
    name: &str,
) -> Result<Option<FleetDecky>, DbError> {
    let host = host_or_local(host_uuid);
    Ok(db_run!(db, |c| fleet_deckies::table
        .find((&host, name))
        .select(FleetDecky::as_select())
        .first(c)
        .await
        .optional())?)
}

/// Every row, or only those of `host_uuid`, ordered by name (then host).
pub async fn list(db: &Db, host_uuid: Option<&str>) -> Result<Vec<FleetDecky>, DbError> {
    use fleet_deckies::dsl as f;
    let host = host_uuid.map(str::to_owned);
    Ok(db_run!(db, |c| {
        let mut q = fleet_deckies::table
            .select(FleetDecky::as_select())
            .order((f::name.asc(), f::host_uuid.asc()))
            .into_boxed();
        if let Some(h) = &host {
            q = q.filter(f::host_uuid.eq(h.clone()));
        }
        q.load(c).await
    })?)
}

/// Rows in state `running`, ordered by name (then host).
pub async fn list_running(db: &Db) -> Result<Vec<FleetDecky>, DbError> {
    use fleet_deckies::dsl as f;
    Ok(db_run!(db, |c| fleet_deckies::table
        .filter(f::state.eq(RUNNING))
        .select(FleetDecky::as_select())
        .order((f::name.asc(), f::host_uuid.asc()))
        .load(c)
        .await)?)
}

/// Set the state (and `last_error`, which is cleared when `None`), bumping `updated_at` and
/// `last_seen` to `at`. Returns whether the row exists.
pub async fn update_state(
    db: &Db,
    host_uuid: Option<&str>,
    name: &str,
    state: &str,
    last_error: Option<&str>,
    at: NaiveDateTime,
) -> Result<bool, DbError> {
    use fleet_deckies::dsl as f;
    let host = host_or_local(host_uuid);
    let n = db_run!(db, |c| diesel::update(
        fleet_deckies::table.find((&host, name))
    )
    .set((
        f::state.eq(state),
        f::last_error.eq(last_error),
        f::updated_at.eq(at),
        f::last_seen.eq(Some(at)),
    ))
    .execute(c)
    .await)?;
    Ok(n > 0)
}

/// What was last emitted about each decky of `host_uuid`, ordered by name.
pub async fn list_emitted(db: &Db, host_uuid: &str) -> Result<Vec<EmittedServices>, DbError> {
    use fleet_emitted_services::dsl as e;
    let host = host_uuid.to_owned();
    Ok(db_run!(db, |c| fleet_emitted_services::table
        .filter(e::host_uuid.eq(&host))
        .select(EmittedServices::as_select())
        .order(e::name.asc())
        .load(c)
        .await)?)
}

/// Remember that `services` (sorted) were emitted for (`host_uuid`, `name`): upsert when the
/// decky exists, delete the row when `services` is empty (its retirement was emitted).
pub async fn record_emitted(
    db: &Db,
    host_uuid: &str,
    name: &str,
    services: &[String],
    last_mutated: f64,
) -> Result<(), DbError> {
    use fleet_emitted_services::dsl as e;
    if services.is_empty() {
        let host = host_uuid.to_owned();
        db_run!(db, |c| diesel::delete(
            fleet_emitted_services::table.find((&host, name))
        )
        .execute(c)
        .await)?;
        return Ok(());
    }
    let row = EmittedServices {
        host_uuid: host_uuid.to_owned(),
        name: name.to_owned(),
        services: serde_json::to_string(services)?,
        last_mutated,
        emitted_at: now_utc(),
    };
    db_run!(db, |c| diesel::insert_into(fleet_emitted_services::table)
        .values(&row)
        .on_conflict((e::host_uuid, e::name))
        .do_update()
        .set((
            e::services.eq(excluded(e::services)),
            e::last_mutated.eq(excluded(e::last_mutated)),
            e::emitted_at.eq(excluded(e::emitted_at)),
        ))
        .execute(c)
        .await)?;
    Ok(())
}

/// Map a running fleet row onto the union-view shape.
pub fn fleet_running_entry(row: &FleetDecky) -> RunningDecky {
    let (services, services_raw) = match decode_services(&row.services) {
        Some(list) => (list, None),
        None => (Vec::new(), Some(row.services.clone())),
    };
    RunningDecky {
        uuid: format!("{}:{}", row.host_uuid, row.name),
        name: row.name.clone(),
        ip: row.decky_ip.clone(),
        services,
        services_raw,
        source: DeckySource::Fleet,
        topology_id: None,
    }
}

/// The running-decky union view (§6.6), in source order topology → fleet → shard. The
/// topology and shard sources are included once their tables exist in this schema; today
/// the fleet rows in state `running` are the whole view.
pub async fn list_running_deckies(db: &Db) -> Result<Vec<RunningDecky>, DbError> {
    let fleet = list_running(db).await?;
    Ok(fleet.iter().map(fleet_running_entry).collect())
}
