-- Intake (spec intake-and-intel §5.1–§5.5) plus the quarantine of unparsable lines.

CREATE TABLE logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp TIMESTAMP NOT NULL,
    decky TEXT NOT NULL,
    service TEXT NOT NULL,
    event_type TEXT NOT NULL,
    attacker_ip TEXT NOT NULL,
    raw_line TEXT NOT NULL,
    fields TEXT NOT NULL DEFAULT '{}',
    msg TEXT,
    trace_id TEXT,
    span_id TEXT,
    source_worker TEXT,
    line_hash TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_logs_line_hash ON logs (line_hash);
CREATE INDEX ix_logs_timestamp ON logs (timestamp);
CREATE INDEX ix_logs_decky ON logs (decky);
CREATE INDEX ix_logs_service ON logs (service);
CREATE INDEX ix_logs_event_type ON logs (event_type);
CREATE INDEX ix_logs_attacker_ip ON logs (attacker_ip);

CREATE TABLE bounty (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp TIMESTAMP NOT NULL,
    decky TEXT NOT NULL,
    service TEXT NOT NULL,
    attacker_ip TEXT NOT NULL,
    bounty_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    payload_hash TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_bounty_dedup ON bounty (bounty_type, attacker_ip, payload_hash);
CREATE INDEX ix_bounty_timestamp ON bounty (timestamp);
CREATE INDEX ix_bounty_decky ON bounty (decky);
CREATE INDEX ix_bounty_service ON bounty (service);
CREATE INDEX ix_bounty_attacker_ip ON bounty (attacker_ip);

CREATE TABLE attackers (
    uuid TEXT NOT NULL PRIMARY KEY,
    ip TEXT NOT NULL,
    identity_id TEXT,
    first_seen TIMESTAMP NOT NULL,
    last_seen TIMESTAMP NOT NULL,
    event_count BIGINT NOT NULL DEFAULT 0,
    service_count BIGINT NOT NULL DEFAULT 0,
    decky_count BIGINT NOT NULL DEFAULT 0,
    services TEXT NOT NULL DEFAULT '[]',
    deckies TEXT NOT NULL DEFAULT '[]',
    all_deckies TEXT NOT NULL DEFAULT '[]',
    traversal_path TEXT,
    is_traversal BOOLEAN NOT NULL DEFAULT 0,
    bounty_count BIGINT NOT NULL DEFAULT 0,
    credential_count BIGINT NOT NULL DEFAULT 0,
    fingerprints TEXT NOT NULL DEFAULT '[]',
    commands TEXT NOT NULL DEFAULT '[]',
    country_code TEXT,
    country_source TEXT,
    asn BIGINT,
    as_name TEXT,
    bgp_prefix TEXT,
    asn_source TEXT,
    rpki_status TEXT,
    rpki_source TEXT,
    ptr_record TEXT,
    rotation_count BIGINT NOT NULL DEFAULT 0,
    last_rotation_at TIMESTAMP,
    ipv6_leak_count BIGINT NOT NULL DEFAULT 0,
    last_ipv6_leak_at TIMESTAMP,
    last_ipv6_link_local TEXT,
    last_ipv6_iid_kind TEXT,
    last_ipv6_mac_oui TEXT,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX uq_attackers_ip ON attackers (ip);
CREATE INDEX ix_attackers_identity_id ON attackers (identity_id);
CREATE INDEX ix_attackers_first_seen ON attackers (first_seen);
CREATE INDEX ix_attackers_last_seen ON attackers (last_seen);
CREATE INDEX ix_attackers_event_count ON attackers (event_count);
CREATE INDEX ix_attackers_country_code ON attackers (country_code);
CREATE INDEX ix_attackers_asn ON attackers (asn);
CREATE INDEX ix_attackers_bgp_prefix ON attackers (bgp_prefix);
CREATE INDEX ix_attackers_last_rotation_at ON attackers (last_rotation_at);
CREATE INDEX ix_attackers_last_ipv6_leak_at ON attackers (last_ipv6_leak_at);
CREATE INDEX ix_attackers_updated_at ON attackers (updated_at);

CREATE TABLE credentials (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    attacker_ip TEXT NOT NULL,
    attacker_uuid TEXT REFERENCES attackers (uuid) ON DELETE SET NULL,
    decky_name TEXT NOT NULL,
    service TEXT NOT NULL,
    principal TEXT,
    principal_key TEXT NOT NULL DEFAULT '',
    secret_kind TEXT NOT NULL DEFAULT 'plaintext',
    secret_sha256 TEXT NOT NULL,
    secret_b64 TEXT,
    secret_printable TEXT,
    outcome TEXT,
    fields TEXT NOT NULL DEFAULT '{}',
    first_seen TIMESTAMP NOT NULL,
    last_seen TIMESTAMP NOT NULL,
    attempt_count BIGINT NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX uq_credentials_dedup ON credentials
    (attacker_ip, decky_name, service, secret_kind, secret_sha256, principal_key);
CREATE INDEX ix_credentials_attacker_uuid ON credentials (attacker_uuid);
CREATE INDEX ix_credentials_decky_name ON credentials (decky_name);
CREATE INDEX ix_credentials_service ON credentials (service);
CREATE INDEX ix_credentials_secret_kind ON credentials (secret_kind);
CREATE INDEX ix_credentials_first_seen ON credentials (first_seen);
CREATE INDEX ix_credentials_last_seen ON credentials (last_seen);
-- (attacker_ip), (secret_sha256), (principal) and bounty (bounty_type) are served by the
-- leading columns of the composite indexes; single-column copies would only slow inserts.
CREATE INDEX ix_credentials_sha_service ON credentials (secret_sha256, service);
CREATE INDEX ix_credentials_principal_service ON credentials (principal, service);

CREATE TABLE credential_reuse (
    id TEXT NOT NULL PRIMARY KEY,
    secret_sha256 TEXT NOT NULL,
    secret_kind TEXT NOT NULL,
    principal TEXT,
    principal_key TEXT NOT NULL DEFAULT '',
    attacker_uuids TEXT NOT NULL DEFAULT '[]',
    attacker_ips TEXT NOT NULL DEFAULT '[]',
    deckies TEXT NOT NULL DEFAULT '[]',
    services TEXT NOT NULL DEFAULT '[]',
    target_count BIGINT NOT NULL DEFAULT 0,
    attempt_count BIGINT NOT NULL DEFAULT 0,
    confidence DOUBLE NOT NULL DEFAULT 1.0,
    first_seen TIMESTAMP NOT NULL,
    last_seen TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX uq_credential_reuse_secret_principal ON credential_reuse
    (secret_sha256, secret_kind, principal_key);
CREATE INDEX ix_credential_reuse_secret_sha256 ON credential_reuse (secret_sha256);
CREATE INDEX ix_credential_reuse_secret_kind ON credential_reuse (secret_kind);
CREATE INDEX ix_credential_reuse_target_count ON credential_reuse (target_count);
CREATE INDEX ix_credential_reuse_first_seen ON credential_reuse (first_seen);
CREATE INDEX ix_credential_reuse_last_seen ON credential_reuse (last_seen);
CREATE INDEX ix_credential_reuse_updated_at ON credential_reuse (updated_at);

-- Lines that could not be parsed: kept with their reason so an operator can list them.
CREATE TABLE ingest_quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TIMESTAMP NOT NULL,
    source TEXT NOT NULL,
    reason_code TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw_line TEXT NOT NULL,
    line_hash TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_ingest_quarantine_line_hash ON ingest_quarantine (line_hash);
CREATE INDEX ix_ingest_quarantine_received_at ON ingest_quarantine (received_at);
