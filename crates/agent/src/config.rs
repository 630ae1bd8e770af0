//! The Kinesis Agent's configuration file (`agent.json`): the top-level endpoints, credentials and
//! checkpoint file, and one flow per tailed file pattern. Keys the agent knows but Tideline does not
//! use (CloudWatch, STS, assumed roles) and unknown keys are ignored, as the Kinesis Agent does;
//! values out of the agent's documented ranges are refused at start with the key named.

use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::bytes::Regex;
use serde::Deserialize;

use crate::error::{AgentError, Result};
use crate::processing;

// Defaults and ranges are the Kinesis Agent's (awslabs/amazon-kinesis-agent @ aa0d908:
// `config/AgentConfiguration.java`, `Constants.java`, `tailing/FileFlow.java`,
// `tailing/KinesisConstants.java`, `tailing/FirehoseConstants.java`).
/// `DEFAULT_CHECKPOINTS_FILE` in AgentConfiguration.java.
const DEFAULT_CHECKPOINT_FILE: &str = "/var/run/aws-kinesis-agent/checkpoints";
/// `log.statusReportingPeriodSeconds`: how often the progress summary goes to the log.
const DEFAULT_STATUS_REPORTING_SECONDS: u64 = 30;
const DEFAULT_BUFFER_AGE_MILLIS: u64 = 60_000;
const BUFFER_AGE_RANGE: (u64, u64) = (1_000, 900_000);
/// PutRecords and PutRecordBatch both take at most 500 records.
const MAX_BUFFER_RECORDS: u64 = 500;
/// A PutRecords call carries at most 5 MiB, a PutRecordBatch call at most 4 MiB.
const KINESIS_MAX_BUFFER_BYTES: u64 = 5 * 1024 * 1024;
const FIREHOSE_MAX_BUFFER_BYTES: u64 = 4 * 1024 * 1024;
/// A Kinesis record is at most 1 MiB, a Firehose record at most 1,000 KiB; longer records are
/// truncated and end with `truncatedRecordTerminator`.
const KINESIS_MAX_RECORD_BYTES: usize = 1024 * 1024;
const FIREHOSE_MAX_RECORD_BYTES: usize = 1000 * 1024;

