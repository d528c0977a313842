//! How a simulated action's status moves from `Pending` through `InProgress` to a final one:
//! by the looks clients take at it (GETs and listings), or by the time since its creation,
//! as a device reports back whether or not anyone asks.

use std::time::Duration;

/// How a new action's status moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progression {
    /// `Pending` for ever.
    StayPending,
    /// `InProgress` after `to_in_progress` polls, then `final_status` after `to_final` polls.
    /// A GET (`GET /api/machineactions/{id}`) is one poll of the action, and so is a listing
    /// (`GET /api/machineactions`) of each action it returns.
    Advance {
        /// Polls answered `Pending`.
        to_in_progress: u32,
        /// Polls (counted from creation) until the final status.
        to_final: u32,
        /// `Succeeded`, `Failed`, `TimeOut` or `Cancelled`.
        final_status: String,
    },
    /// By time, however often or rarely the action is looked at: `Pending` when created,
    /// `InProgress` from `after / 2`, `final_status` once `after` has passed.
    Settle {
        /// How long after creation the action is final.
        after: Duration,
        /// `Succeeded`, `Failed`, `TimeOut` or `Cancelled`.
        final_status: String,
    },
}

impl Default for Progression {
    fn default() -> Self {
        Self::Advance {
            to_in_progress: 1,
            to_final: 2,
            final_status: "Succeeded".into(),
        }
    }
}

impl Progression {
    /// The status of an action, not yet final, that has been polled `polls` times and was
    /// created `age` ago; `None` when it keeps the status it has.
    pub fn status(&self, polls: u32, age: Duration) -> Option<&str> {
        match self {
            Self::StayPending => None,
            Self::Advance {
                to_in_progress,
                to_final,
                final_status,
            } => Some(if polls >= *to_final {
                final_status
            } else if polls >= *to_in_progress {
                "InProgress"
            } else {
                "Pending"
            }),
            Self::Settle {
                after,
                final_status,
            } => Some(if age >= *after {
                final_status
            } else if age >= *after / 2 {
                "InProgress"
            } else {
                "Pending"
            }),
        }
    }

    /// Whether the status depends on time alone (and so is due before anything that reads
    /// it, poll or not).
    pub fn by_time(&self) -> bool {
        matches!(self, Self::Settle { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settling_goes_by_time_alone() {
        let settle = Progression::Settle {
            after: Duration::from_millis(200),
            final_status: "Failed".into(),
        };
        let at = |millis| settle.status(0, Duration::from_millis(millis));
        assert_eq!(at(0), Some("Pending"));
        assert_eq!(at(99), Some("Pending"));
        assert_eq!(at(100), Some("InProgress"));
        assert_eq!(at(200), Some("Failed"));
        assert_eq!(settle.status(1000, Duration::ZERO), Some("Pending"));
    }
}
