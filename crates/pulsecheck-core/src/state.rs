//! The state machine: a pure function from the previous state of a check and a new
//! result to the next state and, when the state flips, the transition. Thresholds say
//! how many results in a row it takes to flip.

use serde::{Deserialize, Serialize};

use crate::outbox::CauseResult;

/// Where a check stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// No verdict yet (just added, or not enough results to cross a threshold).
    #[default]
    Unknown,
    Up,
    Down,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Up => "up",
            State::Down => "down",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        match text {
            "unknown" => Some(State::Unknown),
            "up" => Some(State::Up),
            "down" => Some(State::Down),
            _ => None,
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Results in a row needed to flip state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Failures in a row to go down.
    pub failure: u32,
    /// Successes in a row to go up.
    pub success: u32,
}

impl Default for Thresholds {
    /// One success to be up; two failures to be down, so a single dropped packet does
    /// not page anyone.
    fn default() -> Self {
        Thresholds { failure: 2, success: 1 }
    }
}

/// The persisted state of one check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckState {
    pub state: State,
    /// When `state` was entered (`None` while unknown).
    pub since: Option<jiff::Timestamp>,
    /// The current streak: results in a row with the same outcome, newest last, capped
    /// at the larger threshold. They become the transition's cause.
    pub streak: Vec<CauseResult>,
}

/// A change of state and the results that caused it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub at: jiff::Timestamp,
    pub cause: Vec<CauseResult>,
}

/// Folds one result into the state. Cancelled results do not count either way.
pub fn step(previous: &CheckState, result: CauseResult, thresholds: Thresholds) -> (CheckState, Option<Transition>) {
    use crate::result::Outcome;
    let up = match result.outcome {
        Outcome::Up => true,
        Outcome::Down => false,
        Outcome::Cancelled => return (previous.clone(), None),
    };
    let at = result.at;
    let mut next = previous.clone();
    let same_streak = next
        .streak
        .last()
        .is_some_and(|last| (last.outcome == Outcome::Up) == up);
    if !same_streak {
        next.streak.clear();
    }
    next.streak.push(result);
    let cap = thresholds.failure.max(thresholds.success).max(1) as usize;
    if next.streak.len() > cap {
        let excess = next.streak.len() - cap;
        next.streak.drain(..excess);
    }
    let (target, needed) = if up {
        (State::Up, thresholds.success.max(1))
    } else {
        (State::Down, thresholds.failure.max(1))
    };
    if next.state == target || next.streak.len() < needed as usize {
        return (next, None);
    }
    let transition = Transition {
        from: next.state,
        to: target,
        at,
        cause: next.streak.clone(),
    };
    next.state = target;
    next.since = Some(at);
    (next, Some(transition))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{Outcome, Reason};

    fn result(outcome: Outcome, second: i64) -> CauseResult {
        CauseResult {
            at: jiff::Timestamp::from_second(1_800_000_000 + second).unwrap(),
            outcome,
            reason: (outcome == Outcome::Down).then_some(Reason::Timeout),
            error: None,
            duration_ms: 1.0,
        }
    }

    fn run(outcomes: &[Outcome], thresholds: Thresholds) -> (CheckState, Vec<Transition>) {
        let mut state = CheckState::default();
        let mut transitions = Vec::new();
        for (i, outcome) in outcomes.iter().enumerate() {
            let (next, transition) = step(&state, result(*outcome, i as i64), thresholds);
            state = next;
            transitions.extend(transition);
        }
        (state, transitions)
    }

    use Outcome::{Cancelled as C, Down as D, Up as U};

    #[test]
    fn first_success_is_up_and_failures_need_the_threshold() {
        let (state, transitions) = run(&[U, D, U, D, D], Thresholds::default());
        assert_eq!(state.state, State::Down);
        let flips: Vec<(State, State)> = transitions.iter().map(|t| (t.from, t.to)).collect();
        assert_eq!(flips, vec![(State::Unknown, State::Up), (State::Up, State::Down)]);
        assert_eq!(transitions[1].cause.len(), 2, "the two failures caused it");
        assert_eq!(transitions[1].at, result(D, 4).at);
    }

    #[test]
    fn success_threshold_needs_a_streak() {
        let thresholds = Thresholds { failure: 1, success: 3 };
        let (state, transitions) = run(&[D, U, U, D, U, U, U], thresholds);
        assert_eq!(state.state, State::Up);
        let flips: Vec<(State, State)> = transitions.iter().map(|t| (t.from, t.to)).collect();
        assert_eq!(flips, vec![(State::Unknown, State::Down), (State::Down, State::Up)]);
        assert_eq!(transitions[1].cause.len(), 3);
    }

    #[test]
    fn cancelled_results_change_nothing_and_streaks_are_capped() {
        let (state, transitions) = run(&[U, C, C, U, U, U, U, U], Thresholds::default());
        assert_eq!(state.state, State::Up);
        assert_eq!(transitions.len(), 1);
        assert!(state.streak.len() <= 2);
    }

    #[test]
    fn no_transition_while_the_state_holds() {
        let (_, transitions) = run(&[D, D, D, D, D, D], Thresholds::default());
        assert_eq!(transitions.len(), 1);
    }
}
