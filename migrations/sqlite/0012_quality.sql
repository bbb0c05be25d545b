-- Quality over speed (issue 7): what every quality figure is computed from.

-- The admin-edited list of resolution codes an outcome may carry.
CREATE TABLE resolution_codes (
    code          TEXT PRIMARY KEY,
    label         TEXT NOT NULL,
    active        BIGINT NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at_ms BIGINT NOT NULL
);

-- A complaint filed again by the same customer in the same category within
-- the reopen window links to the earlier one; `origin_id` is the first
-- complaint of the chain (the ticket itself when it is not a reopen) and
-- `origin_started_ms` its start, so durations run from the original start.
ALTER TABLE tickets ADD COLUMN reopen_of BIGINT REFERENCES tickets(id);
ALTER TABLE tickets ADD COLUMN origin_id BIGINT;
ALTER TABLE tickets ADD COLUMN origin_started_ms BIGINT;
CREATE INDEX tickets_customer_category ON tickets(customer_id, category_id, created_at_ms);

-- One row per ended inbound complaint: the facts scorecards aggregate.
-- Written when the complaint ends, updated when the customer confirms or
-- denies, when it is reopened, when a purchase follows it, and when a
-- compensation is granted on it.
CREATE TABLE ticket_quality (
    ticket_id             BIGINT PRIMARY KEY REFERENCES tickets(id),
    customer_id           BIGINT NOT NULL REFERENCES customers(id),
    category_id           BIGINT NOT NULL REFERENCES categories(id),
    queue_id              BIGINT NOT NULL REFERENCES queues(id),
    agent_id              BIGINT REFERENCES users(id),
    ended_at_ms           BIGINT NOT NULL,
    -- UTC day number (ended_at_ms / 86400000), the period key.
    ended_day             BIGINT NOT NULL,
    resolved              BIGINT NOT NULL CHECK (resolved IN (0, 1)),
    resolution_code       TEXT,
    -- No earlier complaint of this customer in this category inside the
    -- first-contact window. Counts as first-contact resolution only once
    -- the customer confirms.
    first_contact         BIGINT NOT NULL CHECK (first_contact IN (0, 1)),
    confirmation          TEXT NOT NULL DEFAULT 'none'
        CHECK (confirmation IN ('none', 'asked', 'confirmed', 'denied', 'expired')),
    confirmed_at_ms       BIGINT,
    satisfaction          BIGINT CHECK (satisfaction BETWEEN 1 AND 5),
    reopened              BIGINT NOT NULL DEFAULT 0 CHECK (reopened IN (0, 1)),
    retained_30           BIGINT NOT NULL DEFAULT 0 CHECK (retained_30 IN (0, 1)),
    retained_90           BIGINT NOT NULL DEFAULT 0 CHECK (retained_90 IN (0, 1)),
    retention_purchase_id BIGINT REFERENCES purchases(id),
    compensation_minor    BIGINT NOT NULL DEFAULT 0,
    -- Stored, never ranked or shown as a target.
    handle_ms             BIGINT NOT NULL DEFAULT 0,
    -- From the original start of the reopen chain to this end.
    duration_ms           BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX ticket_quality_day ON ticket_quality(ended_day, queue_id, agent_id);
CREATE INDEX ticket_quality_customer ON ticket_quality(customer_id, ended_at_ms);

-- A survey link: the customer answers "is it still solved?" without an
-- account. Only the SHA-256 of the token is stored; single use, expiring.
CREATE TABLE surveys (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash     TEXT NOT NULL UNIQUE,
    ticket_id      BIGINT NOT NULL REFERENCES tickets(id),
    created_at_ms  BIGINT NOT NULL,
    expires_at_ms  BIGINT NOT NULL,
    answered_at_ms BIGINT,
    still_solved   BIGINT CHECK (still_solved IN (0, 1)),
    satisfaction   BIGINT CHECK (satisfaction BETWEEN 1 AND 5),
    comment        TEXT
);
CREATE INDEX surveys_ticket ON surveys(ticket_id);
