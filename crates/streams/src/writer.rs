//! The write path: each record routed by its hash key to the open shard that owns it and
//! appended durably, re-routed when a concurrent reshard closed its shard. PutRecord and
//! PutRecords write through it, and so will in-process writers.

use std::sync::Arc;
use std::time::Duration;

use tideline_proto::AwsError;
use tideline_storage::{AppendBatch, AppendOutcome, NewRecord, ShardKey};

use crate::service::{storage_failure, StreamEntry, StreamsService};

/// What became of a record: where it landed, or which shard's write limit refused it.
#[derive(Clone, Copy)]
pub(crate) enum Placement {
    Appended { shard_index: u32, record_index: u64 },
    Throttled { shard_index: u32 },
}

/// Records written by one request, in request order, and the stream state they were written under.
pub(crate) struct Written {
    pub placements: Vec<Placement>,
    /// Records appended (not throttled), and their data bytes.
    pub appended_records: u64,
    pub appended_bytes: u64,
    pub stream_id: u64,
    pub encrypted: bool,
}

impl Written {
    /// Records a write limit refused.
    pub fn throttled(&self) -> u64 {
        self.placements.len() as u64 - self.appended_records
    }
}

/// How many times a write re-routes after racing a reshard that closed its shard.
const MAX_REROUTES: usize = 5;

/// Where a record stands while its request is written.
#[derive(Clone, Copy)]
enum Slot {
    /// Routed to the attempt's batch of this index.
    Routed {
        batch: u32,
    },
    /// At this offset of the attempt's batch.
    Batched {
        batch: u32,
        offset: u32,
    },
    Placed(Placement),
}

/// One attempt's batch for a shard: the records routed to it, and those of them it holds and
/// their data bytes.
struct ShardBatch {
    shard_index: u32,
    routed: usize,
    records: Vec<NewRecord>,
    bytes: u64,
}

/// Routes each record (by its hash key, `hashes[i]` for the `i`th record) to the open shard owning
/// it and appends them durably. With `--enforce-limits`, a record over its shard's write limit
/// is refused (and not written). A shard can be closed by a concurrent reshard between routing
/// and appending; storage then refuses the batch and hands its records back, and they are
/// routed again once the new shard tree is installed.
///
/// A record moves once, from the caller's iterator into its shard's batch, and each stands in
/// one slot of one vector: with 100-byte records, the vectors a request's records passed through
/// cost as much as routing them.
pub(crate) async fn append(
    service: &StreamsService,
    name: &str,
    entry: &Arc<StreamEntry>,
    hashes: &[u128],
    records: impl IntoIterator<Item = NewRecord>,
) -> Result<Written, AwsError> {
    let count = hashes.len();
    let mut slots = vec![Slot::Routed { batch: 0 }; count];
    let mut written =
        Written { placements: Vec::new(), appended_records: 0, appended_bytes: 0, stream_id: 0, encrypted: false };
    let mut first = Some(records);
    let mut retry: (Vec<usize>, Vec<NewRecord>) = (Vec::new(), Vec::new());
    for _ in 0..MAX_REROUTES {
        let mut changed = entry.changed.subscribe();
        let mut sealed = match first.take() {
            Some(records) => {
                let records = records.into_iter();
                attempt(service, name, entry, hashes, &mut slots, 0..count, records, &mut written, true).await?
            }
            None => {
                let (positions, records) = std::mem::take(&mut retry);
                let (positions, records) = (positions.iter().copied(), records.into_iter());
                attempt(service, name, entry, hashes, &mut slots, positions, records, &mut written, false).await?
            }
        };
        if sealed.is_empty() {
            written.placements = slots
                .into_iter()
                .map(|slot| match slot {
                    Slot::Placed(placement) => Ok(placement),
                    _ => Err(AwsError::internal("record was not placed")),
                })
                .collect::<Result<_, _>>()?;
            return Ok(written);
        }
        sealed.sort_unstable_by_key(|(position, _)| *position);
        retry = sealed.into_iter().unzip();
        // Wait for the reshard that sealed the shard to install the new tree.
        let _ = tokio::time::timeout(Duration::from_secs(2), changed.changed()).await;
    }
    Err(AwsError::internal("records could not be routed to an open shard"))
}

