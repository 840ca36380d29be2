-- pulsecheck store schema, version 3: what the status page and the REST API read and
-- change (see pulsecheck_core::storage::console). Same conventions as 0001 and 0002:
-- unix milliseconds, integer microseconds, JSON as TEXT, portable SQL.

-- Who owns a check's definition: the config file or the API.
ALTER TABLE checks ADD COLUMN origin TEXT NOT NULL DEFAULT 'file' CHECK (origin IN ('file', 'api'));
-- The check list filters by group or state and pages by name; API checks are few.
CREATE INDEX checks_by_group ON checks (check_group, name);
CREATE INDEX checks_by_state ON checks (state, name);
CREATE INDEX checks_api ON checks (name) WHERE origin = 'api';
-- The status page's counts by group and state, read from the index alone (10,000 checks
-- in about 2 ms instead of 11 with a lookup of each row).
CREATE INDEX checks_group_counts ON checks (active, check_group, state);

-- Per-phase means of an hour's up runs (microseconds; NULL when no up run measured the
-- phase, and for hours aggregated before version 3), for the latency chart by phase.
ALTER TABLE hourly ADD COLUMN dns_us INTEGER;
ALTER TABLE hourly ADD COLUMN connect_us INTEGER;
ALTER TABLE hourly ADD COLUMN tls_us INTEGER;
ALTER TABLE hourly ADD COLUMN ttfb_us INTEGER;
ALTER TABLE hourly ADD COLUMN transfer_us INTEGER;

-- Checks created through the API, kept so that they survive a restart. definition is the
-- check exactly as accepted (JSON, the fields of a check in the config file).
CREATE TABLE api_checks (
    name       TEXT PRIMARY KEY NOT NULL,
    definition TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- When an operator acknowledged an incident (reminders stop).
ALTER TABLE incidents ADD COLUMN acknowledged_at BIGINT;

-- Operators' updates on an incident, oldest first.
CREATE TABLE incident_updates (
    id          INTEGER PRIMARY KEY,
    incident_id BIGINT NOT NULL REFERENCES incidents (id),
    at          BIGINT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('investigating', 'identified', 'monitoring', 'resolved')),
    message     TEXT NOT NULL
);
CREATE INDEX incident_updates_by_incident ON incident_updates (incident_id, at, id);

-- A check's alerts are held back until `until`. One row per check; a past `until` is no
-- silence.
CREATE TABLE silences (
    check_name TEXT PRIMARY KEY NOT NULL,
    until      BIGINT NOT NULL,
    reason     TEXT
);

-- Outbox pages, newest first: of one check, and of dead or pending rows (a few among
-- many delivered ones).
CREATE INDEX notifications_by_check ON notifications (check_name, id);
CREATE INDEX notifications_by_state ON notifications (state, id);
