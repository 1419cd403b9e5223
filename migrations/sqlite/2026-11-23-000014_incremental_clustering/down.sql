DROP INDEX ttp_tags_decky_time;
DROP TABLE identity_cluster_keys;
DROP TABLE observation_cluster_keys;
DROP INDEX ix_identities_campaign_unclustered;
DROP INDEX ix_identities_unclustered;
ALTER TABLE attacker_identities DROP COLUMN campaign_clustered_at;
ALTER TABLE attacker_identities DROP COLUMN clustered_at;
DROP INDEX ix_attackers_unclustered;
ALTER TABLE attackers DROP COLUMN clustered_at;
