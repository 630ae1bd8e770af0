//! Command-line and environment configuration (every flag also reads `TIDELINE_<FLAG>`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use tideline_firehose::{BucketsConfig, FirehoseConfig, KinesisStart};
use tideline_proto::sigv4::{AccessKeys, KeyError, Verifier};
use tideline_storage::{default_max_open_files, FsyncPolicy, StorageConfig};
use tideline_streams::StreamsConfig;
use tideline_video::VideoConfig;

use crate::http::HttpLimits;
use crate::listener::ConnectionLimits;
use crate::tls::{self_signed_names, TlsSource};

/// The name Kinesis clients scope their SigV4 credential to.
const SIGNING_NAME: &str = "kinesis";

/// A configuration that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--auth needs access keys: --credentials FILE, or TIDELINE_ACCESS_KEY_ID and TIDELINE_SECRET_ACCESS_KEY")]
    NoAccessKeys,
    #[error("TIDELINE_ACCESS_KEY_ID and TIDELINE_SECRET_ACCESS_KEY go together; only one is set")]
    HalfAccessKey,
    #[error("cannot read credentials file {path}: {source}")]
    ReadCredentials { path: PathBuf, source: std::io::Error },
    #[error("credentials file {path}: {message}")]
    ParseCredentials { path: PathBuf, message: String },
    #[error("credentials file {path}, profile [{profile}]: {message}")]
    Profile { path: PathBuf, profile: String, message: String },
    #[error("{0}")]
    Keys(#[from] KeyError),
}

#[derive(Parser)]
#[command(name = "tideline", version, about = "A self-hostable, AWS wire-compatible Amazon Kinesis")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of the serve variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum Command {
    /// Serve the Kinesis APIs over HTTP.
    Serve(ServeArgs),
    /// Check every shard log of a data directory; report damaged ranges and exit 1 if any.
    Check(DataDirArgs),
    /// With the server stopped: move damaged ranges of the shard logs to <data-dir>/quarantine/
    /// so that reads continue after them.
    Repair(DataDirArgs),
    /// Client subcommands against a running server (streams, put, tail, ...).
    #[command(flatten)]
    Client(tideline_cli::Command),
    /// Ship log files to Kinesis or Firehose, configured like the Amazon Kinesis Agent.
    Agent(tideline_agent::AgentArgs),
    /// Run Flink SQL statements over a server's streams (`-e "…"` or `-f job.sql`), or manage SQL jobs
    /// kept in the server (`--submit NAME`, `--list`, `--stop NAME`, `--delete NAME`).
    Sql(tideline_analytics::SqlArgs),
}

