//! Jobs kept in this process: at most a number of them, each for a time.

use super::{Created, Idempotency, Job, JobStatus, JobStore, StoreError, StoreFuture};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often expired jobs and keys are dropped at most.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Jobs and idempotency keys in memory.
pub struct MemoryJobs {
    max: usize,
    ttl: Duration,
    state: Mutex<State>,
}

/// Jobs by ID, each with when it was created or ended (a running job never expires), and the
/// idempotency keys, each for the time to live even when its job made room for another: a
/// retry then learns its job is gone rather than acting twice.
#[derive(Default)]
struct State {
    /// When expired jobs and keys were last dropped: a sweep looks at every one, so it runs
    /// at most once a second, not on every job.
    swept: Option<Instant>,
    jobs: HashMap<String, (Job, Instant)>,
    /// (caller, key) → (request hash, job ID, when).
    keys: HashMap<(String, String), (String, String, Instant)>,
}

impl MemoryJobs {
    /// At most `max` jobs, each kept for `ttl`.
    pub fn new(max: usize, ttl: Duration) -> Self {
        Self {
            max,
            ttl,
            state: Mutex::default(),
        }
    }

    fn create_now(
        &self,
        job: &Job,
        idempotency: Option<&Idempotency>,
    ) -> Result<Created, StoreError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let ttl = self.ttl;
        let now = Instant::now();
        let due = state
            .swept
            .is_none_or(|at| now.duration_since(at) >= SWEEP_EVERY.min(ttl));
        if due || state.jobs.len() >= self.max {
            state.swept = Some(now);
            state.jobs.retain(|_, (job, at)| {
                job.status == JobStatus::Running || now.duration_since(*at) < ttl
            });
            state
                .keys
                .retain(|_, (_, _, at)| now.duration_since(*at) < ttl);
        }
        if let Some(idem) = idempotency {
            let slot = (idem.caller.clone(), idem.key.clone());
            if let Some((hash, id, _)) = state.keys.get(&slot) {
                if *hash != idem.request_sha256 {
                    return Ok(Created::Conflict);
                }
                return Ok(match state.jobs.get(id) {
                    Some((existing, _)) => Created::Existing(Box::new(existing.clone())),
                    None => Created::Forgotten,
                });
            }
        }
        if state.jobs.len() >= self.max {
            // The oldest finished job makes room; running ones never do.
            let oldest = state
                .jobs
                .iter()
                .filter(|(_, (job, _))| job.status != JobStatus::Running)
                .min_by_key(|(_, (_, at))| *at)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => drop(state.jobs.remove(&id)),
                None => return Err(StoreError::Full(self.max)),
            }
        }
        state
            .jobs
            .insert(job.id.clone(), (job.clone(), Instant::now()));
        if let Some(idem) = idempotency {
            let slot = (idem.caller.clone(), idem.key.clone());
            // Keys are bounded too: past ten for each job kept, the oldest goes.
            if state.keys.len() >= self.max.saturating_mul(10) {
                let oldest = state
                    .keys
                    .iter()
                    .min_by_key(|(_, (_, _, at))| *at)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    state.keys.remove(&oldest);
                }
            }
            let entry = (idem.request_sha256.clone(), job.id.clone(), Instant::now());
            state.keys.insert(slot, entry);
        }
        Ok(Created::New)
    }
}

