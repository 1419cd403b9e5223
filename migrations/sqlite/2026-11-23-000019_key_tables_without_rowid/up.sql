-- The linking-key tables are pairs keyed by both columns: as rowid tables every key a tick
-- writes went into three B-trees (the rows, the primary key's index, the owner index). Without
-- a rowid the primary key is the table, so a key costs two. A clustering tick replaces the keys
-- of every observation and identity it processed (~250 000 rows on the first tick at 100 000
-- observations).
CREATE TABLE observation_cluster_keys_new (
    cluster_key TEXT NOT NULL,
    observation_uuid TEXT NOT NULL,
    PRIMARY KEY (cluster_key, observation_uuid)
) WITHOUT ROWID;
INSERT INTO observation_cluster_keys_new (cluster_key, observation_uuid)
    SELECT cluster_key, observation_uuid FROM observation_cluster_keys;
DROP TABLE observation_cluster_keys;
ALTER TABLE observation_cluster_keys_new RENAME TO observation_cluster_keys;
CREATE INDEX ix_observation_cluster_keys_observation
    ON observation_cluster_keys (observation_uuid);

CREATE TABLE identity_cluster_keys_new (
    cluster_key TEXT NOT NULL,
    identity_uuid TEXT NOT NULL,
    PRIMARY KEY (cluster_key, identity_uuid)
) WITHOUT ROWID;
INSERT INTO identity_cluster_keys_new (cluster_key, identity_uuid)
    SELECT cluster_key, identity_uuid FROM identity_cluster_keys;
DROP TABLE identity_cluster_keys;
ALTER TABLE identity_cluster_keys_new RENAME TO identity_cluster_keys;
CREATE INDEX ix_identity_cluster_keys_identity ON identity_cluster_keys (identity_uuid);

-- No query filters or orders by the keystroke SimHash (the campaign tick finds keystroke
-- candidates through identity_cluster_keys); the index only cost every identity insert.
DROP INDEX ix_attacker_identities_kd_digraph_simhash;
