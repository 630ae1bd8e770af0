//! `tideline video put STREAM [FILE|-]`: Kinesis Video's PutMedia, which no AWS SDK models. The
//! Matroska from a file or standard input (`ffmpeg … -f matroska -live 1 pipe:1 | tideline video
//! put cam`) is sent as one chunked request body while the server's acknowledgements are
//! printed as they arrive, one a line.
//!
//! The request is SigV4-signed like the KVS producer SDKs sign it: the headers only, with
//! `x-amz-content-sha256: UNSIGNED-PAYLOAD`, since the body is not known when the request starts.
//! Plain HTTP endpoints only: the hyper client here has no TLS.

use std::io::Write;
use std::path::PathBuf;
use std::time::SystemTime;

use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::connection::Connection;
use crate::error::CliError;
use crate::output::Output;

/// Kinesis Video subcommands.
#[derive(clap::Subcommand)]
pub enum VideoCommand {
    /// Send Matroska (MKV) media to a video stream with PutMedia and print the acknowledgements.
    Put(PutArgs),
}

impl VideoCommand {
    pub fn connection(&self) -> &Connection {
        match self {
            VideoCommand::Put(args) => &args.connection,
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum TimecodeType {
    /// Cluster timecodes count from the upload's start (now): what ffmpeg writes.
    Relative,
    /// Cluster timecodes are epoch times.
    Absolute,
}

#[derive(clap::Args)]
pub struct PutArgs {
    /// The video stream.
    stream: String,
    /// The MKV file; `-` (the default) reads standard input.
    #[arg(default_value = "-")]
    file: PathBuf,
    /// How the media's Cluster timecodes map to producer timestamps.
    #[arg(long, value_enum, default_value_t = TimecodeType::Relative)]
    timecode_type: TimecodeType,
    #[command(flatten)]
    connection: Connection,
}

/// Bytes read from the input at a time, and chunks queued for the connection: a slow server
/// slows the reading down instead of making the client buffer.
const CHUNK_BYTES: usize = 64 * 1024;
const CHUNKS_QUEUED: usize = 4;

pub async fn run(command: VideoCommand) -> Result<(), CliError> {
    match command {
        VideoCommand::Put(args) => put(args).await,
    }
}

async fn put(args: PutArgs) -> Result<(), CliError> {
    let endpoint = args.connection.endpoint.trim_end_matches('/');
    if !endpoint.starts_with("http://") {
        return Err(CliError::Usage(format!("tideline video put supports http:// endpoints only, not {endpoint}")));
    }
    let uri: hyper::Uri =
        format!("{endpoint}/putMedia").parse().map_err(|error| CliError::Usage(format!("bad endpoint: {error}")))?;
    let authority = uri.authority().map(|authority| authority.to_string()).unwrap_or_default();
    let now = SystemTime::now();
    let mut headers = vec![
        ("host".to_owned(), authority),
        ("x-amzn-stream-name".to_owned(), args.stream.clone()),
        ("x-amz-content-sha256".to_owned(), "UNSIGNED-PAYLOAD".to_owned()),
    ];
    match args.timecode_type {
        TimecodeType::Absolute => headers.push(("x-amzn-fragment-timecode-type".into(), "ABSOLUTE".into())),
        TimecodeType::Relative => {
            let start = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
            headers.push(("x-amzn-fragment-timecode-type".into(), "RELATIVE".into()));
            headers.push(("x-amzn-producer-start-timestamp".into(), format!("{start:.3}")));
        }
    }
    headers.extend(sign_headers(&args.connection, &uri, &headers, now).await?);

    let (chunks, queued) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(CHUNKS_QUEUED);
    tokio::spawn(read_input(args.file.clone(), chunks));
    let frames = Box::pin(futures_util::stream::unfold(queued, |mut queued| async move {
        queued.recv().await.map(|frame| (frame, queued))
    }));
    let mut request = hyper::Request::post(uri);
    for (name, value) in &headers {
        // `host` comes from the URI.
        if name != "host" {
            request = request.header(name, value);
        }
    }
    let request = request.body(StreamBody::new(frames)).map_err(|error| CliError::Usage(error.to_string()))?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client.request(request).await.map_err(|error| CliError::Request(error.to_string()))?;
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        let bytes = body.collect().await.map_err(|error| CliError::Request(error.to_string()))?.to_bytes();
        let error: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let message = error["message"].as_str().or(error["Message"].as_str()).unwrap_or_default().to_owned();
        let code = error["__type"].as_str().unwrap_or(status.as_str()).to_owned();
        return Err(CliError::Aws { code, message });
    }
    let mut pending = Vec::new();
    let mut failed = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| CliError::Request(error.to_string()))?;
        let Ok(data) = frame.into_data() else { continue };
        pending.extend_from_slice(&data);
        while let Some(end) = pending.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            if let Some(error) = print_ack(args.connection.output, &line)? {
                failed = Some(error);
            }
        }
    }
    match failed {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// The `authorization` and `x-amz-date` (and session token) headers for a PutMedia request.
async fn sign_headers(
    connection: &Connection,
    uri: &hyper::Uri,
    headers: &[(String, String)],
    now: SystemTime,
) -> Result<Vec<(String, String)>, CliError> {
    let config = connection.sdk_config().await;
    let provider = config.credentials_provider().ok_or_else(|| CliError::Usage("no credentials".into()))?;
    let credentials = provider.provide_credentials().await.map_err(|error| CliError::Usage(error.to_string()))?;
    let region = config.region().map_or_else(|| "us-east-1".to_owned(), |region| region.to_string());
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&region)
        .name("kinesisvideo")
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|error| CliError::Usage(error.to_string()))?
        .into();
    let path = uri.path_and_query().map_or("/putMedia", |path| path.as_str());
    let pairs = headers.iter().map(|(name, value)| (name.as_str(), value.as_str()));
    let signable = SignableRequest::new("POST", path, pairs, SignableBody::UnsignedPayload)
        .map_err(|error| CliError::Usage(error.to_string()))?;
    let (instructions, _) = sign(signable, &params).map_err(|error| CliError::Usage(error.to_string()))?.into_parts();
    Ok(instructions.headers().map(|(name, value)| (name.to_owned(), value.to_owned())).collect())
}

