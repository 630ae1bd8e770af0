//! The persisted shape of a stream: its settings and its shard tree. Pure data and arithmetic,
//! no I/O, so resharding can be tested exhaustively.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hash::even_ranges;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamStatus {
    Creating,
    Deleting,
    Active,
    Updating,
}

impl StreamStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "CREATING",
            Self::Deleting => "DELETING",
            Self::Active => "ACTIVE",
            Self::Updating => "UPDATING",
        }
    }

    /// Records can be written and read while the stream is ACTIVE or UPDATING.
    pub fn accepts_data(self) -> bool {
        matches!(self, Self::Active | Self::Updating)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamMode {
    Provisioned,
    OnDemand,
}

impl StreamMode {
    pub const VALUES: [&'static str; 2] = ["PROVISIONED", "ON_DEMAND"];

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "PROVISIONED" => Some(Self::Provisioned),
            "ON_DEMAND" => Some(Self::OnDemand),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provisioned => "PROVISIONED",
            Self::OnDemand => "ON_DEMAND",
        }
    }
}

/// Hash keys are stored as decimal text: JSON numbers cannot hold 128 bits portably.
mod u128_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u128, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u128, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMeta {
    pub parent: Option<u32>,
    pub adjacent_parent: Option<u32>,
    #[serde(with = "u128_text")]
    pub start_hash: u128,
    #[serde(with = "u128_text")]
    pub end_hash: u128,
    /// Set when the shard is closed: it holds exactly the records with indices below this.
    pub ending_index: Option<u64>,
    pub created_ms: i64,
    pub closed_ms: Option<i64>,
}

impl ShardMeta {
    pub fn is_open(&self) -> bool {
        self.ending_index.is_none()
    }

