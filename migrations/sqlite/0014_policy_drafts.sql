-- Compensation (issue 6, second part): stored, editable policy drafts, and
-- budget charges and refunds stored with each decision.

-- A draft of a compensation policy. Admins create and edit drafts (each save
-- is validated and bumps `revision`), dry-run them and publish one: it then
-- becomes an immutable version in compensation_policies and the draft is
-- frozen (see the trigger below).
CREATE TABLE compensation_policy_drafts (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT NOT NULL,
    document          TEXT NOT NULL,
    based_on_version  BIGINT REFERENCES compensation_policies(version),
    revision          BIGINT NOT NULL CHECK (revision >= 1),
    created_by        BIGINT NOT NULL REFERENCES users(id),
    created_at_ms     BIGINT NOT NULL,
    updated_by        BIGINT NOT NULL REFERENCES users(id),
    updated_at_ms     BIGINT NOT NULL,
    published_version BIGINT UNIQUE REFERENCES compensation_policies(version),
    published_by      BIGINT REFERENCES users(id),
    published_at_ms   BIGINT,
    CHECK ((published_version IS NULL) = (published_at_ms IS NULL))
);

CREATE TRIGGER compensation_policy_drafts_frozen BEFORE UPDATE ON compensation_policy_drafts
WHEN OLD.published_version IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'this policy draft is published and can no longer change'); END;
CREATE TRIGGER compensation_policy_drafts_no_delete BEFORE DELETE ON compensation_policy_drafts
WHEN OLD.published_version IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'this policy draft is published and can no longer change'); END;

-- What an approval was decided on (the approver's authority, the requester's
-- budgets it is charged to and how far past them it goes).
ALTER TABLE compensation_requests ADD COLUMN decision_inputs TEXT;
-- The requester's budget counters a grant or approval was charged to, and by
-- how much (NULL: nothing charged).
ALTER TABLE compensation_requests ADD COLUMN charged_day_scope TEXT;
ALTER TABLE compensation_requests ADD COLUMN charged_month_scope TEXT;
ALTER TABLE compensation_requests ADD COLUMN charged_minor BIGINT CHECK (charged_minor >= 0);
-- A reversal: who, when, why, its ledger entry and what it gave back to the
-- counters (never more than they held).
ALTER TABLE compensation_requests ADD COLUMN reversed_by BIGINT REFERENCES users(id);
ALTER TABLE compensation_requests ADD COLUMN reversed_at_ms BIGINT;
ALTER TABLE compensation_requests ADD COLUMN reversal_note TEXT;
ALTER TABLE compensation_requests ADD COLUMN reversal_seq BIGINT REFERENCES compensation_ledger(seq);
ALTER TABLE compensation_requests ADD COLUMN refunded_day_minor BIGINT CHECK (refunded_day_minor >= 0);
ALTER TABLE compensation_requests ADD COLUMN refunded_month_minor BIGINT CHECK (refunded_month_minor >= 0);

-- Grants made before this migration were charged to the counters of the UTC
-- day and month they were made in (approvals were not charged).
UPDATE compensation_requests
SET charged_day_scope = 'user:' || requested_by || ':day:' || (created_at_ms / 86400000),
    charged_month_scope = 'user:' || requested_by || ':month:'
        || strftime('%Y-%m', created_at_ms / 1000, 'unixepoch'),
    charged_minor = cost_minor
WHERE status = 'granted';

-- Reversals made before this migration gave nothing back to the counters.
UPDATE compensation_requests
SET reversed_at_ms = (SELECT l.created_at_ms FROM compensation_ledger l
                      WHERE l.request_id = compensation_requests.id AND l.kind = 'reversal'),
    reversal_note = (SELECT l.note FROM compensation_ledger l
                     WHERE l.request_id = compensation_requests.id AND l.kind = 'reversal'),
    reversal_seq = (SELECT l.seq FROM compensation_ledger l
                    WHERE l.request_id = compensation_requests.id AND l.kind = 'reversal'),
    refunded_day_minor = 0, refunded_month_minor = 0
WHERE id IN (SELECT request_id FROM compensation_ledger WHERE kind = 'reversal');