/// Routes and appends the records at `positions` (in that order); returns the ones a sealed
/// shard handed back, with their positions. Only a record's first routing is charged to its
/// shard's write limit: one re-routed after a reshard was admitted.
#[allow(clippy::too_many_arguments)]
async fn attempt(
    service: &StreamsService,
    name: &str,
    entry: &Arc<StreamEntry>,
    hashes: &[u128],
    slots: &mut [Slot],
    positions: impl Iterator<Item = usize> + Clone,
    records: impl Iterator<Item = NewRecord>,
    written: &mut Written,
    charged: bool,
) -> Result<Vec<(usize, NewRecord)>, AwsError> {
    // Routed first, counting per shard, so that each shard's batch is allocated at its final size.
    let mut batches: Vec<ShardBatch> = Vec::new();
    {
        let state = entry.state.read();
        if !state.meta.status.accepts_data() {
            return Err(service.stream_not_found(name));
        }
        (written.stream_id, written.encrypted) = (state.meta.id, state.meta.encryption_key.is_some());
        for position in positions.clone() {
            let Some(shard_index) = state.routing.shard_for(hashes[position]) else {
                return Err(AwsError::internal("no open shard owns the hash key"));
            };
            let batch = match batches.iter().position(|batch| batch.shard_index == shard_index) {
                Some(batch) => batch,
                None => {
                    batches.push(ShardBatch { shard_index, routed: 0, records: Vec::new(), bytes: 0 });
                    batches.len() - 1
                }
            };
            batches[batch].routed += 1;
            slots[position] = Slot::Routed { batch: batch as u32 };
        }
    }
    for batch in &mut batches {
        batch.records.reserve_exact(batch.routed);
    }
    let stream_id = written.stream_id;
    for (position, record) in positions.clone().zip(records) {
        let Slot::Routed { batch } = slots[position] else { continue };
        let shard = &mut batches[batch as usize];
        if let (Some(limits), true) = (&service.limits, charged) {
            let size = record.data.len() + record.partition_key.len();
            if !limits.admit_write(ShardKey { stream_id, shard_index: shard.shard_index }, size) {
                // Refused: not written.
                slots[position] = Slot::Placed(Placement::Throttled { shard_index: shard.shard_index });
                continue;
            }
        }
        slots[position] = Slot::Batched { batch, offset: shard.records.len() as u32 };
        shard.bytes += record.data.len() as u64;
        shard.records.push(NewRecord { encrypted: written.encrypted, ..record });
    }
    let shards: Vec<(u32, u64)> = batches.iter().map(|batch| (batch.shard_index, batch.bytes)).collect();
    let append_batches = batches
        .into_iter()
        .map(|batch| AppendBatch {
            shard: ShardKey { stream_id, shard_index: batch.shard_index },
            records: batch.records,
        })
        .collect();
    let outcomes = service.storage.append(append_batches).await.map_err(storage_failure)?;
    let mut first_indices = Vec::with_capacity(outcomes.len());
    let mut sealed_batches = Vec::new();
    for ((outcome, (_, bytes)), batch) in outcomes.into_iter().zip(&shards).zip(0u32..) {
        match outcome {
            AppendOutcome::Appended { first_index, .. } => {
                first_indices.push(Some(first_index));
                written.appended_bytes += bytes;
            }
            // A shard a reshard sealed: its records come back, to be routed again by their hashes.
            AppendOutcome::ShardSealed(records) => {
                first_indices.push(None);
                sealed_batches.push((batch, records.into_iter()));
            }
        }
    }
    let mut sealed = Vec::new();
    for position in positions {
        let Slot::Batched { batch, offset } = slots[position] else { continue };
        match first_indices[batch as usize] {
            Some(first_index) => {
                let shard_index = shards[batch as usize].0;
                let record_index = first_index + u64::from(offset);
                slots[position] = Slot::Placed(Placement::Appended { shard_index, record_index });
                written.appended_records += 1;
            }
            None => {
                let records =
                    sealed_batches.iter_mut().find(|(sealed, _)| *sealed == batch).map(|(_, records)| records);
                match records.and_then(Iterator::next) {
                    Some(record) => sealed.push((position, record)),
                    None => return Err(AwsError::internal("a sealed shard handed back fewer records")),
                }
            }
        }
    }
    Ok(sealed)
}
