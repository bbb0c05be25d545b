-- The quality triggers' delta insert, as PL/pgSQL rather than SQL: a SQL
-- function called from the trigger was planned again on every row (measured
-- under the load harness: 0.48 ms per complaint's quality row, the largest
-- single cost of a lifecycle); PL/pgSQL keeps its plan for the session.
-- Same statement, same results.
CREATE OR REPLACE FUNCTION quality_add_delta(r ticket_quality, sgn BIGINT) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO quality_deltas (ended_day, queue_id, agent_id, category_id, tier, value_band,
        ended, resolved, asked, confirmed, denied, expired, fcr, reopened,
        sat_1, sat_2, sat_3, sat_4, sat_5, retained_30, retained_90, compensated,
        compensation_minor, handle_ms)
    SELECT r.ended_day, r.queue_id, COALESCE(r.agent_id, 0), r.category_id,
        COALESCE(s.tier, ''), COALESCE(s.value_band, 0),
        sgn, sgn * r.resolved,
        sgn * (CASE WHEN r.confirmation = 'asked' THEN 1 ELSE 0 END),
        sgn * (CASE WHEN r.confirmation = 'confirmed' THEN 1 ELSE 0 END),
        sgn * (CASE WHEN r.confirmation = 'denied' THEN 1 ELSE 0 END),
        sgn * (CASE WHEN r.confirmation = 'expired' THEN 1 ELSE 0 END),
        sgn * (CASE WHEN r.first_contact = 1 AND r.resolved = 1 AND r.confirmation = 'confirmed' THEN 1 ELSE 0 END),
        sgn * r.reopened,
        sgn * (CASE WHEN r.satisfaction = 1 THEN 1 ELSE 0 END),
        sgn * (CASE WHEN r.satisfaction = 2 THEN 1 ELSE 0 END),
        sgn * (CASE WHEN r.satisfaction = 3 THEN 1 ELSE 0 END),
        sgn * (CASE WHEN r.satisfaction = 4 THEN 1 ELSE 0 END),
        sgn * (CASE WHEN r.satisfaction = 5 THEN 1 ELSE 0 END),
        sgn * r.retained_30, sgn * r.retained_90,
        sgn * (CASE WHEN r.compensation_minor > 0 THEN 1 ELSE 0 END),
        sgn * r.compensation_minor, sgn * r.handle_ms
    FROM (SELECT 1 AS one) o LEFT JOIN quality_strata s ON s.ticket_id = r.ticket_id;
END
$$;
