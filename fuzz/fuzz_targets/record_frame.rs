//! Shard log bytes: the frame decoder, the segment scanner and the start-up recovery scan (see
//! `tideline_fuzz::frames`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| tideline_fuzz::frames::fuzz(input));
