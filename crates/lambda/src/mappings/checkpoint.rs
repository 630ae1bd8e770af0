//! A mapping's durable progress: per shard, the last sequence number whose batch is done,
//! whether the shard has been read to its end, and the open tumbling windows (their bounds and
//! the state the function last returned, one per ParallelizationFactor lane). Saved after every
//! batch, the windows with the sequence number they include, so after a crash at most the
//! batches in flight run again and a window's state carries on from the last one saved.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::store::{Kind, Store};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShardProgress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<String>,
    #[serde(default)]
    pub finished: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Option<WindowState>>,
}

/// One tumbling window of one lane: its bounds and the state the function returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowState {
    pub start_ms: i64,
    pub end_ms: i64,
    pub state: Value,
}

pub struct Checkpoints {
    uuid: String,
    store: Arc<Store>,
    /// Held across the save, so that saves land in the order their changes were made.
    shards: Mutex<BTreeMap<String, ShardProgress>>,
}

impl Checkpoints {
    pub fn load(store: Arc<Store>, uuid: &str) -> Self {
        let shards = store.load(Kind::Checkpoint, uuid).unwrap_or_default();
        Self { uuid: uuid.to_string(), store, shards: Mutex::new(shards) }
    }

    pub async fn progress(&self, shard: &str) -> Option<ShardProgress> {
        self.shards.lock().await.get(shard).cloned()
    }

    pub async fn is_finished(&self, shard: &str) -> bool {
        self.shards.lock().await.get(shard).is_some_and(|progress| progress.finished)
    }

    pub async fn advance(
        &self,
        shard: &str,
        sequence_number: Option<String>,
        finished: bool,
        windows: &[Option<WindowState>],
    ) {
        let mut shards = self.shards.lock().await;
        let progress = shards.entry(shard.to_string()).or_default();
        if sequence_number.is_some() {
            progress.sequence_number = sequence_number;
        }
        progress.finished |= finished;
        // No open window is kept as no entry, so a mapping without windows saves what it did.
        progress.windows = if windows.iter().all(Option::is_none) { Vec::new() } else { windows.to_vec() };
        let snapshot = shards.clone();
        let (store, uuid) = (Arc::clone(&self.store), self.uuid.clone());
        let saved = tokio::task::spawn_blocking(move || store.save(Kind::Checkpoint, &uuid, &snapshot)).await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(mapping = %self.uuid, %error, "cannot save checkpoint"),
            Err(error) => tracing::error!(mapping = %self.uuid, %error, "checkpoint save failed"),
        }
    }
}
