//! The Firehose service: the set of delivery streams, their persistence, and one delivery worker
//! per stream.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::RwLock;
use tideline_proto::AwsError;
use tideline_storage::{MetaOp, ShardKey, Storage};
use tideline_streams::StreamsService;

use crate::delivery::{DeliveryStatus, Worker};
use crate::destinations::stores::{Buckets, BucketsConfig};
use crate::error::FirehoseError;
use crate::metrics::FirehoseMetrics;
use crate::model::DeliveryStreamMeta;
use crate::processing::functions::{FunctionInvoker, FunctionSlot};
use crate::processing::parquet::Catalog;

#[derive(Debug, Clone)]
pub struct FirehoseConfig {
    pub region: String,
    pub account_id: String,
    pub buckets: BucketsConfig,
    /// `--glue-catalog`: table schemas for record format conversion.
    pub glue_catalog: Option<PathBuf>,
    /// Where a delivery stream reading a Kinesis stream starts: at its creation time (AWS's
    /// behaviour, "LATEST") or at the stream's oldest record.
    pub kinesis_start: KinesisStart,
    /// Timeout of one HTTP endpoint delivery or transformation call.
    pub http_timeout: Duration,
    /// First retry delay after a failed delivery (doubling, capped at 30 s).
    pub retry_backoff: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KinesisStart {
    Latest,
    TrimHorizon,
}

/// A delivery stream and the worker delivering it.
pub(crate) struct DeliveryStream {
    pub meta: Arc<DeliveryStreamMeta>,
    pub status: Arc<DeliveryStatus>,
    pub worker: Arc<Worker>,
}

pub struct FirehoseService {
    /// The service itself: handlers start delivery workers that hold it.
    me: Weak<FirehoseService>,
    pub(crate) config: FirehoseConfig,
    /// Firehose's own storage (its buffers and metadata), apart from the data streams'.
    pub(crate) storage: Arc<Storage>,
    pub(crate) streams: Arc<StreamsService>,
    pub(crate) buckets: Arc<Buckets>,
    pub(crate) catalog: Catalog,
    /// Built at first use: building it loads the system's CA certificates, ~5 ms of CPU that a
    /// server with no HTTP endpoint or function URL to call would spend at every start.
    http: std::sync::OnceLock<Result<reqwest::Client, String>>,
    /// Runs the transformation functions named by ARN, once the server installs it.
    pub(crate) functions: FunctionSlot,
    pub(crate) metrics: FirehoseMetrics,
    pub(crate) delivery_streams: RwLock<BTreeMap<String, Arc<DeliveryStream>>>,
    /// Control-plane changes run one at a time, so that check-then-commit sequences don't race.
    pub(crate) changes: tokio::sync::Mutex<()>,
}

pub(crate) const META_PREFIX: &str = "deliverystream/";

pub(crate) fn meta_key(name: &str) -> String {
    format!("{META_PREFIX}{name}")
}

pub(crate) use tideline_storage::now_ms;

impl FirehoseService {
    /// A strong handle on this service, for the workers a handler starts; `None` once it is
    /// being dropped.
    pub(crate) fn shared(&self) -> Option<Arc<FirehoseService>> {
        self.me.upgrade()
    }

    /// The client for HTTP endpoint destinations and function URLs.
    pub(crate) fn http(&self) -> Result<reqwest::Client, FirehoseError> {
        let built = self.http.get_or_init(|| {
            // Firehose counts a redirect as a failed attempt, so none is followed.
            reqwest::Client::builder()
                .timeout(self.config.http_timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|error| error.to_string())
        });
        built.clone().map_err(FirehoseError::HttpClient)
    }

    /// Loads every delivery stream and starts delivering what each had buffered.
    pub async fn open(
        storage: Arc<Storage>,
        streams: Arc<StreamsService>,
        config: FirehoseConfig,
    ) -> Result<Arc<Self>, Box<dyn std::error::Error>> {
        let catalog = match &config.glue_catalog {
            Some(path) => Catalog::load(path)?,
            None => Catalog::default(),
        };
        let service = Arc::new_cyclic(|me| Self {
            me: me.clone(),
            buckets: Arc::new(Buckets::new(config.buckets.clone())),
            config,
            storage,
            streams,
            catalog,
            http: std::sync::OnceLock::new(),
            functions: FunctionSlot::default(),
            metrics: FirehoseMetrics::new(),
            delivery_streams: RwLock::new(BTreeMap::new()),
            changes: tokio::sync::Mutex::new(()),
        });
        let mut live = std::collections::HashSet::new();
        for (_, bytes) in service.storage.metadata().scan_prefix(META_PREFIX)? {
            let meta: DeliveryStreamMeta = match serde_json::from_slice(&bytes) {
                Ok(meta) => meta,
                Err(error) => {
                    tracing::error!(%error, "skipping unreadable delivery stream metadata");
                    continue;
                }
            };
            live.insert(meta.id);
            let stream = service.start(Arc::new(meta));
            service.delivery_streams.write().insert(stream.meta.name.clone(), stream);
        }
        service.storage.retain_streams(&live)?;
        tracing::info!(delivery_streams = live.len(), "firehose delivery streams loaded");
        Ok(service)
    }

