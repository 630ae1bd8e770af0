//! Amazon Kinesis Data Streams semantics for Tideline.
//!
//! Owns: streams and their shard trees, partition-key routing over the 128-bit hash key space,
//! sequence numbers, shard iterator tokens, resharding, one handler per Data Streams API operation
//! (typed request/response structs with their validation, in one operation table), and the typed
//! in-process API other services read streams with ([`StreamsService::open_reader`]) and write
//! to them with ([`StreamsService::put_entries`]). Records and metadata are kept
//! by `tideline-storage`; bodies are decoded and errors shaped by `tideline-proto`. Does not own:
//! HTTP serving or configuration parsing (the `tideline` binary).

#[doc(hidden)]
pub mod fuzzing;
mod hash;
mod iterator;
mod limits;
mod metrics;
mod model;
pub mod offline;
mod ops;
mod policy;
mod producer;
mod reader;
mod resharding;
mod rules;
mod sequence;
mod service;
mod writer;

pub use producer::{split_batches, NewEntry, PutOutcome};
pub use reader::{Batch, Position, Record, ShardInfo, ShardReader, StreamInfo};
pub use service::{Caller, StreamsConfig, StreamsService};

/// The `X-Amz-Target` prefix of the Data Streams API.
pub const TARGET_PREFIX: &str = "Kinesis_20131202";
