-- The newest-connection number of 0020 has been neither written nor read
-- since 0021 (`agent_sockets`: a row per agent and node serving one of
-- their consoles) replaced it.
ALTER TABLE agents DROP COLUMN connection_seq;