    /// Installs what runs the transformation functions named by ARN (Tideline's Lambda service,
    /// which opens after Firehose); a second call is ignored.
    pub fn use_functions(&self, invoker: Arc<dyn FunctionInvoker>) {
        if self.functions.set(invoker).is_err() {
            tracing::warn!("firehose already has a function invoker");
        }
    }

    /// Stops every worker between two delivery attempts (for a graceful shutdown).
    pub async fn shutdown(&self) {
        let streams: Vec<Arc<DeliveryStream>> = self.delivery_streams.write().values().cloned().collect();
        for stream in streams {
            stream.worker.stop().await;
        }
    }

    pub(crate) fn region(&self) -> &str {
        &self.config.region
    }

    pub(crate) fn account(&self) -> &str {
        &self.config.account_id
    }

    pub(crate) fn arn(&self, name: &str) -> String {
        format!("arn:aws:firehose:{}:{}:deliverystream/{name}", self.region(), self.account())
    }

    pub(crate) fn not_found(&self, name: &str) -> AwsError {
        AwsError::not_found(format!("Firehose {name} under account {} not found.", self.account()))
    }

    pub(crate) fn get(&self, name: &str) -> Result<Arc<DeliveryStream>, AwsError> {
        self.delivery_streams.read().get(name).cloned().ok_or_else(|| self.not_found(name))
    }

    pub(crate) fn log_key(meta: &DeliveryStreamMeta) -> ShardKey {
        ShardKey { stream_id: meta.id, shard_index: 0 }
    }

    /// Starts the worker of a delivery stream as described.
    pub(crate) fn start(self: &Arc<Self>, meta: Arc<DeliveryStreamMeta>) -> Arc<DeliveryStream> {
        let status = Arc::new(DeliveryStatus::default());
        let worker = Arc::new(Worker::start(Arc::clone(self), Arc::clone(&meta), Arc::clone(&status)));
        Arc::new(DeliveryStream { meta, status, worker })
    }

    /// Persists the description. A new destination version gets a new worker (the previous one
    /// stopped first, so two never deliver the same records); tags and encryption, which delivery
    /// does not read, keep the running one.
    pub(crate) async fn commit(self: &Arc<Self>, meta: DeliveryStreamMeta) -> Result<(), AwsError> {
        let bytes = serde_json::to_vec(&meta).map_err(|error| AwsError::internal(error.to_string()))?;
        self.storage
            .metadata()
            .commit(vec![MetaOp::Put(meta_key(&meta.name), bytes)])
            .await
            .map_err(FirehoseError::Storage)?;
        let previous = self.delivery_streams.read().get(&meta.name).cloned();
        let stream = match previous {
            Some(previous) if previous.meta.version == meta.version => Arc::new(DeliveryStream {
                meta: Arc::new(meta),
                status: Arc::clone(&previous.status),
                worker: Arc::clone(&previous.worker),
            }),
            Some(previous) => {
                previous.worker.stop().await;
                self.start(Arc::new(meta))
            }
            None => self.start(Arc::new(meta)),
        };
        self.delivery_streams.write().insert(stream.meta.name.clone(), stream);
        Ok(())
    }

    /// Removes a delivery stream, its buffer and its checkpoints. The worker stops first, so no
    /// checkpoint is written after they are removed; if the removal cannot be recorded, the
    /// stream stays as it was and delivery goes on with a new worker.
    pub(crate) async fn remove(self: &Arc<Self>, name: &str) -> Result<(), AwsError> {
        let stream = self.get(name)?;
        stream.worker.stop().await;
        let id = stream.meta.id;
        let removed = self
            .storage
            .metadata()
            .commit_freeing(vec![
                MetaOp::Delete(meta_key(name)),
                MetaOp::Delete(crate::delivery::checkpoint_key(id)),
                MetaOp::Delete(crate::source::checkpoint_key(id)),
            ])
            .await;
        if let Err(error) = removed {
            let restarted = self.start(Arc::clone(&stream.meta));
            self.delivery_streams.write().insert(name.to_string(), restarted);
            return Err(FirehoseError::Storage(error).into());
        }
        self.delivery_streams.write().remove(name);
        self.metrics.forget(name, stream.meta.destination.metric_name());
        self.storage.delete_stream(id).await.map_err(|error| FirehoseError::Storage(error).into())
    }
}
