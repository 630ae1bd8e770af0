//! The Data Streams service: the registry of live streams and their persistence.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::RwLock;
use tideline_proto::AwsError;
pub use tideline_proto::Caller;
use tideline_storage::{MetaOp, ShardKey, Storage, StorageError};
use tokio::sync::watch;

use crate::iterator::IteratorCodec;
use crate::limits::ShardLimits;
use crate::metrics::StreamMetrics;
use crate::model::{ConsumerStatus, Routing, StreamMeta, StreamStatus};
use crate::policy;

#[derive(Debug, Clone)]
pub struct StreamsConfig {
    pub region: String,
    pub account_id: String,
    /// How long CREATING, UPDATING and DELETING last (0 for local use; AWS takes seconds).
    pub transition_delay: Duration,
    /// Open shards allowed across all streams, as AWS's per-account shard limit.
    pub shard_limit: u32,
    /// Shard iterators older than this are expired (AWS: 5 minutes).
    pub iterator_ttl: Duration,
    /// Enforce AWS's per-shard throughput limits (off for local use).
    pub enforce_limits: bool,
    /// How often records older than their stream's retention period are deleted; zero turns
    /// retention off (records are then kept until their stream is deleted).
    pub retention_check_interval: Duration,
    /// How long one hour of a stream's retention period lasts. An hour, except in tests, which
    /// shorten it to see records expire without waiting a day.
    pub retention_hour: Duration,
}

impl Default for StreamsConfig {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            transition_delay: Duration::ZERO,
            shard_limit: 500,
            iterator_ttl: Duration::from_secs(300),
            enforce_limits: false,
            retention_check_interval: Duration::from_secs(60),
            retention_hour: Duration::from_secs(3600),
        }
    }
}

/// A stream's current metadata plus what is derived from it for the hot path.
pub(crate) struct StreamState {
    /// Shared, so readers take a snapshot without copying the shard tree.
    pub meta: Arc<StreamMeta>,
    pub routing: Routing,
}

pub(crate) struct StreamEntry {
    pub state: RwLock<StreamState>,
    /// Serialises control-plane changes of this stream (resharding, settings), so each one sees
    /// the result of the previous.
    pub control: Arc<tokio::sync::Mutex<()>>,
    /// Bumped after every change of the shard tree; writers that raced a reshard wait on it.
    pub changed: watch::Sender<u64>,
}

impl StreamEntry {
    pub fn new(meta: StreamMeta) -> Arc<Self> {
        let routing = Routing::of(&meta);
        Arc::new(Self {
            state: RwLock::new(StreamState { meta: Arc::new(meta), routing }),
            control: Arc::new(tokio::sync::Mutex::new(())),
            changed: watch::Sender::new(0),
        })
    }

    /// A copy of the metadata, to modify and install with `replace`.
    pub fn meta(&self) -> StreamMeta {
        StreamMeta::clone(&self.state.read().meta)
    }

    /// The current metadata, for reading.
    pub fn snapshot(&self) -> Arc<StreamMeta> {
        Arc::clone(&self.state.read().meta)
    }

    /// Installs new metadata (and routing) and wakes writers waiting for a change.
    pub fn replace(&self, meta: StreamMeta) {
        let routing = Routing::of(&meta);
        *self.state.write() = StreamState { meta: Arc::new(meta), routing };
        self.changed.send_modify(|version| *version += 1);
    }
}

/// A control-plane change in progress: the stream's control lock is held (so changes apply one
/// after another) and `meta` is a copy of its metadata to modify and then commit.
pub(crate) struct Change {
    pub name: String,
    pub entry: Arc<StreamEntry>,
    pub meta: StreamMeta,
    _lock: tokio::sync::OwnedMutexGuard<()>,
}

impl Change {
    pub async fn begin(name: String, entry: Arc<StreamEntry>) -> Change {
        let lock = Arc::clone(&entry.control).lock_owned().await;
        let meta = entry.meta();
        Change { name, entry, meta, _lock: lock }
    }
}

pub struct StreamsService {
    /// The service itself, for tasks that outlive a request (SubscribeToShard's pusher).
    me: Weak<StreamsService>,
    pub(crate) config: StreamsConfig,
    pub(crate) storage: Arc<Storage>,
    pub(crate) streams: Arc<RwLock<BTreeMap<String, Arc<StreamEntry>>>>,
    pub(crate) iterators: IteratorCodec,
    /// When each (consumer ARN, shard) subscription last started, for SubscribeToShard's
    /// five-second rule.
    pub(crate) subscriptions: parking_lot::Mutex<std::collections::HashMap<(String, u32), i64>>,
    pub(crate) metrics: StreamMetrics,
    /// Per-shard throughput limits, when enforced.
    pub(crate) limits: Option<ShardLimits>,
}

