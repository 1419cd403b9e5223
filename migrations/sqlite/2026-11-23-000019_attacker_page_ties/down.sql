DROP INDEX ix_attackers_active_page;
DROP INDEX ix_attackers_traversal_page;
CREATE INDEX ix_attackers_active_page ON attackers (event_count DESC, last_seen DESC, ip, services);
CREATE INDEX ix_attackers_traversal_page ON attackers (is_traversal DESC, last_seen DESC, ip, services);
