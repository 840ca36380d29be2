-- Reminders of quorum checks: the check-level state lives only here, so the write
-- transaction that holds the check's row locked (see 0002) also decides its reminders.
-- When the check-level state last alerted (its down alert or a reminder), unix ms; NULL
-- when nothing was sent for the current down span (its alert was muted), so a reminder
-- is due at once. Only quorum checks use it.
ALTER TABLE checks ADD COLUMN last_alert_at BIGINT;

-- Quorum checks already down count their reminders from the upgrade, not from their
-- (unknown) last alert: no burst of reminders on upgrade.
UPDATE checks SET last_alert_at = (extract(epoch from clock_timestamp()) * 1000)::bigint
WHERE state = 'down'
  AND EXISTS (SELECT 1 FROM location_states s WHERE s.check_name = checks.name);
