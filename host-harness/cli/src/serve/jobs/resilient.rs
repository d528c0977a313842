//! Jobs in Redis, and in this process while Redis does not answer: a Redis outage must not stop
//! a process from taking jobs. A job created during the outage lives here (only this process
//! answers for it, and its idempotency key is honoured here only); every other job is Redis's.

use super::memory::MemoryJobs;
use super::redis::RedisJobs;
use super::{Created, Idempotency, Job, JobStore, StoreError, StoreFuture};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Redis first, this process when Redis does not answer.
pub struct ResilientJobs {
    redis: Arc<RedisJobs>,
    local: MemoryJobs,
    /// Whether the outage was logged (once an outage).
    logged: AtomicBool,
}

impl ResilientJobs {
    /// `redis`, and `local` for the jobs created while it does not answer.
    pub fn new(redis: Arc<RedisJobs>, local: MemoryJobs) -> Self {
        Self {
            redis,
            local,
            logged: AtomicBool::new(false),
        }
    }

    fn fell_back(&self, error: &StoreError) {
        metrics::counter!("defender_serve_job_store_fallbacks_total").increment(1);
        if !self.logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                error = %defender_host::escape::escape(&error.to_string()),
                "the job store does not answer: new jobs are kept in this process"
            );
        }
    }
}

impl JobStore for ResilientJobs {
    fn create<'a>(
        &'a self,
        job: &'a Job,
        idempotency: Option<&'a Idempotency>,
    ) -> StoreFuture<'a, Created> {
        Box::pin(async move {
            match self.redis.create(job, idempotency).await {
                Ok(created) => {
                    if self.logged.swap(false, Ordering::Relaxed) {
                        tracing::info!("the job store answers again");
                    }
                    Ok(created)
                }
                Err(error) => {
                    self.fell_back(&error);
                    self.local.create(job, idempotency).await
                }
            }
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Job>> {
        Box::pin(async move {
            match self.local.get(id).await? {
                Some(job) => Ok(Some(job)),
                None => self.redis.get(id).await,
            }
        })
    }

    fn update<'a>(&'a self, job: &'a Job) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if self.local.get(&job.id).await?.is_some() {
                self.local.update(job).await
            } else {
                self.redis.update(job).await
            }
        })
    }

    /// Ready while Redis answers or this process can keep jobs itself: always.
    fn ready(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            if let Err(error) = self.redis.ready().await {
                tracing::debug!(error = %defender_host::escape::escape(&error.to_string()), "the job store does not answer; jobs are kept here");
            }
            Ok(())
        })
    }
}
