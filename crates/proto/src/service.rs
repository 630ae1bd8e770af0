//! The one seam every AWS service is served through.
//!
//! A [`Service`] says which requests are its own (an `X-Amz-Target` prefix for the JSON/CBOR
//! services, a URL path prefix for REST-JSON ones), which SigV4 signing name its callers scope
//! their credentials to, and handles a [`Call`]. Each service keeps one [`Operations`] table that
//! maps operation names to typed handlers: decoding the request, calling the handler and encoding
//! its response happen here, once, for every operation of every service.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::{AwsError, Codec, ErrorCode};

/// A boxed, sendable future: what a dynamically dispatched handler returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who makes a request, when SigV4 verification (`--auth`) established it: resource policies
/// apply to callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub access_key_id: String,
}

/// How the HTTP layer recognises a service's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// JSON 1.1 / CBOR 1.1 services: `X-Amz-Target: <prefix>.<Operation>`.
    Target(&'static str),
    /// REST-JSON services: every request whose path starts with one of these prefixes (Lambda's
    /// API versions: `/2015-03-31/`, and `/2017-10-31/` and `/2019-09-30/` for concurrency).
    PathPrefixes(&'static [&'static str]),
    /// REST-JSON services whose operations share no prefix (Kinesis Video's `POST /createStream`,
    /// `POST /listStreams`, …): requests to exactly these paths.
    Paths(&'static [&'static str]),
}

/// One request, as a service sees it: routing, authentication and body reading are done.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The operation: the part of `X-Amz-Target` after the service prefix, or for path-routed
    /// services the request path (which the service interprets).
    pub operation: &'a str,
    /// JSON or CBOR for target-routed services; always JSON for path-routed (REST-JSON) ones.
    pub codec: Codec,
    pub body: &'a [u8],
    /// The verified caller; `None` when `--auth` is off.
    pub caller: Option<&'a Caller>,
    /// Method, URI and headers: REST-JSON operations take parameters from all three.
    pub head: &'a http::request::Parts,
}

impl<'a> Call<'a> {
    /// A call made in process (a bench, a fuzzer, one service calling another): no HTTP request
    /// head of its own, no caller.
    /// The request's body as a stream, for a service whose [`Service::streams_body`] said so
    /// (then `body` is empty); `None` otherwise, or when taken already.
    pub fn take_body_stream(&self) -> Option<BodyStream> {
        PendingBody::take(self.head)
    }

    pub fn in_process(operation: &'a str, codec: Codec, body: &'a [u8]) -> Self {
        static NO_HEAD: std::sync::OnceLock<http::request::Parts> = std::sync::OnceLock::new();
        let head = NO_HEAD.get_or_init(|| http::Request::new(()).into_parts().0);
        Self { operation, codec, body, caller: None, head }
    }
}

/// A request body its service reads as it arrives rather than whole: a long-lived upload with no
/// size bound (Kinesis Video's PutMedia). Services opt in with [`Service::streams_body`]; the HTTP
/// layer then verifies only the request head, and its handler takes the body with
/// [`Call::take_body_stream`]. Chunks come through a small bounded channel, so a handler that
/// reads slowly slows its client down (TCP backpressure) instead of making the server buffer.
pub struct BodyStream {
    chunks: mpsc::Receiver<Result<Bytes, AwsError>>,
}

/// Chunks a [`BodyStream`] holds at once: enough to keep the connection busy while the handler
/// works on one.
const BODY_STREAM_CHUNKS: usize = 4;

impl BodyStream {
    /// A stream and the sender its producer (the HTTP layer) feeds; an `Err` chunk reports why the
    /// body could not be read (a chunk that did not come in time, a broken connection).
    pub fn channel() -> (mpsc::Sender<Result<Bytes, AwsError>>, Self) {
        let (sender, chunks) = mpsc::channel(BODY_STREAM_CHUNKS);
        (sender, Self { chunks })
    }

    /// The next chunk; `None` at the end of the body.
    pub async fn next(&mut self) -> Option<Result<Bytes, AwsError>> {
        self.chunks.recv().await
    }
}

