//! Stream lifecycle: CreateStream, DescribeStream, ListStreams, DeleteStream, UpdateStream,
//! UpdateDataRetention and GetDataEndpoint.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};
use tideline_proto::{AwsError, RestRequest, Validator};

use super::{ok, Empty, Response};
use crate::error::VideoError;
use crate::model::{new_version, Status, StreamInfo, StreamMeta};
use crate::service::{StreamRef, VideoService};
use crate::validate::{self, MAX_RETENTION_HOURS, MAX_TAGS, MEDIA_TYPE, NAME, VERSION};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateStreamInput {
    stream_name: Option<String>,
    device_name: Option<String>,
    media_type: Option<String>,
    kms_key_id: Option<String>,
    data_retention_in_hours: Option<i64>,
    tags: Option<BTreeMap<String, String>>,
}

impl CreateStreamInput {
    fn validate(&self) -> Result<(), AwsError> {
        let mut check = Validator::new();
        check.required("streamName", self.stream_name.as_ref());
        check.string("streamName", self.stream_name.as_deref(), 1, 256, Some(&NAME));
        check.string("deviceName", self.device_name.as_deref(), 1, 128, Some(&NAME));
        check.string("mediaType", self.media_type.as_deref(), 1, 128, Some(&MEDIA_TYPE));
        check.string("kmsKeyId", self.kms_key_id.as_deref(), 1, 2048, None);
        check.integer("dataRetentionInHours", self.data_retention_in_hours, 0, MAX_RETENTION_HOURS);
        if let Some(tags) = &self.tags {
            validate::tag_map(&mut check, tags);
        }
        validate::finish(check)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CreateStreamOutput {
    #[serde(rename = "StreamARN")]
    stream_arn: String,
}

pub(super) async fn create(service: &VideoService, request: RestRequest<'_>) -> Response {
    let input: CreateStreamInput = request.json()?;
    input.validate()?;
    let name = input.stream_name.unwrap_or_default();
    let tags = input.tags.unwrap_or_default();
    if tags.len() > MAX_TAGS {
        return Err(VideoError::TooManyTags { limit: MAX_TAGS }.into());
    }
    let _change = service.changes.lock().await;
    if service.exists(&name) {
        return Err(VideoError::StreamExists(name).into());
    }
    if service.deleting(StreamRef { name: Some(&name), arn: None }).is_some() {
        return Err(VideoError::NotActive { name, status: Status::Deleting.as_str() }.into());
    }
    if service.count() >= service.config.max_streams {
        return Err(VideoError::AccountStreamLimit { limit: service.config.max_streams }.into());
    }
    let created_ms = tideline_storage::now_ms();
    let meta = StreamMeta {
        arn: service.arn(&name, created_ms),
        name,
        device_name: input.device_name,
        media_type: input.media_type,
        kms_key_id: input.kms_key_id.unwrap_or_else(|| service.default_kms_key()),
        version: new_version(),
        created_ms,
        retention_hours: input.data_retention_in_hours.map_or(0, |hours| hours.unsigned_abs()),
        tags,
    };
    let stream_arn = meta.arn.clone();
    service.commit(meta).await?;
    ok(&CreateStreamOutput { stream_arn })
}

/// The members of every operation that names one stream.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct StreamInput {
    pub stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
}

impl StreamInput {
    pub fn check(&self, check: &mut Validator) {
        validate::stream_ref(check, self.stream_name.as_deref(), self.stream_arn.as_deref());
    }

