//! The database-backed [`LiveSource`] of `GET /api/v1/stream`: honest counts for the landing
//! page cards and new log rows for Live Logs.

use std::sync::Arc;

use futures::future::LocalBoxFuture;
use serde_json::Value;

use crate::db::models::intake::Log;
use crate::db::{repo, Db};
use crate::http::error::ApiError;
use crate::http::iso;
use crate::http::stream::{LiveSource, LogFilter, Stats};

/// One log row as the dashboard's Live Logs and `GET /logs` render it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct LogRow {
    pub id: i64,
    /// ISO-8601 UTC.
    pub timestamp: String,
    pub decky: String,
    pub service: String,
    pub event_type: String,
    pub attacker_ip: String,
    pub raw_line: String,
    /// The structured fields as a JSON object string.
    pub fields: String,
    pub msg: Option<String>,
    pub source_worker: Option<String>,
}

/// [`LogRow`] as JSON.
pub fn log_row(l: &Log) -> Value {
    serde_json::to_value(LogRow::from(l)).unwrap_or(Value::Null)
}

impl From<&Log> for LogRow {
    fn from(l: &Log) -> Self {
        LogRow {
            id: l.id,
            timestamp: iso(l.timestamp),
            decky: l.decky.clone(),
            service: l.service.clone(),
            event_type: l.event_type.clone(),
            attacker_ip: l.attacker_ip.clone(),
            raw_line: l.raw_line.clone(),
            fields: l.fields.clone(),
            msg: l.msg.clone(),
            source_worker: l.source_worker.clone(),
        }
    }
}

/// Reads `logs`, `attackers` and `fleet_deckies`.
pub struct DbLiveSource {
    db: Db,
}

impl DbLiveSource {
    pub fn shared(db: Db) -> Arc<dyn LiveSource> {
        Arc::new(DbLiveSource { db })
    }
}

impl LiveSource for DbLiveSource {
    fn stats(&self) -> LocalBoxFuture<'_, Result<Stats, ApiError>> {
        Box::pin(async move {
            let (total_logs, unique_attackers) = repo::live::stream_counts(&self.db).await?;
            let deployed = repo::fleet::list(&self.db, None).await?;
            let active = deployed.iter().filter(|d| d.state == "running").count();
            Ok(Stats {
                total_logs,
                unique_attackers,
                active_deckies: active as i64,
                deployed_deckies: deployed.len() as i64,
            })
        })
    }

    fn max_log_id(&self) -> LocalBoxFuture<'_, Result<i64, ApiError>> {
        Box::pin(async move { Ok(repo::live::max_log_id(&self.db).await?) })
    }

    /// The newest `limit` matching rows above `after`, returned in ascending id order. When more
    /// than `limit` rows arrived since the last poll the oldest of them are skipped: Live Logs
    /// shows a window of the newest rows, never a backlog.
    fn logs_after<'a>(
        &'a self,
        after: i64,
        filter: &'a LogFilter,
        limit: i64,
    ) -> LocalBoxFuture<'a, Result<Vec<Value>, ApiError>> {
        Box::pin(async move {
            let (_, rows) = repo::intake::list_logs(
                &self.db,
                filter.search.as_deref().filter(|s| !s.trim().is_empty()),
                filter.start_time,
                None,
                limit,
                0,
            )
            .await?;
            let mut out: Vec<Value> = rows.iter().filter(|l| l.id > after).map(log_row).collect();
            out.reverse();
            Ok(out)
        })
    }
}
