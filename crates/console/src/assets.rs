//! The console's files, embedded with `include_bytes!` so the binary serves them with nothing on
//! disk. They are hand-written, dependency-free HTML, CSS and JavaScript: no npm, bundler or
//! framework at build or run time, which keeps the console a few small files anyone can read.

use tideline_proto::rest::{bytes_response, RestRequest};
use tideline_proto::{AwsError, ErrorCode, Payload};

/// One embedded file and the path it is served at.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

const INDEX: &[u8] = include_bytes!("../assets/index.html");
const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// Every file the console serves; the page itself at `/` and under `/console`.
pub const ASSETS: &[Asset] = &[
    Asset { path: "/", content_type: HTML, body: INDEX },
    Asset { path: "/console", content_type: HTML, body: INDEX },
    Asset { path: "/console/", content_type: HTML, body: INDEX },
    Asset {
        path: "/console/console.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/console.css"),
    },
    Asset { path: "/console/sigv4.js", content_type: JS, body: include_bytes!("../assets/sigv4.js") },
    Asset { path: "/console/aws.js", content_type: JS, body: include_bytes!("../assets/aws.js") },
    Asset { path: "/console/dom.js", content_type: JS, body: include_bytes!("../assets/dom.js") },
    Asset { path: "/console/chart.js", content_type: JS, body: include_bytes!("../assets/chart.js") },
    Asset { path: "/console/metrics.js", content_type: JS, body: include_bytes!("../assets/metrics.js") },
    Asset { path: "/console/streams.js", content_type: JS, body: include_bytes!("../assets/streams.js") },
    Asset { path: "/console/stream.js", content_type: JS, body: include_bytes!("../assets/stream.js") },
    Asset { path: "/console/records.js", content_type: JS, body: include_bytes!("../assets/records.js") },
    Asset { path: "/console/services.js", content_type: JS, body: include_bytes!("../assets/services.js") },
    Asset { path: "/console/console.js", content_type: JS, body: include_bytes!("../assets/console.js") },
];

/// Serves the embedded file at the request's path. The page's scripts come only from this
/// server (`script-src 'self'`), so a record's data shown on a page can never run as script.
pub async fn serve_asset<C>(_: &C, request: RestRequest<'_>) -> Result<http::Response<Payload>, AwsError> {
    let path = request.head.uri.path();
    let asset = ASSETS
        .iter()
        .find(|asset| asset.path == path)
        .ok_or_else(|| AwsError::bare(ErrorCode::UnknownOperation).with_status(404))?;
    let mut response = bytes_response(200, asset.content_type, asset.body.to_vec());
    let headers = response.headers_mut();
    headers.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-cache"));
    headers.insert("x-content-type-options", http::HeaderValue::from_static("nosniff"));
    headers.insert(
        http::header::CONTENT_SECURITY_POLICY,
        http::HeaderValue::from_static("default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
    );
    Ok(response)
}
