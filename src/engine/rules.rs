//! Which revision of kairos's run semantics a run follows.
//!
//! A ledger must go on replaying and resuming byte for byte after kairos changes how it
//! renders or decides something. So such a change is a new revision here, a run records the
//! revision it follows in its `RunStart` (`rules`), and a replay or a resume follows the
//! recorded one. Ledgers without the field were written by the first release: [`Rules::First`].
//! `docs/ledger.md` lists the revisions.

use crate::workflow::expr::TextStyle;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rules {
    /// The first release (0.1): templates write values that are not text as minijinja does
    /// (`None`, `True`, `['a']`); a fan-out node whose instances were all denied or succeeded
    /// counts as succeeded.
    First,
    /// Templates write values that are not text JSON-style (`null`, `true`, `["a"]`); a
    /// fan-out node with an instance denied by an enforced policy (and none failed) is denied.
    Second,
    /// Every attempt of a call counts against `max_calls`, retries included (granted in commit
    /// order, then instance order, then attempt order); a retry beyond a limit is refused.
    #[default]
    Third,
}

impl Rules {
    /// The revision new runs follow.
    pub const CURRENT: Rules = Rules::Third;

    /// The number a ledger's `RunStart` records (none for the first release, which recorded
    /// nothing).
    pub fn recorded(self) -> Option<u64> {
        match self {
            Rules::First => None,
            Rules::Second => Some(2),
            Rules::Third => Some(3),
        }
    }

    /// The revision of a ledger whose `RunStart` records `rules` (`None`: the field is absent).
    pub fn from_recorded(rules: Option<u64>) -> Result<Self, String> {
        match rules {
            None | Some(1) => Ok(Rules::First),
            Some(2) => Ok(Rules::Second),
            Some(3) => Ok(Rules::Third),
            Some(n) => Err(format!(
                "the run follows rules revision {n} (written by a newer kairos?)"
            )),
        }
    }

    /// How templates write values that are not text.
    pub fn text_style(self) -> TextStyle {
        match self {
            Rules::First => TextStyle::Legacy,
            Rules::Second | Rules::Third => TextStyle::Json,
        }
    }

    /// Whether a fan-out node with a denied instance (and none failed) is itself denied.
    pub fn denied_instances_deny_the_node(self) -> bool {
        self >= Rules::Second
    }

    /// Whether a retry is a call that `max_calls` counts.
    pub fn retries_are_calls(self) -> bool {
        self >= Rules::Third
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_revisions_read_back() {
        for rules in [Rules::First, Rules::Second, Rules::Third] {
            assert_eq!(Rules::from_recorded(rules.recorded()), Ok(rules));
        }
        assert_eq!(Rules::default(), Rules::CURRENT);
        assert!(
            Rules::from_recorded(Some(99))
                .unwrap_err()
                .contains("newer kairos")
        );
    }
}