#[derive(Deserialize)]
struct RawConfig {
    #[serde(rename = "checkpointFile")]
    checkpoint_file: Option<PathBuf>,
    #[serde(rename = "kinesis.endpoint")]
    kinesis_endpoint: Option<String>,
    #[serde(rename = "firehose.endpoint")]
    firehose_endpoint: Option<String>,
    #[serde(rename = "awsAccessKeyId")]
    access_key_id: Option<String>,
    #[serde(rename = "awsSecretAccessKey")]
    secret_access_key: Option<String>,
    #[serde(rename = "log.statusReportingPeriodSeconds")]
    status_reporting_seconds: Option<u64>,
    #[serde(default)]
    flows: Vec<RawFlow>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFlow {
    file_pattern: Option<String>,
    kinesis_stream: Option<String>,
    delivery_stream: Option<String>,
    partition_key_option: Option<String>,
    initial_position: Option<String>,
    max_buffer_age_millis: Option<u64>,
    max_buffer_size_records: Option<u64>,
    max_buffer_size_bytes: Option<u64>,
    #[serde(default)]
    skip_header_lines: u64,
    multi_line_start_pattern: Option<String>,
    truncated_record_terminator: Option<String>,
    #[serde(default)]
    data_processing_options: Vec<processing::RawOption>,
}

/// The validated configuration.
pub struct Config {
    pub checkpoint_file: PathBuf,
    pub kinesis_endpoint: Option<String>,
    pub firehose_endpoint: Option<String>,
    /// `awsAccessKeyId` and `awsSecretAccessKey`, which override every other credential source.
    pub credentials: Option<(String, String)>,
    pub status_reporting_period: Duration,
    pub flows: Vec<FlowConfig>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Destination {
    KinesisStream(String),
    DeliveryStream(String),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PartitionKeyOption {
    Random,
    /// A key derived from the record's data, so equal records land on the same shard.
    Deterministic,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InitialPosition {
    StartOfFile,
    EndOfFile,
}

#[derive(Clone, Debug)]
pub struct FlowConfig {
    pub file_pattern: String,
    pub destination: Destination,
    pub partition_key: PartitionKeyOption,
    pub initial_position: InitialPosition,
    pub max_buffer_age: Duration,
    pub max_buffer_records: usize,
    pub max_buffer_bytes: usize,
    pub max_record_bytes: usize,
    pub skip_header_lines: u64,
    pub multi_line_start: Option<Regex>,
    pub truncated_record_terminator: Vec<u8>,
    /// `dataProcessingOptions`, applied to each record in order.
    pub processing: processing::Chain,
}

impl FlowConfig {
    /// Names the flow in logs and in the checkpoint file.
    pub fn id(&self) -> String {
        match &self.destination {
            Destination::KinesisStream(stream) => format!("{}->kinesis:{stream}", self.file_pattern),
            Destination::DeliveryStream(stream) => format!("{}->firehose:{stream}", self.file_pattern),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let error = |message: String| AgentError::Config { path: path.display().to_string(), message };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        Config::parse(&text).map_err(error)
    }

    fn parse(text: &str) -> std::result::Result<Config, String> {
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if raw.flows.is_empty() {
            return Err("no flows: give at least one entry in \"flows\"".into());
        }
        let credentials = match (raw.access_key_id, raw.secret_access_key) {
            (Some(id), Some(secret)) => Some((id, secret)),
            (None, None) => None,
            _ => return Err("awsAccessKeyId and awsSecretAccessKey go together".into()),
        };
        let flows = raw
            .flows
            .into_iter()
            .enumerate()
            .map(|(index, flow)| flow.validate().map_err(|message| format!("flows[{index}]: {message}")))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Config {
            checkpoint_file: raw.checkpoint_file.unwrap_or_else(|| DEFAULT_CHECKPOINT_FILE.into()),
            kinesis_endpoint: raw.kinesis_endpoint.map(with_scheme),
            firehose_endpoint: raw.firehose_endpoint.map(with_scheme),
            credentials,
            status_reporting_period: Duration::from_secs(
                raw.status_reporting_seconds.unwrap_or(DEFAULT_STATUS_REPORTING_SECONDS).max(1),
            ),
            flows,
        })
    }
}

/// The Kinesis Agent accepts a bare host name (`kinesis.us-east-1.amazonaws.com`) and uses HTTPS.
fn with_scheme(endpoint: String) -> String {
    if endpoint.contains("://") {
        endpoint
    } else {
        format!("https://{endpoint}")
    }
}

fn in_range(key: &str, value: Option<u64>, default: u64, (low, high): (u64, u64)) -> std::result::Result<u64, String> {
    let value = value.unwrap_or(default);
    if value < low || value > high {
        return Err(format!("{key} is {value}; it must be between {low} and {high}"));
    }
    Ok(value)
}

impl RawFlow {
    fn validate(self) -> std::result::Result<FlowConfig, String> {
        let file_pattern = self.file_pattern.ok_or("filePattern is required")?;
        glob::Pattern::new(&file_pattern).map_err(|e| format!("filePattern {file_pattern:?}: {e}"))?;
        let destination = match (self.kinesis_stream, self.delivery_stream) {
            (Some(stream), None) => Destination::KinesisStream(stream),
            (None, Some(stream)) => Destination::DeliveryStream(stream),
            (None, None) => return Err("give kinesisStream or deliveryStream".into()),
            (Some(_), Some(_)) => return Err("give kinesisStream or deliveryStream, not both".into()),
        };
        let (max_bytes, max_record_bytes) = match destination {
            Destination::KinesisStream(_) => (KINESIS_MAX_BUFFER_BYTES, KINESIS_MAX_RECORD_BYTES),
            Destination::DeliveryStream(_) => (FIREHOSE_MAX_BUFFER_BYTES, FIREHOSE_MAX_RECORD_BYTES),
        };
        let partition_key = match self.partition_key_option.as_deref() {
            None | Some("RANDOM") => PartitionKeyOption::Random,
            Some("DETERMINISTIC") => PartitionKeyOption::Deterministic,
            Some(other) => return Err(format!("partitionKeyOption {other:?}: expected RANDOM or DETERMINISTIC")),
        };
        let initial_position = match self.initial_position.as_deref() {
            None | Some("END_OF_FILE") => InitialPosition::EndOfFile,
            Some("START_OF_FILE") => InitialPosition::StartOfFile,
            Some(other) => return Err(format!("initialPosition {other:?}: expected START_OF_FILE or END_OF_FILE")),
        };
        let max_buffer_age =
            in_range("maxBufferAgeMillis", self.max_buffer_age_millis, DEFAULT_BUFFER_AGE_MILLIS, BUFFER_AGE_RANGE)?;
        let max_buffer_records = in_range(
            "maxBufferSizeRecords",
            self.max_buffer_size_records,
            MAX_BUFFER_RECORDS,
            (1, MAX_BUFFER_RECORDS),
        )?;
        let max_buffer_bytes = in_range("maxBufferSizeBytes", self.max_buffer_size_bytes, max_bytes, (1, max_bytes))?;
        let multi_line_start = match self.multi_line_start_pattern {
            Some(pattern) => Some(Regex::new(&pattern).map_err(|e| format!("multiLineStartPattern {pattern:?}: {e}"))?),
            None => None,
        };
        let truncated_record_terminator = self.truncated_record_terminator.unwrap_or_else(|| "\n".into()).into_bytes();
        if truncated_record_terminator.len() >= max_record_bytes {
            return Err("truncatedRecordTerminator is longer than a record".into());
        }
        let processing = processing::Chain::new(self.data_processing_options)?;
        Ok(FlowConfig {
            file_pattern,
            destination,
            partition_key,
            initial_position,
            max_buffer_age: Duration::from_millis(max_buffer_age),
            // Both fit in usize: bounded by 500 and 5 MiB above.
            max_buffer_records: max_buffer_records as usize,
            max_buffer_bytes: max_buffer_bytes as usize,
            max_record_bytes,
            skip_header_lines: self.skip_header_lines,
            multi_line_start,
            truncated_record_terminator,
            processing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_kinesis_agent() {
        let config = Config::parse(
            r#"{"cloudwatch.emitMetrics": false, "flows": [{"filePattern": "/var/log/app.log", "kinesisStream": "s", "unknownKey": 1}]}"#,
        )
        .unwrap();
        let flow = &config.flows[0];
        assert_eq!(config.checkpoint_file, PathBuf::from(DEFAULT_CHECKPOINT_FILE));
        assert_eq!(flow.initial_position, InitialPosition::EndOfFile);
        assert_eq!(flow.partition_key, PartitionKeyOption::Random);
        assert_eq!(flow.max_buffer_age, Duration::from_secs(60));
        assert_eq!((flow.max_buffer_records, flow.max_buffer_bytes), (500, 5 * 1024 * 1024));
        assert_eq!(flow.truncated_record_terminator, b"\n");
    }

    #[test]
    fn bad_values_name_their_key() {
        let flow = |fields: &str| Config::parse(&format!(r#"{{"flows": [{{"filePattern": "/x", {fields}}}]}}"#));
        let error = |fields: &str| flow(fields).err().unwrap();
        assert!(error(r#""kinesisStream": "s", "maxBufferAgeMillis": 10"#).contains("maxBufferAgeMillis is 10"));
        assert!(error(r#""deliveryStream": "d", "maxBufferSizeBytes": 5000000"#).contains("maxBufferSizeBytes"));
        assert!(error(r#""kinesisStream": "s", "initialPosition": "MIDDLE""#).contains("initialPosition"));
        assert!(error(r#""kinesisStream": "s", "deliveryStream": "d""#).contains("not both"));
        assert!(error(r#""kinesisStream": "s", "multiLineStartPattern": "(""#).contains("multiLineStartPattern"));
        assert!(flow(r#""kinesisStream": "s", "dataProcessingOptions": [{"optionName": "SINGLELINE"}]"#).is_ok());
        assert!(error(r#""kinesisStream": "s", "dataProcessingOptions": [{"optionName": "ADDEOL"}]"#)
            .contains("dataProcessingOptions[0]: optionName \"ADDEOL\""));
    }
}
