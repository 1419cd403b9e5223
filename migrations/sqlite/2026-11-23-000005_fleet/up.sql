CREATE TABLE fleet_deckies (
    host_uuid TEXT NOT NULL DEFAULT 'local',
    name TEXT NOT NULL,
    services TEXT NOT NULL DEFAULT '[]',
    decky_config TEXT,
    decky_ip TEXT,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'failed',
        'torn_down', 'degraded', 'tearing_down', 'teardown_failed')),
    last_error TEXT,
    compose_hash TEXT,
    last_seen TIMESTAMP,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (host_uuid, name)
);
CREATE INDEX ix_fleet_deckies_state ON fleet_deckies (state);

-- Planner activity (realism.md 1.1). No foreign keys on the decky columns: they hold the
-- opaque ids of the running-decky union view and must outlive retired deckies.
CREATE TABLE orchestrator_events (
    uuid VARCHAR(36) NOT NULL PRIMARY KEY,
    ts TIMESTAMP NOT NULL,
    kind VARCHAR(16) NOT NULL CHECK (length(kind) <= 16),
    protocol VARCHAR(16) NOT NULL CHECK (length(protocol) <= 16),
    action VARCHAR(64) NOT NULL CHECK (length(action) <= 64),
    src_decky_uuid VARCHAR(255) CHECK (length(src_decky_uuid) <= 255),
    dst_decky_uuid VARCHAR(255) NOT NULL CHECK (length(dst_decky_uuid) <= 255),
    success BOOLEAN NOT NULL DEFAULT 0,
    payload TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX ix_orchestrator_events_ts ON orchestrator_events (ts);
CREATE INDEX ix_orchestrator_events_kind ON orchestrator_events (kind);
CREATE INDEX ix_orchestrator_events_protocol ON orchestrator_events (protocol);
CREATE INDEX ix_orchestrator_events_src ON orchestrator_events (src_decky_uuid);
CREATE INDEX ix_orchestrator_events_dst ON orchestrator_events (dst_decky_uuid);
CREATE INDEX ix_orchestrator_events_success ON orchestrator_events (success);
CREATE INDEX ix_orchestrator_events_dst_ts ON orchestrator_events (dst_decky_uuid, ts);

-- Per-(decky, path) memory of planted files (realism.md 1.3). path is capped at 512 so the
-- unique key fits MySQL's 3072-byte utf8mb4 limit; the cap is kept on every backend.
CREATE TABLE synthetic_files (
    uuid VARCHAR(36) NOT NULL PRIMARY KEY,
    decky_uuid VARCHAR(64) NOT NULL CHECK (length(decky_uuid) <= 64),
    path VARCHAR(512) NOT NULL CHECK (length(path) <= 512),
    persona VARCHAR(128) NOT NULL CHECK (length(persona) <= 128),
    content_class VARCHAR(32) NOT NULL CHECK (length(content_class) <= 32),
    created_at TIMESTAMP NOT NULL,
    last_modified TIMESTAMP NOT NULL,
    edit_count INTEGER NOT NULL DEFAULT 0,
    content_hash VARCHAR(64) NOT NULL,
    last_body TEXT NOT NULL DEFAULT '',
    truncated BOOLEAN NOT NULL DEFAULT 0,
    CONSTRAINT uq_synthetic_files_decky_path UNIQUE (decky_uuid, path)
);
CREATE INDEX ix_synthetic_files_decky_uuid ON synthetic_files (decky_uuid);
CREATE INDEX ix_synthetic_files_content_class ON synthetic_files (content_class);
CREATE INDEX ix_synthetic_files_created_at ON synthetic_files (created_at);
CREATE INDEX ix_synthetic_files_decky_last_modified ON synthetic_files (decky_uuid, last_modified);

-- Operator knobs (realism.md 1.4): `weights`, `llm`.
CREATE TABLE realism_config (
    uuid VARCHAR(36) NOT NULL PRIMARY KEY,
    "key" VARCHAR(64) NOT NULL CHECK (length("key") <= 64),
    value TEXT NOT NULL DEFAULT '{}',
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX ix_realism_config_key ON realism_config ("key");
