//! The function runner: a pool of sandboxes per function, each a runtime process started by
//! [`runtimes`] and fed through its own Runtime API ([`runtime_api`]). Bounds concurrency per
//! function and server-wide, times invocations out, and keeps each function's log.

pub mod logs;
pub mod runtime_api;
pub mod runtimes;
pub mod sandbox;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use self::logs::LogRing;
use self::runtime_api::Invocation;
use self::runtimes::RuntimeConfig;
use self::sandbox::{LogSinks, Outcome, Sandbox};
use crate::error::{LambdaError, Result, Throttle};

/// Bytes of log kept per function.
const FUNCTION_LOG_BYTES: usize = 256 * 1024;
/// `LogType: Tail` returns the last 4 KB of the invocation's log.
pub const TAIL_BYTES: usize = 4 * 1024;
/// How long an invocation's last output may trail its response through the pipe.
const LOG_DRAIN: Duration = Duration::from_millis(30);

/// What the runner needs to start a function's runtime processes.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub name: String,
    pub arn: String,
    pub runtime: String,
    pub handler: String,
    pub code_dir: PathBuf,
    pub environment: Vec<(String, String)>,
    pub timeout: Duration,
    pub memory_mb: u32,
    /// Its reserved concurrency: at most this many of its invocations run at once.
    pub reserved_concurrency: Option<u32>,
}

/// Whether an invocation over the concurrency limit waits for a slot (event-source mappings,
/// asynchronous invocations) or is refused as AWS refuses a synchronous Invoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Wait,
    Refuse,
}

#[derive(Debug, Clone)]
pub struct InvokeResult {
    pub request_id: String,
    pub outcome: Outcome,
    /// The invocation's log, when asked for.
    pub log_tail: Option<String>,
}

struct Pool {
    spec: Arc<FunctionSpec>,
    /// Bumped by every code or configuration change: older sandboxes are not reused.
    generation: u64,
    idle: Vec<Sandbox>,
    /// One per invocation allowed to run at once (`limit` of them).
    permits: Arc<Semaphore>,
    limit: usize,
    log: Arc<Mutex<LogRing>>,
}

pub struct Runner {
    config: RuntimeConfig,
    pools: Mutex<HashMap<String, Pool>>,
    /// Server-wide concurrency: the account's concurrent-executions limit.
    global: Arc<Semaphore>,
    per_function: usize,
}

impl Runner {
    pub fn new(config: RuntimeConfig, max_concurrency: usize) -> Self {
        let max_concurrency = max_concurrency.max(1);
        Self {
            config,
            pools: Mutex::new(HashMap::new()),
            global: Arc::new(Semaphore::new(max_concurrency)),
            per_function: max_concurrency,
        }
    }

    /// Adds a function, or replaces its code or configuration: running invocations finish on
    /// their sandboxes, which are then retired; the next invocations start fresh ones.
    pub fn install(&self, spec: FunctionSpec) {
        let limit = spec.reserved_concurrency.map_or(self.per_function, |reserved| reserved as usize);
        let mut pools = self.pools.lock();
        match pools.get_mut(&spec.name) {
            Some(pool) => {
                pool.spec = Arc::new(spec);
                pool.generation += 1;
                pool.idle.clear();
                if pool.limit != limit {
                    // Running invocations keep their permits of the old count; new ones take
                    // the new count's, and those waiting on the old one (closed) wait again here.
                    pool.permits.close();
                    pool.permits = Arc::new(Semaphore::new(limit));
                    pool.limit = limit;
                }
            }
            None => {
                let pool = Pool {
                    spec: Arc::new(spec.clone()),
                    generation: 0,
                    idle: Vec::new(),
                    permits: Arc::new(Semaphore::new(limit)),
                    limit,
                    log: Arc::new(Mutex::new(LogRing::new(FUNCTION_LOG_BYTES))),
                };
                pools.insert(spec.name, pool);
            }
        }
    }

    /// Stops a function's idle sandboxes; busy ones end with their invocation.
    pub fn remove(&self, name: &str) {
        if let Some(pool) = self.pools.lock().remove(name) {
            // Invocations waiting for a slot end (the function is not found) rather than wait on.
            pool.permits.close();
        }
    }

    /// The newest `limit` bytes of a function's log.
    pub fn log_tail(&self, name: &str, limit: usize) -> Option<String> {
        self.pools.lock().get(name).map(|pool| pool.log.lock().tail(limit))
    }

