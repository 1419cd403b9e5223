DROP TABLE ingest_quarantine;
DROP TABLE credential_reuse;
DROP TABLE credentials;
DROP TABLE attackers;
DROP TABLE bounty;
DROP TABLE logs;
