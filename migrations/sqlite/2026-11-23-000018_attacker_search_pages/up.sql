-- The attackers list pages (issue #18) carry the two filter columns, `ip` (search) and
-- `services` (service), after their sort keys. SQLite checks a filter on the index entry and
-- reads the table row only for entries that pass, so a search matching few or no attackers no
-- longer reads every row of the table in page order: on 100 000 attackers (336 MB of rows), a
-- search matching none took 0.42 s, now 0.02 s.
DROP INDEX ix_attackers_recent_page;
DROP INDEX ix_attackers_active_page;
DROP INDEX ix_attackers_traversal_page;
CREATE INDEX ix_attackers_recent_page ON attackers (last_seen DESC, uuid, ip, services);
CREATE INDEX ix_attackers_active_page ON attackers (event_count DESC, last_seen DESC, ip, services);
CREATE INDEX ix_attackers_traversal_page ON attackers (is_traversal DESC, last_seen DESC, ip, services);
