-- Indexes that serve the dashboard's list pages in their exact order (issue #18), so a page is
-- read straight off an index instead of sorting the whole table per request:
-- identities and campaigns: active rows (not merged out), newest `updated_at` first, uuid ties.
CREATE INDEX ix_attacker_identities_active_page
    ON attacker_identities (updated_at DESC, uuid) WHERE merged_into_uuid IS NULL;
CREATE INDEX ix_campaigns_active_page
    ON campaigns (updated_at DESC, uuid) WHERE merged_into_uuid IS NULL;
-- a campaign's identities, newest `updated_at` first
CREATE INDEX ix_attacker_identities_campaign_page
    ON attacker_identities (campaign_id, updated_at DESC, uuid);
-- attackers by `sort_by`: recent, active, traversals; an identity's observations
CREATE INDEX ix_attackers_recent_page ON attackers (last_seen DESC, uuid);
CREATE INDEX ix_attackers_active_page ON attackers (event_count DESC, last_seen DESC);
CREATE INDEX ix_attackers_traversal_page ON attackers (is_traversal DESC, last_seen DESC);
CREATE INDEX ix_attackers_identity_page ON attackers (identity_id, last_seen DESC, uuid);
-- credentials newest first; reuse findings by target count
CREATE INDEX ix_credentials_page ON credentials (last_seen DESC, id DESC);
CREATE INDEX ix_credential_reuse_page
    ON credential_reuse (target_count DESC, last_seen DESC, id);
-- the secret shown for a reuse finding: the first credential row of (sha, kind, principal)
CREATE INDEX ix_credentials_secret_first
    ON credentials (secret_sha256, secret_kind, principal_key, id);
-- The merge-pointer indexes only ever answer `merged_into_uuid = X` (who was merged into X);
-- as full indexes they made the planner answer `IS NULL` (the list filter) through them and
-- sort the whole table. Partial, they no longer can, and they shrink to the merged rows.
DROP INDEX ix_attacker_identities_merged_into_uuid;
CREATE INDEX ix_attacker_identities_merged_into_uuid
    ON attacker_identities (merged_into_uuid) WHERE merged_into_uuid IS NOT NULL;
DROP INDEX ix_campaigns_merged_into_uuid;
CREATE INDEX ix_campaigns_merged_into_uuid
    ON campaigns (merged_into_uuid) WHERE merged_into_uuid IS NOT NULL;
