-- pulsecheck store schema, version 2: compact raw results and aggregates.
--
-- Version 1 stored 130-160 bytes per result (check name repeated in every row, REAL
-- durations, text codes, a rowid table plus two indexes). Version 2 stores about a third:
-- * checks are numbered once in check_ids; results and aggregates carry the number;
-- * results and aggregates are WITHOUT ROWID tables clustered on (check_id, time), so
--   the key is the only index;
-- * durations are integer microseconds; outcome, probe, reason and a "keep" flag share
--   one integer; the phases share one blob of varints; the IP address takes 4 or 16
--   bytes and the HTTP version a code;
-- * the keep flag marks results that caused a transition: they, and down results, stay
--   for the full raw retention while other results go after the shorter up window.
-- Existing rows are converted. Two version-1 results of one check in the same
-- millisecond keep only the first (version 2's key is the check and the millisecond).

CREATE TABLE check_ids (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
INSERT INTO check_ids (name) SELECT name FROM checks ORDER BY name;
INSERT OR IGNORE INTO check_ids (name) SELECT DISTINCT check_name FROM hourly ORDER BY check_name;

-- Codes (see codes.rs; never renumbered):
-- * kind packs four small fields so that a typical up result stores 0 (SQLite keeps
--   the integers 0 and 1 in the record header alone):
--   bits 0-1 outcome (0 up, 1 down, 2 cancelled); bit 2 keep (the result is part of a
--   transition's cause: retention keeps it as long as down results); bits 3-5 probe
--   (0 http, 1 tcp, 2 tls, 3 dns, 4 icmp, 5 none); bits 6-9 reason (0 none, 1 timeout,
--   2 refused, 3 reset, 4 dns, 5 tls, 6 certificate, 7 status, 8 body, 9 latency,
--   10 protocol, 11 invalid_target, 12 internal);
-- * phases: NULL when no phase was measured, else a blob: one byte of flags (bit 0 dns,
--   1 connect, 2 tls, 3 ttfb, 4 transfer, 5 rtt) then, for each flag set in that order,
--   the microseconds as an unsigned LEB128 varint. Rows converted from version 1 hold
--   the text "dns,connect,tls,ttfb,transfer,rtt" (empty for absent) instead;
-- * http_version: 9 HTTP/0.9, 10 HTTP/1.0, 11 HTTP/1.1, 20 HTTP/2, 30 HTTP/3, else the
--   text (the column is BLOB so that SQLite converts neither).
CREATE TABLE results_v2 (
    check_id       INTEGER NOT NULL,
    -- Unix milliseconds.
    started_at     INTEGER NOT NULL,
    kind           INTEGER NOT NULL,
    http_status    INTEGER,
    duration_us    INTEGER NOT NULL,
    queue_us       INTEGER NOT NULL,
    phases         BLOB,
    -- 4 or 16 bytes (rows converted from version 1 keep the text).
    ip             BLOB,
    http_version   BLOB,
    redirects      INTEGER NOT NULL DEFAULT 0,
    cert_days_left INTEGER,
    error          TEXT,
    PRIMARY KEY (check_id, started_at)
) WITHOUT ROWID;

INSERT OR IGNORE INTO results_v2
    (check_id, started_at, kind, http_status, duration_us, queue_us, phases, ip, http_version,
     redirects, cert_days_left, error)
SELECT c.id, r.started_at,
       CASE r.outcome WHEN 'up' THEN 0 WHEN 'down' THEN 1 ELSE 2 END
       + 8 * CASE r.probe WHEN 'http' THEN 0 WHEN 'tcp' THEN 1 WHEN 'tls' THEN 2 WHEN 'dns' THEN 3
                          WHEN 'icmp' THEN 4 ELSE 5 END
       + 64 * CASE r.reason WHEN 'timeout' THEN 1 WHEN 'refused' THEN 2 WHEN 'reset' THEN 3
                            WHEN 'dns' THEN 4 WHEN 'tls' THEN 5 WHEN 'certificate' THEN 6
                            WHEN 'status' THEN 7 WHEN 'body' THEN 8 WHEN 'latency' THEN 9
                            WHEN 'protocol' THEN 10 WHEN 'invalid_target' THEN 11
                            WHEN 'internal' THEN 12 ELSE 0 END,
       r.http_status,
       CAST(ROUND(r.duration_ms * 1000) AS INTEGER),
       CAST(ROUND(r.queue_ms * 1000) AS INTEGER),
       CASE WHEN COALESCE(r.dns_ms, r.connect_ms, r.tls_ms, r.ttfb_ms, r.transfer_ms, r.rtt_ms) IS NULL
            THEN NULL
            ELSE COALESCE(CAST(CAST(ROUND(r.dns_ms * 1000) AS INTEGER) AS TEXT), '') || ','
                 || COALESCE(CAST(CAST(ROUND(r.connect_ms * 1000) AS INTEGER) AS TEXT), '') || ','
                 || COALESCE(CAST(CAST(ROUND(r.tls_ms * 1000) AS INTEGER) AS TEXT), '') || ','
                 || COALESCE(CAST(CAST(ROUND(r.ttfb_ms * 1000) AS INTEGER) AS TEXT), '') || ','
                 || COALESCE(CAST(CAST(ROUND(r.transfer_ms * 1000) AS INTEGER) AS TEXT), '') || ','
                 || COALESCE(CAST(CAST(ROUND(r.rtt_ms * 1000) AS INTEGER) AS TEXT), '')
       END,
       r.ip,
       CASE r.http_version WHEN 'HTTP/0.9' THEN 9 WHEN 'HTTP/1.0' THEN 10 WHEN 'HTTP/1.1' THEN 11
                           WHEN 'HTTP/2' THEN 20 WHEN 'HTTP/3' THEN 30 ELSE r.http_version END,
       r.redirects, r.cert_days_left, r.error
FROM results r JOIN check_ids c ON c.name = r.check_name
ORDER BY c.id, r.started_at, r.id;

DROP TABLE results;
ALTER TABLE results_v2 RENAME TO results;

-- One check's results in one hour (unix ms of its start).
CREATE TABLE hourly_v2 (
    check_id INTEGER NOT NULL,
    hour     INTEGER NOT NULL,
    count    INTEGER NOT NULL,
    up_count INTEGER NOT NULL,
    mean_us  INTEGER,
    p50_us   INTEGER,
    p95_us   INTEGER,
    p99_us   INTEGER,
    PRIMARY KEY (check_id, hour)
) WITHOUT ROWID;
INSERT INTO hourly_v2 (check_id, hour, count, up_count, mean_us, p50_us, p95_us, p99_us)
SELECT c.id, h.hour, h.count, h.up_count,
       CAST(ROUND(h.mean_ms * 1000) AS INTEGER), CAST(ROUND(h.p50_ms * 1000) AS INTEGER),
       CAST(ROUND(h.p95_ms * 1000) AS INTEGER), CAST(ROUND(h.p99_ms * 1000) AS INTEGER)
FROM hourly h JOIN check_ids c ON c.name = h.check_name
ORDER BY c.id, h.hour;
DROP TABLE hourly;
ALTER TABLE hourly_v2 RENAME TO hourly;

-- One check's results in one UTC day (unix ms of its start), summed from hourly rows:
-- the 90-day bar, kept longer than the hourly rows.
CREATE TABLE daily (
    check_id INTEGER NOT NULL,
    day      INTEGER NOT NULL,
    count    INTEGER NOT NULL,
    up_count INTEGER NOT NULL,
    mean_us  INTEGER,
    PRIMARY KEY (check_id, day)
) WITHOUT ROWID;
INSERT INTO daily (check_id, day, count, up_count, mean_us)
SELECT check_id, (hour / 86400000) * 86400000, SUM(count), SUM(up_count),
       CAST(ROUND(SUM(mean_us * up_count) * 1.0 / NULLIF(SUM(CASE WHEN mean_us IS NOT NULL THEN up_count END), 0)) AS INTEGER)
FROM hourly GROUP BY check_id, hour / 86400000;
