-- Why a phase handoff linked two identities (issue #19): what corroborated it
-- (shared_infra | keystroke | repeated_handoff; NULL = a lone handoff, or none) and every decky
-- on which the pair handed off (JSON list of strings).
ALTER TABLE campaign_evidence ADD COLUMN handoff_corroboration TEXT;
ALTER TABLE campaign_evidence ADD COLUMN handoff_deckies TEXT NOT NULL DEFAULT '[]';