    pub async fn invoke(&self, name: &str, payload: Bytes, admission: Admission, tail: bool) -> Result<InvokeResult> {
        let _slots = self.admit(name, admission).await?;
        let (mut sandbox, spec) = self.take_sandbox(name).await?;
        let request_id = uuid::Uuid::new_v4().to_string();
        sandbox.logs.invocation.lock().clear();
        sandbox.logs.line(&format!("START RequestId: {request_id} Version: $LATEST"));
        let started = Instant::now();
        let invocation = Invocation {
            request_id: request_id.clone(),
            payload,
            deadline_ms: chrono::Utc::now().timestamp_millis() + spec.timeout.as_millis() as i64,
            function_arn: spec.arn.clone(),
            trace_id: trace_id(),
        };
        let (outcome, reusable) = match sandbox.invoke(invocation, spec.timeout).await {
            Ok(outcome) => (outcome, true),
            Err(outcome) => (outcome, false),
        };
        if tail {
            tokio::time::sleep(LOG_DRAIN).await;
        }
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        sandbox.logs.line(&format!("END RequestId: {request_id}"));
        sandbox.logs.line(&format!(
            "REPORT RequestId: {request_id}\tDuration: {elapsed:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB",
            elapsed.ceil() as u64,
            spec.memory_mb,
            spec.memory_mb
        ));
        let log_tail = tail.then(|| sandbox.logs.invocation.lock().tail(TAIL_BYTES));
        if reusable {
            self.return_sandbox(name, sandbox);
        }
        Ok(InvokeResult { request_id, outcome, log_tail })
    }

    /// A slot of the function's and of the server's concurrency.
    async fn admit(&self, name: &str, admission: Admission) -> Result<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
        let global = Arc::clone(&self.global);
        // A function's permits are replaced (the old ones closed) when its reservation changes.
        let function = loop {
            let (permits, reserved) = {
                let pools = self.pools.lock();
                let pool = pools
                    .get(name)
                    .ok_or_else(|| LambdaError::ResourceNotFound(format!("Function not found: {name}")))?;
                (Arc::clone(&pool.permits), pool.spec.reserved_concurrency.is_some())
            };
            let acquired = match admission {
                Admission::Wait => permits.acquire_owned().await.ok(),
                Admission::Refuse => match permits.try_acquire_owned() {
                    Ok(permit) => Some(permit),
                    Err(TryAcquireError::NoPermits) => {
                        let throttle = if reserved { Throttle::ReservedConcurrency } else { Throttle::Concurrency };
                        return Err(LambdaError::TooManyRequests(throttle));
                    }
                    Err(TryAcquireError::Closed) => None,
                },
            };
            if let Some(permit) = acquired {
                break permit;
            }
        };
        let global = match admission {
            Admission::Wait => global.acquire_owned().await.map_err(|_| LambdaError::service("runner closed"))?,
            Admission::Refuse => {
                global.try_acquire_owned().map_err(|_| LambdaError::TooManyRequests(Throttle::Concurrency))?
            }
        };
        Ok((function, global))
    }

    /// An idle sandbox of the function's current generation, or a new one.
    async fn take_sandbox(&self, name: &str) -> Result<(Sandbox, Arc<FunctionSpec>)> {
        let (spec, generation, log) = {
            let mut pools = self.pools.lock();
            let pool = pools
                .get_mut(name)
                .ok_or_else(|| LambdaError::ResourceNotFound(format!("Function not found: {name}")))?;
            if let Some(sandbox) = pool.idle.pop() {
                return Ok((sandbox, Arc::clone(&pool.spec)));
            }
            (Arc::clone(&pool.spec), pool.generation, Arc::clone(&pool.log))
        };
        let launch = runtimes::launch(&self.config, &spec)?;
        let logs = LogSinks { function: log, invocation: Arc::new(Mutex::new(LogRing::new(TAIL_BYTES))) };
        let sandbox = Sandbox::start(&launch, logs, generation).await.map_err(|error| {
            LambdaError::service(format!(
                "Cannot start runtime {} ({}): {error}",
                spec.runtime,
                launch.program.display()
            ))
        })?;
        Ok((sandbox, spec))
    }

    fn return_sandbox(&self, name: &str, sandbox: Sandbox) {
        let mut pools = self.pools.lock();
        if let Some(pool) = pools.get_mut(name) {
            if pool.generation == sandbox.generation && pool.idle.len() < self.per_function {
                pool.idle.push(sandbox);
            }
        }
    }
}

/// An X-Ray-shaped trace header, which runtime clients expose as `_X_AMZN_TRACE_ID`.
fn trace_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("Root=1-{:08x}-{};Sampled=0", chrono::Utc::now().timestamp(), &id[..24])
}
