-- SQLite's attackers page indexes gained the filter columns in this migration (it checks a
-- filter on the index entry before reading the row). PostgreSQL checks such a filter on the
-- heap row in an index scan, so the wider entries would only cost it: nothing changes here.
SELECT 1;
