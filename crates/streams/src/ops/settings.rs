//! Stream settings: retention, server-side encryption, enhanced monitoring, resource policies.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tideline_proto::{AwsError, Validator};

use super::Empty;
use crate::model::StreamStatus;
use crate::service::{Change, StreamEntry, StreamsService};
use crate::{policy, rules};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RetentionInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    retention_period_hours: Option<i64>,
}

async fn change_retention(service: &StreamsService, input: RetentionInput, increase: bool) -> Result<Empty, AwsError> {
    let mut v = Validator::new();
    v.required("retentionPeriodHours", input.retention_period_hours.as_ref());
    rules::stream_target(&mut v, input.stream_name.as_deref(), input.stream_arn.as_deref());
    v.finish()?;
    let mut change = service.change_active(input.stream_name.as_deref(), input.stream_arn.as_deref()).await?;
    let name = change.name.clone();
    let requested = input.retention_period_hours.unwrap_or_default();
    if requested < rules::MIN_RETENTION_HOURS {
        return Err(AwsError::invalid_argument(format!(
            "Minimum allowed retention period is 24 hours. Requested retention period ({requested} hours) is too short."
        )));
    }
    if requested > rules::MAX_RETENTION_HOURS {
        return Err(AwsError::invalid_argument(format!(
            "Maximum allowed retention period is 8760 hours. Requested retention period ({requested} hours) is too long."
        )));
    }
    let current = i64::from(change.meta.retention_hours);
    let (wrong_way, other_api, comparison) = if increase {
        (requested < current, "DecreaseRetentionPeriod", "shorter")
    } else {
        (requested > current, "IncreaseRetentionPeriod", "longer")
    };
    if wrong_way {
        return Err(AwsError::invalid_argument(format!(
            "Requested retention period ({requested} hours) for stream {name} can not be {comparison} than existing \
             retention period ({current} hours). Use {other_api} API."
        )));
    }
    change.meta.retention_hours = requested as u32;
    service.commit(change, StreamStatus::Updating).await?;
    Ok(Empty {})
}

pub async fn increase_retention(service: &StreamsService, input: RetentionInput) -> Result<Empty, AwsError> {
    change_retention(service, input, true).await
}

pub async fn decrease_retention(service: &StreamsService, input: RetentionInput) -> Result<Empty, AwsError> {
    change_retention(service, input, false).await
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EncryptionInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    encryption_type: Option<String>,
    key_id: Option<String>,
}

/// Encryption is recorded and reported (records written while it is on carry EncryptionType KMS);
/// there is no KMS here, so the key id is kept as given.
async fn set_encryption(service: &StreamsService, input: EncryptionInput, start: bool) -> Result<Empty, AwsError> {
    let mut v = Validator::new();
    v.required("encryptionType", input.encryption_type.as_ref());
    v.one_of("encryptionType", input.encryption_type.as_deref(), &["NONE", "KMS"]);
    v.required("keyId", input.key_id.as_ref());
    v.string("keyId", input.key_id.as_deref(), 1, 2048, None);
    rules::stream_target(&mut v, input.stream_name.as_deref(), input.stream_arn.as_deref());
    v.finish()?;
    if input.encryption_type.as_deref() != Some("KMS") {
        return Err(AwsError::invalid_argument("Encryption type must be KMS."));
    }
    let mut change = service.change_active(input.stream_name.as_deref(), input.stream_arn.as_deref()).await?;
    change.meta.encryption_key = if start { input.key_id } else { None };
    service.commit(change, StreamStatus::Updating).await?;
    Ok(Empty {})
}

pub async fn start_encryption(service: &StreamsService, input: EncryptionInput) -> Result<Empty, AwsError> {
    set_encryption(service, input, true).await
}

pub async fn stop_encryption(service: &StreamsService, input: EncryptionInput) -> Result<Empty, AwsError> {
    set_encryption(service, input, false).await
}

