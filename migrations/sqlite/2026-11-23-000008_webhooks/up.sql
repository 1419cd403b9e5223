-- Webhook subscriptions (platform.md §5.1) plus decnetd's durable outbox: one delivery row per
-- (subscription, event) written before the first attempt, its attempts, and dead letters
-- (deliveries whose status is 'dead'). Same tables on both backends.
CREATE TABLE webhook_subscriptions (
    uuid VARCHAR(36) NOT NULL PRIMARY KEY,
    name VARCHAR(64) NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    topic_patterns TEXT NOT NULL DEFAULT '[]',
    format VARCHAR(16) NOT NULL DEFAULT 'generic'
        CHECK (format IN ('generic', 'standard', 'slack', 'teams', 'discord')),
    enabled BOOLEAN NOT NULL DEFAULT 1,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_success_at TIMESTAMP,
    last_failure_at TIMESTAMP,
    last_error VARCHAR(512) CHECK (length(last_error) <= 512),
    auto_disabled_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX ix_webhook_subscriptions_enabled ON webhook_subscriptions (enabled);

CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_uuid VARCHAR(36) NOT NULL
        REFERENCES webhook_subscriptions (uuid) ON DELETE CASCADE,
    event_id VARCHAR(64) NOT NULL,
    topic TEXT NOT NULL,
    -- The event as delivered by the generic format (sorted compact JSON, §5.4).
    event_body TEXT NOT NULL,
    -- X-DECNET-Timestamp, fixed for every attempt of this delivery.
    signed_at BIGINT NOT NULL,
    status VARCHAR(16) NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    last_status_code INTEGER,
    last_error VARCHAR(512) CHECK (length(last_error) <= 512),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP,
    UNIQUE (subscription_uuid, event_id)
);
CREATE INDEX ix_webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX ix_webhook_deliveries_sub_status ON webhook_deliveries (subscription_uuid, status, id);
CREATE INDEX ix_webhook_deliveries_delivered ON webhook_deliveries (delivered_at);

CREATE TABLE webhook_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id BIGINT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    status_code INTEGER,
    error VARCHAR(512) CHECK (length(error) <= 512),
    duration_ms INTEGER NOT NULL DEFAULT 0,
    attempted_at TIMESTAMP NOT NULL
);
CREATE INDEX ix_webhook_attempts_delivery ON webhook_attempts (delivery_id, id);
