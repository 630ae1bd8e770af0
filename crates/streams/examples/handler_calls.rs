//! A fixed number of the handler benchmark's calls, for instruction counts: criterion runs for
//! a time, so its call count (and a profile's total) varies from run to run.
//!
//! `handler_calls PUTS GETS` makes PUTS PutRecords calls (500 × 100 B) and then GETS GetRecords
//! calls (shard 0 from TRIM_HORIZON, Limit 10,000). Under `valgrind --tool=callgrind`, the
//! difference between two runs divided by the difference in calls is the cost of one call,
//! without start-up: e.g. (I(120, 0) − I(20, 0)) / 100 per PutRecords, and
//! (I(100, 21) − I(100, 1)) / 20 per GetRecords of 10,000 records (100 puts leave 12,500 in
//! shard 0; the first GetRecords, whose answer is parsed to count its records, is in both).
//!
//! `handler_calls PUTS GETS DIR` does the same on durable storage in the (empty) directory DIR:
//! each PutRecords call then includes its group's write and fdatasync on the writer thread.

#[path = "../benches/common/mod.rs"]
mod common;

use common::{call, get_records_body, put_records_bodies, runtime, service};
use tideline_storage::StorageConfig;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count = |i: usize| args.get(i).and_then(|arg| arg.parse::<usize>().ok());
    let (Some(puts), Some(gets), 2..=3) = (count(0), count(1), args.len()) else {
        eprintln!("usage: handler_calls PUTS GETS [DATA_DIR]");
        std::process::exit(2);
    };
    let config = args.get(2).map_or_else(StorageConfig::in_memory, StorageConfig::durable);
    let runtime = runtime();
    let service = service(&runtime, config);
    let bodies = put_records_bodies();
    for i in 0..puts {
        call(&runtime, &service, "PutRecords", &bodies[i % bodies.len()]);
    }
    if gets > 0 {
        let (body, records) = get_records_body(&runtime, &service);
        for _ in 1..gets {
            call(&runtime, &service, "GetRecords", &body);
        }
        println!("{puts} PutRecords, {gets} GetRecords of {records} records");
    } else {
        println!("{puts} PutRecords");
    }
}