const SHARD_LEVEL_METRICS: [&str; 7] = [
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MonitoringInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_level_metrics: Option<Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MonitoringOutput {
    stream_name: String,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    current_shard_level_metrics: Vec<String>,
    desired_shard_level_metrics: Vec<String>,
}

async fn set_monitoring(
    service: &StreamsService,
    input: MonitoringInput,
    enable: bool,
) -> Result<MonitoringOutput, AwsError> {
    let mut v = Validator::new();
    v.required("shardLevelMetrics", input.shard_level_metrics.as_ref());
    let metrics = input.shard_level_metrics.unwrap_or_default();
    v.length("shardLevelMetrics", Some(&format!("[{}]", metrics.join(", "))), metrics.len(), 1, 7);
    let allowed: Vec<&str> = SHARD_LEVEL_METRICS.iter().copied().chain(["ALL"]).collect();
    for (i, metric) in metrics.iter().enumerate() {
        v.one_of(&format!("shardLevelMetrics.{}.member", i + 1), Some(metric), &allowed);
    }
    rules::stream_target(&mut v, input.stream_name.as_deref(), input.stream_arn.as_deref());
    v.finish()?;
    let mut change = service.change_active(input.stream_name.as_deref(), input.stream_arn.as_deref()).await?;
    let named: Vec<&str> = if metrics.iter().any(|m| m == "ALL") {
        SHARD_LEVEL_METRICS.to_vec()
    } else {
        metrics.iter().map(String::as_str).collect()
    };
    let current = change.meta.shard_level_metrics.clone();
    // Kept in the canonical order whatever order they were asked for in.
    let desired: Vec<String> = SHARD_LEVEL_METRICS
        .iter()
        .filter(|m| {
            if enable {
                current.iter().any(|c| c == *m) || named.contains(m)
            } else {
                current.iter().any(|c| c == *m) && !named.contains(m)
            }
        })
        .map(|m| m.to_string())
        .collect();
    change.meta.shard_level_metrics = desired.clone();
    let output = MonitoringOutput {
        stream_name: change.meta.name.clone(),
        stream_arn: service.arn(&change.meta),
        current_shard_level_metrics: current,
        desired_shard_level_metrics: desired,
    };
    service.commit(change, StreamStatus::Active).await?;
    Ok(output)
}

pub async fn enable_monitoring(service: &StreamsService, input: MonitoringInput) -> Result<MonitoringOutput, AwsError> {
    set_monitoring(service, input, true).await
}

pub async fn disable_monitoring(
    service: &StreamsService,
    input: MonitoringInput,
) -> Result<MonitoringOutput, AwsError> {
    set_monitoring(service, input, false).await
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourcePolicyInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    policy: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetResourcePolicyOutput {
    policy: String,
}

/// The stream whose ARN is exactly `arn` (consumer policies arrive with consumers).
fn policy_target(service: &StreamsService, arn: Option<&str>) -> Result<(String, Arc<StreamEntry>), AwsError> {
    let arn = arn.unwrap_or_default();
    let (name, entry) = service.resource(arn)?;
    if service.arn(&entry.state.read().meta) != arn {
        return Err(AwsError::not_found(format!("Resource {arn} not found.")));
    }
    Ok((name, entry))
}

pub async fn put_resource_policy(service: &StreamsService, input: ResourcePolicyInput) -> Result<Empty, AwsError> {
    let mut v = Validator::new();
    v.required("policy", input.policy.as_ref());
    rules::resource_arn(&mut v, input.resource_arn.as_deref());
    v.finish()?;
    let policy = input.policy.unwrap_or_default();
    let (name, entry) = policy_target(service, input.resource_arn.as_deref())?;
    // Refused here, not ignored later: an element Tideline cannot evaluate could hide a Deny.
    policy::parse(&policy)?;
    let mut change = Change::begin(name, entry).await;
    change.meta.policy = Some(policy);
    service.commit(change, StreamStatus::Active).await?;
    Ok(Empty {})
}

pub async fn get_resource_policy(
    service: &StreamsService,
    input: ResourcePolicyInput,
) -> Result<GetResourcePolicyOutput, AwsError> {
    let mut v = Validator::new();
    rules::resource_arn(&mut v, input.resource_arn.as_deref());
    v.finish()?;
    let (_, entry) = policy_target(service, input.resource_arn.as_deref())?;
    let policy = entry.state.read().meta.policy.clone().unwrap_or_else(|| "{}".to_string());
    Ok(GetResourcePolicyOutput { policy })
}

pub async fn delete_resource_policy(service: &StreamsService, input: ResourcePolicyInput) -> Result<Empty, AwsError> {
    let mut v = Validator::new();
    rules::resource_arn(&mut v, input.resource_arn.as_deref());
    v.finish()?;
    let arn = input.resource_arn.unwrap_or_default();
    let (name, entry) = policy_target(service, Some(&arn))?;
    let mut change = Change::begin(name, entry).await;
    if change.meta.policy.take().is_none() {
        return Err(AwsError::not_found(format!("No resource policy found for resource ARN {arn}.")));
    }
    service.commit(change, StreamStatus::Active).await?;
    Ok(Empty {})
}
