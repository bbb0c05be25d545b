-- The nodes that hold a console connection of each agent (issue 9: several
-- nodes). A row per agent and node while at least one of the agent's
-- consoles is connected there. An agent is absent when their last row goes:
-- a console closed on one node while another of theirs is open on another
-- node (two tabs; a console that reconnected elsewhere first) keeps them
-- present. A node that stops without a word (killed, out of memory, its
-- machine gone) cannot delete its rows; the node running the periodic work
-- deletes the rows of a node that no longer says it is alive, and the agents
-- left without a row are absent from then, so that their tickets go back to
-- their queues after the reconnect grace as for any dropped console.
-- (`agents.connection_seq`, 0020, which only knew an agent's newest
-- connection, is no longer read.)
CREATE TABLE agent_sockets (
    agent_id BIGINT NOT NULL REFERENCES users(id),
    node TEXT NOT NULL,
    PRIMARY KEY (agent_id, node)
);
CREATE INDEX agent_sockets_node ON agent_sockets(node);
