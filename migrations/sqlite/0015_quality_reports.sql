-- Quality reports (issue 7): scorecards read rollups, not the fact table,
-- so a year over a million complaints answers in well under a second.
--
-- Every change to a `ticket_quality` row appends a signed delta (the row's
-- old figures subtracted, its new figures added) to `quality_deltas`, in the
-- writer's own transaction (triggers below, so no writer can forget it).
-- A background fold moves deltas into the daily rollups; reports read the
-- rollups plus the deltas not folded yet, in one statement, so they are
-- exact at any moment. Appending only, the triggers never contend.

-- Each complaint's stratum for the compensation/retention comparison: the
-- customer's tier and value band when the complaint's row was written
-- (kept, so later updates of the row land in the same stratum).
-- value_band: 0 under 10,000 minor units of yearly value, 1 under 100,000,
-- 2 under 1,000,000, 3 above.
CREATE TABLE quality_strata (
    ticket_id  BIGINT PRIMARY KEY,
    tier       TEXT NOT NULL,
    value_band BIGINT NOT NULL
);

-- The figures one change adds (+1 row) or removes (-1 row). Column meanings
-- as in quality_rollup.
CREATE TABLE quality_deltas (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    ended_day          BIGINT NOT NULL,
    queue_id           BIGINT NOT NULL,
    agent_id           BIGINT NOT NULL,
    category_id        BIGINT NOT NULL,
    tier               TEXT NOT NULL,
    value_band         BIGINT NOT NULL,
    ended              BIGINT NOT NULL,
    resolved           BIGINT NOT NULL,
    asked              BIGINT NOT NULL,
    confirmed          BIGINT NOT NULL,
    denied             BIGINT NOT NULL,
    expired            BIGINT NOT NULL,
    fcr                BIGINT NOT NULL,
    reopened           BIGINT NOT NULL,
    sat_1              BIGINT NOT NULL,
    sat_2              BIGINT NOT NULL,
    sat_3              BIGINT NOT NULL,
    sat_4              BIGINT NOT NULL,
    sat_5              BIGINT NOT NULL,
    retained_30        BIGINT NOT NULL,
    retained_90        BIGINT NOT NULL,
    compensated        BIGINT NOT NULL,
    compensation_minor BIGINT NOT NULL,
    handle_ms          BIGINT NOT NULL
);

-- Reports read the deltas not folded yet by day.
CREATE INDEX quality_deltas_day ON quality_deltas(ended_day);

-- Daily figures per agent (dim 'agent', key = agent id, 0 without one) and
-- per queue (dim 'queue', key = queue id). Counts of complaints ended that
-- UTC day: ended; resolved (agent said so); asked (confirmation asked, no
-- answer yet), confirmed, denied, expired; fcr (first contact, resolved and
-- confirmed); reopened; sat_1..sat_5 (satisfaction answers); retained_30,
-- retained_90; compensated (compensation_minor > 0); sums:
-- compensation_minor, handle_ms (stored, never ranked).
CREATE TABLE quality_rollup (
    dim                TEXT NOT NULL CHECK (dim IN ('agent', 'queue')),
    key                BIGINT NOT NULL,
    ended_day          BIGINT NOT NULL,
    ended              BIGINT NOT NULL,
    resolved           BIGINT NOT NULL,
    asked              BIGINT NOT NULL,
    confirmed          BIGINT NOT NULL,
    denied             BIGINT NOT NULL,
    expired            BIGINT NOT NULL,
    fcr                BIGINT NOT NULL,
    reopened           BIGINT NOT NULL,
    sat_1              BIGINT NOT NULL,
    sat_2              BIGINT NOT NULL,
    sat_3              BIGINT NOT NULL,
    sat_4              BIGINT NOT NULL,
    sat_5              BIGINT NOT NULL,
    retained_30        BIGINT NOT NULL,
    retained_90        BIGINT NOT NULL,
    compensated        BIGINT NOT NULL,
    compensation_minor BIGINT NOT NULL,
    handle_ms          BIGINT NOT NULL,
    PRIMARY KEY (dim, ended_day, key)
);

