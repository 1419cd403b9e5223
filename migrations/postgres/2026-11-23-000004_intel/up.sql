-- Threat-intel enrichment per attacker (intake-and-intel spec §5.6). One row per attacker,
-- keyed on attacker_uuid; attacker_ip is a denormalised copy refreshed on every upsert.
CREATE TABLE attacker_intel (
    uuid TEXT NOT NULL PRIMARY KEY,
    attacker_uuid TEXT NOT NULL,
    attacker_ip TEXT NOT NULL,
    schema_version INTEGER NOT NULL DEFAULT 1,
    greynoise_classification VARCHAR(32),
    greynoise_name VARCHAR(128),
    greynoise_tags TEXT NOT NULL DEFAULT '[]',
    greynoise_raw TEXT NOT NULL DEFAULT '{}',
    greynoise_queried_at TIMESTAMP,
    abuseipdb_score INTEGER,
    abuseipdb_categories TEXT NOT NULL DEFAULT '[]',
    abuseipdb_raw TEXT NOT NULL DEFAULT '{}',
    abuseipdb_queried_at TIMESTAMP,
    feodo_listed BOOLEAN,
    feodo_malware_family VARCHAR(64),
    feodo_raw TEXT NOT NULL DEFAULT '{}',
    feodo_queried_at TIMESTAMP,
    threatfox_listed BOOLEAN,
    threatfox_threat_types TEXT NOT NULL DEFAULT '[]',
    threatfox_ioc_types TEXT NOT NULL DEFAULT '[]',
    threatfox_malware_families TEXT NOT NULL DEFAULT '[]',
    threatfox_raw TEXT NOT NULL DEFAULT '{}',
    threatfox_queried_at TIMESTAMP,
    aggregate_verdict VARCHAR(32) CHECK (aggregate_verdict IN ('malicious', 'suspicious', 'benign', 'unknown')),
    cached_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX ix_attacker_intel_attacker_uuid ON attacker_intel (attacker_uuid);
CREATE INDEX ix_attacker_intel_attacker_ip ON attacker_intel (attacker_ip);
CREATE INDEX ix_attacker_intel_aggregate_verdict ON attacker_intel (aggregate_verdict);
CREATE INDEX ix_attacker_intel_cached_at ON attacker_intel (cached_at);
CREATE INDEX ix_attacker_intel_expires_at ON attacker_intel (expires_at);

-- FK to attackers (created by the intake migration 2026-11-23-000002). Added only when that
-- table exists, so this migration also applies to a tree that lacks the intake area (on a
-- complete tree it always exists by now: migrations run in version order).
DO $$
BEGIN
    IF to_regclass('attackers') IS NOT NULL THEN
        ALTER TABLE attacker_intel ADD CONSTRAINT fk_attacker_intel_attacker
            FOREIGN KEY (attacker_uuid) REFERENCES attackers (uuid) ON DELETE CASCADE;
    END IF;
END $$;
