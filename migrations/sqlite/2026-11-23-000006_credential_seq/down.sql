DROP INDEX ix_credentials_touched_seq;
ALTER TABLE credentials DROP COLUMN touched_seq;
