//! A video stream as Tideline stores it, and as the API describes it (`StreamInfo`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What is persisted per stream (JSON under `videostream/<name>` in the video metadata store).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StreamMeta {
    pub name: String,
    pub arn: String,
    pub device_name: Option<String>,
    pub media_type: Option<String>,
    pub kms_key_id: String,
    /// Changes with every update of the stream's description; callers pass it back as
    /// `CurrentVersion` so that two writers don't overwrite each other.
    pub version: String,
    pub created_ms: i64,
    pub retention_hours: u64,
    pub tags: BTreeMap<String, String>,
}

/// A stream's `Status`: CREATING, then ACTIVE until DeleteStream makes it DELETING.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Creating,
    Active,
    Deleting,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "CREATING",
            Self::Active => "ACTIVE",
            Self::Deleting => "DELETING",
        }
    }
}

impl StreamMeta {
    /// The status at `now_ms` of a stream that is not being deleted and stays CREATING for
    /// `creating_ms` after it was created.
    pub fn status(&self, now_ms: i64, creating_ms: i64) -> Status {
        match now_ms < self.created_ms.saturating_add(creating_ms) {
            true => Status::Creating,
            false => Status::Active,
        }
    }
}

/// A fresh stream version: AWS's are opaque alphanumeric strings.
pub(crate) fn new_version() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The API's `StreamInfo`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StreamInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    device_name: Option<String>,
    stream_name: String,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    kms_key_id: String,
    version: String,
    status: &'static str,
    /// Epoch seconds, as REST-JSON timestamps travel.
    creation_time: f64,
    data_retention_in_hours: u64,
}

impl StreamInfo {
    pub fn new(meta: &StreamMeta, status: Status) -> Self {
        Self {
            device_name: meta.device_name.clone(),
            stream_name: meta.name.clone(),
            stream_arn: meta.arn.clone(),
            media_type: meta.media_type.clone(),
            kms_key_id: meta.kms_key_id.clone(),
            version: meta.version.clone(),
            status: status.as_str(),
            creation_time: meta.created_ms as f64 / 1000.0,
            data_retention_in_hours: meta.retention_hours,
        }
    }
}