/// Feeds the file (or standard input) to the request body, chunk by chunk.
async fn read_input(file: PathBuf, chunks: mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>) {
    let mut input: Box<dyn tokio::io::AsyncRead + Send + Unpin> = if file.as_os_str() == "-" {
        Box::new(tokio::io::stdin())
    } else {
        match tokio::fs::File::open(&file).await {
            Ok(opened) => Box::new(opened),
            Err(error) => {
                let _ = chunks.send(Err(error)).await;
                return;
            }
        }
    };
    loop {
        let mut buffer = vec![0; CHUNK_BYTES];
        let chunk = match input.read(&mut buffer).await {
            Ok(0) => return,
            Ok(read) => {
                buffer.truncate(read);
                Ok(Frame::data(Bytes::from(buffer)))
            }
            Err(error) => Err(error),
        };
        let failed = chunk.is_err();
        if chunks.send(chunk).await.is_err() || failed {
            return;
        }
    }
}

/// Prints one acknowledgement line; an ERROR acknowledgement is also the command's error.
fn print_ack(output: Output, line: &[u8]) -> Result<Option<CliError>, CliError> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let ack: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let event = ack["EventType"].as_str().unwrap_or("?");
    let mut stdout = anstream::stdout().lock();
    match output {
        Output::Json => writeln!(stdout, "{text}")?,
        Output::Text => {
            let mut shown = format!("{event:<10}");
            if let Some(timecode) = ack["FragmentTimecode"].as_u64() {
                shown.push_str(&format!(" timecode {timecode}"));
            }
            if let Some(number) = ack["FragmentNumber"].as_str() {
                shown.push_str(&format!(" fragment {number}"));
            }
            if let Some(id) = ack["ErrorId"].as_u64() {
                shown.push_str(&format!(" error {id}"));
            }
            writeln!(stdout, "{shown}")?;
        }
    }
    Ok((event == "ERROR").then(|| {
        let id = ack["ErrorId"].as_u64().unwrap_or(0);
        CliError::Aws { code: format!("PutMediaError{id}"), message: format!("PutMedia ended with ERROR {id}") }
    }))
}
