-- The received bytes of a line whose text columns cannot hold it exactly (invalid UTF-8, or a
-- NUL, which PostgreSQL text rejects): the text keeps U+FFFD in their place, this column keeps
-- the bytes; NULL for every line that is UTF-8 without NUL. The dedup key (line_hash) is
-- computed over these bytes, so lines differing only in invalid bytes stay distinct.
ALTER TABLE logs ADD COLUMN raw_bytes BYTEA;
ALTER TABLE ingest_quarantine ADD COLUMN raw_bytes BYTEA;
