//! What the simulated tenant holds: its actions and how they progress, the devices that have seen
//! each file, and the answers scripted by a test.

use super::answers::{PageReply, Reply};
use super::clock::Clock;
use super::filter::Filter;
use super::paging::PageSize;
use super::progression::Progression;
use super::retry_after::RetryAfterFormat;
use super::route_script::RouteScripts;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// One simulated action.
struct Action {
    json: Value,
    /// When it was created on the host's clock, for [`Progression::Settle`] and the listing lag.
    created: Instant,
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
    /// How long a new action stays out of `GET /api/machineactions`.
    pub(super) listing_lag: Duration,
    /// The clock the API writes its times with.
    pub(super) clock: Clock,
    /// How the budget's 429 writes `Retry-After`.
    pub(super) retry_after_format: RetryAfterFormat,
    /// The answers scripted by method and path ([`crate::Simulator::script_route`]).
    pub(super) routes: RouteScripts,
    pub(super) page_script: VecDeque<PageReply>,
    pub(super) machine_replies: HashMap<String, Reply>,
    pub(super) files: HashMap<String, Vec<String>>,
    pub(super) page_size: PageSize,
    /// Members every new action carries besides the usual ones.
    pub(super) extra_members: Map<String, Value>,
}

/// Whether an action status is final.
pub fn is_final(status: &str) -> bool {
    matches!(status, "Succeeded" | "Failed" | "TimeOut" | "Cancelled")
}

fn status_of(json: &Value) -> &str {
    json["status"].as_str().unwrap_or_default()
}

/// Brings a not-yet-final action's status up to date; a poll counts as one more look first.
fn look(action: &mut Action, progression: &Progression, clock: Clock, polled: bool, now: Instant) {
    if is_final(status_of(&action.json)) || !(polled || progression.by_time()) {
        return;
    }
    if polled {
        action.polls = action.polls.saturating_add(1);
    }
    let age = now.saturating_duration_since(action.created);
    if let Some(status) = progression.status(action.polls, age) {
        set_status(&mut action.json, status, clock);
    }
}

impl ApiState {
    /// Records a new action, with the extra members; returns it as stored.
    pub fn add(&mut self, mut json: Value) -> Value {
        if let Value::Object(members) = &mut json {
            for (name, value) in &self.extra_members {
                members.insert(name.clone(), value.clone());
            }
        }
        let machine = json["machineId"].as_str().unwrap_or_default().to_owned();
        self.by_machine
            .entry(machine)
            .or_default()
            .push(self.actions.len());
        self.actions.push(Action {
            json: json.clone(),
            created: Instant::now(),
            polls: 0,
            hidden_polls: self.hide_new_actions,
        });
        json
    }

    /// Whether the device has an action of this component's type that is not final.
    pub fn has_pending(&mut self, machine_id: &str) -> bool {
        let now = Instant::now();
        let indexes = self.by_machine.get(machine_id).cloned().unwrap_or_default();
        indexes.iter().any(|&index| {
            self.actions.get_mut(index).is_some_and(|action| {
                look(action, &self.progression, self.clock, false, now);
                action.json["type"] == "StopAndQuarantineFile" && !is_final(status_of(&action.json))
            })
        })
    }

    /// Answers a poll: `None` for an unknown (or still hidden) action; otherwise the action,
    /// moved along its progression.
    pub fn poll(&mut self, id: &str) -> Option<Value> {
        let action = self.actions.iter_mut().find(|a| a.json["id"] == id)?;
        if action.hidden_polls > 0 {
            action.hidden_polls -= 1;
            return None;
        }
        look(action, &self.progression, self.clock, true, Instant::now());
        Some(action.json.clone())
    }

    /// Cancels an action: `Err(None)` if unknown, `Err(Some(status))` if already final.
    pub fn cancel(&mut self, id: &str, comment: &str) -> Result<Value, Option<String>> {
        let action = self
            .actions
            .iter_mut()
            .find(|a| a.json["id"] == id)
            .ok_or(None)?;
        look(action, &self.progression, self.clock, false, Instant::now());
        let status = status_of(&action.json).to_owned();
        if is_final(&status) {
            return Err(Some(status));
        }
        let now = self.clock.written_now();
        set_status(&mut action.json, "Cancelled", self.clock);
        action.json["cancellationRequestor"] = json!(super::REQUESTOR);
        action.json["cancellationComment"] = json!(comment);
        action.json["cancellationDateTimeUtc"] = json!(now);
        Ok(action.json.clone())
    }

    /// The actions matching `filter`, newest first, as indexes for [`ApiState::show_listed`].
    /// Hidden new actions are listed (only a GET by ID misses them), but not those created less
    /// than the listing lag ago.
    pub fn matching(&mut self, filter: &Filter) -> Vec<usize> {
        let now = Instant::now();
        let mut found = Vec::new();
        for (index, action) in self.actions.iter_mut().enumerate().rev() {
            look(action, &self.progression, self.clock, false, now);
            let listed = now.saturating_duration_since(action.created) >= self.listing_lag;
            if listed && filter.matches(&action.json) {
                found.push(index);
            }
        }
        found
    }

    /// The listed actions, each moved along one poll as a GET would.
    pub fn show_listed(&mut self, indexes: &[usize]) -> Vec<Value> {
        let now = Instant::now();
        indexes
            .iter()
            .filter_map(|&index| {
                let action = self.actions.get_mut(index)?;
                look(action, &self.progression, self.clock, true, now);
                Some(action.json.clone())
            })
            .collect()
    }

    /// How many actions exist.
    pub fn action_count(&self) -> usize {
        self.actions.len()
    }
}

/// Sets the status, and the time of the last update (on the API's clock) when it changes.
fn set_status(json: &mut Value, status: &str, clock: Clock) {
    if json["status"] != status {
        json["status"] = json!(status);
        json["lastUpdateDateTimeUtc"] = json!(clock.written_now());
    }
}
