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
    pub stream_id: u64,
    pub encrypted: bool,
}

/// How many times a write re-routes after racing a reshard that closed its shard.
const MAX_REROUTES: usize = 5;

/// Routes each record (by hash key) to the open shard owning it and appends them durably.
/// With `--enforce-limits`, a record over its shard's write limit is refused (and not written).
/// A shard can be closed by a concurrent reshard between routing and appending; storage then
/// refuses the batch and hands its records back, and they are routed again once the new shard
/// tree is installed.
pub(crate) async fn append(
    service: &StreamsService,
    name: &str,
    entry: &Arc<StreamEntry>,
    records: Vec<(u128, NewRecord)>,
) -> Result<Written, AwsError> {
    let mut placements: Vec<Option<Placement>> = vec![None; records.len()];
    // Records not placed yet and their positions in the request, in request order. The records
    // move only into their shard's batch: a 100-byte record's move cost as much as its routing.
    let mut pending = records;
    let mut positions: Vec<usize> = (0..pending.len()).collect();
    for attempt in 0..MAX_REROUTES {
        let mut changed = entry.changed.subscribe();
        // Route every pending record first, counting per shard, so that each shard's batch is
        // allocated once at its final size (they used to grow record by record).
        let mut routes: Vec<Option<usize>> = Vec::with_capacity(pending.len()); // batch, or throttled
        let mut shards: Vec<(u32, usize)> = Vec::new(); // (shard index, records)
        let (stream_id, encrypted) = {
            let state = entry.state.read();
            if !state.meta.status.accepts_data() {
                return Err(service.stream_not_found(name));
            }
            let (stream_id, encrypted) = (state.meta.id, state.meta.encryption_key.is_some());
            for ((hash, record), &position) in pending.iter().zip(&positions) {
                let Some(shard_index) = state.routing.shard_for(*hash) else {
                    return Err(AwsError::internal("no open shard owns the hash key"));
                };
                // Only the first routing is charged: a record re-routed after a reshard was admitted.
                if let (Some(limits), 0) = (&service.limits, attempt) {
                    let size = record.data.len() + record.partition_key.len();
                    if !limits.admit_write(ShardKey { stream_id, shard_index }, size) {
                        placements[position] = Some(Placement::Throttled { shard_index });
                        routes.push(None);
                        continue;
                    }
                }
                let batch = match shards.iter().position(|&(shard, _)| shard == shard_index) {
                    Some(batch) => batch,
                    None => {
                        shards.push((shard_index, 0));
                        shards.len() - 1
                    }
                };
                shards[batch].1 += 1;
                routes.push(Some(batch));
            }
            (stream_id, encrypted)
        };
        let mut batches: Vec<(AppendBatch, Vec<(usize, u128)>)> = shards
            .iter()
            .map(|&(shard_index, count)| {
                let shard = ShardKey { stream_id, shard_index };
                (AppendBatch { shard, records: Vec::with_capacity(count) }, Vec::with_capacity(count))
            })
            .collect();
        // The records move into the batches (a throttled one is dropped: it is not written).
        for (((hash, record), position), route) in pending.drain(..).zip(positions.drain(..)).zip(routes) {
            if let Some(batch) = route {
                let (batch, placed) = &mut batches[batch];
                batch.records.push(NewRecord { encrypted, ..record });
                placed.push((position, hash));
            }
        }
        let (batches, placed): (Vec<AppendBatch>, Vec<Vec<(usize, u128)>>) = batches.into_iter().unzip();
        let shards: Vec<u32> = batches.iter().map(|batch| batch.shard.shard_index).collect();
        let outcomes = service.storage.append(batches).await.map_err(storage_failure)?;
        // Records of a shard a reshard sealed come back, to be routed again by their hashes.
        let mut sealed: Vec<(usize, (u128, NewRecord))> = Vec::new();
        for ((outcome, placed), shard_index) in outcomes.into_iter().zip(placed).zip(shards) {
            match outcome {
                AppendOutcome::Appended { first_index, .. } => {
                    for (offset, (position, _)) in placed.into_iter().enumerate() {
                        placements[position] =
                            Some(Placement::Appended { shard_index, record_index: first_index + offset as u64 });
                    }
                }
                AppendOutcome::ShardSealed(records) => sealed.extend(
                    placed.into_iter().zip(records).map(|((position, hash), record)| (position, (hash, record))),
                ),
            }
        }
        if sealed.is_empty() {
            let placements = placements.into_iter().flatten().collect();
            return Ok(Written { placements, stream_id, encrypted });
        }
        sealed.sort_unstable_by_key(|(position, _)| *position);
        (positions, pending) = sealed.into_iter().unzip();
        // Wait for the reshard that sealed the shard to install the new tree.
        let _ = tokio::time::timeout(Duration::from_secs(2), changed.changed()).await;
    }
    Err(AwsError::internal("records could not be routed to an open shard"))
}
