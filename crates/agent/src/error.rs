//! The agent's one error type.

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration file cannot be read or holds a value the agent cannot use.
    #[error("configuration {path}: {message}")]
    Config { path: String, message: String },
    #[error("checkpoint file {path}: {source}")]
    Checkpoint { path: String, source: std::io::Error },
}

pub type Result<T> = std::result::Result<T, AgentError>;
