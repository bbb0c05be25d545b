-- Outbound service calls (issue 5): intake beyond purchases, journeys, the
-- contact policy, scheduled calls and their outcomes, consent and erasure.

-- How, and whether, a customer may be called. No row means no consent.
CREATE TABLE contact_profiles (
    customer_id    BIGINT PRIMARY KEY REFERENCES customers(id),
    consent_calls  BIGINT NOT NULL DEFAULT 0 CHECK (consent_calls IN (0, 1)),
    do_not_call    BIGINT NOT NULL DEFAULT 0 CHECK (do_not_call IN (0, 1)),
    account_status TEXT NOT NULL DEFAULT 'active' CHECK (account_status IN ('active', 'frozen', 'disputed')),
    phone_invalid  BIGINT NOT NULL DEFAULT 0 CHECK (phone_invalid IN (0, 1)),
    erased_at_ms   BIGINT,
    updated_at_ms  BIGINT NOT NULL
);

-- Every consent or do-not-call change: when, from where, by whom.
CREATE TABLE consent_changes (
    id            BIGSERIAL PRIMARY KEY,
    customer_id   BIGINT NOT NULL REFERENCES customers(id),
    at_ms         BIGINT NOT NULL,
    source        TEXT NOT NULL,
    actor_user_id BIGINT REFERENCES users(id),
    consent_calls BIGINT NOT NULL CHECK (consent_calls IN (0, 1)),
    do_not_call   BIGINT NOT NULL CHECK (do_not_call IN (0, 1))
);
CREATE INDEX consent_changes_customer ON consent_changes(customer_id, id);

-- Renewals and memberships, with the date they end.
CREATE TABLE memberships (
    id            BIGSERIAL PRIMARY KEY,
    customer_id   BIGINT NOT NULL REFERENCES customers(id),
    external_id   TEXT NOT NULL UNIQUE,
    product       TEXT NOT NULL,
    ends_at_ms    BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX memberships_customer ON memberships(customer_id);

-- Dates a customer chose to share (a birthday, an anniversary): month and day.
CREATE TABLE shared_dates (
    id            BIGSERIAL PRIMARY KEY,
    customer_id   BIGINT NOT NULL REFERENCES customers(id),
    external_id   TEXT NOT NULL UNIQUE,
    label         TEXT NOT NULL,
    month         BIGINT NOT NULL CHECK (month BETWEEN 1 AND 12),
    day           BIGINT NOT NULL CHECK (day BETWEEN 1 AND 31),
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX shared_dates_customer ON shared_dates(customer_id);

-- A journey; its definition lives in versions, the newest is current.
CREATE TABLE journeys (
    id              BIGSERIAL PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    trigger_kind    TEXT NOT NULL CHECK (trigger_kind IN ('purchase', 'membership_end', 'complaint_resolved', 'shared_date')),
    active          BIGINT NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    current_version BIGINT NOT NULL,
    created_at_ms   BIGINT NOT NULL
);

CREATE TABLE journey_versions (
    journey_id    BIGINT NOT NULL REFERENCES journeys(id),
    version       BIGINT NOT NULL,
    definition    TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    actor_user_id BIGINT REFERENCES users(id),
    PRIMARY KEY (journey_id, version)
);

-- The one contact policy (a single row, id 1), as JSON.
CREATE TABLE contact_policy (
    id            BIGINT PRIMARY KEY CHECK (id = 1),
    definition    TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- Scheduled outbound calls: the record the scheduler's due index is built from.
-- `chain_id` groups a call with its retries and callbacks (the root call's id).
CREATE TABLE outbound_calls (
    id                     BIGSERIAL PRIMARY KEY,
    dedupe_key             TEXT NOT NULL UNIQUE,
    customer_id            BIGINT NOT NULL REFERENCES customers(id),
    chain_id               BIGINT,
    journey_id             BIGINT REFERENCES journeys(id),
    journey_version        BIGINT,
    step_index             BIGINT,
    source_kind            TEXT NOT NULL,
    source_id              BIGINT NOT NULL,
    purposes               TEXT NOT NULL,
    category_id            BIGINT NOT NULL REFERENCES categories(id),
    restricted_category_id BIGINT REFERENCES categories(id),
    complaint_ticket_id    BIGINT REFERENCES tickets(id),
    attempt                BIGINT NOT NULL DEFAULT 1,
    status                 TEXT NOT NULL CHECK (status IN ('scheduled', 'fired', 'skipped', 'merged', 'done')),
    due_at_ms              BIGINT NOT NULL,
    stopped_by             TEXT,
    stopped_until_ms       BIGINT,
    merged_into            BIGINT,
    ticket_id              BIGINT REFERENCES tickets(id),
    fired_at_ms            BIGINT,
    outcome                TEXT,
    reason_code            TEXT,
    created_at_ms          BIGINT NOT NULL,
    updated_at_ms          BIGINT NOT NULL
);
CREATE INDEX outbound_calls_due ON outbound_calls(status, due_at_ms);
CREATE INDEX outbound_calls_customer ON outbound_calls(customer_id, status);
CREATE INDEX outbound_calls_ticket ON outbound_calls(ticket_id);

-- Every policy decision on a call: which rule, what it did, until when.
CREATE TABLE outbound_decisions (
    id       BIGSERIAL PRIMARY KEY,
    call_id  BIGINT NOT NULL REFERENCES outbound_calls(id),
    at_ms    BIGINT NOT NULL,
    phase    TEXT NOT NULL,
    action   TEXT NOT NULL,
    rule     TEXT,
    until_ms BIGINT,
    detail   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbound_decisions_call ON outbound_decisions(call_id, id);

-- Erasure requests carried out (no personal data, only the fact).
CREATE TABLE erasures (
    id            BIGSERIAL PRIMARY KEY,
    customer_id   BIGINT NOT NULL REFERENCES customers(id),
    at_ms         BIGINT NOT NULL,
    actor_user_id BIGINT REFERENCES users(id)
);
