-- ATT&CK tags of attacker activity (issue #19 item 4): one row per (ingested log line, rule).
-- `observed_at` is the tagged event's time (the campaign projection's phase-map time);
-- `created_at` when the tagger wrote the row. `log_id` + `rule_id` is unique, so a replayed
-- batch never doubles a tag.
CREATE TABLE ttp_tags (
    uuid TEXT PRIMARY KEY NOT NULL,
    attacker_uuid TEXT NOT NULL,
    decky_id TEXT NOT NULL,
    service TEXT NOT NULL,
    tactic_id TEXT NOT NULL,
    technique_id TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    log_id BIGINT NOT NULL,
    evidence TEXT NOT NULL,
    observed_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX ttp_tags_log_rule ON ttp_tags (log_id, rule_id);
CREATE INDEX ttp_tags_attacker ON ttp_tags (attacker_uuid, observed_at);
