-- The attackers pages by activity and by traversal end their order with `uuid`, as the page by
-- recency does: with ties on the sort keys (most attackers share an event count), a page at one
-- offset and the page at the next could each hold a row of the other's, and a row could be on
-- neither (seen on PostgreSQL). The page indexes carry `uuid` after the sort keys so that
-- the order is still read from them.
DROP INDEX ix_attackers_active_page;
DROP INDEX ix_attackers_traversal_page;
CREATE INDEX ix_attackers_active_page ON attackers (event_count DESC, last_seen DESC, uuid, ip, services);
CREATE INDEX ix_attackers_traversal_page ON attackers (is_traversal DESC, last_seen DESC, uuid, ip, services);