-- Daily figures per stratum (category, tier, value band) and compensated or not.
CREATE TABLE quality_strata_rollup (
    ended_day          BIGINT NOT NULL,
    category_id        BIGINT NOT NULL,
    tier               TEXT NOT NULL,
    value_band         BIGINT NOT NULL,
    compensated        BIGINT NOT NULL,
    ended              BIGINT NOT NULL,
    retained_30        BIGINT NOT NULL,
    retained_90        BIGINT NOT NULL,
    compensation_minor BIGINT NOT NULL,
    PRIMARY KEY (ended_day, category_id, tier, value_band, compensated)
);

-- Refusal and churn reasons are read from outbound calls by outcome and time.
CREATE INDEX outbound_calls_outcome ON outbound_calls(outcome, fired_at_ms);

-- The same triggers as on PostgreSQL, written out (SQLite has no functions).
CREATE TRIGGER quality_track_insert AFTER INSERT ON ticket_quality
BEGIN
    INSERT OR IGNORE INTO quality_strata (ticket_id, tier, value_band)
    SELECT NEW.ticket_id, c.tier,
        CASE WHEN c.value_minor < 10000 THEN 0 WHEN c.value_minor < 100000 THEN 1
             WHEN c.value_minor < 1000000 THEN 2 ELSE 3 END
    FROM customers c WHERE c.id = NEW.customer_id;
    INSERT INTO quality_deltas (ended_day, queue_id, agent_id, category_id, tier, value_band,
        ended, resolved, asked, confirmed, denied, expired, fcr, reopened,
        sat_1, sat_2, sat_3, sat_4, sat_5, retained_30, retained_90, compensated,
        compensation_minor, handle_ms)
    SELECT NEW.ended_day, NEW.queue_id, COALESCE(NEW.agent_id, 0), NEW.category_id,
        COALESCE(s.tier, ''), COALESCE(s.value_band, 0),
        1, NEW.resolved,
        (CASE WHEN NEW.confirmation = 'asked' THEN 1 ELSE 0 END),
        (CASE WHEN NEW.confirmation = 'confirmed' THEN 1 ELSE 0 END),
        (CASE WHEN NEW.confirmation = 'denied' THEN 1 ELSE 0 END),
        (CASE WHEN NEW.confirmation = 'expired' THEN 1 ELSE 0 END),
        (CASE WHEN NEW.first_contact = 1 AND NEW.resolved = 1 AND NEW.confirmation = 'confirmed' THEN 1 ELSE 0 END),
        NEW.reopened,
        (CASE WHEN NEW.satisfaction = 1 THEN 1 ELSE 0 END),
        (CASE WHEN NEW.satisfaction = 2 THEN 1 ELSE 0 END),
        (CASE WHEN NEW.satisfaction = 3 THEN 1 ELSE 0 END),
        (CASE WHEN NEW.satisfaction = 4 THEN 1 ELSE 0 END),
        (CASE WHEN NEW.satisfaction = 5 THEN 1 ELSE 0 END),
        NEW.retained_30, NEW.retained_90,
        (CASE WHEN NEW.compensation_minor > 0 THEN 1 ELSE 0 END),
        NEW.compensation_minor, NEW.handle_ms
    FROM (SELECT 1 AS one) o LEFT JOIN quality_strata s ON s.ticket_id = NEW.ticket_id;
END;

CREATE TRIGGER quality_track_update AFTER UPDATE ON ticket_quality
    WHEN OLD.ended_day IS NOT NEW.ended_day
        OR OLD.queue_id IS NOT NEW.queue_id
        OR OLD.agent_id IS NOT NEW.agent_id
        OR OLD.category_id IS NOT NEW.category_id
        OR OLD.resolved IS NOT NEW.resolved
        OR OLD.confirmation IS NOT NEW.confirmation
        OR OLD.first_contact IS NOT NEW.first_contact
        OR OLD.satisfaction IS NOT NEW.satisfaction
        OR OLD.reopened IS NOT NEW.reopened
        OR OLD.retained_30 IS NOT NEW.retained_30
        OR OLD.retained_90 IS NOT NEW.retained_90
        OR OLD.compensation_minor IS NOT NEW.compensation_minor
        OR OLD.handle_ms IS NOT NEW.handle_ms