    /// A closed shard has expired once it closed before the trim horizon: every record it holds
    /// arrived before it closed, so all are past the retention period. AWS no longer lists an
    /// expired shard (ListShards, DescribeStream) and serves nothing from it.
    pub fn expired(&self, trim_horizon_ms: i64) -> bool {
        self.closed_ms.is_some_and(|closed| closed < trim_horizon_ms)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMeta {
    pub id: u64,
    pub name: String,
    pub created_ms: i64,
    pub status: StreamStatus,
    pub mode: StreamMode,
    pub retention_hours: u32,
    /// Indexed by shard index: `shardId-000000000003` is `shards[3]`.
    pub shards: Vec<ShardMeta>,
    pub tags: BTreeMap<String, String>,
    /// `Some(key id)` while server-side encryption is on.
    pub encryption_key: Option<String>,
    pub shard_level_metrics: Vec<String>,
    pub policy: Option<String>,
    /// Enhanced fan-out consumers registered on the stream.
    #[serde(default)]
    pub consumers: Vec<ConsumerMeta>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConsumerStatus {
    Creating,
    Deleting,
    Active,
}

impl ConsumerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "CREATING",
            Self::Deleting => "DELETING",
            Self::Active => "ACTIVE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerMeta {
    pub name: String,
    pub created_ms: i64,
    pub status: ConsumerStatus,
    /// Given at RegisterStreamConsumer or by TagResource on the consumer ARN.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl ConsumerMeta {
    /// `arn:aws:kinesis:<region>:<account>:stream/<stream>/consumer/<name>:<creation epoch seconds>`.
    pub fn arn(&self, stream_arn: &str) -> String {
        format!("{stream_arn}/consumer/{}:{}", self.name, self.created_ms.div_euclid(1000))
    }

    /// Whether this is the consumer a consumer ARN names: same name, created in that second.
    pub fn is(&self, name: &str, created_secs: i64) -> bool {
        self.name == name && self.created_ms.div_euclid(1000) == created_secs
    }
}

pub const DEFAULT_RETENTION_HOURS: u32 = 24;

pub fn shard_id(index: u32) -> String {
    ShardIdText::of(index).as_str().to_owned()
}

/// `shardId-` and the index in twelve digits (a `u32` never needs more), on the stack: PutRecords
/// answers with one per record.
#[derive(Clone, Copy)]
pub struct ShardIdText([u8; 20]);

impl ShardIdText {
    pub fn of(index: u32) -> Self {
        let mut text = *b"shardId-000000000000";
        let mut rest = index;
        let mut at = text.len();
        while rest > 0 {
            at -= 1;
            text[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        Self(text)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl Serialize for ShardIdText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Shard ids are `shardId-` and twelve digits; AWS also accepts the bare number's canonical form.
pub fn parse_shard_id(text: &str) -> Option<u32> {
    let digits = text.strip_prefix("shardId-").unwrap_or(text);
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl StreamMeta {
    pub fn new(id: u64, name: String, created_ms: i64, shard_count: u32, mode: StreamMode) -> Self {
        let shards = even_ranges(shard_count)
            .into_iter()
            .map(|(start_hash, end_hash)| ShardMeta {
                parent: None,
                adjacent_parent: None,
                start_hash,
                end_hash,
                ending_index: None,
                created_ms,
                closed_ms: None,
            })
            .collect();
        Self {
            id,
            name,
            created_ms,
            status: StreamStatus::Creating,
            mode,
            retention_hours: DEFAULT_RETENTION_HOURS,
            shards,
            tags: BTreeMap::new(),
            encryption_key: None,
            shard_level_metrics: Vec::new(),
            policy: None,
            consumers: Vec::new(),
        }
    }

    pub fn shard(&self, index: u32) -> Option<&ShardMeta> {
        self.shards.get(index as usize)
    }

    /// The shard a `shardId-...` names, if this stream has it.
    pub fn find_shard(&self, shard_id: &str) -> Option<(u32, &ShardMeta)> {
        let index = parse_shard_id(shard_id)?;
        self.shard(index).map(|shard| (index, shard))
    }

    pub fn open_shards(&self) -> impl Iterator<Item = (u32, &ShardMeta)> {
        self.shards.iter().enumerate().filter(|(_, s)| s.is_open()).map(|(i, s)| (i as u32, s))
    }

    pub fn open_shard_count(&self) -> u32 {
        self.open_shards().count() as u32
    }

    /// Shards created from `index` by a split or merge.
    pub fn children_of(&self, index: u32) -> impl Iterator<Item = (u32, &ShardMeta)> {
        self.shards
            .iter()
            .enumerate()
            .filter(move |(_, s)| s.parent == Some(index) || s.adjacent_parent == Some(index))
            .map(|(i, s)| (i as u32, s))
    }

    pub fn arn(&self, region: &str, account: &str) -> String {
        format!("arn:aws:kinesis:{region}:{account}:stream/{}", self.name)
    }

    fn add_shard(&mut self, parent: u32, adjacent_parent: Option<u32>, range: (u128, u128), now_ms: i64) -> u32 {
        self.shards.push(ShardMeta {
            parent: Some(parent),
            adjacent_parent,
            start_hash: range.0,
            end_hash: range.1,
            ending_index: None,
            created_ms: now_ms,
            closed_ms: None,
        });
        (self.shards.len() - 1) as u32
    }

    fn close(&mut self, index: u32, ending_index: u64, now_ms: i64) {
        if let Some(shard) = self.shards.get_mut(index as usize) {
            shard.ending_index = Some(ending_index);
            shard.closed_ms = Some(now_ms);
        }
    }

    /// Closes `parent` (which holds `ending_index` records) and opens two children split at
    /// `new_start`. The caller has checked that the parent is open and `new_start` lies inside it.
    pub fn split(&mut self, parent: u32, new_start: u128, ending_index: u64, now_ms: i64) -> (u32, u32) {
        let (start, end) = match self.shard(parent) {
            Some(shard) if shard.start_hash < new_start && new_start <= shard.end_hash => {
                (shard.start_hash, shard.end_hash)
            }
            _ => return (parent, parent),
        };
        self.close(parent, ending_index, now_ms);
        let low = self.add_shard(parent, None, (start, new_start - 1), now_ms);
        let high = self.add_shard(parent, None, (new_start, end), now_ms);
        (low, high)
    }

    /// Closes two adjacent open shards and opens their union; `shard` becomes the child's parent
    /// and `adjacent` its adjacent parent, as in MergeShards.
    pub fn merge(&mut self, shard: u32, adjacent: u32, ending: (u64, u64), now_ms: i64) -> u32 {
        let (Some(a), Some(b)) = (self.shard(shard), self.shard(adjacent)) else { return shard };
        let range = (a.start_hash.min(b.start_hash), a.end_hash.max(b.end_hash));
        self.close(shard, ending.0, now_ms);
        self.close(adjacent, ending.1, now_ms);
        self.add_shard(shard, Some(adjacent), range, now_ms)
    }

    /// Whether two shards are open neighbours in the key space.
    pub fn adjacent(&self, a: u32, b: u32) -> bool {
        match (self.shard(a), self.shard(b)) {
            (Some(x), Some(y)) if x.is_open() && y.is_open() => {
                x.end_hash.checked_add(1) == Some(y.start_hash) || y.end_hash.checked_add(1) == Some(x.start_hash)
            }
            _ => false,
        }
    }
}

/// The open shards of a stream sorted by hash range, for routing records: a binary search on
/// the range ends finds the owner of a hash key.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    ends: Vec<(u128, u32)>,
}

impl Routing {
    pub fn of(meta: &StreamMeta) -> Self {
        let mut open: Vec<(u128, u128, u32)> =
            meta.open_shards().map(|(index, s)| (s.start_hash, s.end_hash, index)).collect();
        open.sort_unstable();
        Self { ends: open.into_iter().map(|(_, end, index)| (end, index)).collect() }
    }

    pub fn shard_for(&self, hash: u128) -> Option<u32> {
        let position = self.ends.partition_point(|(end, _)| *end < hash);
        self.ends.get(position).map(|(_, index)| *index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::MAX_HASH_KEY;

    fn stream(shards: u32) -> StreamMeta {
        StreamMeta::new(1, "s".into(), 0, shards, StreamMode::Provisioned)
    }

    #[test]
    fn shard_ids_round_trip() {
        assert_eq!(shard_id(3), "shardId-000000000003");
        for index in [0, 7, 10, 999_999, u32::MAX] {
            assert_eq!(shard_id(index), format!("shardId-{index:012}"));
        }
        assert_eq!(parse_shard_id("shardId-000000000003"), Some(3));
        assert_eq!(parse_shard_id("shardId-x"), None);
        assert_eq!(parse_shard_id("shardId-0000000000031"), None);
    }

    #[test]
    fn split_and_merge_keep_lineage_and_ranges() {
        let mut meta = stream(1);
        let (low, high) = meta.split(0, 1000, 5, 9);
        assert_eq!((low, high), (1, 2));
        assert_eq!(meta.shards[0].ending_index, Some(5));
        assert_eq!(meta.shards[0].closed_ms, Some(9));
        assert_eq!(meta.shards[1].created_ms, 9);
        assert_eq!((meta.shards[1].start_hash, meta.shards[1].end_hash), (0, 999));
        assert_eq!((meta.shards[2].start_hash, meta.shards[2].end_hash), (1000, MAX_HASH_KEY));
        assert!(meta.adjacent(1, 2));
        let merged = meta.merge(2, 1, (3, 4), 10);
        assert_eq!(merged, 3);
        assert_eq!(meta.shards[3].parent, Some(2));
        assert_eq!(meta.shards[3].adjacent_parent, Some(1));
        assert_eq!((meta.shards[3].start_hash, meta.shards[3].end_hash), (0, MAX_HASH_KEY));
        assert_eq!(meta.open_shard_count(), 1);
        assert_eq!(meta.children_of(0).map(|(i, _)| i).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn routing_finds_the_owner() {
        let meta = stream(4);
        let routing = Routing::of(&meta);
        for (index, shard) in meta.shards.iter().enumerate() {
            assert_eq!(routing.shard_for(shard.start_hash), Some(index as u32));
            assert_eq!(routing.shard_for(shard.end_hash), Some(index as u32));
        }
        assert_eq!(routing.shard_for(MAX_HASH_KEY), Some(3));
    }
}
