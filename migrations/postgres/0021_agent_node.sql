-- The node that holds an agent's newest console connection (issue 9:
-- several nodes). A node that stops without a word (killed, out of memory,
-- its machine gone) cannot mark its agents absent; the node running the
-- periodic work finds agents connected to a node that no longer says it is
-- alive and marks them absent for it, so that their tickets go back to
-- their queues after the reconnect grace as for any dropped console.
-- Empty for connections recorded before this column.
ALTER TABLE agents ADD COLUMN connected_node TEXT;
