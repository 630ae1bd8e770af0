//! `--cpu-hogs N`: a competing CPU-bound process during the run, so that latency under
//! contention is a standard, repeatable scenario rather than whatever else the machine runs. The
//! hog is this binary again (`tideline-bench spin`, hidden): N threads that spin until a deadline,
//! and it is killed when the run ends, so it never outlives it.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::cli::SpinArgs;

/// The running hog process; dropping it kills it.
pub struct CpuHogs {
    _child: tokio::process::Child,
}

impl CpuHogs {
    /// Starts `threads` spinning threads in a child process, for at most `bound`.
    pub fn start(threads: usize, bound: Duration) -> std::io::Result<CpuHogs> {
        let child = tokio::process::Command::new(std::env::current_exe()?)
            .args(["spin", "--threads", &threads.to_string(), "--seconds", &bound.as_secs_f64().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        Ok(CpuHogs { _child: child })
    }
}

/// The hog itself: `args.threads` threads doing nothing but integer work until the deadline.
pub fn spin(args: &SpinArgs) {
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds.clamp(0.0, 3600.0));
    let threads: Vec<_> = (0..args.threads.max(1))
        .map(|seed| {
            std::thread::spawn(move || {
                let mut state = seed as u64 | 1;
                while Instant::now() < deadline {
                    for _ in 0..100_000 {
                        state = std::hint::black_box(state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
}