impl JobStore for MemoryJobs {
    fn create<'a>(
        &'a self,
        job: &'a Job,
        idempotency: Option<&'a Idempotency>,
    ) -> StoreFuture<'a, Created> {
        Box::pin(std::future::ready(self.create_now(job, idempotency)))
    }

    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Job>> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let found = state
            .jobs
            .get(id)
            .filter(|(job, at)| job.status == JobStatus::Running || at.elapsed() < self.ttl)
            .map(|(job, _)| job.clone());
        Box::pin(std::future::ready(Ok(found)))
    }

    fn update<'a>(&'a self, job: &'a Job) -> StoreFuture<'a, ()> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((kept, at)) = state.jobs.get_mut(&job.id) {
            // A job's time to live runs from its end.
            if kept.status == JobStatus::Running && job.status != JobStatus::Running {
                *at = Instant::now();
            }
            *kept = job.clone();
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn ready(&self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::jobs::HostNotes;

    fn job(id: &str, status: JobStatus) -> Job {
        Job {
            id: id.into(),
            tenant: "t".into(),
            requested_by: "k".into(),
            status,
            created_at_ms: 0,
            finished_at_ms: None,
            sha1: String::new(),
            owner: "me".into(),
            outcomes: None,
            error: None,
            unlisted: None,
            progress: Vec::new(),
            notes: HostNotes::default(),
        }
    }

    fn key(hash: &str) -> Idempotency {
        Idempotency {
            caller: "tines".into(),
            key: "k1".into(),
            request_sha256: hash.into(),
        }
    }

    #[test]
    fn an_idempotency_key_gives_its_job_back_or_conflicts() {
        let store = MemoryJobs::new(10, Duration::from_secs(60));
        assert!(matches!(
            store.create_now(&job("a", JobStatus::Running), Some(&key("h"))),
            Ok(Created::New)
        ));
        match store.create_now(&job("b", JobStatus::Running), Some(&key("h"))) {
            Ok(Created::Existing(found)) => assert_eq!(found.id, "a"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            store.create_now(&job("c", JobStatus::Running), Some(&key("other"))),
            Ok(Created::Conflict)
        ));
        let mut another_caller = key("other");
        another_caller.caller = "xsoar".into();
        assert!(matches!(
            store.create_now(&job("d", JobStatus::Running), Some(&another_caller)),
            Ok(Created::New)
        ));
    }

    #[test]
    fn a_full_store_drops_the_oldest_finished_job_never_a_running_one() {
        let store = MemoryJobs::new(2, Duration::from_secs(60));
        store
            .create_now(&job("old", JobStatus::Succeeded), None)
            .unwrap();
        store
            .create_now(&job("run", JobStatus::Running), None)
            .unwrap();
        store
            .create_now(&job("new", JobStatus::Running), None)
            .unwrap();
        let state = store.state.lock().unwrap();
        assert!(!state.jobs.contains_key("old") && state.jobs.len() == 2);
        drop(state);
        assert!(matches!(
            store.create_now(&job("x", JobStatus::Running), None),
            Err(StoreError::Full(2))
        ));
    }

    #[test]
    fn a_key_whose_job_made_room_gives_no_new_job() {
        let store = MemoryJobs::new(1, Duration::from_secs(60));
        store
            .create_now(&job("keyed", JobStatus::Succeeded), Some(&key("h")))
            .unwrap();
        store
            .create_now(&job("next", JobStatus::Succeeded), None)
            .unwrap();
        let again = store.create_now(&job("again", JobStatus::Running), Some(&key("h")));
        assert!(matches!(again, Ok(Created::Forgotten)), "{again:?}");
    }

    #[test]
    fn finished_jobs_expire_running_ones_never() {
        let store = MemoryJobs::new(3, Duration::from_millis(1));
        store
            .create_now(&job("a", JobStatus::Succeeded), None)
            .unwrap();
        store
            .create_now(&job("b", JobStatus::Running), None)
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(futures_ready(store.get("a")).is_none());
        assert!(futures_ready(store.get("b")).is_some());
        // Its time to live runs from its end.
        futures_ready(store.update(&job("b", JobStatus::Succeeded)));
        assert!(futures_ready(store.get("b")).is_some());
        std::thread::sleep(Duration::from_millis(5));
        assert!(futures_ready(store.get("b")).is_none());
    }

    fn futures_ready<T>(future: StoreFuture<'_, T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
            .unwrap()
    }
}
