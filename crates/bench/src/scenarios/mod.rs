//! One file per scenario; `ingest` and `latency` hold what several of them share.

pub mod e2e;
pub mod fsync;
pub mod get_records;
pub mod ingest;
pub mod latency;
pub mod sdk;
pub mod sql_tumble;
pub mod startup;
pub mod subscribe;
