//! The server's CPU time over the measured window, read from `/proc/<pid>/stat` (user + system
//! time of every thread, including threads that have exited). Divided by the records the run
//! acknowledged, it is the cost that decides how far one machine goes once the client is fast:
//! the headline figure of a run.
//!
//! The server is the process that listens on the endpoint's port (found through
//! `/proc/net/tcp{,6}` and the processes' socket descriptors), or the one `--server-pid` names.
//! Off Linux, or when the process cannot be read, the figure is simply left out.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use procfs::net::TcpState;
use procfs::process::{FDTarget, Process};
use tokio::time::Instant;

/// Reads one process's CPU time; `start` holds the reading taken when measuring began.
#[derive(Clone)]
pub struct ServerCpu {
    pid: i32,
    start: Arc<Mutex<Option<f64>>>,
}

impl ServerCpu {
    /// The process listening on `addr` (a loopback address), or `pid` when given.
    pub fn find(addr: Option<SocketAddr>, pid: Option<i32>) -> Option<Self> {
        let pid = pid.or_else(|| addr.and_then(listener_pid))?;
        cpu_secs(pid)?;
        Some(ServerCpu { pid, start: Arc::default() })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Takes the starting reading at `at` (the end of the warm-up), in the background. Every
    /// scenario makes exactly one measured clock, which arms this once.
    pub fn arm(&self, at: Instant) {
        let (pid, start) = (self.pid, Arc::clone(&self.start));
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            if let (Some(secs), Ok(mut start)) = (cpu_secs(pid), start.lock()) {
                *start = Some(secs);
            }
        });
    }

    /// Takes the starting reading now (a scenario that times one phase rather than a clock).
    pub fn arm_now(&self) {
        if let (Some(secs), Ok(mut start)) = (cpu_secs(self.pid), self.start.lock()) {
            *start = Some(secs);
        }
    }

    /// CPU-seconds the server used since the starting reading (None if it was never taken).
    pub fn used_since_armed(&self) -> Option<f64> {
        let start = (*self.start.lock().ok()?)?;
        Some((cpu_secs(self.pid)? - start).max(0.0))
    }
}

/// User + system CPU-seconds of process `pid` so far.
fn cpu_secs(pid: i32) -> Option<f64> {
    let stat = Process::new(pid).ok()?.stat().ok()?;
    Some((stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64)
}

/// The process with a listening socket on `addr`'s port and address.
fn listener_pid(addr: SocketAddr) -> Option<i32> {
    let mut entries = procfs::net::tcp().unwrap_or_default();
    entries.extend(procfs::net::tcp6().unwrap_or_default());
    let inode = entries
        .iter()
        .find(|entry| {
            entry.state == TcpState::Listen
                && entry.local_address.port() == addr.port()
                && (entry.local_address.ip() == addr.ip() || entry.local_address.ip().is_unspecified())
        })?
        .inode;
    procfs::process::all_processes().ok()?.flatten().find_map(|process| {
        let mut fds = process.fd().ok()?;
        fds.any(|fd| fd.is_ok_and(|fd| matches!(fd.target, FDTarget::Socket(found) if found == inode)))
            .then_some(process.pid)
    })
}
