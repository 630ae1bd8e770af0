//! AWS event-stream frames (`application/vnd.amazon.eventstream`) for streaming responses such as
//! SubscribeToShard: each message carries a prelude, headers and a payload, with CRC32s. The
//! framing is done by `aws-smithy-eventstream`, the SDKs' own implementation, so what we write
//! is exactly what their decoders expect.

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use serde::Serialize;

use crate::{AwsError, Codec};

pub const CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

fn header(name: &'static str, value: impl Into<String>) -> Header {
    Header::new(name, HeaderValue::String(value.into().into()))
}

fn frame(message: &Message) -> Bytes {
    let mut out = Vec::with_capacity(message.payload().len() + 128);
    match write_message_to(message, &mut out) {
        Ok(()) => Bytes::from(out),
        // Only oversized headers can fail, and ours are fixed and short.
        Err(_) => Bytes::new(),
    }
}

/// An event of type `event_type` whose payload is `payload` in the request's codec.
pub fn event<T: Serialize>(codec: Codec, event_type: &'static str, payload: &T) -> Bytes {
    let message = Message::new(codec.encode(payload))
        .add_header(header(":message-type", "event"))
        .add_header(header(":event-type", event_type))
        .add_header(header(":content-type", codec.content_type()));
    frame(&message)
}

/// An exception ending the stream, carrying an AWS error type and message.
pub fn exception(codec: Codec, error: &AwsError) -> Bytes {
    #[derive(Serialize)]
    struct Body<'a> {
        message: Option<&'a str>,
    }
    let message = Message::new(codec.encode(&Body { message: error.message.as_deref() }))
        .add_header(header(":message-type", "exception"))
        .add_header(header(":exception-type", error.code.as_str()))
        .add_header(header(":content-type", codec.content_type()));
    frame(&message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::read_message_from;

    #[test]
    fn events_decode_with_the_sdk_reader() {
        let bytes = event(Codec::Json, "SubscribeToShardEvent", &serde_json::json!({"Records": []}));
        let message = read_message_from(bytes).unwrap();
        let headers: Vec<(&str, &HeaderValue)> =
            message.headers().iter().map(|h| (h.name().as_str(), h.value())).collect();
        assert!(headers.contains(&(":event-type", &HeaderValue::String("SubscribeToShardEvent".into()))));
        assert!(headers.contains(&(":message-type", &HeaderValue::String("event".into()))));
        assert_eq!(&message.payload()[..], br#"{"Records":[]}"#);
    }

    #[test]
    fn exceptions_carry_the_error_type() {
        let error = AwsError::not_found("gone");
        let message = read_message_from(exception(Codec::Json, &error)).unwrap();
        assert!(message.headers().iter().any(|h| h.name().as_str() == ":exception-type"
            && h.value() == &HeaderValue::String("ResourceNotFoundException".into())));
        assert_eq!(&message.payload()[..], br#"{"message":"gone"}"#);
    }
}
