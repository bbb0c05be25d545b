-- Every console connection of an agent, on any node, takes the next number
-- (issue 9: several nodes). A node that sees the agent's last socket there
-- close marks them absent only if no connection was opened since, here or
-- on another node: an agent whose console reconnected to another node
-- before this one noticed the drop stays connected and keeps their tickets.
ALTER TABLE agents ADD COLUMN connection_seq BIGINT NOT NULL DEFAULT 0;
