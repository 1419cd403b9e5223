-- Canary tokens (canary.md §4): operator uploads deduped by content, planted tokens (never
-- deleted; the slug is unique), and the append-only trigger log. Same tables on both backends.
-- `http_base` / `dns_zone` keep the callback addressing used at plant time, so a preview
-- re-derives the planted bytes after a configuration change (§16.10).
CREATE TABLE canary_blobs (
    uuid VARCHAR(36) NOT NULL PRIMARY KEY,
    sha256 VARCHAR(64) NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    uploaded_by TEXT NOT NULL,
    uploaded_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX ix_canary_blobs_sha256 ON canary_blobs (sha256);
CREATE INDEX ix_canary_blobs_uploaded_by ON canary_blobs (uploaded_by);
CREATE INDEX ix_canary_blobs_uploaded_at ON canary_blobs (uploaded_at);

CREATE TABLE canary_tokens (
    uuid VARCHAR(36) NOT NULL PRIMARY KEY,
    kind VARCHAR(16) NOT NULL CHECK (kind IN ('http', 'dns', 'aws_passive')),
    decky_name TEXT NOT NULL,
    topology_id TEXT,
    blob_uuid VARCHAR(36) REFERENCES canary_blobs (uuid),
    instrumenter TEXT,
    generator TEXT,
    placement_path TEXT NOT NULL,
    callback_token VARCHAR(64) NOT NULL,
    secret_seed TEXT NOT NULL,
    placed_at TIMESTAMP NOT NULL,
    last_triggered_at TIMESTAMP,
    trigger_count BIGINT NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL,
    state VARCHAR(16) NOT NULL DEFAULT 'planted' CHECK (state IN ('planted', 'revoked', 'failed')),
    last_error TEXT,
    fingerprint_nonce VARCHAR(16),
    http_base TEXT NOT NULL DEFAULT '',
    dns_zone TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX ix_canary_tokens_callback_token ON canary_tokens (callback_token);
CREATE INDEX ix_canary_tokens_kind ON canary_tokens (kind);
CREATE INDEX ix_canary_tokens_decky ON canary_tokens (decky_name, state);
CREATE INDEX ix_canary_tokens_topology_id ON canary_tokens (topology_id);
CREATE INDEX ix_canary_tokens_blob_uuid ON canary_tokens (blob_uuid);
CREATE INDEX ix_canary_tokens_placed_at ON canary_tokens (placed_at);
CREATE INDEX ix_canary_tokens_last_triggered_at ON canary_tokens (last_triggered_at);
CREATE INDEX ix_canary_tokens_created_by ON canary_tokens (created_by);
CREATE INDEX ix_canary_tokens_state ON canary_tokens (state);

CREATE TABLE canary_triggers (
    uuid VARCHAR(36) NOT NULL PRIMARY KEY,
    token_uuid VARCHAR(36) NOT NULL REFERENCES canary_tokens (uuid),
    occurred_at TIMESTAMP NOT NULL,
    src_ip TEXT NOT NULL,
    user_agent TEXT,
    request_path TEXT,
    dns_qname TEXT,
    raw_headers TEXT NOT NULL DEFAULT '{}',
    attacker_id TEXT
);
CREATE INDEX ix_canary_triggers_token_ts ON canary_triggers (token_uuid, occurred_at);
CREATE INDEX ix_canary_triggers_src_ip ON canary_triggers (src_ip);
CREATE INDEX ix_canary_triggers_attacker_id ON canary_triggers (attacker_id);
