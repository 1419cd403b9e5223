-- Clustering (spec clustering.md §2): identities, campaigns, and the evidence behind them.

-- Fallback so this migration also applies where the intake migration
-- (2026-11-23-000002_intake, which owns `attackers`, intake spec §5.5) is absent; a no-op
-- once that table exists. Only the columns the clusterer reads are declared here.
CREATE TABLE IF NOT EXISTS attackers (
    uuid TEXT NOT NULL PRIMARY KEY,
    ip TEXT NOT NULL,
    identity_id TEXT,
    first_seen TIMESTAMP NOT NULL,
    last_seen TIMESTAMP NOT NULL,
    event_count BIGINT NOT NULL DEFAULT 0,
    fingerprints TEXT NOT NULL DEFAULT '[]',
    asn BIGINT,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_attackers_identity_id ON attackers (identity_id);
CREATE INDEX IF NOT EXISTS ix_attackers_first_seen ON attackers (first_seen);

-- Identity-layer inputs that §5.5 does not define (clustering spec §3.1: payload hashes and C2
-- endpoints mined from the logs; JSON lists of strings, NULL until something feeds them).
ALTER TABLE attackers ADD COLUMN payload_hashes TEXT;
ALTER TABLE attackers ADD COLUMN c2_endpoints TEXT;

CREATE TABLE campaigns (
    uuid TEXT NOT NULL PRIMARY KEY,
    schema_version BIGINT NOT NULL DEFAULT 1,
    first_seen_at TIMESTAMP,
    last_seen_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    confidence REAL,
    identity_count BIGINT NOT NULL DEFAULT 0,
    ja3_hashes TEXT,
    hassh_hashes TEXT,
    tls_cert_sha256 TEXT,
    payload_simhashes TEXT,
    c2_endpoints TEXT,
    merged_into_uuid TEXT REFERENCES campaigns (uuid),
    notes TEXT
);
CREATE INDEX ix_campaigns_merged_into_uuid ON campaigns (merged_into_uuid);
CREATE INDEX ix_campaigns_updated_at ON campaigns (updated_at);
CREATE INDEX ix_campaigns_created_at ON campaigns (created_at);

CREATE TABLE attacker_identities (
    uuid TEXT NOT NULL PRIMARY KEY,
    schema_version BIGINT NOT NULL DEFAULT 1,
    campaign_id TEXT REFERENCES campaigns (uuid),
    first_seen_at TIMESTAMP,
    last_seen_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    confidence REAL,
    observation_count BIGINT NOT NULL DEFAULT 0,
    ja3_hashes TEXT,
    hassh_hashes TEXT,
    ja4h_hashes TEXT,
    ja4_quic_hashes TEXT,
    http_versions_seen TEXT,
    tls_cert_sha256 TEXT,
    ipv6_link_local_iids TEXT,
    payload_simhashes TEXT,
    c2_endpoints TEXT,
    kd_digraph_simhash BLOB,
    merged_into_uuid TEXT REFERENCES attacker_identities (uuid),
    notes TEXT
);
CREATE INDEX ix_attacker_identities_campaign_id ON attacker_identities (campaign_id);
CREATE INDEX ix_attacker_identities_kd_digraph_simhash ON attacker_identities (kd_digraph_simhash);
CREATE INDEX ix_attacker_identities_merged_into_uuid ON attacker_identities (merged_into_uuid);
CREATE INDEX ix_attacker_identities_updated_at ON attacker_identities (updated_at);
CREATE INDEX ix_attacker_identities_created_at ON attacker_identities (created_at);

-- Explainability: the spanning edges that joined an identity's observations.
CREATE TABLE identity_evidence (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    identity_uuid TEXT NOT NULL REFERENCES attacker_identities (uuid) ON DELETE CASCADE,
    observation_a TEXT NOT NULL,
    observation_b TEXT NOT NULL,
    signal TEXT NOT NULL,
    value TEXT NOT NULL,
    weight REAL NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX ix_identity_evidence_identity_uuid ON identity_evidence (identity_uuid);

-- Explainability: the spanning edges that joined a campaign's identities, with every term.
CREATE TABLE campaign_evidence (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_uuid TEXT NOT NULL REFERENCES campaigns (uuid) ON DELETE CASCADE,
    identity_a TEXT NOT NULL,
    identity_b TEXT NOT NULL,
    weight REAL NOT NULL,
    handoff REAL NOT NULL,
    shared_infra REAL NOT NULL,
    overlap REAL NOT NULL,
    cohort REAL NOT NULL,
    keystroke REAL NOT NULL,
    handoff_decky TEXT,
    shared_tokens TEXT NOT NULL DEFAULT '[]',
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX ix_campaign_evidence_campaign_uuid ON campaign_evidence (campaign_uuid);
