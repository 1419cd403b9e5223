-- SQLite rebuilt its linking-key tables without a rowid in this migration; PostgreSQL has no
-- rowid, its tables stay. Both drop the keystroke SimHash index: no query filters or orders by
-- it, and it cost every identity insert.
DROP INDEX ix_attacker_identities_kd_digraph_simhash;