/// Carries a [`BodyStream`] in a request head's extensions until its handler takes it (a head is
/// shared read-only with the handler, and extensions must be `Clone`).
#[derive(Clone)]
pub struct PendingBody(std::sync::Arc<std::sync::Mutex<Option<BodyStream>>>);

impl PendingBody {
    pub fn new(stream: BodyStream) -> Self {
        Self(std::sync::Arc::new(std::sync::Mutex::new(Some(stream))))
    }

    /// The body stream of `head`, once: `None` when the body was read whole or already taken.
    pub fn take(head: &http::request::Parts) -> Option<BodyStream> {
        let pending = head.extensions.get::<PendingBody>()?;
        pending.0.lock().ok()?.take()
    }
}

/// What an operation answers.
pub enum Reply {
    /// An encoded response body, in the request's codec.
    Body(Vec<u8>),
    /// An `application/vnd.amazon.eventstream` response: encoded messages, sent as produced; the
    /// response ends when the sender is dropped.
    Events(mpsc::Receiver<Bytes>),
    /// A response whose status, headers and body the operation sets (REST-JSON services).
    Http(http::Response<Payload>),
}

/// The body of a [`Reply::Http`].
pub enum Payload {
    Full(Vec<u8>),
    /// Sent chunk by chunk as produced (a media stream, a long-poll); ends when the sender drops.
    Stream(mpsc::Receiver<Bytes>),
}

/// An AWS service served on Tideline's port.
pub trait Service: Send + Sync + 'static {
    /// A short name for logs and metrics (`kinesis`, `firehose`).
    fn name(&self) -> &'static str;
    fn route(&self) -> Route;
    /// The service name in SigV4 credential scopes.
    fn signing_name(&self) -> &'static str;
    fn handle<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Reply, AwsError>>;
    /// The operation a call names, as its operation table spells it (a bounded set, used as a
    /// metrics label); `None` when the call names no operation.
    fn operation_name(&self, call: &Call<'_>) -> Option<&'static str>;
    /// Whether a request may come without a SigV4 signature even when `--auth` is on (pages and
    /// assets a browser loads, URLs that carry their own token). Unsigned requests carry no caller.
    fn is_public(&self, _head: &http::request::Parts) -> bool {
        false
    }
    /// Whether this request's body goes to the handler as a stream ([`Call::take_body_stream`])
    /// instead of being read whole and bounded first. Such a request's SigV4 signature covers its
    /// head only (`x-amz-content-sha256: UNSIGNED-PAYLOAD`).
    fn streams_body(&self, _head: &http::request::Parts) -> bool {
        false
    }
    /// The service's metrics in the Prometheus text format.
    fn metrics_text(&self) -> String {
        String::new()
    }
}

/// A response that encodes itself, for hot paths that write the wire format directly instead of
/// going through serde's data model.
pub trait EncodeResponse {
    fn encode(&self, codec: Codec) -> Vec<u8>;
}

/// A request that decodes itself, for hot paths that read the wire format directly instead of
/// going through serde's data model. It must accept, refuse and word errors exactly as
/// [`Codec::decode`] of its serde form does (in practice: a fast path for the common shape that
/// leaves everything else to `Codec::decode`).
pub trait DecodeRequest: Sized {
    fn decode(codec: Codec, body: &[u8]) -> Result<Self, AwsError>;
}

/// What an event-stream operation's handler returns once the request is accepted: it starts
/// producing messages, encoded in the request's codec, when opened.
pub trait EventSource {
    fn open(self, codec: Codec) -> mpsc::Receiver<Bytes>;
}

/// A typed operation handler: an `async fn(&Context, Request)` or, for operations that apply
/// resource policies, an `async fn(&Context, Option<&Caller>, Request)`, returning
/// `Result<Out, AwsError>`. `Kind` is [`PlainHandler`] or [`CallerHandler`] and is inferred.
///
/// Spelled as a trait with the lifetime as a parameter so that plain `async fn` items, whose
/// futures borrow their arguments, can be stored in an [`Operations`] table.
pub trait Handler<'a, C: 'a, Req, Out, Kind>: Copy + Send + Sync + 'static {
    type Future: Future<Output = Result<Out, AwsError>> + Send + 'a;
    fn call(self, context: &'a C, caller: Option<&'a Caller>, request: Req) -> Self::Future;
}

