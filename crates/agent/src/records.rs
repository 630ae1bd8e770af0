//! Cutting a file's bytes into records, as the Kinesis Agent does: one line per record (newline
//! included), or with `multiLineStartPattern` a record from one start line to the next; the first
//! `skipHeaderLines` lines of a file dropped; a record longer than a service record truncated and
//! ended with `truncatedRecordTerminator` (and so is a record that processing made too long).

use crate::config::FlowConfig;

/// How much of a file's unfinished data may be cut into a record now.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Flush {
    /// Only records known to be complete: a line with its newline; a multi-line record once the
    /// next record's start line is there.
    Complete,
    /// The file has been idle for the buffer age: a multi-line record's complete lines too.
    Idle,
    /// The file is finished (rotated away and drained): everything, even a line without newline.
    All,
}

/// Per-file state of the cutting.
pub struct Splitter {
    header_lines_left: u64,
    /// After a truncated record: the rest of its line is dropped.
    discarding: bool,
}

/// A record cut from the front of the unread bytes: `consumed` bytes of the file make `data`.
pub struct Cut {
    pub consumed: usize,
    pub data: Option<Vec<u8>>,
    /// The record was longer than a service record and was cut.
    pub truncated: bool,
}

impl Splitter {
    /// For a file read from `offset`: header lines are those at the start of the file.
    pub fn new(config: &FlowConfig, offset: u64) -> Splitter {
        Splitter { header_lines_left: if offset == 0 { config.skip_header_lines } else { 0 }, discarding: false }
    }

    /// The next record at the front of `buf`, or None when more bytes are needed. A cut with no
    /// data consumes bytes that make no record (header lines, the tail of a truncated line).
    pub fn next(&self, buf: &[u8], config: &FlowConfig, flush: Flush) -> Option<Cut> {
        if buf.is_empty() {
            return None;
        }
        if self.discarding || self.header_lines_left > 0 {
            return match line_end(buf, 0) {
                Some(end) => Some(Cut { consumed: end, data: None, truncated: false }),
                None if buf.len() > config.max_record_bytes || flush == Flush::All => {
                    Some(Cut { consumed: buf.len(), data: None, truncated: false })
                }
                None => None,
            };
        }
        let end = match &config.multi_line_start {
            None => line_end(buf, 0),
            Some(start) => {
                let mut end = line_end(buf, 0);
                loop {
                    match end {
                        Some(at)
                            if at < buf.len() && !start.is_match(line(buf, at)) && at <= config.max_record_bytes =>
                        {
                            end = line_end(buf, at);
                        }
                        Some(at) if at == buf.len() && flush == Flush::Complete => break None,
                        other => break other,
                    }
                }
            }
        };
        let end = match end {
            Some(end) => end,
            None if buf.len() > config.max_record_bytes || flush == Flush::All => buf.len(),
            None => return None,
        };
        if end > config.max_record_bytes {
            let data = truncated(buf, config);
            let consumed = data.len() - config.truncated_record_terminator.len();
            return Some(Cut { consumed, data: Some(data), truncated: true });
        }
        Some(Cut { consumed: end, data: Some(buf[..end].to_vec()), truncated: false })
    }

    /// Marks a cut as taken.
    pub fn took(&mut self, cut: &Cut, config: &FlowConfig, buf: &[u8]) {
        if cut.data.is_none() {
            if self.discarding {
                self.discarding = buf.get(cut.consumed - 1) != Some(&b'\n');
            } else if self.header_lines_left > 0 && buf.get(cut.consumed - 1) == Some(&b'\n') {
                self.header_lines_left -= 1;
            }
        } else if cut.data.as_ref().is_some_and(|data| data.ends_with(&config.truncated_record_terminator))
            && buf.get(cut.consumed - 1) != Some(&b'\n')
            && cut.consumed < buf.len()
        {
            self.discarding = true;
        }
    }
}

/// The index after the newline ending the line that starts at `from`.
fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    buf[from..].iter().position(|&b| b == b'\n').map(|at| from + at + 1)
}

/// The line starting at `from`, without its newline.
fn line(buf: &[u8], from: usize) -> &[u8] {
    let end = line_end(buf, from).unwrap_or(buf.len());
    buf[from..end].strip_suffix(b"\n").unwrap_or(&buf[from..end])
}

/// The longest start of `data` that, ended with `truncatedRecordTerminator`, makes a record of the
/// maximum size (the terminator is shorter than a record: checked at start).
pub fn truncated(data: &[u8], config: &FlowConfig) -> Vec<u8> {
    let keep = config.max_record_bytes - config.truncated_record_terminator.len();
    let mut out = data[..keep.min(data.len())].to_vec();
    out.extend_from_slice(&config.truncated_record_terminator);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Destination, InitialPosition, PartitionKeyOption};

    fn config() -> FlowConfig {
        FlowConfig {
            file_pattern: "/x".into(),
            destination: Destination::KinesisStream("s".into()),
            partition_key: PartitionKeyOption::Random,
            initial_position: InitialPosition::StartOfFile,
            max_buffer_age: std::time::Duration::from_secs(1),
            max_buffer_records: 500,
            max_buffer_bytes: 1 << 20,
            max_record_bytes: 16,
            skip_header_lines: 0,
            multi_line_start: None,
            truncated_record_terminator: b"~\n".to_vec(),
            processing: Default::default(),
        }
    }

    fn cut_all(config: &FlowConfig, mut buf: &[u8], flush: Flush) -> Vec<String> {
        let mut splitter = Splitter::new(config, 0);
        let mut records = Vec::new();
        while let Some(cut) = splitter.next(buf, config, flush) {
            splitter.took(&cut, config, buf);
            if let Some(data) = &cut.data {
                records.push(String::from_utf8_lossy(data).into_owned());
            }
            buf = &buf[cut.consumed..];
        }
        records
    }

    #[test]
    fn lines_headers_and_truncation() {
        let mut config = config();
        config.skip_header_lines = 1;
        let records = cut_all(&config, b"header\na\nthis line is far too long\nb\npartial", Flush::Complete);
        assert_eq!(records, ["a\n", "this line is f~\n", "b\n"]);
        assert_eq!(cut_all(&config, b"h\nlast", Flush::All), ["last"]);
    }

    #[test]
    fn multi_line_records_end_at_the_next_start() {
        let mut config = config();
        config.max_record_bytes = 1024;
        config.multi_line_start = Some(regex::bytes::Regex::new("^\\[").unwrap());
        let text = b"[1] a\n  b\n[2] c\n  d\n";
        assert_eq!(cut_all(&config, text, Flush::Complete), ["[1] a\n  b\n"]);
        assert_eq!(cut_all(&config, text, Flush::Idle), ["[1] a\n  b\n", "[2] c\n  d\n"]);
    }
}
