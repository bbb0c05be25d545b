-- Quality record (issue 7): the settings behind the quality definitions,
-- the default resolution codes, and what the record needs besides 0012:
-- holds of reopened tickets for their agent, survey delivery, and the
-- renewal a complaint's retention may be linked to.

-- The quality settings (first-contact and reopen windows, confirmation
-- delay, survey lifetime, the same-agent wait), one JSON document edited by
-- administrators. No row: the defaults.
CREATE TABLE quality_settings (
    id            BIGINT PRIMARY KEY CHECK (id = 1),
    document      TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- The default resolution codes (administrators add, rename and retire codes).
INSERT INTO resolution_codes (code, label, active, created_at_ms) VALUES
    ('fixed', 'Fixed', 1, 0),
    ('replaced', 'Replaced', 1, 0),
    ('replacement_sent', 'Replacement sent', 1, 0),
    ('repair_booked', 'Repair booked', 1, 0),
    ('refund_issued', 'Refund issued', 1, 0),
    ('compensated', 'Compensated', 1, 0),
    ('explained', 'Explained', 1, 0),
    ('escalated', 'Escalated', 1, 0),
    ('not_resolved', 'Not resolved', 1, 0),
    ('switched_provider', 'Customer switched provider', 1, 0);

-- A ticket reopened because the customer said the problem is back waits
-- for the agent who resolved it (routing does not see it) until this time.
ALTER TABLE tickets ADD COLUMN held_for_agent_id BIGINT REFERENCES users(id);
ALTER TABLE tickets ADD COLUMN held_until_ms BIGINT;
CREATE INDEX tickets_held ON tickets(held_until_ms) WHERE held_for_agent_id IS NOT NULL;

-- How the customer's confirmation came: a survey link or a confirmation call.
ALTER TABLE ticket_quality ADD COLUMN confirmation_via TEXT
    CHECK (confirmation_via IN ('survey', 'call'));
-- The renewal (membership) a complaint's retention is linked to, when the
-- customer renewed rather than bought.
ALTER TABLE ticket_quality ADD COLUMN retention_membership_id BIGINT REFERENCES memberships(id);
CREATE INDEX ticket_quality_confirmation ON ticket_quality(confirmation, ended_at_ms);

-- Survey links: made by the system when a confirmation is due (and sent
-- through the survey webhook) or by staff on demand.
ALTER TABLE surveys ADD COLUMN source TEXT NOT NULL DEFAULT 'staff'
    CHECK (source IN ('system', 'staff'));
ALTER TABLE surveys ADD COLUMN created_by BIGINT REFERENCES users(id);
ALTER TABLE surveys ADD COLUMN delivered_at_ms BIGINT;
ALTER TABLE surveys ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE surveys ADD COLUMN next_attempt_at_ms BIGINT;
CREATE INDEX surveys_undelivered ON surveys(next_attempt_at_ms)
    WHERE delivered_at_ms IS NULL AND source = 'system';

-- A complaint's compensation is summed from the ledger by ticket, its
-- handle time from its assignments.
CREATE INDEX compensation_ledger_ticket ON compensation_ledger(ticket_id);
CREATE INDEX assignments_ticket ON assignments(ticket_id);
