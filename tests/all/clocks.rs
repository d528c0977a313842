//! The API's own time, as the simulator models it: listings that show a new action only after
//! a while, a clock that is not the host's, and actions that settle by the clock however often
//! they are looked at. The lookups that keep a dropped POST from creating a second action must
//! hold up against all three.

use defender_host::{ActionStatus, MachineOutcome, Targets, Wait};
use defender_simulator::{Progression, Reply, Simulator};
use integration_tests::{MACHINE, fan_out, posts, quarantine_request as request, simulator};
use std::time::Duration;

fn lookups(simulator: &Simulator) -> usize {
    simulator
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/api/machineactions?"))
        .count()
}

/// One device's outcome, the POST of which the simulator carries out and then drops.
async fn dropped_post(simulator: &Simulator) -> MachineOutcome {
    simulator.set_progression(Progression::StayPending);
    simulator.script([Reply::CreateThenDrop]);
    let device = Targets::Machines(vec![MACHINE.into()]);
    let mut outcomes = fan_out(simulator, request(device, None)).await.outcomes;
    assert_eq!(outcomes.len(), 1);
    outcomes.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_that_lags_is_looked_at_again_before_the_post_is_sent_again() {
    let simulator = simulator().await;
    // The dropped POST's action is listed only after 1.8 s: the first lookup (at once) misses
    // it, the second (two seconds later) finds it.
    simulator.set_listing_lag(Duration::from_millis(1800));
    let outcome = dropped_post(&simulator).await;
    let found = outcome.outcome.expect("the action was found");
    assert!(!found.adopted, "created by this call");
    assert_eq!(posts(&simulator), 1, "not sent again");
    assert_eq!(lookups(&simulator), 2);
    assert_eq!(simulator.action_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_clock_behind_ours_within_the_skew_still_finds_the_dropped_action() {
    let simulator = simulator().await;
    // The API writes creation times 90 s earlier than the host's clock: still within the
    // two minutes the component allows, so the action is found at once.
    simulator.set_clock_offset(-90_000);
    let outcome = dropped_post(&simulator).await;
    let found = outcome.outcome.expect("the action was found");
    assert!(!found.adopted);
    assert_eq!((posts(&simulator), lookups(&simulator)), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_clock_further_behind_ends_in_adoption_not_a_second_action() {
    let simulator = simulator().await;
    // Five minutes behind: the lookups for an action created since the send find none, so the
    // POST is sent again; the API refuses it (the device has a pending action), and the
    // pending one is found among the device's recent actions and adopted.
    simulator.set_clock_offset(-300_000);
    let outcome = dropped_post(&simulator).await;
    let adopted = outcome.outcome.expect("the pending action");
    assert!(adopted.adopted);
    assert_eq!(posts(&simulator), 2);
    assert_eq!(simulator.action_count(), 1, "no second action");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_clock_more_than_the_skew_behind_makes_a_new_action_look_adopted() {
    let simulator = simulator().await;
    simulator.set_progression(Progression::StayPending);
    let device = || Targets::Machines(vec![MACHINE.into()]);
    // A limit the WIT states: the API's clock runs five minutes behind, so an action it creates
    // now looks older than the send by more than the two minutes the component allows, as an
    // old pending action returned by a 201 does, and is marked adopted.
    simulator.set_clock_offset(-300_000);
    let outcomes = fan_out(&simulator, request(device(), None)).await.outcomes;
    let q = outcomes[0].outcome.as_ref().expect("an action");
    assert!(q.adopted, "{q:?}");
    // Without the offset the same answer is this call's own.
    let other = simulator_without_offset().await;
    let outcomes = fan_out(&other, request(device(), None)).await.outcomes;
    assert!(!outcomes[0].outcome.as_ref().expect("an action").adopted);
}

async fn simulator_without_offset() -> Simulator {
    let simulator = simulator().await;
    simulator.set_progression(Progression::StayPending);
    simulator
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_that_settle_by_the_clock_are_seen_final_by_a_wait() {
    let simulator = simulator().await;
    simulator.set_progression(Progression::Settle {
        after: Duration::from_secs(3),
        final_status: "Failed".into(),
    });
    simulator.set_listing_lag(Duration::from_millis(500));
    let wait = Wait {
        timeout_ms: 60_000,
        cancel_on_timeout: false,
    };
    let machines = integration_tests::FLEET[..2]
        .iter()
        .map(|m| (*m).to_owned())
        .collect();
    let done = fan_out(&simulator, request(Targets::Machines(machines), Some(wait))).await;
    assert_eq!(done.outcomes.len(), 2);
    for outcome in &done.outcomes {
        let q = outcome.outcome.as_ref().expect("an action");
        assert_eq!(q.action.status, ActionStatus::Failed);
        assert_eq!(q.poll_error, None);
    }
}
