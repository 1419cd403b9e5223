CREATE INDEX ix_attacker_identities_kd_digraph_simhash ON attacker_identities (kd_digraph_simhash);

CREATE TABLE observation_cluster_keys_old (
    cluster_key TEXT NOT NULL,
    observation_uuid TEXT NOT NULL,
    PRIMARY KEY (cluster_key, observation_uuid)
);
INSERT INTO observation_cluster_keys_old (cluster_key, observation_uuid)
    SELECT cluster_key, observation_uuid FROM observation_cluster_keys;
DROP TABLE observation_cluster_keys;
ALTER TABLE observation_cluster_keys_old RENAME TO observation_cluster_keys;
CREATE INDEX ix_observation_cluster_keys_observation
    ON observation_cluster_keys (observation_uuid);

CREATE TABLE identity_cluster_keys_old (
    cluster_key TEXT NOT NULL,
    identity_uuid TEXT NOT NULL,
    PRIMARY KEY (cluster_key, identity_uuid)
);
INSERT INTO identity_cluster_keys_old (cluster_key, identity_uuid)
    SELECT cluster_key, identity_uuid FROM identity_cluster_keys;
DROP TABLE identity_cluster_keys;
ALTER TABLE identity_cluster_keys_old RENAME TO identity_cluster_keys;
CREATE INDEX ix_identity_cluster_keys_identity ON identity_cluster_keys (identity_uuid);
