//! What Tideline's fuzz targets share: an allocator that fails loudly on any allocation a length
//! field could have inflated, and the request harness that feeds bodies to a real in-memory
//! service through `StreamsService::handle`, as the HTTP layer does.
//!
//! Nothing here is part of the server: it is built only by `cargo fuzz` (see `scripts/fuzz`).

pub mod frames;
pub mod iterator;
pub mod requests;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;

/// The largest single allocation a target may make. Inputs are a few KiB and the server's own
/// bounds (2 MiB frames, 10 MiB GetRecords responses) sit far below this, so an allocation past
/// it can only come from trusting a length field. libFuzzer's `-malloc_limit_mb` needs a
/// sanitizer's malloc hooks; this works without one (`cargo fuzz run -s none`).
pub const MAX_ALLOCATION: usize = 64 << 20;

/// The system allocator, refusing any allocation above [`MAX_ALLOCATION`]: Rust then aborts
/// ("memory allocation of N bytes failed"), libFuzzer reports a crash and saves the input.
pub struct LimitedAlloc;

impl LimitedAlloc {
    fn refuse(size: usize) -> *mut u8 {
        // Writing a formatted integer to stderr does not allocate.
        let _ = writeln!(
            std::io::stderr(),
            "tideline-fuzz: refusing an allocation of {size} bytes (limit {MAX_ALLOCATION}): a length field was trusted"
        );
        std::ptr::null_mut()
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator, except oversized requests,
// which fail with a null pointer as an allocator may.
unsafe impl GlobalAlloc for LimitedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            return Self::refuse(layout.size());
        }
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            return Self::refuse(layout.size());
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOCATION {
            return Self::refuse(new_size);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: LimitedAlloc = LimitedAlloc;
