CREATE INDEX ix_attackers_identity_id ON attackers (identity_id);
CREATE INDEX ix_attacker_identities_campaign_id ON attacker_identities (campaign_id);
