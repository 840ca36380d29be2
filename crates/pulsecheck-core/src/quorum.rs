//! Location quorum: a check probed from several locations, declared down only when
//! `min_down` of them agree.
//!
//! Each location's owner judges its own results with the check's thresholds (a state
//! per location); the shared store tallies the locations' states in the write
//! transaction that changes one of them and decides the check-level state, so that one
//! check-level change is written (and alerted) once, whichever node wrote it. The same
//! transaction decides the check-level reminders, so a check that stays down reminds
//! once per interval however many locations and nodes write its results.

use std::time::Duration;

use crate::monitor::{acknowledgement_covers, reminder_due};
use crate::outbox::BoxFuture;
use crate::state::State;
use crate::storage::StorageError;

/// Second-opinion requests in a shared store: a location that saw a failure asks the
/// others to re-check at once (written by the store with the failing run).
pub trait SecondOpinions: Send + Sync + 'static {
    /// Takes (deletes and returns) the requests for `location` among `checks`, the
    /// quorum checks this node holds there, to run them now.
    fn take_rechecks<'a>(
        &'a self,
        location: &'a str,
        checks: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Recheck>, StorageError>>;

    /// Wake-ups for requests written for `location`, pushed by the store as they
    /// commit; `Ok(None)` when the store cannot push (then polling is all there is).
    fn subscribe<'a>(
        &'a self,
        location: &'a str,
    ) -> BoxFuture<'a, Result<Option<Box<dyn RecheckWakeups>>, StorageError>>;
}

/// A subscription to second-opinion wake-ups (see [`SecondOpinions::subscribe`]).
pub trait RecheckWakeups: Send {
    /// Returns when requests for the subscribed location may be waiting: one was
    /// written, or the subscription was interrupted and may have missed some. An
    /// error ends the subscription; subscribe again.
    fn next(&mut self) -> BoxFuture<'_, Result<(), StorageError>>;
}

/// A second-opinion request taken by the location that is to run it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recheck {
    pub check: String,
    /// When the failing location's write asked for it (that node's clock).
    pub requested_at: jiff::Timestamp,
}

/// `quorum: {locations: [...], min_down: N}` of a check.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Quorum {
    /// Where the check is probed from: non-empty, unique labels.
    pub locations: Vec<String>,
    /// How many locations must see it down for the check to be down (1..=locations).
    pub min_down: usize,
}

impl Quorum {
    /// The default `min_down`: a strict majority of `locations`.
    pub fn majority(locations: usize) -> usize {
        locations / 2 + 1
    }

    /// The check-level state after a location's state changed, given the check-level
    /// state `current`, how many of the quorum's locations are `down` now, and the state
    /// of the location that wrote (`writer`). `None`: no change.
    ///
    /// Down once `down >= min_down`; back up only when fewer are down *and* the writer is
    /// up, so a location still judging (unknown) cannot resolve an incident.
    pub fn decide(&self, current: State, down: usize, writer: State) -> Option<State> {
        let next = if down >= self.min_down {
            State::Down
        } else if writer == State::Up {
            State::Up
        } else {
            return None;
        };
        (next != current).then_some(next)
    }
}

/// What a run of a quorum check carries to the store: where it ran, the quorum, and
/// the reminder terms of the writing node's policy.
///
/// The run's notifications are candidates the store picks from by kind: `Down` for a
/// tally that takes the check down, `Resolved` for one that brings it back up (only
/// attached when the location is up, since only then can the tally resolve), and
/// `Reminder` when `reminder` is set and one is due. Every candidate is absent while
/// the check is muted (maintenance window, silence) at the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    pub location: String,
    pub quorum: Quorum,
    /// `None`: the check has no reminders, or they are muted at this run.
    pub reminder: Option<ReminderTerms>,
}

/// The reminder rules of a quorum check as the writing node's policy has them; the
/// store applies them to the check-level state it holds locked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReminderTerms {
    pub every: Duration,
    /// The start of the down span an operator acknowledged, if any.
    pub acknowledged: Option<jiff::Timestamp>,
}

impl ReminderTerms {
    /// Whether the check-level down span that started at `since`, last alerted at
    /// `last_alert` (`None`: never, e.g. its down alert was muted), reminds at `at`.
    /// The same rules as a plain check's reminders in the monitor.
    pub fn due(
        &self,
        since: Option<jiff::Timestamp>,
        last_alert: Option<jiff::Timestamp>,
        at: jiff::Timestamp,
    ) -> bool {
        !acknowledgement_covers(self.acknowledged, since) && reminder_due(last_alert, at, self.every)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_of_three_is_two() {
        assert_eq!(Quorum::majority(1), 1);
        assert_eq!(Quorum::majority(2), 2);
        assert_eq!(Quorum::majority(3), 2);
        assert_eq!(Quorum::majority(4), 3);
    }

    #[test]
    fn the_tally_flips_only_at_the_quorum() {
        let q = Quorum {
            locations: vec!["eu".into(), "us".into(), "ap".into()],
            min_down: 2,
        };
        assert_eq!(q.decide(State::Unknown, 0, State::Up), Some(State::Up));
        assert_eq!(q.decide(State::Up, 1, State::Down), None, "one location is no quorum");
        assert_eq!(q.decide(State::Up, 2, State::Down), Some(State::Down));
        assert_eq!(q.decide(State::Down, 3, State::Down), None);
        assert_eq!(q.decide(State::Down, 2, State::Up), None, "still two down");
        assert_eq!(q.decide(State::Down, 1, State::Up), Some(State::Up));
        assert_eq!(
            q.decide(State::Down, 1, State::Unknown),
            None,
            "an unknown location does not resolve"
        );
        assert_eq!(q.decide(State::Unknown, 1, State::Down), None);
    }

    #[test]
    fn reminder_terms_follow_the_interval_and_the_acknowledgement() {
        let at = |minutes: i64| jiff::Timestamp::from_second(1_767_225_600 + minutes * 60).unwrap();
        let terms = ReminderTerms {
            every: Duration::from_secs(600),
            acknowledged: None,
        };
        assert!(terms.due(Some(at(0)), None, at(1)), "never alerted: due at once");
        assert!(!terms.due(Some(at(0)), Some(at(0)), at(9)));
        assert!(terms.due(Some(at(0)), Some(at(0)), at(10)));
        let acked = ReminderTerms {
            acknowledged: Some(at(0)),
            ..terms.clone()
        };
        assert!(
            !acked.due(Some(at(0)), Some(at(0)), at(30)),
            "this span is acknowledged"
        );
        assert!(acked.due(Some(at(20)), Some(at(20)), at(30)), "a later span is not");
    }
}
