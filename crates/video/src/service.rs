//! The Kinesis Video service: the set of video streams and their persistence.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};
use tideline_storage::{MetaOp, Storage, StorageError};

use crate::error::VideoError;
use crate::media::MediaStore;
use crate::model::{Status, StreamMeta};

#[derive(Debug, Clone)]
pub struct VideoConfig {
    pub region: String,
    pub account_id: String,
    /// `http` or `https`: how clients reach this server, for the data endpoints it hands out.
    pub scheme: &'static str,
    /// Most streams per account (`AccountStreamLimitExceededException` beyond): keeps the
    /// metadata, and the listings clients page through, bounded.
    pub max_streams: usize,
    /// Where fragments are stored (`<data-dir>/video/media`); `None` keeps them in memory.
    pub media_dir: Option<PathBuf>,
    /// How long a new stream stays CREATING and a deleted one DELETING (its name still taken).
    /// AWS does both asynchronously and clients poll DescribeStream; Tideline needs no time for
    /// either, so this is the server's `--create-delay-ms`, as for data streams (0: at once).
    pub transition_ms: i64,
}

pub struct VideoService {
    pub(crate) config: VideoConfig,
    /// The video service's own storage, apart from the data streams'.
    storage: Arc<Storage>,
    streams: RwLock<BTreeMap<String, Arc<StreamMeta>>>,
    /// Control-plane changes run one at a time, so that check-then-commit sequences (version
    /// checks, name uniqueness, tag limits) don't race.
    pub(crate) changes: tokio::sync::Mutex<()>,
    media: MediaStore,
    /// Streams deleted in the last `transition_ms`, with when: described as DELETING, and their
    /// names not yet free for a new stream.
    deleting: Mutex<Vec<(Arc<StreamMeta>, i64)>>,
    /// The service itself, for the tasks a request leaves running (PutMedia's ingest).
    me: Weak<VideoService>,
}

const META_PREFIX: &str = "videostream/";

fn meta_key(name: &str) -> String {
    format!("{META_PREFIX}{name}")
}

/// How a request names its stream: `StreamName` or `StreamARN`.
pub(crate) struct StreamRef<'a> {
    pub name: Option<&'a str>,
    pub arn: Option<&'a str>,
}

impl VideoService {
    /// Loads every stream's description.
    pub fn open(storage: Arc<Storage>, config: VideoConfig) -> Result<Arc<Self>, Box<dyn std::error::Error>> {
        let mut streams = BTreeMap::new();
        for (_, bytes) in storage.metadata().scan_prefix(META_PREFIX)? {
            match serde_json::from_slice::<StreamMeta>(&bytes) {
                Ok(meta) => {
                    streams.insert(meta.name.clone(), Arc::new(meta));
                }
                Err(error) => tracing::error!(%error, "skipping unreadable video stream metadata"),
            }
        }
        tracing::info!(video_streams = streams.len(), "video streams loaded");
        let media = MediaStore::new(config.media_dir.clone());
        Ok(Arc::new_cyclic(|me| Self {
            config,
            storage,
            streams: RwLock::new(streams),
            changes: tokio::sync::Mutex::new(()),
            media,
            deleting: Mutex::new(Vec::new()),
            me: me.clone(),
        }))
    }

    /// The streams' fragments.
    pub fn media(&self) -> &MediaStore {
        &self.media
    }

    /// The service, shared: `None` only while it is being dropped.
    pub(crate) fn shared(&self) -> Option<Arc<Self>> {
        self.me.upgrade()
    }

    /// A stream's current description, by name.
    pub(crate) fn stream_meta(&self, name: &str) -> Option<Arc<StreamMeta>> {
        self.streams.read().get(name).cloned()
    }

    pub(crate) fn arn(&self, name: &str, created_ms: i64) -> String {
        format!("arn:aws:kinesisvideo:{}:{}:stream/{name}/{created_ms}", self.config.region, self.config.account_id)
    }

    /// The Kinesis Video-managed key (`aws/kinesisvideo`) streams are encrypted with when they
    /// name no key of their own.
    pub(crate) fn default_kms_key(&self) -> String {
        format!("arn:aws:kms:{}:{}:alias/aws/kinesisvideo", self.config.region, self.config.account_id)
    }

    pub(crate) fn exists(&self, name: &str) -> bool {
        self.streams.read().contains_key(name)
    }

    pub(crate) fn count(&self) -> usize {
        self.streams.read().len()
    }

    /// The stream an ARN names; `malformed` is the error for a string that is no video stream ARN.
    pub(crate) fn by_arn(&self, arn: &str, malformed: fn(String) -> VideoError) -> Result<Arc<StreamMeta>, VideoError> {
        let name = arn
            .strip_prefix("arn:aws:kinesisvideo:")
            .and_then(|rest| rest.split_once(":stream/"))
            .and_then(|(_, rest)| rest.split_once('/'))
            .map(|(name, _)| name);
        let Some(name) = name else { return Err(malformed(format!("The ARN {arn} is not a valid stream ARN."))) };
        let found = self.streams.read().get(name).cloned();
        found.filter(|meta| meta.arn == arn).ok_or(VideoError::StreamNotFound)
    }

