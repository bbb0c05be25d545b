-- Boards show each queue's answers today and how many of them came within
-- the service level. Counting them from `assignments` on every board tick
-- grew with the day; the accept that writes an assignment now also counts
-- it here, in the same statement. Rows are split by a shard (the agent id
-- modulo 16) so that concurrent accepts in one queue rarely wait on one row.
CREATE TABLE queue_answers (
    queue_id     BIGINT NOT NULL REFERENCES queues(id),
    day          BIGINT NOT NULL, -- Unix day (UTC) of the answer
    shard        BIGINT NOT NULL,
    answered     BIGINT NOT NULL,
    within_level BIGINT NOT NULL,
    PRIMARY KEY (queue_id, day, shard)
);

INSERT INTO queue_answers (queue_id, day, shard, answered, within_level)
SELECT t.queue_id, a.started_at_ms / 86400000, a.agent_id % 16, COUNT(*),
       COUNT(CASE WHEN a.started_at_ms - t.created_at_ms <= q.service_level_seconds * 1000 THEN 1 END)
FROM assignments a
JOIN tickets t ON t.id = a.ticket_id
JOIN queues q ON q.id = t.queue_id
WHERE a.started_at_ms >= 0
GROUP BY t.queue_id, a.started_at_ms / 86400000, a.agent_id % 16;
