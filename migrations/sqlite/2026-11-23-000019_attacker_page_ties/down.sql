DROP INDEX ix_attackers_active_page;
DROP INDEX ix_attackers_traversal_page;
CREATE INDEX ix_attackers_active_page ON attackers (event_count DESC, last_seen DESC, ip, services);
CREATE INDEX ix_attackers_traversal_page ON attackers (is_traversal DESC, last_seen DESC, ip, services);
DROP INDEX ix_attacker_identities_active_page;
DROP INDEX ix_campaigns_active_page;
CREATE INDEX ix_attacker_identities_active_page
    ON attacker_identities (updated_at DESC, uuid) WHERE merged_into_uuid IS NULL;
CREATE INDEX ix_campaigns_active_page
    ON campaigns (updated_at DESC, uuid) WHERE merged_into_uuid IS NULL;
