//! REST-JSON routing of the Lambda API: method and path to operation, path and query parameters
//! decoded, headers read, JSON bodies decoded and responses encoded with their status codes.

use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{LambdaError, Result};
use crate::invoke::InvokeRequest;
use crate::service::LambdaService;

/// A request as the HTTP layer hands it over.
pub struct RestRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl RestRequest<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    fn query(&self, name: &str) -> Option<String> {
        let query = self.query?;
        form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
    }

    fn max_items(&self) -> Result<Option<i64>> {
        match self.query("MaxItems") {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| {
                LambdaError::Validation(format!(
                    "1 validation error detected: Value '{text}' at 'maxItems' failed to satisfy constraint: Member must be a number"
                ))
            }),
        }
    }
}

#[derive(Debug)]
pub struct RestResponse {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl RestResponse {
    fn json<T: Serialize>(status: u16, value: &T) -> Result<Self> {
        let body = serde_json::to_vec(value).map_err(LambdaError::service)?;
        Ok(Self { status, headers: vec![("content-type", "application/json".into())], body: body.into() })
    }

    fn empty(status: u16) -> Self {
        Self { status, headers: Vec::new(), body: Bytes::new() }
    }
}

fn decode<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|error| LambdaError::InvalidRequestContent(format!("Could not parse request body into json: {error}")))
}

/// The path's version prefix (without slashes) and the rest, split into decoded segments.
fn segments(path: &str) -> (&'static str, Vec<String>) {
    let (version, rest) = crate::PATH_PREFIXES
        .iter()
        .find_map(|prefix| Some((prefix.trim_matches('/'), path.strip_prefix(prefix)?)))
        .unwrap_or_default();
    let segments = rest
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(|segment| percent_encoding::percent_decode_str(segment).decode_utf8_lossy().into_owned())
        .collect();
    (version, segments)
}

/// The operation a method and path name, as AWS's API reference spells it.
pub fn operation(method: &str, path: &str) -> Option<&'static str> {
    let (version, segments) = segments(path);
    let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
    if version != "2015-03-31" {
        return match (version, method, parts.as_slice()) {
            ("2017-10-31", "PUT", ["functions", _, "concurrency"]) => Some("PutFunctionConcurrency"),
            ("2017-10-31", "DELETE", ["functions", _, "concurrency"]) => Some("DeleteFunctionConcurrency"),
            ("2019-09-30", "GET", ["functions", _, "concurrency"]) => Some("GetFunctionConcurrency"),
            _ => None,
        };
    }
    let name = match (method, parts.as_slice()) {
        ("POST", ["functions"]) => "CreateFunction",
        ("GET", ["functions"]) => "ListFunctions",
        ("GET", ["functions", _]) => "GetFunction",
        ("GET", ["functions", _, "configuration"]) => "GetFunctionConfiguration",
        ("DELETE", ["functions", _]) => "DeleteFunction",
        ("PUT", ["functions", _, "code"]) => "UpdateFunctionCode",
        ("PUT", ["functions", _, "configuration"]) => "UpdateFunctionConfiguration",
        ("POST", ["functions", _, "invocations"]) => "Invoke",
        ("POST", ["event-source-mappings"]) => "CreateEventSourceMapping",
        ("GET", ["event-source-mappings"]) => "ListEventSourceMappings",
        ("GET", ["event-source-mappings", _]) => "GetEventSourceMapping",
        ("PUT", ["event-source-mappings", _]) => "UpdateEventSourceMapping",
        ("DELETE", ["event-source-mappings", _]) => "DeleteEventSourceMapping",
        _ => return None,
    };
    Some(name)
}

