//! Webhook subscription, delivery and attempt rows.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{webhook_attempts, webhook_deliveries, webhook_subscriptions};

/// Delivery status values.
pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const DEAD: &str = "dead";

/// A stored subscription (all columns; `secret` must never reach a log or a list).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_subscriptions)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Subscription {
    pub uuid: String,
    pub name: String,
    pub url: String,
    pub secret: String,
    pub topic_patterns: String,
    pub format: String,
    pub enabled: bool,
    pub consecutive_failures: i32,
    pub last_success_at: Option<NaiveDateTime>,
    pub last_failure_at: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub auto_disabled_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl Subscription {
    /// A new row (fresh uuid, timestamps now, counters zero, no breaker stamp).
    pub fn fresh(
        name: &str,
        url: &str,
        secret: &str,
        patterns: &[String],
        format: &str,
        enabled: bool,
    ) -> Subscription {
        let now = crate::db::now_utc();
        Subscription {
            uuid: crate::db::new_uuid(),
            name: name.to_owned(),
            url: url.to_owned(),
            secret: secret.to_owned(),
            // A list of strings always serialises.
            topic_patterns: serde_json::to_string(patterns).unwrap_or_else(|_| "[]".to_owned()),
            format: format.to_owned(),
            enabled,
            consecutive_failures: 0,
            last_success_at: None,
            last_failure_at: None,
            last_error: None,
            auto_disabled_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// The stored pattern list (an unreadable value reads as empty).
    pub fn patterns(&self) -> Vec<String> {
        serde_json::from_str(&self.topic_patterns).unwrap_or_default()
    }
}

/// A PATCH: `None` leaves a column alone; `Some(None)` clears a nullable one.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = webhook_subscriptions)]
pub struct SubscriptionChanges {
    pub name: Option<String>,
    pub url: Option<String>,
    pub secret: Option<String>,
    pub topic_patterns: Option<String>,
    pub format: Option<String>,
    pub enabled: Option<bool>,
    pub consecutive_failures: Option<i32>,
    pub last_error: Option<Option<String>>,
    pub auto_disabled_at: Option<Option<NaiveDateTime>>,
    pub updated_at: Option<NaiveDateTime>,
}

/// A delivery to enqueue.
#[derive(Debug, Clone, PartialEq, Insertable)]
#[diesel(table_name = webhook_deliveries)]
pub struct NewDelivery {
    pub subscription_uuid: String,
    pub event_id: String,
    pub topic: String,
    pub event_body: String,
    pub signed_at: i64,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A stored delivery.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = webhook_deliveries)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Delivery {
    pub id: i64,
    pub subscription_uuid: String,
    pub event_id: String,
    pub topic: String,
    pub event_body: String,
    pub signed_at: i64,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub delivered_at: Option<NaiveDateTime>,
}

/// One attempt as stored.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_attempts)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct Attempt {
    #[diesel(skip_insertion)]
    pub id: i64,
    pub delivery_id: i64,
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
    pub attempted_at: NaiveDateTime,
}

/// What one attempt (or a refusal before any attempt) concluded, to record in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub delivery_id: i64,
    pub subscription_uuid: String,
    /// `None` for an SSRF refusal at delivery time (no request was made: 0 attempts).
    pub attempt: Option<Attempt>,
    /// New delivery status (`pending` to retry, `delivered`, `dead`).
    pub status: &'static str,
    pub next_attempt_at: NaiveDateTime,
    pub status_code: Option<i32>,
    pub error: Option<String>,
}

/// What recording a final outcome did to the subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordOutcome {
    /// The breaker opened: the subscription was disabled by this failure.
    pub tripped: bool,
}