pub(crate) const STREAM_KEY_PREFIX: &str = "stream/";
const ITERATOR_SECRET_KEY: &str = "secret/iterators";

fn stream_key(name: &str) -> String {
    format!("{STREAM_KEY_PREFIX}{name}")
}

pub(crate) use tideline_storage::now_ms;

fn trim_horizon_ms(meta: &StreamMeta, retention_hour: Duration, now: i64) -> i64 {
    let hour_ms = i64::try_from(retention_hour.as_millis()).unwrap_or(i64::MAX);
    now.saturating_sub(hour_ms.saturating_mul(i64::from(meta.retention_hours)))
}

/// One retention pass over every stream.
async fn enforce_retention(storage: &Storage, streams: &RwLock<BTreeMap<String, Arc<StreamEntry>>>, hour: Duration) {
    let entries: Vec<Arc<StreamEntry>> = streams.read().values().cloned().collect();
    let now = now_ms();
    for entry in entries {
        let meta = entry.meta();
        let cutoff = trim_horizon_ms(&meta, hour, now);
        for shard_index in 0..meta.shards.len() as u32 {
            let key = ShardKey { stream_id: meta.id, shard_index };
            let before = storage.tail(key).trim_index;
            match storage.trim_before(key, cutoff).await {
                Ok(after) if after > before => {
                    tracing::debug!(stream = %meta.name, shard_index, trimmed = after - before, "retention")
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(stream = %meta.name, shard_index, %error, "retention pass failed"),
            }
        }
    }
}

/// Storage failures are the server's fault, never the client's.
pub(crate) fn storage_failure(error: StorageError) -> AwsError {
    tracing::error!(%error, "storage failure");
    AwsError::internal(format!("Internal service failure: {error}"))
}

impl StreamsService {
    /// Loads every stream from storage. Streams caught mid-transition by a restart come back
    /// ACTIVE, closed shards are sealed again, and logs of deleted streams are removed.
    pub async fn open(storage: Arc<Storage>, config: StreamsConfig) -> Result<Arc<Self>, StorageError> {
        let secret = Self::iterator_secret(&storage).await?;
        Self::open_with_iterator_secret(storage, config, secret).await
    }

    /// [`open`](Self::open) with the key shard iterators are signed with given, not kept in storage.
    pub(crate) async fn open_with_iterator_secret(
        storage: Arc<Storage>,
        config: StreamsConfig,
        secret: [u8; 32],
    ) -> Result<Arc<Self>, StorageError> {
        let mut streams = BTreeMap::new();
        let mut live = HashSet::new();
        for (_, bytes) in storage.metadata().scan_prefix(STREAM_KEY_PREFIX)? {
            let mut meta: StreamMeta = match serde_json::from_slice(&bytes) {
                Ok(meta) => meta,
                Err(error) => {
                    tracing::error!(%error, "skipping unreadable stream metadata");
                    continue;
                }
            };
            meta.status = StreamStatus::Active;
            for (index, shard) in meta.shards.iter().enumerate() {
                if !shard.is_open() {
                    storage.seal(ShardKey { stream_id: meta.id, shard_index: index as u32 }).await?;
                }
            }
            live.insert(meta.id);
            streams.insert(meta.name.clone(), StreamEntry::new(meta));
        }
        storage.retain_streams(&live)?;
        let metrics = StreamMetrics::new();
        streams.keys().for_each(|name| metrics.register_stream(name));
        tracing::info!(streams = streams.len(), "data streams loaded");
        let service = Arc::new_cyclic(|me| Self {
            me: me.clone(),
            storage,
            streams: Arc::new(RwLock::new(streams)),
            iterators: IteratorCodec::new(secret),
            subscriptions: parking_lot::Mutex::new(std::collections::HashMap::new()),
            metrics,
            limits: config.enforce_limits.then(ShardLimits::default),
            config,
        });
        service.start_retention();
        Ok(service)
    }

    /// Starts the background task that enforces retention: every `retention_check_interval`
    /// (and once at start), each stream's shards, open and closed, are trimmed of the segments
    /// whose records all arrived more than the retention period ago. The task holds the storage
    /// and the stream registry weakly, so it ends with the service (which stays unshared).
    fn start_retention(&self) {
        let period = self.config.retention_check_interval;
        if period.is_zero() {
            tracing::info!("retention is off: records are kept until their stream is deleted");
            return;
        }
        let (storage, streams) = (Arc::downgrade(&self.storage), Arc::downgrade(&self.streams));
        let hour = self.config.retention_hour;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let (Some(storage), Some(streams)) = (storage.upgrade(), streams.upgrade()) else { return };
                enforce_retention(&storage, &streams, hour).await;
            }
        });
    }

    /// The stream's trim horizon: records that arrived before this time are past its retention
    /// period (and a shard closed before it has expired).
    pub(crate) fn trim_horizon_ms(&self, meta: &StreamMeta, now: i64) -> i64 {
        trim_horizon_ms(meta, self.config.retention_hour, now)
    }

    /// The iterator MAC key, kept in metadata so iterators stay valid across restarts.
    async fn iterator_secret(storage: &Storage) -> Result<[u8; 32], StorageError> {
        if let Some(bytes) = storage.metadata().get(ITERATOR_SECRET_KEY)? {
            if let Ok(secret) = <[u8; 32]>::try_from(bytes.as_slice()) {
                return Ok(secret);
            }
        }
        let secret: [u8; 32] = rand::random();
        storage.metadata().commit(vec![MetaOp::Put(ITERATOR_SECRET_KEY.into(), secret.to_vec())]).await?;
        Ok(secret)
    }

    /// A strong handle on this service, for a task that outlives the request that starts it.
    pub(crate) fn shared(&self) -> Arc<StreamsService> {
        // `self` is borrowed from the one `Arc` that `open` made, so it is still alive.
        self.me.upgrade().expect("a StreamsService is only reachable through its Arc")
    }

    /// Refuses a data-plane call that the stream's resource policy explicitly denies to the
    /// caller. Without `--auth` there is no verified caller and policies are only stored.
    pub(crate) fn authorize(
        &self,
        caller: Option<&Caller>,
        meta: &StreamMeta,
        action: &str,
        consumer_arn: Option<&str>,
    ) -> Result<(), AwsError> {
        let (Some(caller), Some(policy)) = (caller, meta.policy.as_deref()) else { return Ok(()) };
        let stream_arn = self.arn(meta);
        let principal = format!("arn:aws:iam::{}:user/{}", self.account(), caller.access_key_id);
        let resources: Vec<&str> = std::iter::once(stream_arn.as_str()).chain(consumer_arn).collect();
        let access = policy::Access { principal: &principal, account: self.account(), action, resources: &resources };
        if !policy::denies(policy, &access) {
            return Ok(());
        }
        Err(AwsError::new(
            tideline_proto::ErrorCode::AccessDenied,
            format!(
                "User: {principal} is not authorized to perform: {action} on resource: {} with an explicit deny in a resource-based policy",
                resources.last().copied().unwrap_or_default()
            ),
        ))
    }

    pub(crate) fn account(&self) -> &str {
        &self.config.account_id
    }

    pub(crate) fn arn(&self, meta: &StreamMeta) -> String {
        meta.arn(&self.config.region, &self.config.account_id)
    }

    pub(crate) fn stream_not_found(&self, name: &str) -> AwsError {
        AwsError::not_found(format!("Stream {name} under account {} not found.", self.account()))
    }

    /// The stream a request names by StreamName or StreamARN (the ARN wins, as in AWS).
    pub(crate) fn resolve_name(&self, name: Option<&str>, arn: Option<&str>) -> Result<String, AwsError> {
        match (arn, name) {
            (Some(arn), _) => Ok(arn.rsplit_once(":stream/").map_or(arn, |(_, name)| name).to_string()),
            (None, Some(name)) => Ok(name.to_string()),
            (None, None) => Err(AwsError::invalid_argument("Neither StreamARN nor StreamName was provided.")),
        }
    }

    pub(crate) fn entry(&self, name: &str) -> Result<Arc<StreamEntry>, AwsError> {
        self.streams.read().get(name).cloned().ok_or_else(|| self.stream_not_found(name))
    }

    /// Looks a stream up by StreamName/StreamARN.
    pub(crate) fn target(&self, name: Option<&str>, arn: Option<&str>) -> Result<(String, Arc<StreamEntry>), AwsError> {
        let name = self.resolve_name(name, arn)?;
        let entry = self.entry(&name)?;
        Ok((name, entry))
    }

    /// The stream a resource ARN names (a stream ARN, or a consumer ARN under a stream).
    pub(crate) fn resource(&self, arn: &str) -> Result<(String, Arc<StreamEntry>), AwsError> {
        let name = arn.split_once(":stream/").map_or("", |(_, rest)| rest.split('/').next().unwrap_or(rest));
        let entry = self.streams.read().get(name).cloned();
        entry
            .map(|entry| (name.to_string(), entry))
            .ok_or_else(|| AwsError::not_found(format!("Resource {arn} not found.")))
    }

    /// Starts a change of the stream named by StreamName/StreamARN.
    pub(crate) async fn change(&self, name: Option<&str>, arn: Option<&str>) -> Result<Change, AwsError> {
        let (name, entry) = self.target(name, arn)?;
        Ok(Change::begin(name, entry).await)
    }

    /// Starts a change of a stream that must be ACTIVE, as most control-plane changes require.
    pub(crate) async fn change_active(&self, name: Option<&str>, arn: Option<&str>) -> Result<Change, AwsError> {
        let change = self.change(name, arn).await?;
        self.require_active(&change.meta)?;
        Ok(change)
    }

    /// Commits a change (see `commit_change`) and releases the stream's control lock.
    pub(crate) async fn commit(&self, change: Change, status: StreamStatus) -> Result<(), AwsError> {
        self.commit_change(&change.entry, change.meta, status).await
    }

    /// Errors unless the stream is ACTIVE, as every control-plane change requires.
    pub(crate) fn require_active(&self, meta: &StreamMeta) -> Result<(), AwsError> {
        if meta.status == StreamStatus::Active {
            Ok(())
        } else {
            Err(AwsError::in_use(format!(
                "Stream {} under account {} not ACTIVE, instead in state {}",
                meta.name,
                self.account(),
                meta.status.as_str()
            )))
        }
    }

    /// Open shards across every stream, for the account shard limit.
    pub(crate) fn open_shards_in_account(&self) -> u32 {
        self.streams.read().values().map(|entry| entry.state.read().meta.open_shard_count()).sum()
    }

    pub(crate) fn check_shard_limit(&self, additional: u32) -> Result<(), AwsError> {
        let current = self.open_shards_in_account();
        if current + additional <= self.config.shard_limit {
            return Ok(());
        }
        Err(AwsError::limit_exceeded(format!(
            "This request would exceed the shard limit for the account {} in {}. Current shard count for the account: {}. \
             Limit: {}. Number of additional shards that would have resulted from this request: {}. Refer to the AWS \
             Service Limits page (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for current \
             limits and how to request higher limits.",
            self.account(),
            self.config.region,
            current,
            self.config.shard_limit,
            additional
        )))
    }

    /// Durably records the stream's metadata.
    /// Transitional states are not persisted: after a restart a stream and its consumers are
    /// ACTIVE, and consumers being deregistered are gone.
    pub(crate) async fn persist(&self, meta: &StreamMeta) -> Result<(), AwsError> {
        let mut stored = meta.clone();
        stored.status = StreamStatus::Active;
        stored.consumers.retain(|c| c.status != ConsumerStatus::Deleting);
        stored.consumers.iter_mut().for_each(|c| c.status = ConsumerStatus::Active);
        let bytes = serde_json::to_vec(&stored).map_err(|e| AwsError::internal(e.to_string()))?;
        self.storage.metadata().commit(vec![MetaOp::Put(stream_key(&meta.name), bytes)]).await.map_err(storage_failure)
    }

    pub(crate) async fn forget(&self, name: &str) -> Result<(), AwsError> {
        self.storage.metadata().commit_freeing(vec![MetaOp::Delete(stream_key(name))]).await.map_err(storage_failure)
    }

    /// Persists `meta` and installs it. A transitional `status` (CREATING, UPDATING) is shown for
    /// the configured delay before the stream is ACTIVE again — not at all when the delay is zero;
    /// `Active` means no transition: the stream keeps the status it has.
    pub(crate) async fn commit_change(
        &self,
        entry: &Arc<StreamEntry>,
        mut meta: StreamMeta,
        status: StreamStatus,
    ) -> Result<(), AwsError> {
        let shown = meta.status;
        meta.status = StreamStatus::Active;
        self.persist(&meta).await?;
        let delay = self.config.transition_delay;
        if status == StreamStatus::Active {
            meta.status = shown;
            entry.replace(meta);
            return Ok(());
        }
        if delay.is_zero() {
            entry.replace(meta);
            return Ok(());
        }
        meta.status = status;
        entry.replace(meta);
        let entry = Arc::clone(entry);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let mut meta = entry.meta();
            if meta.status == status {
                meta.status = StreamStatus::Active;
                entry.replace(meta);
            }
        });
        Ok(())
    }
}