BEGIN
    INSERT INTO quality_deltas (ended_day, queue_id, agent_id, category_id, tier, value_band,
        ended, resolved, asked, confirmed, denied, expired, fcr, reopened,
        sat_1, sat_2, sat_3, sat_4, sat_5, retained_30, retained_90, compensated,
        compensation_minor, handle_ms)
    SELECT OLD.ended_day, OLD.queue_id, COALESCE(OLD.agent_id, 0), OLD.category_id,
        COALESCE(s.tier, ''), COALESCE(s.value_band, 0),
        -1, -1 * OLD.resolved,
        -1 * (CASE WHEN OLD.confirmation = 'asked' THEN 1 ELSE 0 END),
        -1 * (CASE WHEN OLD.confirmation = 'confirmed' THEN 1 ELSE 0 END),
        -1 * (CASE WHEN OLD.confirmation = 'denied' THEN 1 ELSE 0 END),
        -1 * (CASE WHEN OLD.confirmation = 'expired' THEN 1 ELSE 0 END),
        -1 * (CASE WHEN OLD.first_contact = 1 AND OLD.resolved = 1 AND OLD.confirmation = 'confirmed' THEN 1 ELSE 0 END),
        -1 * OLD.reopened,
        -1 * (CASE WHEN OLD.satisfaction = 1 THEN 1 ELSE 0 END),
        -1 * (CASE WHEN OLD.satisfaction = 2 THEN 1 ELSE 0 END),
        -1 * (CASE WHEN OLD.satisfaction = 3 THEN 1 ELSE 0 END),
        -1 * (CASE WHEN OLD.satisfaction = 4 THEN 1 ELSE 0 END),
        -1 * (CASE WHEN OLD.satisfaction = 5 THEN 1 ELSE 0 END),
        -1 * OLD.retained_30, -1 * OLD.retained_90,
        -1 * (CASE WHEN OLD.compensation_minor > 0 THEN 1 ELSE 0 END),
        -1 * OLD.compensation_minor, -1 * OLD.handle_ms
    FROM (SELECT 1 AS one) o LEFT JOIN quality_strata s ON s.ticket_id = OLD.ticket_id;
    INSERT INTO quality_deltas (ended_day, queue_id, agent_id, category_id, tier, value_band,
        ended, resolved, asked, confirmed, denied, expired, fcr, reopened,
        sat_1, sat_2, sat_3, sat_4, sat_5, retained_30, retained_90, compensated,
        compensation_minor, handle_ms)
    SELECT NEW.ended_day, NEW.queue_id, COALESCE(NEW.agent_id, 0), NEW.category_id,
        COALESCE(s.tier, ''), COALESCE(s.value_band, 0),
        1, NEW.resolved,
        (CASE WHEN NEW.confirmation = 'asked' THEN 1 ELSE 0 END),
        (CASE WHEN NEW.confirmation = 'confirmed' THEN 1 ELSE 0 END),
        (CASE WHEN NEW.confirmation = 'denied' THEN 1 ELSE 0 END),
        (CASE WHEN NEW.confirmation = 'expired' THEN 1 ELSE 0 END),
        (CASE WHEN NEW.first_contact = 1 AND NEW.resolved = 1 AND NEW.confirmation = 'confirmed' THEN 1 ELSE 0 END),
        NEW.reopened,
        (CASE WHEN NEW.satisfaction = 1 THEN 1 ELSE 0 END),
        (CASE WHEN NEW.satisfaction = 2 THEN 1 ELSE 0 END),
        (CASE WHEN NEW.satisfaction = 3 THEN 1 ELSE 0 END),
        (CASE WHEN NEW.satisfaction = 4 THEN 1 ELSE 0 END),
        (CASE WHEN NEW.satisfaction = 5 THEN 1 ELSE 0 END),
        NEW.retained_30, NEW.retained_90,
        (CASE WHEN NEW.compensation_minor > 0 THEN 1 ELSE 0 END),
        NEW.compensation_minor, NEW.handle_ms
    FROM (SELECT 1 AS one) o LEFT JOIN quality_strata s ON s.ticket_id = NEW.ticket_id;
END;

