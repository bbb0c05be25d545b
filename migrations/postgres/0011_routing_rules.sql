-- A queue's routing rules (strategy, priority, wrap-up, overflow, limits) as
-- a JSON document validated by the server.
ALTER TABLE queues ADD COLUMN routing TEXT NOT NULL DEFAULT '{}';
-- Offers an agent let expire in a row (reset by an answer).
ALTER TABLE agents ADD COLUMN missed_in_row BIGINT NOT NULL DEFAULT 0;
-- When the agent's last console went away (cleared when one comes back).
ALTER TABLE agents ADD COLUMN disconnected_at_ms BIGINT;
-- The end of the agent's wrap-up pause.
ALTER TABLE agents ADD COLUMN wrap_up_until_ms BIGINT;
