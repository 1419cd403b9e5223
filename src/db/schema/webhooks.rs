//! Webhook tables (platform.md §5.1) and the durable delivery outbox.

diesel::table! {
    /// Operators' webhook endpoints. `topic_patterns` is a JSON text list.
    webhook_subscriptions (uuid) {
        uuid -> Text,
        name -> Text,
        url -> Text,
        /// HMAC key (plaintext, §5.1); never returned except by create.
        secret -> Text,
        topic_patterns -> Text,
        /// `generic|standard|slack|teams|discord`.
        format -> Text,
        enabled -> Bool,
        consecutive_failures -> Integer,
        last_success_at -> Nullable<Timestamp>,
        last_failure_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        auto_disabled_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// One (event, subscription) delivery, written before its first attempt.
    webhook_deliveries (id) {
        id -> BigInt,
        subscription_uuid -> Text,
        event_id -> Text,
        topic -> Text,
        /// The generic body (sorted compact JSON).
        event_body -> Text,
        /// `X-DECNET-Timestamp` of every attempt.
        signed_at -> BigInt,
        /// `pending|delivered|dead`.
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_status_code -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// Every attempt of a delivery.
    webhook_attempts (id) {
        id -> BigInt,
        delivery_id -> BigInt,
        attempt -> Integer,
        status_code -> Nullable<Integer>,
        error -> Nullable<Text>,
        duration_ms -> Integer,
        attempted_at -> Timestamp,
    }
}

diesel::joinable!(webhook_deliveries -> webhook_subscriptions (subscription_uuid));
diesel::joinable!(webhook_attempts -> webhook_deliveries (delivery_id));
diesel::allow_tables_to_appear_in_same_query!(
    webhook_subscriptions,
    webhook_deliveries,
    webhook_attempts
);
