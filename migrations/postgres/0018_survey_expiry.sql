-- The survey loop looks only at links that expired since its last round
-- (it used to check every complaint waiting for an answer, every second).
CREATE INDEX surveys_open_expiry ON surveys(expires_at_ms) WHERE answered_at_ms IS NULL;
