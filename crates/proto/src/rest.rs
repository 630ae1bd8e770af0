//! REST-JSON operations (Lambda's `/2015-03-31/functions/{FunctionName}`, Kinesis Video's
//! `POST /putMedia`, …): the operation table of path-routed services.
//!
//! Where a JSON 1.1 service names its operation in `X-Amz-Target`, a REST-JSON one names it with
//! the method and a path template, and takes parameters from the path, the query string, headers
//! and a JSON body. [`RestOperations`] matches the first two (with `matchit`, the router axum
//! uses) and hands the handler a [`RestRequest`] that reads the rest; the handler answers with an
//! HTTP response of its own making, since REST operations set status codes and headers.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;

use http::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::service::{BoxFuture, Call, Caller, Payload, Reply};
use crate::{AwsError, Codec, ErrorCode};

/// One REST call: the [`Call`] plus the parameters its path template captured.
pub struct RestRequest<'a> {
    pub caller: Option<&'a Caller>,
    pub head: &'a http::request::Parts,
    pub body: &'a [u8],
    /// Path parameters, percent-decoded (SDKs encode the `:` of an ARN in a path segment).
    params: Vec<(String, String)>,
}

impl RestRequest<'_> {
    /// A parameter of the path template; the template guarantees it is present.
    pub fn param(&self, name: &str) -> &str {
        self.params.iter().find(|(key, _)| key == name).map_or("", |(_, value)| value)
    }

    /// The first value of a query-string parameter, decoded.
    pub fn query(&self, name: &str) -> Option<Cow<'_, str>> {
        let query = self.head.uri.query()?;
        form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == name).map(|(_, value)| value)
    }

    /// The request's body as a stream ([`Call::take_body_stream`]).
    pub fn take_body_stream(&self) -> Option<crate::service::BodyStream> {
        crate::service::PendingBody::take(self.head)
    }

    /// A header's value, when it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The JSON body; an empty body reads as `{}`, as SDKs send no body for operations whose
    /// members all travel in the path, query or headers.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, AwsError> {
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { self.body };
        Codec::Json.decode(body)
    }
}

/// A JSON response with `status`, as REST-JSON services answer.
pub fn json_response<T: Serialize>(status: u16, body: &T) -> http::Response<Payload> {
    bytes_response(status, "application/json", Codec::Json.encode(body))
}

/// A response of `content_type` with `body`.
pub fn bytes_response(status: u16, content_type: &'static str, body: Vec<u8>) -> http::Response<Payload> {
    let mut response = http::Response::new(Payload::Full(body));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    response
}

/// A REST operation handler: an `async fn(&Context, RestRequest<'_>)` answering an HTTP response.
/// Spelled with the lifetime as a parameter for the same reason as [`crate::service::Handler`].
pub trait RestHandler<'a, C: 'a>: Copy + Send + Sync + 'static {
    type Future: Future<Output = Result<http::Response<Payload>, AwsError>> + Send + 'a;
    fn call(self, context: &'a C, request: RestRequest<'a>) -> Self::Future;
}

impl<'a, C: 'a, F, Fut> RestHandler<'a, C> for F
where
    F: Fn(&'a C, RestRequest<'a>) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<http::Response<Payload>, AwsError>> + Send + 'a,
{
    type Future = Fut;
    fn call(self, context: &'a C, request: RestRequest<'a>) -> Fut {
        self(context, request)
    }
}

type ErasedRest<C> = Box<
    dyn for<'a> Fn(&'a C, RestRequest<'a>) -> BoxFuture<'a, Result<http::Response<Payload>, AwsError>> + Send + Sync,
>;

fn erase<C, F>(handler: F) -> ErasedRest<C>
where
    F: for<'a> Fn(&'a C, RestRequest<'a>) -> BoxFuture<'a, Result<http::Response<Payload>, AwsError>>
        + Send
        + Sync
        + 'static,
{
    Box::new(handler)
}

/// One REST-JSON service's operations: (method, path template) → named handler. Adding an
/// operation is one line where the table is built.
pub struct RestOperations<C> {
    /// Per method, the templates' router; its values index `handlers`.
    routes: HashMap<Method, matchit::Router<usize>>,
    handlers: Vec<(&'static str, ErasedRest<C>)>,
}

impl<C: Send + Sync + 'static> Default for RestOperations<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Send + Sync + 'static> RestOperations<C> {
    pub fn new() -> Self {
        Self { routes: HashMap::new(), handlers: Vec::new() }
    }

