//! glibc malloc settings for the server's allocation pattern: request-sized buffers (bodies,
//! decoded records, batches of tens of KiB to MiB) allocated and freed thousands of times a
//! second on several threads.
//!
//! With glibc's defaults, freeing them grows the top of a thread's arena past its trim
//! threshold (128 KiB at first), and glibc gives the memory back to the kernel at once; the next
//! request faults the same pages in again: durable PutRecords of 100-byte records took ~24,000
//! page faults a second, and of 10 KiB records 130,000 (docs/benchmarks.md, eighth round, has
//! what keeping the memory saved). The thresholds here are the largest glibc would reach by itself
//! after its first large free (the mmap threshold rises to a freed chunk's size, at most 32 MiB,
//! and the trim threshold follows at twice that); setting them is what keeps them from starting
//! low. An arena then keeps at most 64 MiB free at its top, which the next burst reuses.
//!
//! `unsafe` for the one `mallopt` call, which no crate wraps.
#![allow(unsafe_code)]

/// Applies the settings; a no-op on other C libraries.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const MMAP_THRESHOLD: libc::c_int = 32 << 20;
        const TRIM_THRESHOLD: libc::c_int = 64 << 20;
        // SAFETY: mallopt takes plain integers and only changes malloc's parameters; it is
        // called before any other thread runs.
        let applied = unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        };
        if !applied {
            tracing::warn!("could not set malloc's mmap and trim thresholds");
        }
    }
}