/// [`Handler`] kind of `async fn(&Context, Request)`.
pub enum PlainHandler {}
/// [`Handler`] kind of `async fn(&Context, Option<&Caller>, Request)`.
pub enum CallerHandler {}

impl<'a, C: 'a, Req, Out, F, Fut> Handler<'a, C, Req, Out, PlainHandler> for F
where
    F: Fn(&'a C, Req) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<Out, AwsError>> + Send + 'a,
{
    type Future = Fut;
    fn call(self, context: &'a C, _caller: Option<&'a Caller>, request: Req) -> Fut {
        self(context, request)
    }
}

impl<'a, C: 'a, Req, Out, F, Fut> Handler<'a, C, Req, Out, CallerHandler> for F
where
    F: Fn(&'a C, Option<&'a Caller>, Req) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<Out, AwsError>> + Send + 'a,
{
    type Future = Fut;
    fn call(self, context: &'a C, caller: Option<&'a Caller>, request: Req) -> Fut {
        self(context, caller, request)
    }
}

type ErasedHandler<C> = Box<dyn for<'a> Fn(&'a C, Call<'a>) -> BoxFuture<'a, Result<Reply, AwsError>> + Send + Sync>;

/// Gives the closure its higher-ranked signature (a closure passed straight to `Box::new` would
/// get one fixed lifetime instead).
fn erase<C, F>(handler: F) -> ErasedHandler<C>
where
    F: for<'a> Fn(&'a C, Call<'a>) -> BoxFuture<'a, Result<Reply, AwsError>> + Send + Sync + 'static,
{
    Box::new(handler)
}

/// One service's operations: names mapped to typed handlers over a context `C` (the service's
/// state). Adding an operation is one line where the table is built.
pub struct Operations<C> {
    handlers: HashMap<&'static str, ErasedHandler<C>>,
}

impl<C: Send + Sync + 'static> Default for Operations<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Send + Sync + 'static> Operations<C> {
    pub fn new() -> Self {
        Self { handlers: HashMap::new() }
    }

    /// An operation whose response is a serde type.
    pub fn op<Req, Out, Kind: 'static, H>(self, name: &'static str, handler: H) -> Self
    where
        Req: DeserializeOwned + Send + 'static,
        Out: Serialize + Send + 'static,
        H: for<'a> Handler<'a, C, Req, Out, Kind>,
    {
        self.register(name, handler, Codec::decode, |response: Out, codec| Reply::Body(codec.encode(&response)))
    }

    /// An operation whose response writes its own wire format.
    pub fn encoded<Req, Out, Kind: 'static, H>(self, name: &'static str, handler: H) -> Self
    where
        Req: DeserializeOwned + Send + 'static,
        Out: EncodeResponse + Send + 'static,
        H: for<'a> Handler<'a, C, Req, Out, Kind>,
    {
        self.register(name, handler, Codec::decode, |response: Out, codec| Reply::Body(response.encode(codec)))
    }

    /// An operation whose request reads, and whose response writes, its own wire format.
    pub fn wire<Req, Out, Kind: 'static, H>(self, name: &'static str, handler: H) -> Self
    where
        Req: DecodeRequest + Send + 'static,
        Out: EncodeResponse + Send + 'static,
        H: for<'a> Handler<'a, C, Req, Out, Kind>,
    {
        self.register(name, handler, Req::decode, |response: Out, codec| Reply::Body(response.encode(codec)))
    }

    /// An operation whose response is an event stream.
    pub fn events<Req, Out, Kind: 'static, H>(self, name: &'static str, handler: H) -> Self
    where
        Req: DeserializeOwned + Send + 'static,
        Out: EventSource + Send + 'static,
        H: for<'a> Handler<'a, C, Req, Out, Kind>,
    {
        self.register(name, handler, Codec::decode, |source: Out, codec| Reply::Events(source.open(codec)))
    }

    fn register<Req, Out, Kind: 'static, H>(
        mut self,
        name: &'static str,
        handler: H,
        decode: fn(Codec, &[u8]) -> Result<Req, AwsError>,
        reply: fn(Out, Codec) -> Reply,
    ) -> Self
    where
        Req: Send + 'static,
        Out: Send + 'static,
        H: for<'a> Handler<'a, C, Req, Out, Kind>,
    {
        let erased = erase(move |context: &C, call: Call<'_>| {
            Box::pin(async move {
                let request = decode(call.codec, call.body)?;
                let response = handler.call(context, call.caller, request).await?;
                Ok(reply(response, call.codec))
            })
        });
        let previous = self.handlers.insert(name, erased);
        debug_assert!(previous.is_none(), "operation {name} registered twice");
        self
    }

    /// The table's spelling of `call.operation`, if it has that operation.
    pub fn name_of(&self, call: &Call<'_>) -> Option<&'static str> {
        self.handlers.get_key_value(call.operation).map(|(name, _)| *name)
    }

    /// Runs `call.operation`; an unknown name is `UnknownOperationException`, as AWS answers.
    pub async fn dispatch(&self, context: &C, call: Call<'_>) -> Result<Reply, AwsError> {
        match self.handlers.get(call.operation) {
            Some(handler) => handler(context, call).await,
            None => Err(AwsError::bare(ErrorCode::UnknownOperation)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct EchoInput {
        text: String,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct EchoOutput {
        text: String,
        caller: Option<String>,
    }

    struct Prefix(String);

    async fn echo(context: &Prefix, caller: Option<&Caller>, input: EchoInput) -> Result<EchoOutput, AwsError> {
        Ok(EchoOutput {
            text: format!("{}{}", context.0, input.text),
            caller: caller.map(|caller| caller.access_key_id.clone()),
        })
    }

    struct Raw;
    impl EncodeResponse for Raw {
        fn encode(&self, _codec: Codec) -> Vec<u8> {
            b"raw".to_vec()
        }
    }

    async fn raw(_: &Prefix, _: serde_json::Value) -> Result<Raw, AwsError> {
        Ok(Raw)
    }

    fn body(reply: Reply) -> Vec<u8> {
        match reply {
            Reply::Body(body) => body,
            Reply::Events(_) | Reply::Http(_) => panic!("expected a body"),
        }
    }

    fn head() -> http::request::Parts {
        http::Request::new(()).into_parts().0
    }

    fn run<C: Send + Sync + 'static>(table: &Operations<C>, context: &C, call: Call<'_>) -> Result<Reply, AwsError> {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(table.dispatch(context, call))
    }

    #[test]
    fn operations_decode_call_and_encode() {
        let table = Operations::new().op("Echo", echo).encoded("Raw", raw);
        let context = Prefix("> ".into());
        let caller = Caller { access_key_id: "AKID".into() };
        let head = head();
        let call = Call {
            operation: "Echo",
            codec: Codec::Json,
            body: br#"{"Text":"hi"}"#,
            caller: Some(&caller),
            head: &head,
        };
        let reply = body(run(&table, &context, call).unwrap());
        assert_eq!(reply, br#"{"Text":"> hi","Caller":"AKID"}"#);
        let call = Call { operation: "Raw", codec: Codec::Cbor, body: &[0xa0], caller: None, head: &head };
        assert_eq!(body(run(&table, &context, call).unwrap()), b"raw");
    }

    #[test]
    fn unknown_operations_and_bad_bodies_are_aws_errors() {
        let table = Operations::new().op("Echo", echo);
        let context = Prefix(String::new());
        let head = head();
        let unknown = Call { operation: "Nope", codec: Codec::Json, body: b"{}", caller: None, head: &head };
        let error = run(&table, &context, unknown).err().unwrap();
        assert_eq!(error.code, ErrorCode::UnknownOperation);
        let malformed = Call { operation: "Echo", codec: Codec::Json, body: b"{", caller: None, head: &head };
        assert_eq!(run(&table, &context, malformed).err().unwrap().code, ErrorCode::Serialization);
    }
}
