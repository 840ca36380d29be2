-- pulsecheck store schema, version 1.
--
-- Conventions (kept portable so that a PostgreSQL variant can mirror this file):
-- * every timestamp is an integer of unix milliseconds (UTC), every duration a REAL of
--   fractional milliseconds;
-- * "check" and "group" are SQL keywords, so the columns are check_name and check_group;
-- * JSON is stored as TEXT written by serde_json;
-- * no SQLite-only syntax other than INTEGER PRIMARY KEY for generated ids.

-- One row per configured check: metadata, persisted state, and the latest result so
-- that `pulsecheck status` needs no scan of the results table.
CREATE TABLE checks (
    name             TEXT PRIMARY KEY NOT NULL,
    check_group      TEXT,
    target           TEXT NOT NULL DEFAULT '',
    -- 0 once a reload removed the check from the config; its history stays.
    active           INTEGER NOT NULL DEFAULT 1,
    state            TEXT NOT NULL DEFAULT 'unknown' CHECK (state IN ('unknown', 'up', 'down')),
    since            BIGINT,
    -- JSON array of CauseResult: the current streak, newest last.
    streak           TEXT NOT NULL DEFAULT '[]',
    last_result_at   BIGINT,
    last_outcome     TEXT,
    last_reason      TEXT,
    last_error       TEXT,
    last_duration_ms REAL,
    updated_at       BIGINT NOT NULL
);

-- Every raw result, kept for the raw retention period.
CREATE TABLE results (
    id             INTEGER PRIMARY KEY,
    check_name     TEXT NOT NULL REFERENCES checks (name),
    started_at     BIGINT NOT NULL,
    outcome        TEXT NOT NULL,
    reason         TEXT,
    error          TEXT,
    probe          TEXT NOT NULL,
    http_status    INTEGER,
    duration_ms    REAL NOT NULL,
    queue_ms       REAL NOT NULL,
    dns_ms         REAL,
    connect_ms     REAL,
    tls_ms         REAL,
    ttfb_ms        REAL,
    transfer_ms    REAL,
    rtt_ms         REAL,
    ip             TEXT,
    http_version   TEXT,
    redirects      INTEGER NOT NULL DEFAULT 0,
    cert_days_left INTEGER
);
-- History of one check, newest first.
CREATE INDEX results_by_check ON results (check_name, started_at);
-- Hourly aggregation and retention work on time ranges across all checks.
CREATE INDEX results_by_time ON results (started_at);

-- Every change of state with the results that caused it.
CREATE TABLE transitions (
    id         INTEGER PRIMARY KEY,
    check_name TEXT NOT NULL REFERENCES checks (name),
    from_state TEXT NOT NULL,
    to_state   TEXT NOT NULL,
    at         BIGINT NOT NULL,
    -- JSON array of CauseResult, oldest first.
    cause      TEXT NOT NULL
);
CREATE INDEX transitions_by_check ON transitions (check_name, at);

-- Down-to-up spans. ended_at and closed_by stay NULL while the incident is open.
CREATE TABLE incidents (
    id         INTEGER PRIMARY KEY,
    check_name TEXT NOT NULL REFERENCES checks (name),
    started_at BIGINT NOT NULL,
    ended_at   BIGINT,
    opened_by  BIGINT NOT NULL REFERENCES transitions (id),
    closed_by  BIGINT REFERENCES transitions (id)
);
CREATE INDEX incidents_by_check ON incidents (check_name, started_at);
-- At most one open incident per check.
CREATE UNIQUE INDEX incidents_open ON incidents (check_name) WHERE ended_at IS NULL;

-- The outbox. A row is written in the same transaction as the transition that caused it
-- and is delivered at least once; idempotency_key lets receivers drop duplicates.
-- check_name is not a foreign key: test messages name no configured check.
CREATE TABLE notifications (
    id              INTEGER PRIMARY KEY,
    check_name      TEXT NOT NULL,
    channel         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    -- JSON AlertEvent: the payload handed to the channel.
    event           TEXT NOT NULL,
    transition_id   BIGINT REFERENCES transitions (id),
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    delivered_at    BIGINT,
    last_error      TEXT
);
-- The head of each (check, channel) queue, and the pending count per check.
CREATE INDEX notifications_pending ON notifications (check_name, channel, id) WHERE state = 'pending';
-- Due heads and the next wake-up time.
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE state = 'pending';
-- Dead letters per check, for `pulsecheck status`.
CREATE INDEX notifications_dead ON notifications (check_name) WHERE state = 'dead';
-- Retention of delivered rows.
CREATE INDEX notifications_delivered ON notifications (delivered_at) WHERE state = 'delivered';

-- Hourly aggregates of raw results, kept longer than the raw rows. Cancelled results are
-- not counted; percentiles are nearest-rank over the durations of up results.
CREATE TABLE hourly (
    check_name TEXT NOT NULL,
    -- Start of the hour, unix milliseconds.
    hour       BIGINT NOT NULL,
    count      BIGINT NOT NULL,
    up_count   BIGINT NOT NULL,
    mean_ms    REAL,
    p50_ms     REAL,
    p95_ms     REAL,
    p99_ms     REAL,
    PRIMARY KEY (check_name, hour)
);
CREATE INDEX hourly_by_time ON hourly (hour);

-- Small bookkeeping values, such as how far hourly aggregation has got.
CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value BIGINT NOT NULL
);
