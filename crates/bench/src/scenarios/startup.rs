//! `startup`: how long a Tideline server takes from spawn to serving. Each run spawns the binary
//! (`--listen 127.0.0.1:0`), reads the `tideline listening on URL` line it prints on stdout, and
//! sends ListStreams over a new connection until one succeeds. Reported: spawn → listening line,
//! and spawn → first successful ListStreams (what a test harness waits for).

use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::time::Instant;

use crate::cli::StartupArgs;
use crate::client::{Endpoint, Kinesis, Op};
use crate::BenchError;

const LISTENING_PREFIX: &str = "tideline listening on ";
/// Bound on one start, from spawn to the first successful request.
const START_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize)]
pub struct StartupRun {
    pub listening_ms: f64,
    pub ready_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct StartupReport {
    pub scenario: &'static str,
    pub server: String,
    pub args: Vec<String>,
    pub runs: Vec<StartupRun>,
    pub listening_median_ms: f64,
    pub ready_median_ms: f64,
    pub ready_min_ms: f64,
    pub ready_max_ms: f64,
}

impl StartupReport {
    pub fn table(&self) -> String {
        let mut out = format!("scenario       startup  ({} {})\n", self.server, self.args.join(" "));
        out.push_str(&format!("{:<6} {:>14} {:>14}\n", "run", "listening ms", "ready ms"));
        for (i, run) in self.runs.iter().enumerate() {
            out.push_str(&format!("{:<6} {:>14.2} {:>14.2}\n", i + 1, run.listening_ms, run.ready_ms));
        }
        out.push_str(&format!(
            "median {:>14.2} {:>14.2}   (ready min {:.2}, max {:.2})\n",
            self.listening_median_ms, self.ready_median_ms, self.ready_min_ms, self.ready_max_ms
        ));
        out
    }
}

pub async fn run(args: &StartupArgs, region: &str) -> Result<StartupReport, BenchError> {
    let mut server_args = args.server_args.clone();
    if !server_args.iter().any(|a| a == "--listen" || a.starts_with("--listen=")) {
        server_args.extend(["--listen".to_string(), "127.0.0.1:0".to_string()]);
    }
    let mut runs = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        let data_dir = if args.fresh_data_dir {
            Some(tempfile::Builder::new().prefix("tideline-bench-startup-").tempdir()?)
        } else {
            None
        };
        let mut run_args = server_args.clone();
        if let Some(dir) = &data_dir {
            run_args.extend(["--data-dir".to_string(), dir.path().display().to_string()]);
        }
        runs.push(start_once(args, &run_args, region).await?);
    }
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(0.0)
    };
    let ready: Vec<f64> = runs.iter().map(|r| r.ready_ms).collect();
    Ok(StartupReport {
        scenario: "startup",
        server: args.server.display().to_string(),
        args: server_args,
        listening_median_ms: median(runs.iter().map(|r| r.listening_ms).collect()),
        ready_median_ms: median(ready.clone()),
        ready_min_ms: ready.iter().copied().fold(f64::INFINITY, f64::min),
        ready_max_ms: ready.iter().copied().fold(0.0, f64::max),
        runs,
    })
}

async fn start_once(args: &StartupArgs, run_args: &[String], region: &str) -> Result<StartupRun, BenchError> {
    let started = Instant::now();
    let mut child = Command::new(&args.server)
        .args(run_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| BenchError::Run(format!("cannot start {}: {e}", args.server.display())))?;
    let outcome = async {
        let stdout = child.stdout.take().ok_or_else(|| BenchError::Run("no stdout".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = tokio::time::timeout_at(started + START_TIMEOUT, lines.next_line())
                .await
                .map_err(|_| BenchError::Run(format!("no listening line within {START_TIMEOUT:?}")))??
                .ok_or_else(|| BenchError::Run("the server exited before listening".into()))?;
            if let Some(url) = line.strip_prefix(LISTENING_PREFIX) {
                break url.trim().to_string();
            }
        };
        let listening = started.elapsed();
        let client = Kinesis::new(&Endpoint::parse(&url)?, region, START_TIMEOUT);
        loop {
            match client.json::<_, serde_json::Value>(Op::ListStreams, &serde_json::json!({})).await {
                Ok(_) => break,
                Err(error) if started.elapsed() >= START_TIMEOUT => return Err(error.into()),
                Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
        Ok(StartupRun { listening_ms: ms(listening), ready_ms: ms(started.elapsed()) })
    }
    .await;
    // Only the child this run spawned is stopped.
    let _ = child.start_kill();
    let _ = child.wait().await;
    outcome
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
