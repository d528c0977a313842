//! What the host adds to the contract's types, for showing them: the API's spelling of a status,
//! the API error an action error carries, the WIT name of an error's case, and the host's own
//! name for the API a permit is for. (Which statuses
//! are final is the component's to say: it tells the host in each progress update.)

use crate::bindings::defender::endpoint::rate_limit::Api as WitApi;
use crate::rate_limit::Api;
use crate::{ActionError, ActionStatus, ApiError};

impl From<WitApi> for Api {
    fn from(api: WitApi) -> Self {
        match api {
            WitApi::CreateAction => Api::CreateAction,
            WitApi::GetAction => Api::GetAction,
            WitApi::ListActions => Api::ListActions,
            WitApi::CancelAction => Api::CancelAction,
            WitApi::FileMachines => Api::FileMachines,
        }
    }
}

impl ActionStatus {
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

    /// How many bytes of text the error carries: what a guest could make the host hold or
    /// print, for bounding it.
    pub fn text_bytes(&self) -> usize {
        let api_bytes = |api: &ApiError| {
            let field = |f: &Option<String>| f.as_ref().map_or(0, String::len);
            field(&api.code)
                .saturating_add(field(&api.message))
                .saturating_add(field(&api.target))
        };
        match self {
            Self::InvalidInput(invalid) => {
                invalid.field.len().saturating_add(invalid.message.len())
            }
            Self::Forbidden(forbidden) => forbidden
                .required_permissions
                .len()
                .saturating_add(api_bytes(&forbidden.api)),
            Self::Transport(message) | Self::Credentials(message) => message.len(),
            other => other.api().map_or(0, api_bytes),
        }
    }

    /// The WIT name of the error's case, e.g. `not-found`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidInput(_) => "invalid-input",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not-found",
            Self::AlreadyPending(_) => "already-pending",
            Self::RateLimited(_) => "rate-limited",
            Self::Upstream(_) => "upstream",
            Self::Transport(_) => "transport",
            Self::Credentials(_) => "credentials",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_spelled_as_the_api_spells_them() {
        assert_eq!(ActionStatus::InProgress.as_api_str(), "InProgress");
        assert_eq!(ActionStatus::TimeOut.as_api_str(), "TimeOut");
        assert_eq!(ActionStatus::Other("Queued".into()).as_api_str(), "Queued");
    }

    #[test]
    fn an_error_names_its_case_and_carries_the_apis_fields_when_the_api_answered() {
        let api = ApiError {
            status: 404,
            code: Some("ResourceNotFound".into()),
            message: None,
            target: Some("43f4".into()),
        };
        let not_found = ActionError::NotFound(api.clone());
        assert_eq!(
            (not_found.kind(), not_found.api()),
            ("not-found", Some(&api))
        );
        assert_eq!(
            not_found.text_bytes(),
            "ResourceNotFound".len() + "43f4".len()
        );
        let transport = ActionError::Transport("connection-refused".into());
        assert_eq!((transport.kind(), transport.api()), ("transport", None));
        assert_eq!(transport.text_bytes(), "connection-refused".len());
    }
}
