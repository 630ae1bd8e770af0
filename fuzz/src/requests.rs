//! The request harness of `json_request` and `cbor_request`.
//!
//! An input is one or more requests, each `[operation][length: u16 LE][body]` (the operation byte
//! picks from [`OPERATIONS`]; a length past the end takes the rest). They run in order against an
//! in-memory service that already holds a stream with records, a split shard, a consumer, tags and
//! a resource policy, so the handlers go past "stream not found" into routing, sequence numbers,
//! iterators, reads and policies. The caller is a verified identity, so policies are evaluated.
//!
//! What must hold for every request: no panic, no allocation past the limit, no 5xx (nothing a
//! client sends may be the server's fault), and every answer, success or error, well-formed in the
//! request's codec.
//!
//! Determinism: the service is rebuilt after any input with a successful mutating request, so
//! each input meets the same fixture (handlers refuse before they change anything); iterator
//! tokens are signed with a fixed key and live for a century, so the ones in the seed corpus stay
//! valid. Time still moves: AT_TIMESTAMP positions and iterator ages depend on the clock.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tideline_proto::{AwsError, Call, Caller, Codec, Reply, Service};
use tideline_streams::{StreamsConfig, StreamsService};

/// Every operation `StreamsService::handle` dispatches (SubscribeToShard has its own entry point).
pub const OPERATIONS: [&str; 34] = [
    "CreateStream",
    "DeleteStream",
    "DescribeStream",
    "DescribeStreamSummary",
    "ListStreams",
    "DescribeLimits",
    "UpdateStreamMode",
    "ListShards",
    "SplitShard",
    "MergeShards",
    "UpdateShardCount",
    "PutRecord",
    "PutRecords",
    "GetShardIterator",
    "GetRecords",
    "IncreaseStreamRetentionPeriod",
    "DecreaseStreamRetentionPeriod",
    "StartStreamEncryption",
    "StopStreamEncryption",
    "EnableEnhancedMonitoring",
    "DisableEnhancedMonitoring",
    "PutResourcePolicy",
    "GetResourcePolicy",
    "DeleteResourcePolicy",
    "AddTagsToStream",
    "RemoveTagsFromStream",
    "ListTagsForStream",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
    "RegisterStreamConsumer",
    "DeregisterStreamConsumer",
    "DescribeStreamConsumer",
    "ListStreamConsumers",
];

/// Operations that change nothing, so the fixture survives them.
const READ_ONLY: [&str; 12] = [
    "DescribeStream",
    "DescribeStreamSummary",
    "ListStreams",
    "DescribeLimits",
    "ListShards",
    "GetShardIterator",
    "GetRecords",
    "GetResourcePolicy",
    "ListTagsForStream",
    "ListTagsForResource",
    "DescribeStreamConsumer",
    "ListStreamConsumers",
];

/// Requests per input: enough for create, write, reshard, read sequences.
const MAX_REQUESTS: usize = 8;

/// The key the fixture's iterator tokens are signed with.
pub const ITERATOR_SECRET: [u8; 32] = [0x5e; 32];

pub const STREAM: &str = "s";
pub const STREAM_ARN: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/s";

/// The fixture, as requests: the stream `s` with three shards, the first split in two (so there
/// are closed parents with children), records in every shard, a consumer, tags, and a policy
/// that denies someone else.
pub fn fixture_requests() -> Vec<(&'static str, serde_json::Value)> {
    let records = |prefix: &str| -> serde_json::Value {
        (0..8)
            .map(|i| json!({"Data": "aGVsbG8gd29ybGQ=", "PartitionKey": format!("{prefix}{i}")}))
            .collect::<Vec<_>>()
            .into()
    };
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "deny-someone-else",
            "Effect": "Deny",
            "Principal": {"AWS": "arn:aws:iam::000000000000:user/someone-else"},
            "Action": ["kinesis:GetRecords", "kinesis:Put*"],
            "Resource": STREAM_ARN,
        }],
    });
    vec![
        ("CreateStream", json!({"StreamName": STREAM, "ShardCount": 3})),
        ("PutRecords", json!({"StreamName": STREAM, "Records": records("before-")})),
        (
            "SplitShard",
            json!({
                "StreamName": STREAM,
                "ShardToSplit": "shardId-000000000000",
                "NewStartingHashKey": "56713727820156410577229101238628035242",
            }),
        ),
        ("PutRecords", json!({"StreamARN": STREAM_ARN, "Records": records("after-")})),
        ("RegisterStreamConsumer", json!({"StreamARN": STREAM_ARN, "ConsumerName": "c"})),
        ("AddTagsToStream", json!({"StreamName": STREAM, "Tags": {"team": "fuzz", "env": "test"}})),
        ("PutResourcePolicy", json!({"ResourceARN": STREAM_ARN, "Policy": policy.to_string()})),
    ]
}

pub fn config() -> StreamsConfig {
    StreamsConfig {
        iterator_ttl: Duration::from_secs(100 * 365 * 24 * 3600),
        // Enough for any reshard of the fixture, small enough that CreateStream cannot build a
        // thousand shards per input.
        shard_limit: 64,
        ..StreamsConfig::default()
    }
}