CREATE TRIGGER quality_track_delete AFTER DELETE ON ticket_quality
BEGIN
    INSERT INTO quality_deltas (ended_day, queue_id, agent_id, category_id, tier, value_band,
        ended, resolved, asked, confirmed, denied, expired, fcr, reopened,
        sat_1, sat_2, sat_3, sat_4, sat_5, retained_30, retained_90, compensated,
        compensation_minor, handle_ms)
    SELECT OLD.ended_day, OLD.queue_id, COALESCE(OLD.agent_id, 0), OLD.category_id,
        COALESCE(s.tier, ''), COALESCE(s.value_band, 0),
        -1, -1 * OLD.resolved,
        -1 * (CASE WHEN OLD.confirmation = 'asked' THEN 1 ELSE 0 END),
        -1 * (CASE WHEN OLD.confirmation = 'confirmed' THEN 1 ELSE 0 END),
        -1 * (CASE WHEN OLD.confirmation = 'denied' THEN 1 ELSE 0 END),
        -1 * (CASE WHEN OLD.confirmation = 'expired' THEN 1 ELSE 0 END),
        -1 * (CASE WHEN OLD.first_contact = 1 AND OLD.resolved = 1 AND OLD.confirmation = 'confirmed' THEN 1 ELSE 0 END),
        -1 * OLD.reopened,
        -1 * (CASE WHEN OLD.satisfaction = 1 THEN 1 ELSE 0 END),
        -1 * (CASE WHEN OLD.satisfaction = 2 THEN 1 ELSE 0 END),
        -1 * (CASE WHEN OLD.satisfaction = 3 THEN 1 ELSE 0 END),
        -1 * (CASE WHEN OLD.satisfaction = 4 THEN 1 ELSE 0 END),
        -1 * (CASE WHEN OLD.satisfaction = 5 THEN 1 ELSE 0 END),
        -1 * OLD.retained_30, -1 * OLD.retained_90,
        -1 * (CASE WHEN OLD.compensation_minor > 0 THEN 1 ELSE 0 END),
        -1 * OLD.compensation_minor, -1 * OLD.handle_ms
    FROM (SELECT 1 AS one) o LEFT JOIN quality_strata s ON s.ticket_id = OLD.ticket_id;
END;

-- Rows written before this migration.
INSERT INTO quality_strata (ticket_id, tier, value_band)
SELECT q.ticket_id, c.tier,
    CASE WHEN c.value_minor < 10000 THEN 0 WHEN c.value_minor < 100000 THEN 1
         WHEN c.value_minor < 1000000 THEN 2 ELSE 3 END
FROM ticket_quality q JOIN customers c ON c.id = q.customer_id;
INSERT INTO quality_deltas (ended_day, queue_id, agent_id, category_id, tier, value_band,
        ended, resolved, asked, confirmed, denied, expired, fcr, reopened,
        sat_1, sat_2, sat_3, sat_4, sat_5, retained_30, retained_90, compensated,
        compensation_minor, handle_ms)
    SELECT q.ended_day, q.queue_id, COALESCE(q.agent_id, 0), q.category_id,
        COALESCE(s.tier, ''), COALESCE(s.value_band, 0),
        1, q.resolved,
        (CASE WHEN q.confirmation = 'asked' THEN 1 ELSE 0 END),
        (CASE WHEN q.confirmation = 'confirmed' THEN 1 ELSE 0 END),
        (CASE WHEN q.confirmation = 'denied' THEN 1 ELSE 0 END),
        (CASE WHEN q.confirmation = 'expired' THEN 1 ELSE 0 END),
        (CASE WHEN q.first_contact = 1 AND q.resolved = 1 AND q.confirmation = 'confirmed' THEN 1 ELSE 0 END),
        q.reopened,
        (CASE WHEN q.satisfaction = 1 THEN 1 ELSE 0 END),
        (CASE WHEN q.satisfaction = 2 THEN 1 ELSE 0 END),
        (CASE WHEN q.satisfaction = 3 THEN 1 ELSE 0 END),
        (CASE WHEN q.satisfaction = 4 THEN 1 ELSE 0 END),
        (CASE WHEN q.satisfaction = 5 THEN 1 ELSE 0 END),
        q.retained_30, q.retained_90,
        (CASE WHEN q.compensation_minor > 0 THEN 1 ELSE 0 END),
        q.compensation_minor, q.handle_ms
    FROM ticket_quality q LEFT JOIN quality_strata s ON s.ticket_id = q.ticket_id;
