ALTER TABLE ingest_quarantine DROP COLUMN raw_bytes;
ALTER TABLE logs DROP COLUMN raw_bytes;
