//! Jobs kept in Redis, so that any `serve` process behind a load balancer answers for any job
//! and honours any idempotency key. Each process refreshes a heartbeat key; a running job
//! whose process's heartbeat is gone is reported `lost`, with the progress it recorded.

use super::{Created, Idempotency, Job, JobStatus, JobStore, StoreError, StoreFuture};
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;
use tokio::sync::Mutex;

/// How long a process's heartbeat lasts; it is refreshed three times as often.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// The longest a store call waits for Redis.
const TIMEOUT: Duration = Duration::from_secs(2);
/// The largest job record read back (a job of 1000 devices with whole MachineActions).
const MAX_JOB_BYTES: usize = 32 * 1024 * 1024;
/// How much longer than the time to live a running job is kept: the longest wait a request
/// may ask for (a day) and a margin. Its time to live starts again when it ends.
const RUNNING_EXTRA: Duration = Duration::from_secs(2 * 24 * 3600);

/// Creates a job unless its idempotency key is held, in one step. `KEYS[1]`: the key's slot,
/// `KEYS[2]`: the job. `ARGV`: the claim (request hash, job ID), the job's JSON, the key's
/// and the running job's lifetimes in seconds. Returns nothing when created, else the claim
/// that holds the key.
const CREATE: &str = r"
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[4])
return false
";

/// Jobs and idempotency keys in Redis.
pub struct RedisJobs {
    client: redis::Client,
    /// Made anew after a failure: a manager keeps its failed reconnection for the next call.
    connection: Mutex<Option<ConnectionManager>>,
    create: redis::Script,
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
            connection: Mutex::new(None),
            create: redis::Script::new(CREATE),
            ttl,
            instance,
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let mut kept = self.connection.lock().await;
        if let Some(connection) = kept.as_ref() {
            return Ok(connection.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_with_config(self.client.clone(), config)
            .await
            .map_err(unavailable)?;
        *kept = Some(connection.clone());
        Ok(connection)
    }

    /// `call` on a connection; after a failure the next call connects anew.
    async fn with<T>(
        &self,
        call: impl AsyncFnOnce(&mut ConnectionManager) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut connection = self.connection().await?;
        let result = tokio::time::timeout(TIMEOUT * 2, call(&mut connection))
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "no answer within {:?}",
                    TIMEOUT * 2
                )))
            });
        if result.is_err() {
            *self.connection.lock().await = None;
        }
        result
    }

    /// Refreshes this process's heartbeat now and every few seconds, for as long as the
    /// returned task runs.
    pub fn beat(self: &std::sync::Arc<Self>) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(error) = store.heartbeat().await {
                    tracing::warn!(error = %defender_host::escape::escape(&error.to_string()), "could not refresh this process's heartbeat in Redis");
                }
                tokio::time::sleep(HEARTBEAT / 3).await;
            }
        })
    }

    async fn heartbeat(&self) -> Result<(), StoreError> {
        let key = alive_key(&self.instance);
        self.with(async |c| {
            c.set_ex(key, 1, HEARTBEAT.as_secs())
                .await
                .map_err(unavailable)
        })
        .await
    }

    async fn create_now(
        &self,
        job: &Job,
        idempotency: Option<&Idempotency>,
    ) -> Result<Created, StoreError> {
        let ttl = self.ttl.as_secs().max(1);
        let running_ttl = ttl.saturating_add(RUNNING_EXTRA.as_secs());
        let text =
            serde_json::to_string(job).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let Some(idem) = idempotency else {
            return self
                .with(async |c| {
                    c.set_ex(job_key(&job.id), text, running_ttl)
                        .await
                        .map_err(unavailable)
                })
                .await
                .map(|()| Created::New);
        };
        let slot = format!(
            "defender-idempotency:{}:{}",
            hex(&idem.caller),
            hex(&idem.key)
        );
        let claim = format!("{} {}", idem.request_sha256, job.id);
        let held: Option<String> = self
            .with(async |c| {
                let mut call = self.create.key(&slot);
                call.key(job_key(&job.id))
                    .arg(&claim)
                    .arg(&text)
                    .arg(ttl)
                    .arg(running_ttl);
                call.invoke_async(c).await.map_err(unavailable)
            })
            .await?;
        let Some(held) = held else {
            return Ok(Created::New);
        };
        let (hash, id) = held.split_once(' ').unwrap_or_default();
        if hash != idem.request_sha256 {
            return Ok(Created::Conflict);
        }
        match self.with(async |c| self.read(c, id).await).await? {
            Some(existing) => Ok(Created::Existing(Box::new(existing))),
            None => Ok(Created::Forgotten),
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
        Box::pin(self.create_now(job, idempotency))
    }

    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Job>> {
        Box::pin(self.with(async |c| self.read(c, id).await))
    }

    fn update<'a>(&'a self, job: &'a Job) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let text =
                serde_json::to_string(job).map_err(|e| StoreError::Unavailable(e.to_string()))?;
            self.with(async |c| {
                // XX: a job that expired meanwhile is not brought back. A job that ended keeps
                // the time to live from now; a running one keeps its own.
                let mut set = redis::cmd("SET");
                set.arg(job_key(&job.id)).arg(text).arg("XX");
                if job.status == JobStatus::Running {
                    set.arg("KEEPTTL");
                } else {
                    set.arg("EX").arg(self.ttl.as_secs().max(1));
                }
                let _: Option<String> = set.query_async(c).await.map_err(unavailable)?;
                Ok(())
            })
            .await
        })
    }

    fn ready(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.with(async |c| {
            let _: String = redis::cmd("PING")
                .query_async(c)
                .await
                .map_err(unavailable)?;
            Ok(())
        }))
    }
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