#[derive(clap::Args)]
pub struct DataDirArgs {
    /// The server's durable storage directory.
    #[arg(long, env = "TIDELINE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on, HOST:PORT; port 0 picks a free port (printed on stdout).
    #[arg(long, env = "TIDELINE_LISTEN", default_value = "127.0.0.1:4567", value_parser = parse_listen)]
    pub listen: String,
    /// Most client connections open at once; more are closed as soon as they are accepted.
    /// Default: 4096, or half the open-file limit if that is lower.
    #[arg(long, env = "TIDELINE_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,
    /// Seconds a connection has to send a complete request head, from when it opens and (HTTP/1.1)
    /// from the end of the previous response; also closes idle HTTP/1.1 keep-alive connections.
    /// 0: no limit.
    #[arg(long, env = "TIDELINE_HEADER_READ_TIMEOUT_SECS", default_value_t = 30)]
    pub header_read_timeout_secs: u64,
    /// Seconds a connection may stay open with no request in flight (HTTP/2: then GOAWAY); a
    /// streaming SubscribeToShard response counts as in flight. Also how long a request body may
    /// stop arriving before the request fails. 0: no limit.
    #[arg(long, env = "TIDELINE_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,
    /// HTTP/2: seconds between keep-alive PINGs; a client that does not answer one within as long
    /// is disconnected. 0: no PINGs.
    #[arg(long, env = "TIDELINE_HTTP2_KEEPALIVE_SECS", default_value_t = 30)]
    pub http2_keepalive_secs: u64,
    /// Directory for durable storage.
    #[arg(long, env = "TIDELINE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Keep everything in memory (nothing survives a restart).
    #[arg(long, env = "TIDELINE_IN_MEMORY")]
    pub in_memory: bool,
    /// Region used in ARNs.
    #[arg(long, env = "TIDELINE_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Account id used in ARNs and messages.
    #[arg(long, env = "TIDELINE_ACCOUNT_ID", default_value = "000000000000")]
    pub account_id: String,
    /// How long streams stay CREATING, UPDATING or DELETING, in milliseconds (AWS takes seconds);
    /// data streams and video streams alike.
    #[arg(long, env = "TIDELINE_CREATE_DELAY_MS", default_value_t = 0)]
    pub create_delay_ms: u64,
    /// Open shards allowed across all streams.
    #[arg(long, env = "TIDELINE_SHARD_LIMIT", default_value_t = 500)]
    pub shard_limit: u32,
    /// Enforce AWS's per-shard throughput limits: writes 1 MiB/s and 1,000 records/s, reads
    /// 5 calls/s and 2 MiB/s (ProvisionedThroughputExceededException beyond).
    #[arg(long, env = "TIDELINE_ENFORCE_LIMITS")]
    pub enforce_limits: bool,
    /// Lifetime of shard iterators, in seconds.
    #[arg(long, env = "TIDELINE_ITERATOR_TTL_SECS", default_value_t = 300)]
    pub iterator_ttl_secs: u64,
    /// How often records older than their stream's retention period are deleted, in seconds
    /// (0: never; records are kept until their stream is deleted).
    #[arg(long, env = "TIDELINE_RETENTION_CHECK_SECS", default_value_t = 60)]
    pub retention_check_secs: u64,
    /// For tests: how long one hour of a retention period lasts, in milliseconds, so that a
    /// 24-hour retention can pass in seconds.
    #[arg(long, env = "TIDELINE_RETENTION_HOUR_MS", default_value_t = 3_600_000, hide = true)]
    pub retention_hour_ms: u64,
    /// A shard log starts a new segment file past this size; retention deletes whole segments.
    #[arg(long, env = "TIDELINE_SEGMENT_MAX_BYTES", default_value_t = StorageConfig::DEFAULT_SEGMENT_MAX_BYTES)]
    pub segment_max_bytes: u64,
    /// Segment files each store (streams, Firehose) keeps open at most; the least recently used
    /// is closed past it and reopened on demand (default: 256, or a quarter of the open-file
    /// limit, `ulimit -n`, when that is lower).
    #[arg(long, env = "TIDELINE_MAX_OPEN_SEGMENTS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_open_segments: Option<u64>,
    /// Verify SigV4 signatures: serve only requests signed with a configured access key.
    #[arg(long, env = "TIDELINE_AUTH")]
    pub auth: bool,
    /// AWS shared-credentials file whose every profile's aws_access_key_id / aws_secret_access_key is
    /// accepted with --auth.
    #[arg(long, env = "TIDELINE_CREDENTIALS", value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// An access key id accepted with --auth (with --secret-access-key).
    #[arg(long, env = "TIDELINE_ACCESS_KEY_ID", value_name = "ID")]
    pub access_key_id: Option<String>,
    /// The secret of --access-key-id. Prefer the environment variable: command lines are visible to
    /// other users of the machine.
    #[arg(long, env = "TIDELINE_SECRET_ACCESS_KEY", value_name = "SECRET", hide_env_values = true)]
    pub secret_access_key: Option<String>,
    /// Request body bytes held at once by all requests being read or handled (one request holds
    /// at most 16 MiB); beyond it requests wait, then get 503 ServiceUnavailable.
    #[arg(long, env = "TIDELINE_MAX_REQUEST_BYTES_IN_FLIGHT", default_value_t = 256 << 20)]
    pub max_request_bytes_in_flight: usize,
    /// Response body bytes held at once by responses not yet written to their clients (a client
    /// that does not read its GetRecords answers holds them).
    #[arg(long, env = "TIDELINE_MAX_RESPONSE_BYTES_IN_FLIGHT", default_value_t = 256 << 20)]
    pub max_response_bytes_in_flight: usize,
    /// Seconds a request body may take to arrive, and a request may wait for the byte budgets.
    #[arg(long, env = "TIDELINE_REQUEST_BODY_TIMEOUT_SECS", default_value_t = 30)]
    pub request_body_timeout_secs: u64,
    /// Firehose: deliver to buckets of this S3-compatible endpoint (path-style requests), e.g.
    /// http://127.0.0.1:9000. Without it, buckets are folders under --s3-dir.
    #[arg(long, env = "TIDELINE_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// Access key id for --s3-endpoint.
    #[arg(long, env = "TIDELINE_S3_ACCESS_KEY_ID", value_name = "ID", default_value = "test")]
    pub s3_access_key_id: String,
    /// Secret access key for --s3-endpoint.
    #[arg(
        long,
        env = "TIDELINE_S3_SECRET_ACCESS_KEY",
        value_name = "SECRET",
        default_value = "test",
        hide_env_values = true
    )]
    pub s3_secret_access_key: String,
    /// Region to sign --s3-endpoint requests for (default: --region).
    #[arg(long, env = "TIDELINE_S3_REGION")]
    pub s3_region: Option<String>,
    /// Firehose: without --s3-endpoint, bucket BUCKET is the folder DIR/BUCKET (default
    /// <data-dir>/s3; with --in-memory and no --s3-dir, buckets are kept in memory).
    #[arg(long, env = "TIDELINE_S3_DIR", value_name = "DIR")]
    pub s3_dir: Option<PathBuf>,
    /// Firehose: a JSON file of table schemas standing in for the AWS Glue Data Catalog, used by
    /// record format conversion to Parquet.
    #[arg(long, env = "TIDELINE_GLUE_CATALOG", value_name = "FILE")]
    pub glue_catalog: Option<PathBuf>,
    /// Firehose: where a delivery stream whose source is a Kinesis stream starts reading: at its
    /// creation time (latest, as AWS does) or at the stream's oldest record (trim-horizon).
    #[arg(long, env = "TIDELINE_FIREHOSE_KINESIS_START", value_enum, default_value_t = KinesisStartArg::Latest)]
    pub firehose_kinesis_start: KinesisStartArg,
    /// Firehose: timeout of one HTTP endpoint delivery or transformation call, in seconds.
    #[arg(long, env = "TIDELINE_FIREHOSE_HTTP_TIMEOUT_SECS", default_value_t = 60)]
    pub firehose_http_timeout_secs: u64,
    /// Firehose: first pause before retrying a failed delivery, in milliseconds (doubling up to
    /// 30 s).
    #[arg(long, env = "TIDELINE_FIREHOSE_RETRY_BACKOFF_MS", default_value_t = 1000)]
    pub firehose_retry_backoff_ms: u64,
    /// Serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN) with this PEM certificate chain, leaf first
    /// (with --tls-key). Without TLS flags the listener speaks plain HTTP/1.1 and h2c.
    #[arg(long, env = "TIDELINE_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "TIDELINE_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a certificate made at start for localhost, 127.0.0.1, ::1 and the --listen
    /// host; clients must skip certificate verification (the KPL's VerifyCertificate=false).
    #[arg(long, env = "TIDELINE_TLS_SELF_SIGNED", conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,
    /// Lambda: the Python interpreter that runs python3.x functions (`python -m awslambdaric`;
    /// PyPI `awslambdaric` must be installed in it).
    #[arg(long, env = "TIDELINE_LAMBDA_PYTHON", default_value = "python3")]
    pub lambda_python: PathBuf,
    /// Lambda: the npm `aws-lambda-ric` command that runs nodejs functions.
    #[arg(long, env = "TIDELINE_LAMBDA_NODE_RIC", default_value = "aws-lambda-ric")]
    pub lambda_node_ric: PathBuf,
    /// Lambda: invocations running at once, server-wide (and per function); a synchronous Invoke
    /// over it is TooManyRequestsException.
    #[arg(long, env = "TIDELINE_LAMBDA_MAX_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub lambda_max_concurrency: u32,
    /// With --in-memory: record bytes the streams keep at most; past it the oldest records of any
    /// shard are dropped, as retention drops them. 0: no bound. (Firehose buffers are not bounded
    /// by it: they hold data not yet delivered.)
    #[arg(long, env = "TIDELINE_IN_MEMORY_MAX_BYTES", default_value_t = DEFAULT_IN_MEMORY_MAX_BYTES)]
    pub in_memory_max_bytes: u64,
    /// When durable logs are fsync'ed: `always` (before each acknowledgement) or `interval=<ms>`
    /// (acknowledge once written, fsync every <ms>: a power loss or kernel crash may lose the
    /// last <ms> of acknowledged records; a killed process loses nothing).
    #[arg(long, env = "TIDELINE_FSYNC", default_value = "always", value_parser = clap::value_parser!(FsyncPolicy))]
    pub fsync: FsyncPolicy,
    /// SQL jobs: the most bytes of rows one windowed query's open windows may hold; past it the
    /// query stops with an error naming this flag, rather than growing without bound.
    #[arg(long, env = "TIDELINE_SQL_MAX_WINDOW_STATE", default_value_t = tideline_analytics::engine::DEFAULT_MAX_WINDOW_STATE)]
    pub sql_max_window_state: u64,
}