fn caller() -> Caller {
    Caller { access_key_id: "fuzzer".into() }
}

/// The requests of an input, as (operation, body).
pub fn split(mut input: &[u8]) -> Vec<(&'static str, &[u8])> {
    let mut requests = Vec::new();
    while let Some((&op, rest)) = input.split_first() {
        if requests.len() == MAX_REQUESTS {
            break;
        }
        let operation = OPERATIONS[usize::from(op) % OPERATIONS.len()];
        let (len, rest) = match rest {
            [lo, hi, rest @ ..] => (usize::from(u16::from_le_bytes([*lo, *hi])), rest),
            _ => (rest.len(), &[][..]),
        };
        let (body, rest) = rest.split_at(len.min(rest.len()));
        requests.push((operation, body));
        input = rest;
    }
    requests
}

/// Encodes requests in the input format [`split`] reads.
pub fn join(requests: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (operation, body) in requests {
        let op = OPERATIONS.iter().position(|known| known == operation).unwrap_or_else(|| panic!("{operation}?"));
        out.push(op as u8);
        out.extend_from_slice(&u16::try_from(body.len()).unwrap_or(u16::MAX).to_le_bytes());
        out.extend_from_slice(body);
    }
    out
}

/// The single-threaded runtime and the fixture service, kept between inputs.
pub struct Harness {
    runtime: tokio::runtime::Runtime,
    service: Option<Arc<StreamsService>>,
    /// A request since the last [`Harness::finish`] may have changed the fixture.
    dirty: bool,
}

impl Harness {
    pub fn new() -> Harness {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        Harness { runtime, service: None, dirty: false }
    }

    /// The fixture service, built on first use and after a mutation.
    pub fn service(&mut self) -> Arc<StreamsService> {
        if let Some(service) = &self.service {
            return Arc::clone(service);
        }
        let service = self.runtime.block_on(async {
            let service =
                tideline_streams::fuzzing::in_memory_service(config(), ITERATOR_SECRET).await.expect("service");
            for (operation, body) in fixture_requests() {
                let body = serde_json::to_vec(&body).expect("json");
                let call = Call::in_process(operation, Codec::Json, &body);
                if let Err(error) = service.handle(call).await {
                    panic!("fixture {operation} failed: {error}");
                }
            }
            service
        });
        self.service = Some(Arc::clone(&service));
        service
    }

    /// Runs one request, returning what the server would answer.
    pub fn call(&mut self, operation: &str, codec: Codec, body: &[u8]) -> Result<Vec<u8>, AwsError> {
        let service = self.service();
        let caller = caller();
        let call = Call { caller: Some(&caller), ..Call::in_process(operation, codec, body) };
        // An event stream's messages are not looked at: dropping the receiver ends its producer.
        let result = self.runtime.block_on(service.handle(call)).map(|reply| match reply {
            Reply::Body(body) => body,
            Reply::Events(_) | Reply::Http(_) => Vec::new(),
        });
        // Handlers check everything before they change anything, so only a success can have
        // changed the fixture. (Rebuilding it costs ~2.5 ms, a hundred times a refused request.)
        self.dirty |= result.is_ok() && !READ_ONLY.contains(&operation);
        result
    }

    /// Ends an input: the next one meets a fresh fixture if this one may have changed it.
    pub fn finish(&mut self) {
        if std::mem::take(&mut self.dirty) {
            self.service = None;
        }
    }

    /// Runs every request of an input and checks each answer.
    pub fn run(&mut self, codec: Codec, input: &[u8]) {
        for (operation, body) in split(input) {
            let result = self.call(operation, codec, body);
            check(codec, operation, &result);
        }
        self.finish();
    }
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

/// A body is well-formed if it decodes as a generic value of its codec.
fn well_formed(codec: Codec, body: &[u8]) -> bool {
    match codec {
        Codec::Json => serde_json::from_slice::<serde_json::Value>(body).is_ok(),
        Codec::Cbor => ciborium::from_reader::<ciborium::Value, _>(body).is_ok(),
    }
}

fn check(codec: Codec, operation: &str, result: &Result<Vec<u8>, AwsError>) {
    match result {
        Ok(body) => assert!(well_formed(codec, body), "{operation}: the response is not valid {codec:?}: {body:?}"),
        Err(error) => {
            assert!(error.status() < 500, "{operation}: a request made the server fail: {error}");
            let body = error.to_body(codec);
            assert!(well_formed(codec, &body), "{operation}: the error body is not valid {codec:?}: {body:?}");
        }
    }
}

thread_local! {
    static HARNESS: RefCell<Option<Harness>> = const { RefCell::new(None) };
}

/// The body of the `json_request` and `cbor_request` targets.
pub fn fuzz(codec: Codec, input: &[u8]) {
    HARNESS.with(|harness| harness.borrow_mut().get_or_insert_with(Harness::new).run(codec, input));
}
