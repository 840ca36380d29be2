//! Maintenance windows: spans of time in which a check's alerts are muted.

/// How often a maintenance window repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recurrence {
    /// Every 24 hours from `start`.
    Daily,
    /// Every 7 × 24 hours from `start`.
    Weekly,
}

impl Recurrence {
    /// The length of one repetition, in nanoseconds.
    pub fn period_nanos(self) -> i128 {
        let day = 86_400 * 1_000_000_000i128;
        match self {
            Recurrence::Daily => day,
            Recurrence::Weekly => 7 * day,
        }
    }
}

/// A span of time in which alerts are muted (results are still recorded).
///
/// One-off: from `start` to `end`. Recurring (`every: daily` or `weekly`): the same span
/// repeats every 24 h or 7 × 24 h from `start`, for ever. Repetition is in absolute time
/// (UTC), so a window written in local time shifts by an hour across DST changes.
#[derive(Clone, Debug, PartialEq)]
pub struct MaintenanceWindow {
    pub name: String,
    pub start: jiff::Timestamp,
    /// End of the first (or only) occurrence.
    pub end: jiff::Timestamp,
    pub every: Option<Recurrence>,
    /// Checks by name; with `groups`, a check listed in either is covered.
    pub checks: Option<Vec<String>>,
    /// Checks by group. `checks` and `groups` both `None`: every check.
    pub groups: Option<Vec<String>>,
}

impl MaintenanceWindow {
    /// Whether the window mutes the check named `check` (in `group`) at `at`.
    pub fn covers(&self, check: &str, group: Option<&str>, at: jiff::Timestamp) -> bool {
        self.applies_to(check, group) && self.active_at(at)
    }

    /// Whether the check named `check` (in `group`) is one of the checks this window is for.
    pub fn applies_to(&self, check: &str, group: Option<&str>) -> bool {
        if self.checks.is_none() && self.groups.is_none() {
            return true;
        }
        let by_name = self
            .checks
            .as_ref()
            .is_some_and(|names| names.iter().any(|n| n == check));
        let by_group = match (&self.groups, group) {
            (Some(groups), Some(group)) => groups.iter().any(|g| g == group),
            _ => false,
        };
        by_name || by_group
    }

    /// Whether the window (or one of its repetitions) is open at `at`. Start inclusive,
    /// end exclusive.
    pub fn active_at(&self, at: jiff::Timestamp) -> bool {
        let start = self.start.as_nanosecond();
        let length = self.end.as_nanosecond() - start;
        let since = at.as_nanosecond() - start;
        if since < 0 {
            return false;
        }
        match self.every {
            None => since < length,
            Some(every) => since % every.period_nanos() < length,
        }
    }
}