/// The default `--in-memory-max-bytes`: 1 GiB, so that a test server left ingesting does not
/// exhaust its host.
const DEFAULT_IN_MEMORY_MAX_BYTES: u64 = 1 << 30;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum KinesisStartArg {
    Latest,
    TrimHorizon,
}

/// The default `--max-connections` for an open-file limit: the other half of the descriptors is
/// left to shard logs, Firehose buffers and outgoing connections.
const DEFAULT_MAX_CONNECTIONS: u32 = 4096;

/// `--listen` must be HOST:PORT; a bare port is the usual mistake, and binding would only say
/// "invalid socket address".
fn parse_listen(value: &str) -> Result<String, String> {
    // clap's message names the flag and the value; this says what was expected.
    let expected = || "expected HOST:PORT such as 127.0.0.1:4567".to_owned();
    if value.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(value.to_owned());
    }
    match value.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.contains(':') && port.parse::<u16>().is_ok() => {
            Ok(value.to_owned())
        }
        _ => Err(expected()),
    }
}

impl ServeArgs {
    /// The connection limits, given the process's open-file limit.
    pub fn connection_limits(&self, open_files: u64) -> ConnectionLimits {
        let seconds = |secs: u64| (secs > 0).then(|| Duration::from_secs(secs));
        let half = u32::try_from(open_files / 2).unwrap_or(u32::MAX).max(1);
        ConnectionLimits {
            max_connections: self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS.min(half)),
            header_read_timeout: seconds(self.header_read_timeout_secs),
            idle_timeout: seconds(self.idle_timeout_secs),
            http2_keepalive: seconds(self.http2_keepalive_secs),
        }
    }

    /// Where the TLS certificate comes from; None: plain HTTP.
    pub fn tls_source(&self) -> Option<TlsSource> {
        if self.tls_self_signed {
            let host = self.listen.rsplit_once(':').map_or(self.listen.as_str(), |(host, _)| host);
            return Some(TlsSource::SelfSigned { names: self_signed_names(host) });
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsSource::Files { cert: cert.clone(), key: key.clone() }),
            // clap requires the two together.
            _ => None,
        }
    }

    pub fn streams_config(&self) -> StreamsConfig {
        StreamsConfig {
            region: self.region.clone(),
            account_id: self.account_id.clone(),
            transition_delay: Duration::from_millis(self.create_delay_ms),
            shard_limit: self.shard_limit,
            iterator_ttl: Duration::from_secs(self.iterator_ttl_secs),
            enforce_limits: self.enforce_limits,
            retention_check_interval: Duration::from_secs(self.retention_check_secs),
            retention_hour: Duration::from_millis(self.retention_hour_ms),
        }
    }

    pub fn storage_config(&self) -> StorageConfig {
        let mode =
            if self.in_memory { StorageConfig::in_memory() } else { StorageConfig::durable(self.data_dir.clone()) };
        StorageConfig {
            segment_max_bytes: self.segment_max_bytes,
            max_open_files: self.max_open_files(),
            memory_cap_bytes: (self.in_memory && self.in_memory_max_bytes > 0).then_some(self.in_memory_max_bytes),
            fsync: self.fsync,
            ..mode
        }
    }

    /// Firehose buffers live in their own storage, under `<data-dir>/firehose`.
    pub fn firehose_storage_config(&self) -> StorageConfig {
        self.service_storage_config("firehose")
    }

    /// Kinesis Video metadata lives in its own storage, under `<data-dir>/video`.
    pub fn video_storage_config(&self) -> StorageConfig {
        self.service_storage_config("video")
    }

    /// The storage of a service apart from the data streams', under `<data-dir>/<dir>`.
    fn service_storage_config(&self, dir: &str) -> StorageConfig {
        let mode =
            if self.in_memory { StorageConfig::in_memory() } else { StorageConfig::durable(self.data_dir.join(dir)) };
        StorageConfig {
            segment_max_bytes: self.segment_max_bytes,
            max_open_files: self.max_open_files(),
            fsync: self.fsync,
            ..mode
        }
    }

    /// `scheme` is how clients reach this server (`https` with TLS), for the data endpoints
    /// Kinesis Video hands out.
    pub fn video_config(&self, scheme: &'static str) -> VideoConfig {
        VideoConfig {
            region: self.region.clone(),
            account_id: self.account_id.clone(),
            scheme,
            // Tideline's bound on the number of video streams, so that metadata stays bounded.
            max_streams: 10_000,
            media_dir: (!self.in_memory).then(|| self.data_dir.join("video").join("media")),
            transition_ms: i64::try_from(self.create_delay_ms).unwrap_or(i64::MAX),
        }
    }

    fn max_open_files(&self) -> usize {
        self.max_open_segments.map_or_else(default_max_open_files, |max| usize::try_from(max).unwrap_or(usize::MAX))
    }

    /// SQL analytics applications: kept in `<data-dir>/analytics` unless in memory.
    pub fn analytics_config(&self) -> tideline_analytics::ApplicationsConfig {
        tideline_analytics::ApplicationsConfig {
            dir: (!self.in_memory).then(|| self.data_dir.join("analytics")),
            region: self.region.clone(),
            account_id: self.account_id.clone(),
            max_window_state: self.sql_max_window_state,
        }
    }

    pub fn firehose_config(&self) -> FirehoseConfig {
        let buckets = match (&self.s3_endpoint, &self.s3_dir) {
            (Some(endpoint), _) => BucketsConfig::S3 {
                endpoint: endpoint.clone(),
                region: self.s3_region.clone().unwrap_or_else(|| self.region.clone()),
                access_key_id: self.s3_access_key_id.clone(),
                secret_access_key: self.s3_secret_access_key.clone(),
            },
            (None, Some(dir)) => BucketsConfig::Directory(dir.clone()),
            (None, None) if self.in_memory => BucketsConfig::Memory,
            (None, None) => BucketsConfig::Directory(self.data_dir.join("s3")),
        };
        FirehoseConfig {
            region: self.region.clone(),
            account_id: self.account_id.clone(),
            buckets,
            glue_catalog: self.glue_catalog.clone(),
            kinesis_start: match self.firehose_kinesis_start {
                KinesisStartArg::Latest => KinesisStart::Latest,
                KinesisStartArg::TrimHorizon => KinesisStart::TrimHorizon,
            },
            http_timeout: Duration::from_secs(self.firehose_http_timeout_secs),
            retry_backoff: Duration::from_millis(self.firehose_retry_backoff_ms),
        }
    }

    /// The signature verifier when `--auth` is on, with every configured access key.
    pub fn http_limits(&self) -> HttpLimits {
        HttpLimits {
            request_bytes_in_flight: self.max_request_bytes_in_flight,
            response_bytes_in_flight: self.max_response_bytes_in_flight,
            body_timeout: Duration::from_secs(self.request_body_timeout_secs),
        }
    }

    pub fn verifier(&self) -> Result<Option<Verifier>, ConfigError> {
        let mut keys = AccessKeys::new();
        if let Some(path) = &self.credentials {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::ReadCredentials { path: path.clone(), source })?;
            for (id, secret) in parse_shared_credentials(path, &text)? {
                keys.insert(&id, &secret)?;
            }
        }
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(id), Some(secret)) => keys.insert(id, secret)?,
            (None, None) => {}
            _ => return Err(ConfigError::HalfAccessKey),
        }
        if !self.auth {
            if !keys.is_empty() {
                tracing::warn!("access keys are configured but --auth is off: requests are not verified");
            }
            return Ok(None);
        }
        if keys.is_empty() {
            return Err(ConfigError::NoAccessKeys);
        }
        Ok(Some(Verifier::new(keys, self.region.clone(), SIGNING_NAME)))
    }
}

