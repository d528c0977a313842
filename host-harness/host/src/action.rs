//! What the host adds to the contract's types: which statuses are final, the API's spelling of
//! a status, and the API error an action error carries. (The component decides with its own
//! copy of the first; the host uses this one for what it shows.)

use crate::{ActionError, ActionStatus, ApiError};

impl ActionStatus {
    /// Whether the action is over: `Succeeded`, `Failed`, `TimeOut` or `Cancelled`.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::TimeOut | Self::Cancelled
        )
    }

    /// The status as the API spells it.
    pub fn as_api_str(&self) -> &str {
        match self {
            Self::Pending => "Pending",
            Self::InProgress => "InProgress",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::TimeOut => "TimeOut",
            Self::Cancelled => "Cancelled",
            Self::Other(other) => other,
        }
    }
}

impl ActionError {
    /// The API's status, `error.code`, `message` and correlation ID, when the API answered.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Unauthorized(api)
            | Self::NotFound(api)
            | Self::AlreadyPending(api)
            | Self::Upstream(api) => Some(api),
            Self::Forbidden(forbidden) => Some(&forbidden.api),
            Self::RateLimited(limited) => limited.api.as_ref(),
            Self::InvalidInput(_) | Self::Transport(_) | Self::Credentials(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_statuses_are_final_and_others_are_not() {
        let finals = [
            ActionStatus::Succeeded,
            ActionStatus::Failed,
            ActionStatus::TimeOut,
            ActionStatus::Cancelled,
        ];
        assert!(finals.iter().all(ActionStatus::is_final));
        let open = [
            ActionStatus::Pending,
            ActionStatus::InProgress,
            ActionStatus::Other("Queued".into()),
        ];
        assert!(!open.iter().any(ActionStatus::is_final));
        assert_eq!(ActionStatus::Other("Queued".into()).as_api_str(), "Queued");
        assert_eq!(ActionStatus::TimeOut.as_api_str(), "TimeOut");
    }
}
