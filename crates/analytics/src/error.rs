//! The analytics crate's one error type.

use datafusion::error::DataFusionError;

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The statement does not parse, or names an option, connector or format Tideline lacks.
    #[error("{0}")]
    Invalid(String),
    /// A construct that cannot run on an unbounded stream; the message names it.
    #[error("{0} cannot run on an unbounded stream: {1}")]
    Unbounded(&'static str, &'static str),
    /// A windowed query's open windows hold more than its cap (bytes).
    #[error(
        "the query's open window state passed its cap of {0} bytes (--sql-max-window-state in the server, \
         --max-window-state for tideline sql): windows keep their rows until the watermark passes their end, \
         and event times far ahead of the watermark or ever-new SESSION keys keep them open"
    )]
    WindowStateCap(u64),
    #[error("table {0} is not defined (CREATE TABLE it first)")]
    UnknownTable(String),
    /// A stream could not be read or written (its AWS error).
    #[error("{0}")]
    Stream(String),
    #[error(transparent)]
    Engine(#[from] DataFusionError),
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error(transparent)]
    Parse(#[from] datafusion::sql::sqlparser::parser::ParserError),
}

pub type Result<T> = std::result::Result<T, SqlError>;

pub(crate) fn invalid(message: impl Into<String>) -> SqlError {
    SqlError::Invalid(message.into())
}
