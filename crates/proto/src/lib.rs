//! The AWS wire protocol as Tideline speaks it, shared by every service.
//!
//! Owns: the JSON 1.1 and CBOR 1.1 body codecs ([`Codec`]), the blob and timestamp encodings that
//! differ between them ([`Blob`], [`Timestamp`]), the AWS error shape ([`AwsError`]), the
//! `ValidationException` message builder ([`Validator`]), SigV4 `Authorization` header parsing
//! ([`auth`]), SigV4 signature verification ([`sigv4`]), event-stream frames for streaming
//! responses ([`event_stream`]), and the seam every service is served through: the [`Service`]
//! trait (with streamed request bodies, [`BodyStream`]) and the [`Operations`] table of typed
//! handlers ([`service`]), and its REST-JSON counterpart [`RestOperations`] ([`rest`]); the KPL
//! aggregated-record format ([`kpl`]). Does not own: HTTP
//! serving, where access keys come from, any service's operations, or storage.

pub mod auth;
mod codec;
mod error;
pub mod event_stream;
pub mod kpl;
pub mod rest;
pub mod service;
pub mod sigv4;
mod types;
mod validation;

pub use codec::Codec;
pub use error::{AwsError, ErrorCode};
pub use rest::{bytes_response, json_response, RestOperations, RestRequest};
pub use service::{
    BodyStream, BoxFuture, Call, Caller, DecodeRequest, EncodeResponse, EventSource, Operations, Payload, Reply, Route,
    Service,
};
pub use types::{append_base64, Arena, ArenaBlob, ArenaText, Blob, Optional, Packed, Timestamp};
pub use validation::{Pattern, Validator};
