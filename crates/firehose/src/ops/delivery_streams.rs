//! CreateDeliveryStream, DeleteDeliveryStream, DescribeDeliveryStream, ListDeliveryStreams and
//! UpdateDestination.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tideline_proto::{AwsError, ErrorCode, Pattern, Timestamp, Validator};

use super::configuration::{self, DESTINATION_ID};
use super::encryption::{encryption_of, validate_encryption, EncryptionInput};
use super::tags::{merge_tags, validate_tags};
use super::Empty;
use crate::delivery;
use crate::error::FirehoseError;
use crate::model::{DeliveryStreamMeta, DeliveryStreamType, DestinationConfig, KinesisStreamSource, Tag};
use crate::service::{now_ms, FirehoseService};

static NAME: Pattern = Pattern::new("[a-zA-Z0-9_.-]+");
static KINESIS_STREAM_ARN: Pattern = Pattern::new(r"arn:.*:kinesis:[a-zA-Z0-9\-]+:\d{12}:stream/[a-zA-Z0-9_.-]+");
static VERSION_ID: Pattern = Pattern::new("[0-9]+");
static DESTINATION_ID_PATTERN: Pattern = Pattern::new("[a-zA-Z0-9-]+");

pub(crate) fn validate_name(v: &mut Validator, name: Option<&str>) {
    if v.required("deliveryStreamName", name) {
        v.string("deliveryStreamName", name, 1, 64, Some(&NAME));
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct KinesisSourceInput {
    #[serde(rename = "KinesisStreamARN")]
    kinesis_stream_arn: Option<String>,
    #[serde(rename = "RoleARN")]
    role_arn: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CreateInput {
    delivery_stream_name: Option<String>,
    delivery_stream_type: Option<String>,
    kinesis_stream_source_configuration: Option<KinesisSourceInput>,
    delivery_stream_encryption_configuration_input: Option<EncryptionInput>,
    tags: Option<Vec<Tag>>,
    // Accepted by the API, not by Tideline: named in the error instead of being ignored.
    #[serde(rename = "MSKSourceConfiguration")]
    msk_source_configuration: Option<Value>,
    database_source_configuration: Option<Value>,
    /// The `*DestinationConfiguration` members, read by the destination registry.
    #[serde(flatten)]
    destinations: serde_json::Map<String, Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CreateOutput {
    #[serde(rename = "DeliveryStreamARN")]
    delivery_stream_arn: String,
}

/// Checks a destination configuration as the API's constraints and Tideline's capabilities
/// require, including that its worker could be built (catalog tables, queries, processors).
fn check_destination(service: &Arc<FirehoseService>, meta: &DeliveryStreamMeta, path: &str) -> Result<(), AwsError> {
    let mut v = Validator::new();
    let semantic = meta.destination.spec().validate(&mut v, path);
    v.finish()?;
    semantic?;
    delivery::check(service, meta)?;
    Ok(())
}

fn stream_name_of(arn: &str) -> &str {
    arn.rsplit_once(":stream/").map_or(arn, |(_, name)| name)
}

/// The Kinesis stream must exist in this Tideline.
async fn check_source(service: &FirehoseService, arn: &str) -> Result<(), AwsError> {
    match service.streams.stream_info(None, Some(arn)) {
        Ok(_) => Ok(()),
        Err(error) if error.code == ErrorCode::ResourceNotFound => Err(AwsError::invalid_argument(format!(
            "Kinesis stream {arn} does not exist or is not accessible: {}",
            error.message.unwrap_or_default()
        ))),
        Err(error) => Err(error),
    }
}

pub(crate) async fn create(service: &Arc<FirehoseService>, input: CreateInput) -> Result<CreateOutput, AwsError> {
    let mut destinations = DestinationConfig::from_create(&input.destinations)?;
    let mut v = Validator::new();
    validate_name(&mut v, input.delivery_stream_name.as_deref());
    v.one_of(
        "deliveryStreamType",
        input.delivery_stream_type.as_deref(),
        &["DirectPut", "KinesisStreamAsSource", "MSKAsSource", "DatabaseAsSource"],
    );
    if let Some(source) = &input.kinesis_stream_source_configuration {
        let path = "kinesisStreamSourceConfiguration";
        if v.required(&format!("{path}.kinesisStreamARN"), source.kinesis_stream_arn.as_ref()) {
            v.string(
                &format!("{path}.kinesisStreamARN"),
                source.kinesis_stream_arn.as_deref(),
                1,
                512,
                Some(&KINESIS_STREAM_ARN),
            );
        }
        configuration::validate_role_arn(&mut v, path, source.role_arn.as_deref());
    }
    if let Some(tags) = &input.tags {
        validate_tags(&mut v, "tags", tags);
    }
    let encryption = input.delivery_stream_encryption_configuration_input.as_ref();
    let encryption_check =
        encryption.map(|config| validate_encryption(&mut v, "deliveryStreamEncryptionConfigurationInput", config));
    v.finish()?;
    encryption_check.transpose()?;

    let name = input.delivery_stream_name.clone().unwrap_or_default();
    let kind = match input.delivery_stream_type.as_deref().unwrap_or("DirectPut") {
        "DirectPut" => DeliveryStreamType::DirectPut,
        "KinesisStreamAsSource" => DeliveryStreamType::KinesisStreamAsSource,
        other => {
            return Err(AwsError::invalid_argument(format!("DeliveryStreamType {other} is not supported by Tideline.")))
        }
    };
    let unsupported_source = [
        ("MSKSourceConfiguration", input.msk_source_configuration.is_some()),
        ("DatabaseSourceConfiguration", input.database_source_configuration.is_some()),
    ]
    .into_iter()
    .find_map(|(member, given)| given.then_some(member));
    if let Some(member) = DestinationConfig::unsupported_in_create(&input.destinations).or(unsupported_source) {
        return Err(AwsError::invalid_argument(format!("{member} is not supported by Tideline.")));
    }
    if destinations.len() != 1 {
        return Err(AwsError::invalid_argument("Exactly one destination configuration is supported for a Firehose"));
    }
    let Some((path, destination)) = destinations.pop() else { return Err(AwsError::internal("no destination")) };
    let source = match (kind, input.kinesis_stream_source_configuration) {
        (DeliveryStreamType::KinesisStreamAsSource, Some(source)) => {
            let stream_arn = source.kinesis_stream_arn.unwrap_or_default();
            check_source(service, &stream_arn).await?;
            Some(KinesisStreamSource {
                stream_name: stream_name_of(&stream_arn).to_string(),
                stream_arn,
                role_arn: source.role_arn.unwrap_or_default(),
                start_ms: now_ms(),
            })
        }
        (DeliveryStreamType::KinesisStreamAsSource, None) => {
            return Err(AwsError::invalid_argument(
                "KinesisSourceStreamConfig is required for KinesisStreamAsSource stream type",
            ))
        }
        (DeliveryStreamType::DirectPut, Some(_)) => {
            return Err(AwsError::invalid_argument(
                "KinesisSourceStreamConfig is only applicable for KinesisStreamAsSource stream type",
            ))
        }
        (DeliveryStreamType::DirectPut, None) => None,
    };
    if source.is_some() && encryption.is_some() {
        return Err(AwsError::invalid_argument(
            "Server-side encryption is not supported for delivery streams whose source is a Kinesis data stream.",
        ));
    }

    let _change = service.changes.lock().await;
    if service.delivery_streams.read().contains_key(&name) {
        return Err(AwsError::in_use(format!("Firehose {name} under accountId {} already exists", service.account())));
    }
    let mut tags = Vec::new();
    merge_tags(service, &name, &mut tags, input.tags.unwrap_or_default())?;
    let id = service.storage.metadata().next_id("deliverystream").await.map_err(FirehoseError::Storage)?;
    let now = now_ms();
    let meta = DeliveryStreamMeta {
        id,
        arn: service.arn(&name),
        name,
        kind,
        version: 1,
        created_ms: now,
        updated_ms: now,
        source,
        destination,
        tags,
        encryption: encryption.map(encryption_of),
    };
    check_destination(service, &meta, &path)?;
    let arn = meta.arn.clone();
    service.commit(meta).await?;
    Ok(CreateOutput { delivery_stream_arn: arn })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DeleteInput {
    delivery_stream_name: Option<String>,
    allow_force_delete: Option<bool>,
}

pub(crate) async fn delete(service: &Arc<FirehoseService>, input: DeleteInput) -> Result<Empty, AwsError> {
    let mut v = Validator::new();
    validate_name(&mut v, input.delivery_stream_name.as_deref());
    v.finish()?;
    // Nothing here can fail the way a KMS grant can, so forcing changes nothing.
    let _ = input.allow_force_delete;
    let _change = service.changes.lock().await;
    service.remove(input.delivery_stream_name.as_deref().unwrap_or_default()).await?;
    Ok(Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DescribeInput {
    delivery_stream_name: Option<String>,
    limit: Option<i64>,
    exclusive_start_destination_id: Option<String>,
}

pub(crate) async fn describe(service: &Arc<FirehoseService>, input: DescribeInput) -> Result<Value, AwsError> {
    let mut v = Validator::new();
    validate_name(&mut v, input.delivery_stream_name.as_deref());
    v.integer("limit", input.limit, 1, 10000);
    v.string(
        "exclusiveStartDestinationId",
        input.exclusive_start_destination_id.as_deref(),
        1,
        100,
        Some(&DESTINATION_ID_PATTERN),
    );
    v.finish()?;
    let stream = service.get(input.delivery_stream_name.as_deref().unwrap_or_default())?;
    let meta = &stream.meta;
    let destinations = if input.exclusive_start_destination_id.as_deref() == Some(DESTINATION_ID) {
        Vec::new()
    } else {
        vec![configuration::describe(&meta.destination)?]
    };
    let timestamp = |ms: i64| serde_json::to_value(Timestamp(ms)).unwrap_or(Value::Null);
    let mut description = json!({
        "DeliveryStreamName": meta.name,
        "DeliveryStreamARN": meta.arn,
        "DeliveryStreamStatus": "ACTIVE",
        "DeliveryStreamType": meta.kind.as_str(),
        "VersionId": meta.version.to_string(),
        "CreateTimestamp": timestamp(meta.created_ms),
        "Destinations": destinations,
        "HasMoreDestinations": false,
        "DeliveryStreamEncryptionConfiguration": match &meta.encryption {
            Some(encryption) => {
                let mut described = json!({ "KeyType": encryption.key_type, "Status": "ENABLED" });
                if let Some(arn) = &encryption.key_arn {
                    described["KeyARN"] = json!(arn);
                }
                described
            }
            None => json!({ "Status": "DISABLED" }),
        },
    });
    if meta.version > 1 {
        description["LastUpdateTimestamp"] = timestamp(meta.updated_ms);
    }
    if let Some(source) = &meta.source {
        description["Source"] = json!({ "KinesisStreamSourceDescription": {
            "KinesisStreamARN": source.stream_arn,
            "RoleARN": source.role_arn,
            "DeliveryStartTimestamp": timestamp(source.start_ms),
        }});
    }
    // AWS reports delivery trouble through CloudWatch; Tideline has none, so the last failed
    // attempt (until one succeeds) is shown here.
    if let Some((error, at)) = stream.status.last_error.lock().clone() {
        description["FailureDescription"] = json!({
            "Type": "UNKNOWN_ERROR",
            "Details": format!("Delivery failing since {}: {error}", chrono::DateTime::from_timestamp_millis(at).map(|time| time.to_rfc3339()).unwrap_or_default()),
        });
    }
    Ok(json!({ "DeliveryStreamDescription": description }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListInput {
    limit: Option<i64>,
    delivery_stream_type: Option<String>,
    exclusive_start_delivery_stream_name: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListOutput {
    delivery_stream_names: Vec<String>,
    has_more_delivery_streams: bool,
}

pub(crate) async fn list(service: &Arc<FirehoseService>, input: ListInput) -> Result<ListOutput, AwsError> {
    let mut v = Validator::new();
    v.integer("limit", input.limit, 1, 10000);
    v.one_of(
        "deliveryStreamType",
        input.delivery_stream_type.as_deref(),
        &["DirectPut", "KinesisStreamAsSource", "MSKAsSource", "DatabaseAsSource"],
    );
    v.string(
        "exclusiveStartDeliveryStreamName",
        input.exclusive_start_delivery_stream_name.as_deref(),
        1,
        64,
        Some(&NAME),
    );
    v.finish()?;
    let limit = input.limit.map_or(10, |limit| limit as usize);
    let streams = service.delivery_streams.read();
    let mut names: Vec<String> = streams
        .values()
        .filter(|stream| input.delivery_stream_type.as_deref().is_none_or(|kind| stream.meta.kind.as_str() == kind))
        .map(|stream| stream.meta.name.clone())
        .filter(|name| input.exclusive_start_delivery_stream_name.as_ref().is_none_or(|start| name > start))
        .collect();
    let has_more_delivery_streams = names.len() > limit;
    names.truncate(limit);
    Ok(ListOutput { delivery_stream_names: names, has_more_delivery_streams })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateInput {
    delivery_stream_name: Option<String>,
    current_delivery_stream_version_id: Option<String>,
    destination_id: Option<String>,
    /// The `*DestinationUpdate` members, read by the destination registry.
    #[serde(flatten)]
    updates: serde_json::Map<String, Value>,
}

pub(crate) async fn update_destination(service: &Arc<FirehoseService>, input: UpdateInput) -> Result<Empty, AwsError> {
    let mut v = Validator::new();
    validate_name(&mut v, input.delivery_stream_name.as_deref());
    if v.required("currentDeliveryStreamVersionId", input.current_delivery_stream_version_id.as_ref()) {
        v.string(
            "currentDeliveryStreamVersionId",
            input.current_delivery_stream_version_id.as_deref(),
            1,
            50,
            Some(&VERSION_ID),
        );
    }
    if v.required("destinationId", input.destination_id.as_ref()) {
        v.string("destinationId", input.destination_id.as_deref(), 1, 100, Some(&DESTINATION_ID_PATTERN));
    }
    v.finish()?;
    let name = input.delivery_stream_name.clone().unwrap_or_default();
    let _change = service.changes.lock().await;
    let mut meta = (*service.get(&name)?.meta).clone();
    let given = input.current_delivery_stream_version_id.unwrap_or_default();
    if given != meta.version.to_string() {
        return Err(AwsError::new(
            ErrorCode::ConcurrentModification,
            format!(
                "Cannot update firehose: {name} since the current version id: {} and specified version id: {given} do not match",
                meta.version
            ),
        ));
    }
    let destination_id = input.destination_id.unwrap_or_default();
    if destination_id != DESTINATION_ID {
        return Err(AwsError::invalid_argument(format!("Destination Id {destination_id} not found")));
    }
    let (path, destination) = meta.destination.updated(&input.updates)?;
    meta.destination = destination;
    meta.version += 1;
    meta.updated_ms = now_ms();
    check_destination(service, &meta, &path)?;
    service.commit(meta).await?;
    Ok(Empty {})
}
