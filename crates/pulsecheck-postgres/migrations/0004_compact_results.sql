-- Smaller results (issue 10: database growth per hour). Same columns and the same
-- stored format as SQLite's (pulsecheck_core::storage::encoding); what changes is how
-- PostgreSQL lays a row out:
-- * columns ordered by alignment, 8-byte ones first, so no row pads between columns;
-- * check_id INTEGER (a row is written with the check's number; the store refuses a
--   number beyond INTEGER with an error instead of wrapping, and check_ids stops
--   numbering there), kind, http_status, http_version and redirects SMALLINT (kind uses
--   10 bits, statuses are 100-999), cert_days_left INTEGER;
-- * the time index becomes BRIN: results are inserted in time order, so a few hundred
--   bytes summarise what a btree needed about 20 bytes a row for. Aggregation and
--   retention reach an hour's rows through it (bitmap scans) or through the primary key.
-- The table is rewritten in time order (the BRIN index relies on it); a row whose value
-- does not fit fails the migration rather than being changed.

ALTER TABLE results RENAME TO results_before_0004;

CREATE TABLE results (
    started_at        BIGINT NOT NULL,
    duration_us       BIGINT NOT NULL,
    queue_us          BIGINT NOT NULL,
    check_id          INTEGER NOT NULL,
    cert_days_left    INTEGER,
    kind              SMALLINT NOT NULL,
    http_status       SMALLINT,
    http_version      SMALLINT,
    redirects         SMALLINT NOT NULL DEFAULT 0,
    phases            BYTEA,
    ip                BYTEA,
    error             TEXT,
    http_version_text TEXT,
    location          TEXT
);

INSERT INTO results (started_at, duration_us, queue_us, check_id, cert_days_left, kind, http_status,
                     http_version, redirects, phases, ip, error, http_version_text, location)
SELECT started_at, duration_us, queue_us, check_id, cert_days_left, kind, http_status,
       http_version, redirects, phases, ip, error, http_version_text, location
FROM results_before_0004
ORDER BY started_at, check_id;

DROP TABLE results_before_0004;

-- Built after the copy: one sorted pass, and packed leaf pages.
ALTER TABLE results ADD CONSTRAINT results_pkey PRIMARY KEY (check_id, started_at);
CREATE INDEX results_by_time ON results USING brin (started_at);

ALTER TABLE check_ids ALTER COLUMN id SET MAXVALUE 2147483647;
