-- Boards count today's answered tickets per queue.
CREATE INDEX assignments_started ON assignments(started_at_ms);
