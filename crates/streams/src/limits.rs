//! Per-shard throughput limits as AWS enforces them on provisioned shards (opt-in with
//! `--enforce-limits`): writes 1 MiB/s and 1,000 records/s, reads 5 calls/s and 2 MiB/s. Token
//! buckets refill continuously and hold one second of capacity; a read may overdraw its byte
//! bucket (a 10 MiB response then blocks reads for about five seconds, as in AWS).

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::Mutex;
use tideline_storage::ShardKey;

const WRITE_BYTES_PER_SEC: f64 = 1024.0 * 1024.0;
const WRITE_RECORDS_PER_SEC: f64 = 1000.0;
const READ_CALLS_PER_SEC: f64 = 5.0;
const READ_BYTES_PER_SEC: f64 = 2.0 * 1024.0 * 1024.0;

struct Bucket {
    tokens: f64,
    rate: f64,
}

impl Bucket {
    fn full(rate: f64) -> Self {
        Self { tokens: rate, rate }
    }

    fn refill(&mut self, seconds: f64) {
        self.tokens = (self.tokens + seconds * self.rate).min(self.rate);
    }
}

struct ShardBuckets {
    updated: Instant,
    write_bytes: Bucket,
    write_records: Bucket,
    read_calls: Bucket,
    read_bytes: Bucket,
}

impl ShardBuckets {
    fn new(now: Instant) -> Self {
        Self {
            updated: now,
            write_bytes: Bucket::full(WRITE_BYTES_PER_SEC),
            write_records: Bucket::full(WRITE_RECORDS_PER_SEC),
            read_calls: Bucket::full(READ_CALLS_PER_SEC),
            read_bytes: Bucket::full(READ_BYTES_PER_SEC),
        }
    }

    fn refill(&mut self, now: Instant) {
        let seconds = now.saturating_duration_since(self.updated).as_secs_f64();
        self.updated = now;
        for bucket in [&mut self.write_bytes, &mut self.write_records, &mut self.read_calls, &mut self.read_bytes] {
            bucket.refill(seconds);
        }
    }
}

#[derive(Default)]
pub struct ShardLimits {
    shards: Mutex<HashMap<ShardKey, ShardBuckets>>,
}

impl ShardLimits {
    /// Runs `f` on the shard's buckets refilled up to `now` (a parameter, so tests are not at the
    /// mercy of the machine's speed).
    fn with<T>(&self, shard: ShardKey, now: Instant, f: impl FnOnce(&mut ShardBuckets) -> T) -> T {
        let mut shards = self.shards.lock();
        let buckets = shards.entry(shard).or_insert_with(|| ShardBuckets::new(now));
        buckets.refill(now);
        f(buckets)
    }

    /// Takes capacity for one record of `bytes` (data and partition key); false if the shard's
    /// write limit is reached, in which case nothing is taken.
    pub fn admit_write(&self, shard: ShardKey, bytes: usize) -> bool {
        self.admit_write_at(shard, bytes, Instant::now())
    }

    fn admit_write_at(&self, shard: ShardKey, bytes: usize, now: Instant) -> bool {
        self.with(shard, now, |b| {
            let bytes = bytes as f64;
            if b.write_records.tokens < 1.0 || b.write_bytes.tokens < bytes {
                return false;
            }
            b.write_records.tokens -= 1.0;
            b.write_bytes.tokens -= bytes;
            true
        })
    }

    /// Takes one read call; false if the shard's call rate or byte budget is exhausted.
    pub fn admit_read(&self, shard: ShardKey) -> bool {
        self.admit_read_at(shard, Instant::now())
    }

    fn admit_read_at(&self, shard: ShardKey, now: Instant) -> bool {
        self.with(shard, now, |b| {
            if b.read_calls.tokens < 1.0 || b.read_bytes.tokens <= 0.0 {
                return false;
            }
            b.read_calls.tokens -= 1.0;
            true
        })
    }

    /// Charges the bytes a read returned (possibly overdrawing the budget).
    pub fn charge_read(&self, shard: ShardKey, bytes: usize) {
        self.with(shard, Instant::now(), |b| b.read_bytes.tokens -= bytes as f64);
    }

    pub fn forget_stream(&self, stream_id: u64) {
        self.shards.lock().retain(|key, _| key.stream_id != stream_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHARD: ShardKey = ShardKey { stream_id: 1, shard_index: 0 };

    #[test]
    fn writes_are_limited_by_records_and_bytes() {
        let limits = ShardLimits::default();
        let now = Instant::now();
        assert_eq!((0..1200).filter(|_| limits.admit_write_at(SHARD, 10, now)).count(), 1000);
        let other = ShardKey { shard_index: 1, ..SHARD };
        assert!(limits.admit_write_at(other, 1024 * 1024, now));
        assert!(!limits.admit_write_at(other, 1, now));
        let later = now + std::time::Duration::from_millis(100);
        assert_eq!((0..200).filter(|_| limits.admit_write_at(SHARD, 10, later)).count(), 100, "refilled 1,000/s");
    }

    #[test]
    fn reads_are_limited_by_calls_and_overdrawn_bytes() {
        let limits = ShardLimits::default();
        let now = Instant::now();
        assert_eq!((0..8).filter(|_| limits.admit_read_at(SHARD, now)).count(), 5);
        let other = ShardKey { shard_index: 1, ..SHARD };
        assert!(limits.admit_read_at(other, now));
        limits.charge_read(other, 10 * 1024 * 1024);
        assert!(!limits.admit_read(other), "an overdrawn byte budget blocks reads");
    }
}
