//! Shard iterator tokens: arbitrary text and bytes, and real tokens changed by one byte (see
//! `tideline_fuzz::iterator`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| tideline_fuzz::iterator::fuzz(input));