pub async fn handle(service: &Arc<LambdaService>, request: RestRequest<'_>) -> Result<RestResponse> {
    let Some(operation) = operation(request.method, request.path) else {
        return Err(LambdaError::UnknownOperation(format!(
            "No Lambda operation is {} {}",
            request.method, request.path
        )));
    };
    let (_, segments) = segments(request.path);
    // The function name or mapping UUID, where the path has one.
    let name = segments.get(1).map(String::as_str).unwrap_or_default();
    let uuid = name;
    match operation {
        "CreateFunction" => RestResponse::json(201, &service.create_function(decode(&request.body)?).await?),
        "ListFunctions" => {
            let marker = request.query("Marker");
            RestResponse::json(200, &service.list_functions(marker.as_deref(), request.max_items()?).await?)
        }
        "GetFunction" => {
            let name = crate::functions::resolve_name(service, name, request.query("Qualifier").as_deref())?;
            RestResponse::json(200, &service.get_function(&name).await?)
        }
        "GetFunctionConfiguration" => {
            let name = crate::functions::resolve_name(service, name, request.query("Qualifier").as_deref())?;
            RestResponse::json(200, &service.get_function(&name).await?.configuration)
        }
        "DeleteFunction" => {
            let name = crate::functions::resolve_name(service, name, request.query("Qualifier").as_deref())?;
            service.delete_function(&name).await?;
            Ok(RestResponse::empty(204))
        }
        "UpdateFunctionCode" => {
            let name = crate::functions::resolve_name(service, name, None)?;
            RestResponse::json(200, &service.update_function_code(&name, decode(&request.body)?).await?)
        }
        "UpdateFunctionConfiguration" => {
            let name = crate::functions::resolve_name(service, name, None)?;
            RestResponse::json(200, &service.update_function_configuration(&name, decode(&request.body)?).await?)
        }
        "Invoke" => {
            let qualifier = request.query("Qualifier");
            let invoke = InvokeRequest {
                function_name: name,
                qualifier: qualifier.as_deref(),
                invocation_type: request.header("x-amz-invocation-type"),
                log_type: request.header("x-amz-log-type"),
                payload: request.body.clone(),
            };
            let response = service.invoke(invoke).await?;
            let mut headers = Vec::new();
            if let Some(error) = response.function_error {
                headers.push(("x-amz-function-error", error.to_string()));
            }
            if let Some(log) = response.log_result {
                headers.push(("x-amz-log-result", log));
            }
            if let Some(version) = response.executed_version {
                headers.push(("x-amz-executed-version", version.to_string()));
            }
            if !response.payload.is_empty() {
                headers.push(("content-type", "application/json".into()));
            }
            Ok(RestResponse { status: response.status, headers, body: response.payload })
        }
        "CreateEventSourceMapping" => {
            RestResponse::json(202, &service.create_event_source_mapping(decode(&request.body)?).await?)
        }
        "ListEventSourceMappings" => {
            let (source, function, marker) =
                (request.query("EventSourceArn"), request.query("FunctionName"), request.query("Marker"));
            let list = service
                .list_event_source_mappings(
                    source.as_deref(),
                    function.as_deref(),
                    marker.as_deref(),
                    request.max_items()?,
                )
                .await?;
            RestResponse::json(200, &list)
        }
        "PutFunctionConcurrency" => {
            let name = crate::functions::resolve_name(service, name, None)?;
            RestResponse::json(200, &service.put_function_concurrency(&name, decode(&request.body)?).await?)
        }
        "GetFunctionConcurrency" => {
            let name = crate::functions::resolve_name(service, name, None)?;
            RestResponse::json(200, &service.get_function_concurrency(&name).await?)
        }
        "DeleteFunctionConcurrency" => {
            let name = crate::functions::resolve_name(service, name, None)?;
            service.delete_function_concurrency(&name).await?;
            Ok(RestResponse::empty(204))
        }
        "GetEventSourceMapping" => RestResponse::json(200, &service.get_event_source_mapping(uuid).await?),
        "UpdateEventSourceMapping" => {
            RestResponse::json(202, &service.update_event_source_mapping(uuid, decode(&request.body)?).await?)
        }
        _ => RestResponse::json(202, &service.delete_event_source_mapping(uuid).await?),
    }
}
