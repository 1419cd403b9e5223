-- Incremental clustering ticks (issue #19 item 3): a tick reads only what changed since the
-- last one.
--
-- `attackers.clustered_at` is the `updated_at` the identity clusterer last processed; a row is
-- dirty while the two differ (intake bumps `updated_at` on every write). The partial index
-- holds only the dirty rows, so an idle tick's probe touches an empty index.
ALTER TABLE attackers ADD COLUMN clustered_at TIMESTAMP;
CREATE INDEX ix_attackers_unclustered ON attackers (uuid)
    WHERE clustered_at IS NULL OR clustered_at <> updated_at;

-- The same marker on identities, one per layer: `clustered_at` for the identity layer
-- (merge pointers changed outside a tick), `campaign_clustered_at` for the campaign layer
-- (new identities, merges, roll-ups, counts).
ALTER TABLE attacker_identities ADD COLUMN clustered_at TIMESTAMP;
ALTER TABLE attacker_identities ADD COLUMN campaign_clustered_at TIMESTAMP;
CREATE INDEX ix_identities_unclustered ON attacker_identities (uuid)
    WHERE clustered_at IS NULL OR clustered_at <> updated_at;
CREATE INDEX ix_identities_campaign_unclustered ON attacker_identities (uuid)
    WHERE campaign_clustered_at IS NULL OR campaign_clustered_at <> updated_at;

-- The linking keys of every processed observation (JA3, HASSH, payload hash, C2 endpoint,
-- prefixed by kind): the neighbours of a changed observation are found here instead of by
-- re-reading every observation.
CREATE TABLE observation_cluster_keys (
    cluster_key TEXT NOT NULL,
    observation_uuid TEXT NOT NULL,
    PRIMARY KEY (cluster_key, observation_uuid)
);
CREATE INDEX ix_observation_cluster_keys_observation
    ON observation_cluster_keys (observation_uuid);

-- The campaign candidates of every processed active identity (payload/C2 token, keystroke
-- band), likewise.
CREATE TABLE identity_cluster_keys (
    cluster_key TEXT NOT NULL,
    identity_uuid TEXT NOT NULL,
    PRIMARY KEY (cluster_key, identity_uuid)
);
CREATE INDEX ix_identity_cluster_keys_identity ON identity_cluster_keys (identity_uuid);

-- Handoff candidates: tags on one decky inside a time window.
CREATE INDEX ttp_tags_decky_time ON ttp_tags (decky_id, observed_at);