    pub fn as_ref(&self) -> StreamRef<'_> {
        StreamRef { name: self.stream_name.as_deref(), arn: self.stream_arn.as_deref() }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeStreamOutput {
    stream_info: StreamInfo,
}

pub(super) async fn describe(service: &VideoService, request: RestRequest<'_>) -> Response {
    let input: StreamInput = request.json()?;
    let mut check = Validator::new();
    input.check(&mut check);
    validate::finish(check)?;
    let (meta, status) = match service.locate(input.as_ref(), VideoError::InvalidArgument) {
        Ok(meta) => {
            let status = service.status(&meta);
            (meta, status)
        }
        Err(VideoError::StreamNotFound) => {
            (service.deleting(input.as_ref()).ok_or(VideoError::StreamNotFound)?, Status::Deleting)
        }
        Err(error) => return Err(error.into()),
    };
    ok(&DescribeStreamOutput { stream_info: StreamInfo::new(&meta, status) })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NameCondition {
    comparison_operator: Option<String>,
    comparison_value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListStreamsInput {
    max_results: Option<i64>,
    next_token: Option<String>,
    stream_name_condition: Option<NameCondition>,
}

const MAX_LIST_RESULTS: i64 = 10_000;

impl ListStreamsInput {
    fn validate(&self) -> Result<(), AwsError> {
        let mut check = Validator::new();
        check.integer("maxResults", self.max_results, 1, MAX_LIST_RESULTS);
        check.string("nextToken", self.next_token.as_deref(), 0, 512, None);
        if let Some(condition) = &self.stream_name_condition {
            let operator = condition.comparison_operator.as_deref();
            check.one_of("streamNameCondition.comparisonOperator", operator, &["BEGINS_WITH"]);
            let value = condition.comparison_value.as_deref();
            check.string("streamNameCondition.comparisonValue", value, 1, 256, Some(&NAME));
        }
        validate::finish(check)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListStreamsOutput {
    stream_info_list: Vec<StreamInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

/// A page token names the last stream of the previous page; opaque to clients.
fn decode_token(token: &str) -> Result<String, VideoError> {
    let invalid = || VideoError::InvalidArgument(format!("The NextToken {token} is not valid."));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

fn encode_token(last_name: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last_name)
}

pub(super) async fn list(service: &VideoService, request: RestRequest<'_>) -> Response {
    let input: ListStreamsInput = request.json()?;
    input.validate()?;
    let after = input.next_token.as_deref().filter(|token| !token.is_empty()).map(decode_token).transpose()?;
    let prefix = input.stream_name_condition.and_then(|condition| condition.comparison_value).unwrap_or_default();
    let limit = usize::try_from(input.max_results.unwrap_or(MAX_LIST_RESULTS)).unwrap_or(1);
    // One more than the page, to learn whether another page follows.
    let mut page = service.list(after.as_deref(), &prefix, limit + 1);
    let next_token = (page.len() > limit).then(|| {
        page.truncate(limit);
        page.last().map(|meta| encode_token(&meta.name))
    });
    let stream_info_list = page.iter().map(|meta| StreamInfo::new(meta, service.status(meta))).collect();
    ok(&ListStreamsOutput { stream_info_list, next_token: next_token.flatten() })
}

fn check_version(meta: &StreamMeta, given: Option<&str>) -> Result<(), VideoError> {
    match given {
        Some(given) if given != meta.version => {
            Err(VideoError::VersionMismatch { given: given.to_owned(), current: meta.version.clone() })
        }
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteStreamInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    current_version: Option<String>,
}

pub(super) async fn delete(service: &VideoService, request: RestRequest<'_>) -> Response {
    let input: DeleteStreamInput = request.json()?;
    let mut check = Validator::new();
    check.required("streamARN", input.stream_arn.as_ref());
    check.string("streamARN", input.stream_arn.as_deref(), 1, 1024, None);
    check.string("currentVersion", input.current_version.as_deref(), 1, 64, Some(&VERSION));
    validate::finish(check)?;
    let _change = service.changes.lock().await;
    let meta = service.by_arn(input.stream_arn.as_deref().unwrap_or_default(), VideoError::InvalidArgument)?;
    check_version(&meta, input.current_version.as_deref())?;
    service.remove(&meta.name).await?;
    ok(&Empty {})
}

/// The members of the operations that change a stream's description: the stream and the
/// `CurrentVersion` the caller last saw.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VersionedInput {
    #[serde(flatten)]
    stream: StreamInput,
    current_version: Option<String>,
}

impl VersionedInput {
    fn check(&self, check: &mut Validator) {
        self.stream.check(check);
        check.required("currentVersion", self.current_version.as_ref());
        check.string("currentVersion", self.current_version.as_deref(), 1, 64, Some(&VERSION));
    }

    /// Applies `change` to the stream if its version is still the caller's, and commits the
    /// result under a new version.
    async fn apply(
        &self,
        service: &VideoService,
        change: impl FnOnce(&mut StreamMeta) -> Result<(), VideoError>,
    ) -> Result<(), VideoError> {
        let _change = service.changes.lock().await;
        let meta = service.locate_active(self.stream.as_ref(), VideoError::InvalidArgument)?;
        check_version(&meta, self.current_version.as_deref())?;
        let mut updated = StreamMeta::clone(&meta);
        change(&mut updated)?;
        updated.version = new_version();
        service.commit(updated).await
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateStreamInput {
    #[serde(flatten)]
    target: VersionedInput,
    device_name: Option<String>,
    media_type: Option<String>,
}

pub(super) async fn update(service: &VideoService, request: RestRequest<'_>) -> Response {
    let input: UpdateStreamInput = request.json()?;
    let mut check = Validator::new();
    input.target.check(&mut check);
    check.string("deviceName", input.device_name.as_deref(), 1, 128, Some(&NAME));
    check.string("mediaType", input.media_type.as_deref(), 1, 128, Some(&MEDIA_TYPE));
    validate::finish(check)?;
    let change = |meta: &mut StreamMeta| {
        // Members left out keep their values.
        meta.device_name = input.device_name.clone().or(meta.device_name.take());
        meta.media_type = input.media_type.clone().or(meta.media_type.take());
        Ok(())
    };
    input.target.apply(service, change).await?;
    ok(&Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateDataRetentionInput {
    #[serde(flatten)]
    target: VersionedInput,
    operation: Option<String>,
    data_retention_change_in_hours: Option<i64>,
}

pub(super) async fn update_retention(service: &VideoService, request: RestRequest<'_>) -> Response {
    let input: UpdateDataRetentionInput = request.json()?;
    let mut check = Validator::new();
    input.target.check(&mut check);
    check.required("operation", input.operation.as_ref());
    let operations = ["INCREASE_DATA_RETENTION", "DECREASE_DATA_RETENTION"];
    check.one_of("operation", input.operation.as_deref(), &operations);
    check.required("dataRetentionChangeInHours", input.data_retention_change_in_hours.as_ref());
    check.integer("dataRetentionChangeInHours", input.data_retention_change_in_hours, 1, i64::from(i32::MAX));
    validate::finish(check)?;
    let hours = input.data_retention_change_in_hours.unwrap_or_default();
    let increase = input.operation.as_deref() == Some("INCREASE_DATA_RETENTION");
    let change = |meta: &mut StreamMeta| {
        let current = i64::try_from(meta.retention_hours).unwrap_or(i64::MAX);
        let retention = if increase { current.saturating_add(hours) } else { current - hours };
        if !(0..=MAX_RETENTION_HOURS).contains(&retention) {
            return Err(VideoError::InvalidArgument(format!(
                "The data retention period of {retention} hours is not between 0 and {MAX_RETENTION_HOURS} hours."
            )));
        }
        meta.retention_hours = retention.unsigned_abs();
        Ok(())
    };
    input.target.apply(service, change).await?;
    ok(&Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetDataEndpointInput {
    #[serde(flatten)]
    stream: StreamInput,
    #[serde(rename = "APIName")]
    api_name: Option<String>,
}

const API_NAMES: [&str; 8] = [
    "PUT_MEDIA",
    "GET_MEDIA",
    "LIST_FRAGMENTS",
    "GET_MEDIA_FOR_FRAGMENT_LIST",
    "GET_HLS_STREAMING_SESSION_URL",
    "GET_DASH_STREAMING_SESSION_URL",
    "GET_CLIP",
    "GET_IMAGES",
];

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GetDataEndpointOutput {
    data_endpoint: String,
}

pub(super) async fn data_endpoint(service: &VideoService, request: RestRequest<'_>) -> Response {
    let input: GetDataEndpointInput = request.json()?;
    let mut check = Validator::new();
    input.stream.check(&mut check);
    check.required("aPIName", input.api_name.as_ref());
    check.one_of("aPIName", input.api_name.as_deref(), &API_NAMES);
    validate::finish(check)?;
    service.locate(input.stream.as_ref(), VideoError::InvalidArgument)?;
    ok(&GetDataEndpointOutput { data_endpoint: service.endpoint(request.head)? })
}
