//! AWS Lambda for Tideline: functions that run unmodified handlers, and event-source mappings
//! that feed them from Kinesis streams.
//!
//! Owns: the Lambda API subset (functions, Invoke, event-source mappings) as typed operations
//! ([`functions`], [`invoke`], [`mappings`]) behind REST-JSON routing ([`rest`]); the function
//! runner ([`runner`]): sandboxes, each a runtime process (awslambdaric, aws-lambda-ric, a
//! `provided` bootstrap) fed through its own Lambda Runtime API listener; mapping workers reading
//! streams through the typed in-process Data Streams API (and writing on-failure records through
//! the typed writer or Firehose's in-process API); Firehose's transformation functions named by ARN
//! ([`tideline_firehose::FunctionInvoker`]); and Lambda's files under
//! `<data-dir>/lambda/` ([`store`]). Does not own: HTTP serving, SigV4, or the streams themselves.

pub mod code;
pub mod error;
pub mod functions;
pub mod invoke;
pub mod mappings;
pub mod rest;
pub mod runner;
mod service;
pub mod store;
mod transform;

pub use error::LambdaError;
pub use runner::runtimes::RuntimeConfig;
pub use service::{LambdaConfig, LambdaService};

/// Lambda API paths start with a version: most operations are under 2015-03-31, reserved
/// concurrency under 2017-10-31 (PUT, DELETE) and 2019-09-30 (GET).
pub const PATH_PREFIXES: &[&str] = &["/2015-03-31/", "/2017-10-31/", "/2019-09-30/"];
/// The service name Lambda clients scope their SigV4 credentials to.
pub const SIGNING_NAME: &str = "lambda";
