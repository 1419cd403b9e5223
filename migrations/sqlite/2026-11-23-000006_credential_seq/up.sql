-- Write sequence of a credentials row: assigned (max + 1, under the intake writers' lock)
-- whenever a batch inserts or upserts the row or the profiler back-fills its attacker uuid,
-- so the credential-reuse pass re-correlates only the groups touched since its last pass.
-- Rows already stored start at 1, above the pass cursor's initial 0.
ALTER TABLE credentials ADD COLUMN touched_seq BIGINT NOT NULL DEFAULT 1;
CREATE INDEX ix_credentials_touched_seq ON credentials (touched_seq);
