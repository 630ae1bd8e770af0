//! The one wall clock of Tideline: records' arrival times are stamped with it, and every service
//! compares against it (retention, iterator expiry, timestamps in responses).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the system clock is set before it).
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as i64)
}
