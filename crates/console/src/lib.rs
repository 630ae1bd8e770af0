//! The Tideline web console.
//!
//! Owns: the pages and assets a browser loads at `GET /` and `/console/…` (embedded in the
//! binary, so nothing is needed at run time), and two read-only data calls the AWS APIs have no
//! equivalent for — the server's metrics and per-shard write counters under `/console/api/…`.
//! The console's pages read and write streams through the real AWS APIs (Kinesis, Firehose,
//! Lambda), signed with SigV4 in the browser, so with `--auth` every data call is checked like
//! any other. Does not own: HTTP serving or authentication (the `tideline` binary), nor any
//! stream semantics (`tideline-streams`, read here through its typed in-process API).

mod api;
mod assets;
mod service;

pub use service::{ConsoleConfig, ConsoleService};
