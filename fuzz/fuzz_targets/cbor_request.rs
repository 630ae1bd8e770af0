//! Request bodies in `application/x-amz-cbor-1.1` (the Java SDK and the KCL), through the same
//! decode, validation and handlers as the server (see `tideline_fuzz::requests`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tideline_proto::Codec;

fuzz_target!(|input: &[u8]| tideline_fuzz::requests::fuzz(Codec::Cbor, input));
