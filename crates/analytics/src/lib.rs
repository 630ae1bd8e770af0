//! Tideline Analytics: continuous SQL over Tideline's streams in the Flink SQL dialect, on
//! DataFusion. Owns the Flink statement pre-pass ([`prepass`]), tables and their connector
//! options ([`table`]) and their computed columns ([`computed`]), record formats ([`format`]),
//! Flink's scalar functions ([`functions`]), reading streams shard by shard ([`source`]) and ahead
//! of the query on other cores ([`read_ahead`]), event-time windows and watermarks ([`window`]),
//! running statements ([`engine`]) on plans made once ([`prepared`]), sinks ([`sink`]), the
//! `tideline sql` command ([`cli`]), and jobs ([`jobs`]) managed through a kinesisanalyticsv2-shaped
//! API ([`applications`]) and `tideline sql --submit/--list/--stop` ([`manage`]). Does not own the
//! streams themselves: it reads and writes them through `tideline_streams` in process, or through
//! the Kinesis API.

pub mod applications;
pub mod cli;
pub mod computed;
pub mod engine;
pub mod error;
pub mod format;
pub mod functions;
pub mod jobs;
pub mod manage;
pub mod prepared;
pub mod prepass;
pub mod read_ahead;
pub mod sink;
pub mod source;
pub mod table;
pub mod window;

pub use applications::{ApplicationsApi, ApplicationsConfig, ApplicationsService};
pub use cli::{run, SqlArgs};
pub use engine::{Engine, Query, Stats};
pub use error::SqlError;
