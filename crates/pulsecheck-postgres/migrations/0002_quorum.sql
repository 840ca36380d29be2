-- Location quorum: a check probed from several locations (one lease per location,
-- key check@location). Each location's owner writes its own state here; the check's
-- own state in `checks` is decided from these rows in the same transaction, with the
-- check's row locked (SELECT ... FOR UPDATE), so nodes writing at once tally in turn.

-- Where a result was probed from (NULL for a check without a quorum).
ALTER TABLE results ADD COLUMN location TEXT;

-- Each location's judgement of a quorum check, with its latest result.
CREATE TABLE location_states (
    check_name       TEXT COLLATE "C" NOT NULL,
    location         TEXT COLLATE "C" NOT NULL,
    state            TEXT NOT NULL DEFAULT 'unknown' CHECK (state IN ('unknown', 'up', 'down')),
    since            BIGINT,
    -- JSON array of CauseResult: the location's current streak, newest last.
    streak           TEXT NOT NULL DEFAULT '[]',
    last_result_at   BIGINT,
    last_outcome     TEXT,
    last_reason      TEXT,
    last_error       TEXT,
    last_duration_ms DOUBLE PRECISION,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (check_name, location)
);

-- Second opinions: a location that saw a failure while the check is not down asks the
-- other locations to re-check now. At most one pending request per check and location
-- (the key); the owner of check@location deletes it when it runs the check.
CREATE TABLE recheck_requests (
    location     TEXT COLLATE "C" NOT NULL,
    check_name   TEXT COLLATE "C" NOT NULL,
    requested_at BIGINT NOT NULL,
    PRIMARY KEY (location, check_name)
);
