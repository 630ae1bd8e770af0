//! One execution environment: a runtime process, its own Runtime API listener, and the log of
//! the invocation it is running. A sandbox runs one invocation at a time; a timeout or a crash
//! ends it (the process is killed when the sandbox is dropped).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use super::logs::LogRing;
use super::runtime_api::{self, Invocation, RuntimeChannel, RuntimeEvent, MAX_RESPONSE_BYTES};

/// What to start: the program and arguments of the runtime client, and its environment.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub working_dir: PathBuf,
    pub env: Vec<(String, String)>,
}

/// How an invocation ended, as the Invoke API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success(Bytes),
    /// `X-Amz-Function-Error: Unhandled` with this payload (the runtime's error document, or ours
    /// for a timeout or a crash).
    FunctionError(Bytes),
}

/// Where a sandbox's output goes: the function's ring and the current invocation's.
#[derive(Clone)]
pub struct LogSinks {
    pub function: Arc<Mutex<LogRing>>,
    pub invocation: Arc<Mutex<LogRing>>,
}

impl LogSinks {
    pub fn line(&self, line: &str) {
        self.function.lock().push_line(line);
        self.invocation.lock().push_line(line);
    }
}

pub struct Sandbox {
    channel: RuntimeChannel,
    child: Child,
    pub logs: LogSinks,
    /// The function version (configuration generation) this sandbox was started for.
    pub generation: u64,
}

impl Sandbox {
    pub async fn start(launch: &Launch, logs: LogSinks, generation: u64) -> std::io::Result<Self> {
        let channel = runtime_api::start().await?;
        let mut command = Command::new(&launch.program);
        command
            .args(&launch.args)
            .current_dir(&launch.working_dir)
            .env_clear()
            .envs(launch.env.iter().map(|(key, value)| (key.as_str(), value.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", &channel.address)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn()?;
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(pump(stdout, logs.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(pump(stderr, logs.clone()));
        }
        Ok(Self { channel, child, logs, generation })
    }

    /// Runs one invocation. `Err` means the sandbox is unusable afterwards (timeout, crash, init
    /// failure): the outcome to report is inside.
    pub async fn invoke(&mut self, invocation: Invocation, timeout: Duration) -> Result<Outcome, Outcome> {
        let request_id = invocation.request_id.clone();
        let failure = |kind: &str, message: String| {
            let document = serde_json::json!({
                "errorType": kind,
                "errorMessage": format!("RequestId: {request_id} Error: {message}"),
            });
            Outcome::FunctionError(Bytes::from(document.to_string()))
        };
        let deadline = tokio::time::Instant::now() + timeout;
        if self.channel.invocations.send(invocation).await.is_err() {
            return Err(failure("Runtime.ExitError", "Runtime API closed".into()));
        }
        loop {
            let event = tokio::select! {
                event = self.channel.events.recv() => event,
                status = self.child.wait() => {
                    let status = status.map_or_else(|error| error.to_string(), |status| status.to_string());
                    self.logs.line(&format!("RequestId: {request_id} Error: Runtime exited with error: {status}"));
                    return Err(failure("Runtime.ExitError", format!("Runtime exited with error: {status}")));
                }
                _ = tokio::time::sleep_until(deadline) => {
                    let seconds = timeout.as_secs_f64();
                    let message = format!("Task timed out after {seconds:.2} seconds");
                    self.logs.line(&format!("{} {request_id} {message}", chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ")));
                    return Err(failure("Sandbox.Timedout", message));
                }
            };
            match event {
                Some(RuntimeEvent::Response { request_id: id, payload }) if id == request_id => {
                    if payload.len() > MAX_RESPONSE_BYTES {
                        let message = format!(
                            "Response payload size ({} bytes) exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
                            payload.len()
                        );
                        return Ok(failure("Function.ResponseSizeTooLarge", message));
                    }
                    return Ok(Outcome::Success(payload));
                }
                Some(RuntimeEvent::Error { request_id: id, payload, error_type }) if id == request_id => {
                    tracing::debug!(?error_type, "function error");
                    return Ok(Outcome::FunctionError(payload));
                }
                Some(RuntimeEvent::InitError { payload, .. }) => return Err(Outcome::FunctionError(payload)),
                // A late report for an invocation that already ended: not ours.
                Some(_) => continue,
                None => return Err(failure("Runtime.ExitError", "Runtime API closed".into())),
            }
        }
    }
}

/// Longest log line kept whole; longer output is cut into lines of this size, so that a process
/// printing without newlines cannot grow the buffer.
const MAX_LINE_BYTES: usize = 8 * 1024;

/// Copies a process's output into the logs line by line, until it closes.
async fn pump(output: impl AsyncRead + Unpin, logs: LogSinks) {
    let mut reader = BufReader::new(output);
    let mut line = Vec::with_capacity(256);
    loop {
        let buffer = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(buffer) => buffer,
        };
        let room = MAX_LINE_BYTES - line.len();
        let (taken, complete) = match buffer.iter().take(room).position(|byte| *byte == b'\n') {
            Some(end) => (end + 1, true),
            None => (buffer.len().min(room), line.len() + buffer.len() >= MAX_LINE_BYTES),
        };
        line.extend_from_slice(&buffer[..taken]);
        reader.consume(taken);
        if complete {
            logs.line(String::from_utf8_lossy(&line).trim_end_matches('\n'));
            line.clear();
        }
    }
    if !line.is_empty() {
        logs.line(&String::from_utf8_lossy(&line));
    }
}
