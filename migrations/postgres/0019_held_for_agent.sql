-- Reopens held for one agent, found by the agent (issue 9). A resolve asks
-- whether its agent has one waiting; with only `tickets_held` (by expiry)
-- and `tickets_live` (by queue) to choose from, a plan made without
-- statistics (PostgreSQL with autovacuum off, or before its first ANALYZE)
-- read every queued ticket's entry, and with a line waiting every resolve
-- slowed as the line grew. Only held tickets are in the index: it stays
-- tiny and costs the other writes nothing.
CREATE INDEX tickets_held_for ON tickets(held_for_agent_id, held_until_ms)
    WHERE held_for_agent_id IS NOT NULL;
