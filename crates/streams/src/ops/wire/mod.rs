//! The wire format of the two hot data-plane operations, written by hand for speed: PutRecords'
//! request decoders (a one-pass reader of the JSON shape SDKs send, and serde's decoder for
//! everything else) and the PutRecords and GetRecords response encoders (JSON written directly,
//! byte for byte what serde_json would write). Their handlers are in `records.rs` and `reading.rs`.

pub(crate) mod get_records;
pub(crate) mod put_records;
mod put_records_json;
