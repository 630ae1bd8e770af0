//! A function's log: the last bytes its runtime processes wrote, in a bounded ring.

use std::collections::VecDeque;

/// Keeps the newest `capacity` bytes of what was appended.
#[derive(Debug)]
pub struct LogRing {
    bytes: VecDeque<u8>,
    capacity: usize,
}

impl LogRing {
    pub fn new(capacity: usize) -> Self {
        Self { bytes: VecDeque::with_capacity(capacity.min(64 * 1024)), capacity }
    }

    pub fn push_line(&mut self, line: &str) {
        self.bytes.extend(line.as_bytes());
        self.bytes.push_back(b'\n');
        let excess = self.bytes.len().saturating_sub(self.capacity);
        self.bytes.drain(..excess);
    }

    /// The last `limit` bytes (cut on a character boundary).
    pub fn tail(&self, limit: usize) -> String {
        let skip = self.bytes.len().saturating_sub(limit);
        let bytes: Vec<u8> = self.bytes.iter().skip(skip).copied().collect();
        let text = String::from_utf8_lossy(&bytes);
        // A multi-byte character cut at the start decodes as U+FFFD: drop it.
        text.trim_start_matches('\u{FFFD}').to_string()
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_bytes() {
        let mut ring = LogRing::new(10);
        ring.push_line("abcdef");
        ring.push_line("ghij");
        assert_eq!(ring.tail(100), "cdef\nghij\n");
        assert_eq!(ring.tail(5), "ghij\n");
        ring.push_line("é");
        assert_eq!(ring.tail(2), "\n", "half of é is dropped");
    }
}
