//! MailDripper rows (`orchestrator_emails`).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::orchestrator_emails;

/// A stored email attempt; `payload` is the raw JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = orchestrator_emails)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct OrchestratorEmail {
    pub uuid: String,
    pub ts: NaiveDateTime,
    pub mail_decky_uuid: String,
    pub thread_id: String,
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub sender_email: String,
    pub recipient_email: String,
    pub subject: String,
    pub language: String,
    pub eml_path: String,
    pub success: bool,
    pub payload: String,
}

impl OrchestratorEmail {
    /// The payload as JSON (an empty object when the stored text is not JSON).
    pub fn payload_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.payload).unwrap_or_else(|_| serde_json::json!({}))
    }
}

/// An attempt to record (the repository sets `uuid`, `ts` and clips every column).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewOrchestratorEmail {
    pub mail_decky_uuid: String,
    pub thread_id: String,
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub sender_email: String,
    pub recipient_email: String,
    pub subject: String,
    pub language: String,
    pub eml_path: String,
    pub success: bool,
    pub payload: serde_json::Value,
}