    /// The stream a request names by `StreamName` or `StreamARN`; exactly one must be given.
    pub(crate) fn locate(
        &self,
        stream: StreamRef<'_>,
        malformed: fn(String) -> VideoError,
    ) -> Result<Arc<StreamMeta>, VideoError> {
        match (stream.name, stream.arn) {
            (Some(name), None) => self.streams.read().get(name).cloned().ok_or(VideoError::StreamNotFound),
            (None, Some(arn)) => self.by_arn(arn, malformed),
            _ => Err(VideoError::InvalidArgument("Either StreamName or StreamARN must be specified, not both.".into())),
        }
    }

    /// The stream a request names, if it is ACTIVE (a stream still CREATING is `NotActive`).
    pub(crate) fn locate_active(
        &self,
        stream: StreamRef<'_>,
        malformed: fn(String) -> VideoError,
    ) -> Result<Arc<StreamMeta>, VideoError> {
        let meta = self.locate(stream, malformed)?;
        match self.status(&meta) {
            Status::Active => Ok(meta),
            status => Err(VideoError::NotActive { name: meta.name.clone(), status: status.as_str() }),
        }
    }

    /// The status of a stream that is not being deleted, now.
    pub(crate) fn status(&self, meta: &StreamMeta) -> Status {
        meta.status(tideline_storage::now_ms(), self.config.transition_ms)
    }

    /// The stream `stream` names if DeleteStream deleted it less than `transition_ms` ago.
    pub(crate) fn deleting(&self, stream: StreamRef<'_>) -> Option<Arc<StreamMeta>> {
        let mut deleting = self.deleting.lock();
        let now = tideline_storage::now_ms();
        deleting.retain(|(_, since)| now < since.saturating_add(self.config.transition_ms));
        let named = |meta: &StreamMeta| stream.name == Some(&meta.name) || stream.arn == Some(&meta.arn);
        deleting.iter().find(|(meta, _)| named(meta)).map(|(meta, _)| Arc::clone(meta))
    }

    /// Streams in name order, from the first name after `after`, whose names start with `prefix`.
    pub(crate) fn list(&self, after: Option<&str>, prefix: &str, limit: usize) -> Vec<Arc<StreamMeta>> {
        let streams = self.streams.read();
        let from = match after {
            Some(after) => streams.range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
            None => streams.range::<str, _>(..),
        };
        from.map(|(_, meta)| meta).filter(|meta| meta.name.starts_with(prefix)).take(limit).cloned().collect()
    }

    /// Persists a stream's description, then serves it.
    pub(crate) async fn commit(&self, meta: StreamMeta) -> Result<(), VideoError> {
        let bytes = serde_json::to_vec(&meta)?;
        self.storage.metadata().commit(vec![MetaOp::Put(meta_key(&meta.name), bytes)]).await?;
        self.streams.write().insert(meta.name.clone(), Arc::new(meta));
        Ok(())
    }

    /// A 32-byte secret kept under `name` in the video metadata: drawn at random the first time,
    /// the same one after every restart.
    pub(crate) async fn durable_secret(&self, name: &str) -> Result<[u8; 32], StorageError> {
        let kept = self.storage.metadata().get(name)?.and_then(|bytes| <[u8; 32]>::try_from(bytes).ok());
        if let Some(secret) = kept {
            return Ok(secret);
        }
        let secret: [u8; 32] = rand::random();
        self.storage.metadata().commit(vec![MetaOp::Put(name.to_owned(), secret.to_vec())]).await?;
        Ok(secret)
    }

    /// The base URL a request reached this server by: every data API is served on this same
    /// port, so data endpoints and session URLs point where the client called.
    pub(crate) fn endpoint(&self, head: &http::request::Parts) -> Result<String, VideoError> {
        // HTTP/2 carries the authority in the URI, HTTP/1.1 in the Host header.
        let host = head.uri.authority().map(|authority| authority.as_str());
        let host = host.or_else(|| head.headers.get(http::header::HOST).and_then(|value| value.to_str().ok()));
        let host = host.ok_or_else(|| VideoError::InvalidArgument("The request names no Host.".into()))?;
        Ok(format!("{}://{host}", self.config.scheme))
    }

    pub(crate) async fn remove(&self, name: &str) -> Result<(), VideoError> {
        self.storage.metadata().commit_freeing(vec![MetaOp::Delete(meta_key(name))]).await?;
        if let Some(meta) = self.streams.write().remove(name) {
            let now = tideline_storage::now_ms();
            let mut deleting = self.deleting.lock();
            // Bounded: only the last `transition_ms`'s deletions stay.
            deleting.retain(|(_, since)| now < since.saturating_add(self.config.transition_ms));
            deleting.push((meta, now));
        }
        self.media.remove(name);
        Ok(())
    }
}
