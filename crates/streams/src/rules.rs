//! Member constraints shared by many operations, with AWS's exact pattern texts.

use tideline_proto::{Pattern, Validator};

pub static NAME: Pattern = Pattern::new("[a-zA-Z0-9_.-]+");
pub static STREAM_ARN: Pattern = Pattern::new("arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+");
pub static RESOURCE_ARN: Pattern = Pattern::new("arn:aws.*:kinesis:.*:\\d{12}:.*(stream|channel|queue)/\\S+");
pub static HASH_KEY: Pattern = Pattern::new("0|([1-9]\\d{0,38})");
pub static SEQUENCE_NUMBER: Pattern = Pattern::new("0|([1-9]\\d{0,128})");

/// The largest record any stream can be configured for (the API's blob limit)...
pub const MAX_API_RECORD_BYTES: usize = 10 * 1024 * 1024;
/// ...and the default per-stream record size limit, which is what streams have here.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
pub const MAX_PUT_RECORDS: usize = 500;
pub const MAX_PUT_RECORDS_BYTES: usize = 5 * 1024 * 1024;
pub const MAX_GET_RECORDS: i64 = 10_000;
pub const MAX_GET_RECORDS_BYTES: usize = 10 * 1024 * 1024;
pub const MIN_RETENTION_HOURS: i64 = 24;
pub const MAX_RETENTION_HOURS: i64 = 8760;
pub const ON_DEMAND_SHARDS: u32 = 4;

pub fn stream_name(v: &mut Validator, name: Option<&str>) {
    v.string("streamName", name, 1, 128, Some(&NAME));
}

pub fn stream_arn(v: &mut Validator, arn: Option<&str>) {
    v.string("streamARN", arn, 1, 2048, Some(&STREAM_ARN));
}

/// The usual pair of ways to name a stream; at least one must be given (checked on resolution).
pub fn stream_target(v: &mut Validator, name: Option<&str>, arn: Option<&str>) {
    stream_name(v, name);
    stream_arn(v, arn);
}

/// A decimal sequence number member, when present.
pub fn sequence_number(v: &mut Validator, path: &str, value: Option<&str>) {
    v.string(path, value, 0, usize::MAX, Some(&SEQUENCE_NUMBER));
}

/// A decimal hash key member (`ExplicitHashKey`, `NewStartingHashKey`), when present.
pub fn hash_key(v: &mut Validator, path: &str, value: Option<&str>) {
    v.string(path, value, 0, usize::MAX, Some(&HASH_KEY));
}

pub fn shard_id(v: &mut Validator, path: &str, id: Option<&str>) {
    v.string(path, id, 1, 128, Some(&NAME));
}

pub fn resource_arn(v: &mut Validator, arn: Option<&str>) {
    v.required("resourceARN", arn);
    v.string("resourceARN", arn, 1, 2048, Some(&RESOURCE_ARN));
}
