-- Compensation authority (issue 6): versioned policies, grant requests and
-- their decisions, budget counters, the append-only hash-chained ledger and
-- the webhook outbox.

-- Which teams a supervisor decides compensation approvals for.
CREATE TABLE supervisor_teams (
    user_id BIGINT NOT NULL REFERENCES users(id),
    team    TEXT NOT NULL,
    PRIMARY KEY (user_id, team)
);
CREATE INDEX supervisor_teams_team ON supervisor_teams(team);

-- Published policy versions; immutable once written (see the triggers below).
CREATE TABLE compensation_policies (
    version         BIGINT PRIMARY KEY CHECK (version >= 1),
    document        TEXT NOT NULL,
    published_by    BIGINT NOT NULL REFERENCES users(id),
    published_at_ms BIGINT NOT NULL
);

-- One row per grant request and its decision. `status` moves once from
-- 'pending' to 'approved', 'denied' or 'expired' by a conditional UPDATE.
CREATE TABLE compensation_requests (
    id                 BIGSERIAL PRIMARY KEY,
    ticket_id          BIGINT NOT NULL REFERENCES tickets(id),
    customer_id        BIGINT NOT NULL REFERENCES customers(id),
    requested_by       BIGINT NOT NULL REFERENCES users(id),
    kind               TEXT NOT NULL,
    quantity           BIGINT NOT NULL CHECK (quantity > 0),
    order_amount_minor BIGINT,
    cost_minor         BIGINT NOT NULL CHECK (cost_minor >= 0),
    reason_code        TEXT NOT NULL,
    note               TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('granted', 'pending', 'approved', 'denied', 'expired', 'refused')),
    policy_version     BIGINT NOT NULL REFERENCES compensation_policies(version),
    rule               TEXT NOT NULL,
    inputs             TEXT NOT NULL,
    decided_by         BIGINT REFERENCES users(id),
    decision_note      TEXT,
    decision_policy_version BIGINT REFERENCES compensation_policies(version),
    decision_rule      TEXT,
    created_at_ms      BIGINT NOT NULL,
    decided_at_ms      BIGINT,
    expires_at_ms      BIGINT,
    CHECK (status <> 'pending' OR expires_at_ms IS NOT NULL),
    CHECK (decided_by IS NULL OR decided_by <> requested_by)
);
CREATE INDEX compensation_requests_pending ON compensation_requests(expires_at_ms) WHERE status = 'pending';
CREATE INDEX compensation_requests_created ON compensation_requests(created_at_ms);

-- Budget counters (per user per UTC day and month). The conditional check is
-- the last line of defence: no bug can spend past the cap in force.
CREATE TABLE compensation_spend (
    scope       TEXT PRIMARY KEY,
    spent_minor BIGINT NOT NULL,
    cap_minor   BIGINT NOT NULL,
    CHECK (spent_minor >= 0 AND spent_minor <= cap_minor)
);

-- The head of the ledger's chain. Every decision takes this row's lock first,
-- so budget checks and ledger appends are serialized across nodes.
CREATE TABLE compensation_ledger_head (
    id        BIGINT PRIMARY KEY CHECK (id = 1),
    last_seq  BIGINT NOT NULL,
    last_hash TEXT NOT NULL
);
INSERT INTO compensation_ledger_head (id, last_seq, last_hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- The append-only ledger: each entry hashes the previous hash and its own
-- canonical content. A reversal is a new entry with a negative amount.
CREATE TABLE compensation_ledger (
    seq            BIGINT PRIMARY KEY CHECK (seq >= 1),
    kind           TEXT NOT NULL CHECK (kind IN ('grant', 'reversal')),
    request_id     BIGINT NOT NULL REFERENCES compensation_requests(id),
    ticket_id      BIGINT NOT NULL,
    customer_id    BIGINT NOT NULL,
    requested_by   BIGINT NOT NULL,
    approved_by    BIGINT,
    bonus_kind     TEXT NOT NULL,
    quantity       BIGINT NOT NULL,
    amount_minor   BIGINT NOT NULL,
    reason_code    TEXT NOT NULL,
    policy_version BIGINT NOT NULL,
    rule           TEXT NOT NULL,
    note           TEXT NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL UNIQUE
);
CREATE UNIQUE INDEX compensation_ledger_one_grant ON compensation_ledger(request_id, kind);
CREATE INDEX compensation_ledger_customer ON compensation_ledger(customer_id, created_at_ms);
CREATE INDEX compensation_ledger_created ON compensation_ledger(created_at_ms);

CREATE FUNCTION compensation_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER compensation_ledger_append_only BEFORE UPDATE OR DELETE ON compensation_ledger
    FOR EACH ROW EXECUTE FUNCTION compensation_append_only();
CREATE TRIGGER compensation_ledger_no_truncate BEFORE TRUNCATE ON compensation_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION compensation_append_only();
CREATE TRIGGER compensation_policies_immutable BEFORE UPDATE OR DELETE ON compensation_policies
    FOR EACH ROW EXECUTE FUNCTION compensation_append_only();
CREATE TRIGGER compensation_policies_no_truncate BEFORE TRUNCATE ON compensation_policies
    FOR EACH STATEMENT EXECUTE FUNCTION compensation_append_only();

-- Grants and reversals waiting to be told to the shop, billing and CRM,
-- written in the same transaction as the ledger entry.
CREATE TABLE compensation_outbox (
    id                 BIGSERIAL PRIMARY KEY,
    event_id           TEXT NOT NULL UNIQUE,
    ledger_seq         BIGINT NOT NULL UNIQUE REFERENCES compensation_ledger(seq),
    payload            TEXT NOT NULL,
    attempts           BIGINT NOT NULL DEFAULT 0,
    next_attempt_at_ms BIGINT NOT NULL,
    lease_until_ms     BIGINT,
    delivered_at_ms    BIGINT,
    created_at_ms      BIGINT NOT NULL
);
CREATE INDEX compensation_outbox_due ON compensation_outbox(next_attempt_at_ms) WHERE delivered_at_ms IS NULL;

-- Every delivery attempt.
CREATE TABLE compensation_deliveries (
    id          BIGSERIAL PRIMARY KEY,
    outbox_id   BIGINT NOT NULL REFERENCES compensation_outbox(id),
    attempt     BIGINT NOT NULL,
    at_ms       BIGINT NOT NULL,
    status_code BIGINT,
    ok          BIGINT NOT NULL CHECK (ok IN (0, 1)),
    error       TEXT
);
CREATE INDEX compensation_deliveries_outbox ON compensation_deliveries(outbox_id, id);
