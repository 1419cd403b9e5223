ALTER TABLE campaign_evidence DROP COLUMN handoff_deckies;
ALTER TABLE campaign_evidence DROP COLUMN handoff_corroboration;
