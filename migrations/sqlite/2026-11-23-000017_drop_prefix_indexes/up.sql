-- Two single-column indexes that are the leading column of a list-page index (000016): every
-- lookup they served is served by the wider index, and every write of the column paid for both
-- (the clustering ticks write `attackers.identity_id` of every new observation and
-- `attacker_identities.campaign_id` of every new identity).
DROP INDEX ix_attackers_identity_id;
DROP INDEX ix_attacker_identities_campaign_id;
