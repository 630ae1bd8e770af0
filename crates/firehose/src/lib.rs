//! Amazon Data Firehose semantics for Tideline.
//!
//! Owns: delivery streams (the `Firehose_20150804` API, one handler per operation), their durable
//! buffers (a `tideline-storage` log per delivery stream, so an accepted record survives a crash),
//! the delivery loop with buffering hints, retries and error output, the processing steps (KPL
//! de-aggregation, the transformation hook, dynamic partitioning, Parquet conversion,
//! compression) and the destinations (S3-compatible buckets or local folders, HTTP endpoints,
//! PostgreSQL), one folder each behind one trait and one registration line, and its typed errors
//! (`error.rs`, mapped to AWS errors in one place). Reads Kinesis streams through
//! `tideline-streams`' API. Does not own: HTTP serving or flags (the `tideline` binary).

mod delivery;
mod destinations;
mod error;
mod in_process;
mod metrics;
mod model;
mod naming;
mod ops;
mod processing;
mod service;
mod source;

pub use destinations::stores::BucketsConfig;
pub use processing::functions::{FunctionInvoker, InvokeFailure};
pub use service::{FirehoseConfig, FirehoseService, KinesisStart};

/// The `X-Amz-Target` prefix of the Firehose API.
pub const TARGET_PREFIX: &str = "Firehose_20150804";