    /// Registers operation `name` at `method` and `template` (`/2015-03-31/functions/{FunctionName}`).
    ///
    /// # Panics
    /// When the template is malformed or conflicts with one registered before: a programming
    /// error in the table, which its service's tests catch at construction.
    pub fn route<H>(mut self, method: Method, template: &'static str, name: &'static str, handler: H) -> Self
    where
        H: for<'a> RestHandler<'a, C>,
    {
        let index = self.handlers.len();
        let inserted = self.routes.entry(method).or_default().insert(template, index);
        if let Err(error) = inserted {
            panic!("REST operation {name} at {template}: {error}");
        }
        let erased = erase(move |context: &C, request: RestRequest<'_>| Box::pin(handler.call(context, request)));
        self.handlers.push((name, erased));
        self
    }

    fn find(&self, call: &Call<'_>) -> Option<(usize, Vec<(String, String)>)> {
        let matched = self.routes.get(&call.head.method)?.at(call.head.uri.path()).ok()?;
        let params = matched
            .params
            .iter()
            .map(|(key, value)| {
                (key.to_owned(), percent_encoding::percent_decode_str(value).decode_utf8_lossy().into_owned())
            })
            .collect();
        Some((*matched.value, params))
    }

    /// The name of the operation a call's method and path select.
    pub fn name_of(&self, call: &Call<'_>) -> Option<&'static str> {
        self.find(call).map(|(index, _)| self.handlers[index].0)
    }

    /// Runs the operation the call's method and path select; no match is AWS's
    /// `UnknownOperationException` with 404, as REST services answer unknown resources.
    pub async fn dispatch(&self, context: &C, call: Call<'_>) -> Result<Reply, AwsError> {
        let Some((index, params)) = self.find(&call) else {
            return Err(AwsError::bare(ErrorCode::UnknownOperation).with_status(404));
        };
        let request = RestRequest { caller: call.caller, head: call.head, body: call.body, params };
        let response = (self.handlers[index].1)(context, request).await?;
        Ok(Reply::Http(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Config {
        #[serde(default)]
        timeout: Option<u32>,
    }

    async fn get_function(_: &(), request: RestRequest<'_>) -> Result<http::Response<Payload>, AwsError> {
        let body = serde_json::json!({
            "Name": request.param("FunctionName"),
            "Qualifier": request.query("Qualifier"),
            "Type": request.header("x-amz-invocation-type"),
        });
        Ok(json_response(200, &body))
    }

    async fn update(_: &(), request: RestRequest<'_>) -> Result<http::Response<Payload>, AwsError> {
        let config: Config = request.json()?;
        Ok(json_response(201, &serde_json::json!({ "Timeout": config.timeout })))
    }

    fn table() -> RestOperations<()> {
        RestOperations::new()
            .route(Method::GET, "/2015-03-31/functions/{FunctionName}", "GetFunction", get_function)
            .route(Method::PUT, "/2015-03-31/functions/{FunctionName}/configuration", "Update", update)
    }

    fn call(
        table: &RestOperations<()>,
        method: Method,
        uri: &str,
        body: &[u8],
    ) -> Result<(u16, serde_json::Value), AwsError> {
        let head = http::Request::builder().method(method).uri(uri).header("x-amz-invocation-type", "Event");
        let head = head.body(()).unwrap().into_parts().0;
        let call = Call { operation: head.uri.path(), codec: Codec::Json, body, caller: None, head: &head };
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let Reply::Http(response) = runtime.block_on(table.dispatch(&(), call))? else { panic!("expected HTTP") };
        let Payload::Full(body) = response.body() else { panic!("expected a full body") };
        Ok((response.status().as_u16(), serde_json::from_slice(body).unwrap()))
    }

    #[test]
    fn path_query_headers_and_body_reach_the_handler() {
        let table = table();
        let uri = "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3Af?Qualifier=%24LATEST";
        let (status, body) = call(&table, Method::GET, uri, b"").unwrap();
        assert_eq!(status, 200);
        assert_eq!(body["Name"], "arn:aws:lambda:us-east-1:1:function:f");
        assert_eq!(body["Qualifier"], "$LATEST");
        assert_eq!(body["Type"], "Event");
        let (status, body) =
            call(&table, Method::PUT, "/2015-03-31/functions/f/configuration", br#"{"Timeout":9}"#).unwrap();
        assert_eq!((status, body["Timeout"].as_u64()), (201, Some(9)));
        let (_, body) = call(&table, Method::PUT, "/2015-03-31/functions/f/configuration", b"").unwrap();
        assert!(body["Timeout"].is_null());
    }

    #[test]
    fn unknown_routes_and_bad_bodies_are_aws_errors() {
        let table = table();
        let unknown = call(&table, Method::DELETE, "/2015-03-31/functions/f", b"").err().unwrap();
        assert_eq!((unknown.code, unknown.status()), (ErrorCode::UnknownOperation, 404));
        let malformed = call(&table, Method::PUT, "/2015-03-31/functions/f/configuration", b"{").err().unwrap();
        assert_eq!(malformed.code, ErrorCode::Serialization);
    }

    #[test]
    fn operations_are_named_by_method_and_path() {
        let table = table();
        let head = http::Request::builder().uri("/2015-03-31/functions/x").body(()).unwrap().into_parts().0;
        let call = Call { operation: "", codec: Codec::Json, body: b"", caller: None, head: &head };
        assert_eq!(table.name_of(&call), Some("GetFunction"));
    }
}
