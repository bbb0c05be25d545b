-- Users of the console and the API. Passwords are argon2id PHC strings.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin', 'integration')),
    password_hash TEXT NOT NULL,
    disabled      BIGINT NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at_ms BIGINT NOT NULL
);

-- A login. Access JWTs carry the session id; logout or disabling the user
-- revokes it. Refresh tokens are stored hashed and rotate on every use.
CREATE TABLE sessions (
    id                 TEXT PRIMARY KEY,
    user_id            BIGINT NOT NULL REFERENCES users(id),
    refresh_hash       TEXT NOT NULL UNIQUE,
    created_at_ms      BIGINT NOT NULL,
    refresh_expires_ms BIGINT NOT NULL,
    revoked_at_ms      BIGINT
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE agents (
    user_id           BIGINT PRIMARY KEY REFERENCES users(id),
    capacity_inbound  BIGINT NOT NULL CHECK (capacity_inbound >= 0),
    capacity_outbound BIGINT NOT NULL CHECK (capacity_outbound >= 0),
    state             TEXT NOT NULL DEFAULT 'offline',
    state_reason      TEXT,
    state_since_ms    BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE agent_skills (
    user_id BIGINT NOT NULL REFERENCES agents(user_id),
    skill   TEXT NOT NULL,
    level   BIGINT NOT NULL CHECK (level BETWEEN 1 AND 10),
    PRIMARY KEY (user_id, skill)
);

CREATE TABLE agent_teams (
    user_id BIGINT NOT NULL REFERENCES agents(user_id),
    team    TEXT NOT NULL,
    PRIMARY KEY (user_id, team)
);

-- Every agent state change, for boards and reports.
CREATE TABLE agent_state_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id  BIGINT NOT NULL REFERENCES agents(user_id),
    state    TEXT NOT NULL,
    reason   TEXT,
    at_ms    BIGINT NOT NULL
);

CREATE TABLE queues (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    name                  TEXT NOT NULL UNIQUE,
    service_level_seconds BIGINT NOT NULL,
    offer_timeout_seconds BIGINT NOT NULL
);

CREATE TABLE queue_skills (
    queue_id  BIGINT NOT NULL REFERENCES queues(id),
    skill     TEXT NOT NULL,
    min_level BIGINT NOT NULL CHECK (min_level BETWEEN 1 AND 10),
    PRIMARY KEY (queue_id, skill)
);

CREATE TABLE categories (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL UNIQUE,
    queue_id      BIGINT NOT NULL REFERENCES queues(id),
    base_priority BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE customers (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    external_id   TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    email         TEXT,
    phone         TEXT,
    tier          TEXT NOT NULL,
    value_minor   BIGINT NOT NULL DEFAULT 0,
    timezone      TEXT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE purchases (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id     BIGINT NOT NULL REFERENCES customers(id),
    external_id     TEXT NOT NULL UNIQUE,
    product         TEXT NOT NULL,
    amount_minor    BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    purchased_at_ms BIGINT NOT NULL
);
CREATE INDEX purchases_customer ON purchases(customer_id);

CREATE TABLE tickets (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    kind              TEXT NOT NULL CHECK (kind IN ('inbound', 'outbound')),
    status            TEXT NOT NULL CHECK (status IN ('queued', 'offered', 'assigned', 'resolved', 'cancelled')),
    customer_id       BIGINT NOT NULL REFERENCES customers(id),
    category_id       BIGINT NOT NULL REFERENCES categories(id),
    queue_id          BIGINT NOT NULL REFERENCES queues(id),
    channel           TEXT NOT NULL,
    description       TEXT NOT NULL,
    rank_ms           BIGINT NOT NULL,
    assigned_agent_id BIGINT REFERENCES users(id),
    created_at_ms     BIGINT NOT NULL,
    updated_at_ms     BIGINT NOT NULL,
    resolved_at_ms    BIGINT,
    outcome_code      TEXT,
    outcome_resolved  BIGINT,
    outcome_note      TEXT
);
CREATE INDEX tickets_live ON tickets(queue_id, status) WHERE status IN ('queued', 'offered', 'assigned');
CREATE INDEX tickets_customer ON tickets(customer_id, created_at_ms);
CREATE INDEX tickets_agent ON tickets(assigned_agent_id) WHERE status = 'assigned';

-- Who holds a ticket. The partial unique index is the last line of defence:
-- even a bug in the live routing layer cannot assign a ticket twice.
CREATE TABLE assignments (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id     BIGINT NOT NULL REFERENCES tickets(id),
    agent_id      BIGINT NOT NULL REFERENCES users(id),
    offer_version BIGINT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    ended_at_ms   BIGINT
);
CREATE UNIQUE INDEX assignments_live ON assignments(ticket_id) WHERE ended_at_ms IS NULL;

-- A ticket's history: who did what, when.
CREATE TABLE ticket_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id     BIGINT NOT NULL REFERENCES tickets(id),
    at_ms         BIGINT NOT NULL,
    actor_user_id BIGINT REFERENCES users(id),
    kind          TEXT NOT NULL,
    data          TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX ticket_events_ticket ON ticket_events(ticket_id, id);

-- Intake retries: the first response for a key is returned again.
CREATE TABLE idempotency_keys (
    scope         TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    resource_id   BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);

-- The key that signs access tokens when none is configured, shared by every
-- node that uses this database. Configured key files take precedence.
CREATE TABLE signing_keys (
    id            TEXT PRIMARY KEY,
    private_pem   TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
