//! Location quorum: a check probed from several locations, declared down only when
//! `min_down` of them agree.
//!
//! Each location's owner judges its own results with the check's thresholds (a state
//! per location); the shared store tallies the locations' states in the write
//! transaction that changes one of them and decides the check-level state, so that one
//! check-level change is written (and alerted) once, whichever node wrote it.

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
    ) -> BoxFuture<'a, Result<Vec<String>, StorageError>>;
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

/// What a run of a quorum check carries to the store: where it ran and the quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    pub location: String,
    pub quorum: Quorum,
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
}
