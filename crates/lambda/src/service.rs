//! The Lambda service's state: configuration, the function registry, the runner, mappings,
//! storage and metrics.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;
use tideline_streams::StreamsService;
use tokio::sync::Semaphore;

use crate::error::Result;
use crate::functions::StoredFunction;
use crate::mappings::metrics::Metrics;
use crate::mappings::Mappings;
use crate::runner::runtimes::RuntimeConfig;
use crate::runner::Runner;
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct LambdaConfig {
    /// `<data-dir>/lambda`, or `None` in memory mode.
    pub data_dir: Option<PathBuf>,
    pub region: String,
    pub account: String,
    pub runtime: RuntimeConfig,
    /// Invocations running at once, server-wide and per function.
    pub max_concurrency: usize,
    pub max_unzipped_bytes: u64,
    /// Asynchronous (Event) invocations queued at once; more are refused.
    pub max_queued_events: usize,
}

pub struct LambdaService {
    pub(crate) config: LambdaConfig,
    pub(crate) store: Arc<Store>,
    pub(crate) runner: Arc<Runner>,
    pub(crate) functions: RwLock<HashMap<String, StoredFunction>>,
    pub(crate) streams: Arc<StreamsService>,
    pub(crate) mappings: Mappings,
    pub(crate) metrics: Metrics,
    pub(crate) async_slots: Arc<Semaphore>,
}

impl LambdaService {
    /// Opens the store, gives the runner the functions kept from an earlier run and restarts
    /// their mappings from their checkpoints.
    pub fn open(config: LambdaConfig, streams: Arc<StreamsService>) -> Result<Arc<Self>> {
        let store = Arc::new(Store::open(config.data_dir.as_deref())?);
        let runner = Arc::new(Runner::new(config.runtime.clone(), config.max_concurrency));
        let service = Arc::new(Self {
            async_slots: Arc::new(Semaphore::new(config.max_queued_events.max(1))),
            config,
            store,
            runner,
            functions: RwLock::new(HashMap::new()),
            streams,
            mappings: Mappings::default(),
            metrics: Metrics::new(),
        });
        service.load_functions();
        service.load_mappings();
        Ok(service)
    }

    pub fn function_arn(&self, name: &str) -> String {
        format!("arn:aws:lambda:{}:{}:function:{name}", self.config.region, self.config.account)
    }

    pub fn metrics_text(&self) -> String {
        self.metrics.render()
    }
}
