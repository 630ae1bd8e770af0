//! Request bodies in `application/x-amz-json-1.1`, through the same decode, validation and
//! handlers as the server (see `tideline_fuzz::requests` for the input format and the checks).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tideline_proto::Codec;

fuzz_target!(|input: &[u8]| tideline_fuzz::requests::fuzz(Codec::Json, input));
