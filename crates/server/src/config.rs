//! Command-line and environment configuration (every flag also reads `TIDELINE_<FLAG>`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use tideline_firehose::{BucketsConfig, FirehoseConfig, KinesisStart};
use tideline_proto::sigv4::{AccessKeys, KeyError, Verifier};
use tideline_storage::{default_max_open_files, StorageConfig};
use tideline_streams::StreamsConfig;

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
}

#[derive(clap::Args)]
pub struct DataDirArgs {
    /// The server's durable storage directory.
    #[arg(long, env = "TIDELINE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, env = "TIDELINE_LISTEN", default_value = "127.0.0.1:4567")]
    pub listen: String,
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
    /// How long streams stay CREATING, UPDATING or DELETING, in milliseconds (AWS takes seconds).
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
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum KinesisStartArg {
    Latest,
    TrimHorizon,
}

impl ServeArgs {
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
        StorageConfig { segment_max_bytes: self.segment_max_bytes, max_open_files: self.max_open_files(), ..mode }
    }

    /// Firehose buffers live in their own storage, under `<data-dir>/firehose`.
    pub fn firehose_storage_config(&self) -> StorageConfig {
        let mode = if self.in_memory {
            StorageConfig::in_memory()
        } else {
            StorageConfig::durable(self.data_dir.join("firehose"))
        };
        StorageConfig { segment_max_bytes: self.segment_max_bytes, max_open_files: self.max_open_files(), ..mode }
    }

    fn max_open_files(&self) -> usize {
        self.max_open_segments.map_or_else(default_max_open_files, |max| usize::try_from(max).unwrap_or(usize::MAX))
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
    fn half_a_key_is_an_error() {
        let error = parse("[broken]\naws_access_key_id = AKID\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "credentials file credentials, profile [broken]: aws_access_key_id without aws_secret_access_key"
        );
        assert!(parse("[empty]\naws_access_key_id =\naws_secret_access_key = s\n").is_err());
    }
}
