//! Jobs kept in Redis, so that any `serve` process behind a load balancer answers for any job
//! and honours any idempotency key. Each process refreshes a heartbeat key; a running job
//! whose process's heartbeat is gone is reported `lost`, with the progress it recorded.

use super::{Created, Idempotency, Job, JobStatus, JobStore, StoreError, StoreFuture};
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;
use tokio::sync::OnceCell;

/// How long a process's heartbeat lasts; it is refreshed three times as often.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// The longest a store call waits for Redis.
const TIMEOUT: Duration = Duration::from_secs(2);
/// The largest job record read back (a job of 1000 devices with whole MachineActions).
const MAX_JOB_BYTES: usize = 32 * 1024 * 1024;

/// Jobs and idempotency keys in Redis.
pub struct RedisJobs {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    ttl: Duration,
    /// This process's ID, the owner of the jobs it runs.
    instance: String,
}

impl RedisJobs {
    /// Jobs in the Redis at `url`, each kept for `ttl`, run by process `instance`.
    pub fn new(url: &str, ttl: Duration, instance: String) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Unavailable(format!("jobs.redis-url: {}", e.category())))?;
        Ok(Self {
            client,
            connection: OnceCell::new(),
            ttl,
            instance,
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let connection = self
            .connection
            .get_or_try_init(|| {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(TIMEOUT))
                    .set_response_timeout(Some(TIMEOUT))
                    .set_number_of_retries(1);
                ConnectionManager::new_with_config(self.client.clone(), config)
            })
            .await
            .map_err(unavailable)?;
        Ok(connection.clone())
    }

    /// Refreshes this process's heartbeat now and every few seconds, for as long as the
    /// returned task runs.
    pub fn beat(self: &std::sync::Arc<Self>) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(error) = store.heartbeat().await {
                    tracing::warn!(%error, "could not refresh this process's heartbeat in Redis");
                }
                tokio::time::sleep(HEARTBEAT / 3).await;
            }
        })
    }

    async fn heartbeat(&self) -> Result<(), StoreError> {
        let mut connection = self.connection().await?;
        let key = alive_key(&self.instance);
        let _: () = connection
            .set_ex(key, 1, HEARTBEAT.as_secs())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn create_now(
        &self,
        job: &Job,
        idempotency: Option<&Idempotency>,
    ) -> Result<Created, StoreError> {
        let mut connection = self.connection().await?;
        let ttl = self.ttl.as_secs().max(1);
        let text =
            serde_json::to_string(job).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let _: () = connection
            .set_ex(job_key(&job.id), text, ttl)
            .await
            .map_err(unavailable)?;
        let Some(idem) = idempotency else {
            return Ok(Created::New);
        };
        let slot = format!(
            "defender-idempotency:{}:{}",
            hex(&idem.caller),
            hex(&idem.key)
        );
        let claim = format!("{} {}", idem.request_sha256, job.id);
        let claimed: bool = redis::cmd("SET")
            .arg(&slot)
            .arg(&claim)
            .arg("NX")
            .arg("EX")
            .arg(ttl)
            .query_async::<Option<String>>(&mut connection)
            .await
            .map_err(unavailable)?
            .is_some();
        if claimed {
            return Ok(Created::New);
        }
        // Another request holds the key: this job was never started.
        let _: () = connection
            .del(job_key(&job.id))
            .await
            .map_err(unavailable)?;
        let held: Option<String> = connection.get(&slot).await.map_err(unavailable)?;
        let held = held.unwrap_or_default();
        let (hash, id) = held.split_once(' ').unwrap_or_default();
        if hash != idem.request_sha256 {
            return Ok(Created::Conflict);
        }
        match self.read(&mut connection, id).await? {
            Some(existing) => Ok(Created::Existing(Box::new(existing))),
            None => Err(StoreError::Unavailable(
                "the idempotency key's job has expired".into(),
            )),
        }
    }

    async fn read(
        &self,
        connection: &mut ConnectionManager,
        id: &str,
    ) -> Result<Option<Job>, StoreError> {
        let text: Option<Vec<u8>> = connection.get(job_key(id)).await.map_err(unavailable)?;
        let Some(text) = text else {
            return Ok(None);
        };
        if text.len() > MAX_JOB_BYTES {
            return Err(StoreError::Unavailable(
                "a job record larger than any job".into(),
            ));
        }
        let mut job: Job = serde_json::from_slice(&text)
            .map_err(|_| StoreError::Unavailable("a job record that is not one".into()))?;
        if job.status == JobStatus::Running && job.owner != self.instance {
            let alive: bool = connection
                .exists(alive_key(&job.owner))
                .await
                .map_err(unavailable)?;
            if !alive {
                job.status = JobStatus::Lost;
            }
        }
        Ok(Some(job))
    }
}

impl JobStore for RedisJobs {
    fn create<'a>(
        &'a self,
        job: &'a Job,
        idempotency: Option<&'a Idempotency>,
    ) -> StoreFuture<'a, Created> {
        Box::pin(bounded(self.create_now(job, idempotency)))
    }

    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Job>> {
        Box::pin(bounded(async move {
            let mut connection = self.connection().await?;
            self.read(&mut connection, id).await
        }))
    }

    fn update<'a>(&'a self, job: &'a Job) -> StoreFuture<'a, ()> {
        Box::pin(bounded(async move {
            let mut connection = self.connection().await?;
            let text =
                serde_json::to_string(job).map_err(|e| StoreError::Unavailable(e.to_string()))?;
            // XX: a job that expired meanwhile is not brought back.
            let _: Option<String> = redis::cmd("SET")
                .arg(job_key(&job.id))
                .arg(text)
                .arg("XX")
                .arg("KEEPTTL")
                .query_async(&mut connection)
                .await
                .map_err(unavailable)?;
            Ok(())
        }))
    }

    fn ready(&self) -> StoreFuture<'_, ()> {
        Box::pin(bounded(self.heartbeat()))
    }
}

/// `call`, or unavailable after [`TIMEOUT`] twice over.
async fn bounded<T>(
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(TIMEOUT * 2, call)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "no answer within {:?}",
                TIMEOUT * 2
            )))
        })
}

fn job_key(id: &str) -> String {
    format!("defender-job:{id}")
}

fn alive_key(instance: &str) -> String {
    format!("defender-serve-alive:{instance}")
}

/// Text as hex, so a caller's key cannot reach into another key's name.
fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unavailable(error: redis::RedisError) -> StoreError {
    StoreError::Unavailable(match error.detail() {
        Some(detail) => format!("{}: {detail}", error.category()),
        None => error.category().to_owned(),
    })
}