/// The (access key id, secret) of every profile in an AWS shared-credentials (or config) file.
/// Profiles with neither key (say, only a region) are skipped; one with half a key is an error.
///
/// Read as botocore reads these files: no quoting or escapes (secrets are taken verbatim), option
/// names case-insensitive, indented continuation lines allowed, `[profile NAME]` meaning `NAME`.
fn parse_shared_credentials(path: &Path, text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let options = ini::ParseOption {
        enabled_quote: false,
        enabled_escape: false,
        enabled_indented_mutiline_value: true,
        ..ini::ParseOption::default()
    };
    let parsed = ini::Ini::load_from_str_opt(text, options)
        .map_err(|error| ConfigError::ParseCredentials { path: path.to_owned(), message: error.to_string() })?;
    let mut keys = Vec::new();
    for (section, properties) in &parsed {
        let Some(section) = section else { continue };
        let profile = section.strip_prefix("profile ").unwrap_or(section).trim();
        // botocore lower-cases option names, and the last of repeated options wins.
        let option = |name: &str| {
            properties
                .iter()
                .filter(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.trim())
                .next_back()
        };
        let problem = |message: &str| ConfigError::Profile {
            path: path.to_owned(),
            profile: profile.to_owned(),
            message: message.to_owned(),
        };
        match (option("aws_access_key_id"), option("aws_secret_access_key")) {
            (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => {
                keys.push((id.to_owned(), secret.to_owned()))
            }
            (None, None) => {}
            (Some(_), None) => return Err(problem("aws_access_key_id without aws_secret_access_key")),
            (None, Some(_)) => return Err(problem("aws_secret_access_key without aws_access_key_id")),
            _ => return Err(problem("empty aws_access_key_id or aws_secret_access_key")),
        }
    }
    Ok(keys)
}

impl ServeArgs {
    /// Lambda's configuration; `endpoint_url` is where functions' SDKs reach Tideline.
    pub fn lambda_config(&self, endpoint_url: String) -> tideline_lambda::LambdaConfig {
        tideline_lambda::LambdaConfig {
            data_dir: (!self.in_memory).then(|| self.data_dir.join("lambda")),
            region: self.region.clone(),
            account: self.account_id.clone(),
            runtime: tideline_lambda::RuntimeConfig {
                python: self.lambda_python.clone(),
                node_ric: self.lambda_node_ric.clone(),
                endpoint_url,
                region: self.region.clone(),
                // Functions sign with the server's first access key when --auth has them, else
                // with test values (an unauthenticated server accepts any).
                access_key_id: self.access_key_id.clone().unwrap_or_else(|| "AKIDTIDELINELAMBDA".into()),
                secret_access_key: self.secret_access_key.clone().unwrap_or_else(|| "tideline-lambda".into()),
            },
            max_concurrency: self.lambda_max_concurrency as usize,
            max_unzipped_bytes: tideline_lambda::code::MAX_UNZIPPED_BYTES,
            max_queued_events: 1000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
        parse_shared_credentials(Path::new("credentials"), text)
    }

    #[test]
    fn every_profile_with_keys_is_read() {
        let text = "# comment\n\
                    [default]\n\
                    aws_access_key_id = AKIDONE\n\
                    aws_secret_access_key = wJalr/K7MDENG+bPxRfi\\x\"q;not-a-comment\n\
                    \n\
                    [profile second]\n\
                    AWS_ACCESS_KEY_ID=AKIDTWO\n\
                    aws_secret_access_key=two\n\
                    region = eu-west-1\n\
                    s3 =\n    max_concurrent_requests = 20\n\
                    [region-only]\n\
                    region = us-east-1\n";
        assert_eq!(
            parse(text).unwrap(),
            [
                ("AKIDONE".to_owned(), "wJalr/K7MDENG+bPxRfi\\x\"q;not-a-comment".to_owned()),
                ("AKIDTWO".to_owned(), "two".to_owned())
            ]
        );
    }

    #[test]
    fn listen_is_host_and_port() {
        for good in ["127.0.0.1:4567", "0.0.0.0:0", "localhost:4567", "[::1]:4567"] {
            assert_eq!(parse_listen(good).as_deref(), Ok(good));
        }
        for bad in ["4599", ":4599", "127.0.0.1", "127.0.0.1:http", "::1:4567", "host:99999"] {
            assert_eq!(parse_listen(bad), Err("expected HOST:PORT such as 127.0.0.1:4567".to_owned()), "{bad}");
        }
    }

    #[test]
    fn half_a_key_is_an_error() {
        let error = parse("[broken]\naws_access_key_id = AKID\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "credentials file credentials, profile [broken]: aws_access_key_id without aws_secret_access_key"
        );
        assert!(parse("[empty]\naws_access_key_id =\naws_secret_access_key = s\n").is_err());
    }
}
