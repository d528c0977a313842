//! What the simulated tenant holds: its actions and how they progress, the devices that have seen
//! each file, and the answers scripted by a test.

use super::answers::Reply;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::time::SystemTime;

/// How a new action's status moves as it is polled (`GET /api/machineactions/{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progression {
    /// `Pending` for ever.
    StayPending,
    /// `InProgress` after `to_in_progress` polls, then `final_status` after `to_final` polls.
    Advance {
        /// Polls answered `Pending`.
        to_in_progress: u32,
        /// Polls (counted from creation) until the final status.
        to_final: u32,
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

/// One simulated action.
struct Action {
    json: Value,
    polls: u32,
    /// The first GETs of a new action that answer 404.
    hidden_polls: u32,
}

/// The simulated API's state: one tenant's actions, files and scripted answers.
#[derive(Default)]
pub struct ApiState {
    actions: Vec<Action>,
    /// Indexes into `actions` by device, so a busy simulator (the benchmark's) stays fast.
    by_machine: HashMap<String, Vec<usize>>,
    pub(super) progression: Progression,
    pub(super) hide_new_actions: u32,
    pub(super) script: VecDeque<Reply>,
    pub(super) machine_replies: HashMap<String, Reply>,
    pub(super) files: HashMap<String, Vec<String>>,
}

/// Whether an action status is final.
pub fn is_final(status: &str) -> bool {
    matches!(status, "Succeeded" | "Failed" | "TimeOut" | "Cancelled")
}

fn status_of(json: &Value) -> &str {
    json["status"].as_str().unwrap_or_default()
}

impl ApiState {
    /// Records a new action.
    pub fn add(&mut self, json: Value) {
        let machine = json["machineId"].as_str().unwrap_or_default().to_owned();
        self.by_machine
            .entry(machine)
            .or_default()
            .push(self.actions.len());
        self.actions.push(Action {
            json,
            polls: 0,
            hidden_polls: self.hide_new_actions,
        });
    }

    /// Whether the device has an action of this component's type that is not final.
    pub fn has_pending(&self, machine_id: &str) -> bool {
        self.of_machine(machine_id)
            .any(|a| a.json["type"] == "StopAndQuarantineFile" && !is_final(status_of(&a.json)))
    }

    fn of_machine(&self, machine_id: &str) -> impl Iterator<Item = &Action> {
        self.by_machine
            .get(machine_id)
            .into_iter()
            .flatten()
            .map(|&index| &self.actions[index])
    }

    /// Answers a poll: `None` for an unknown (or still hidden) action; otherwise the action,
    /// moved along its progression.
    pub fn poll(&mut self, id: &str) -> Option<Value> {
        let progression = self.progression.clone();
        let action = self.actions.iter_mut().find(|a| a.json["id"] == id)?;
        if action.hidden_polls > 0 {
            action.hidden_polls -= 1;
            return None;
        }
        if is_final(status_of(&action.json)) {
            return Some(action.json.clone());
        }
        action.polls += 1;
        if let Progression::Advance {
            to_in_progress,
            to_final,
            final_status,
        } = progression
        {
            let status = if action.polls >= to_final {
                final_status
            } else if action.polls >= to_in_progress {
                "InProgress".to_owned()
            } else {
                "Pending".to_owned()
            };
            set_status(&mut action.json, &status);
        }
        Some(action.json.clone())
    }

    /// Cancels an action: `Err(None)` if unknown, `Err(Some(status))` if already final.
    pub fn cancel(&mut self, id: &str, comment: &str) -> Result<Value, Option<String>> {
        let action = self
            .actions
            .iter_mut()
            .find(|a| a.json["id"] == id)
            .ok_or(None)?;
        let status = status_of(&action.json).to_owned();
        if is_final(&status) {
            return Err(Some(status));
        }
        let now = now();
        set_status(&mut action.json, "Cancelled");
        action.json["cancellationRequestor"] = json!(super::REQUESTOR);
        action.json["cancellationComment"] = json!(comment);
        action.json["cancellationDateTimeUtc"] = json!(now);
        Ok(action.json.clone())
    }

    /// The actions matching a `$filter` of `field eq 'value'` terms, newest first.
    pub fn list(&self, terms: &[(String, String)]) -> Vec<Value> {
        let mut found: Vec<Value> = self
            .actions
            .iter()
            .filter(|a| terms.iter().all(|(k, v)| a.json[k.as_str()] == v.as_str()))
            .map(|a| a.json.clone())
            .collect();
        found.reverse();
        found
    }

    /// How many actions exist.
    pub fn action_count(&self) -> usize {
        self.actions.len()
    }
}

fn set_status(json: &mut Value, status: &str) {
    json["status"] = json!(status);
    json["lastUpdateDateTimeUtc"] = json!(now());
}

/// The current time as the API writes it.
pub fn now() -> String {
    humantime::format_rfc3339_micros(SystemTime::now()).to_string()
}
