//! HttpEndpointDestinationConfiguration: its members, checks, Describe defaults (the access key
//! left out) and the destination it builds.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tideline_proto::{AwsError, Validator};

use super::HttpEndpointDestination;
use crate::destinations::config::{rename, to_value, validate_buffering, validate_retry, validate_s3_part, HTTP_URL};
use crate::destinations::{Destination, DestinationSpec, DestinationType};
use crate::error::FirehoseError;
use crate::model::{BufferingHints, DeliveryStreamMeta, ProcessingConfiguration, RetryOptions, S3Config, S3Location};
use crate::service::FirehoseService;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HttpEndpointConfig {
    pub endpoint_configuration: Option<HttpEndpoint>,
    pub buffering_hints: Option<BufferingHints>,
    pub cloud_watch_logging_options: Option<Value>,
    pub request_configuration: Option<HttpRequestConfiguration>,
    pub processing_configuration: Option<ProcessingConfiguration>,
    #[serde(rename = "RoleARN")]
    pub role_arn: Option<String>,
    pub retry_options: Option<RetryOptions>,
    pub s3_backup_mode: Option<String>,
    pub s3_configuration: S3Config,
    pub secrets_manager_configuration: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HttpEndpoint {
    pub url: Option<String>,
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HttpRequestConfiguration {
    pub content_encoding: Option<String>,
    #[serde(default)]
    pub common_attributes: Vec<CommonAttribute>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CommonAttribute {
    pub attribute_name: String,
    pub attribute_value: String,
}

impl DestinationType for HttpEndpointConfig {
    const STORED_AS: &'static str = "HttpEndpoint";
    const CONFIGURATIONS: &'static [&'static str] = &["HttpEndpointDestinationConfiguration"];
    const UPDATES: &'static [&'static str] = &["HttpEndpointDestinationUpdate"];
}

impl DestinationSpec for HttpEndpointConfig {
    fn metric_name(&self) -> &'static str {
        "HttpEndpoint"
    }

    fn buffering_hints(&self) -> Option<&BufferingHints> {
        self.buffering_hints.as_ref()
    }

    fn processing_configuration(&self) -> Option<&ProcessingConfiguration> {
        self.processing_configuration.as_ref()
    }

    fn error_bucket(&self) -> S3Location {
        self.s3_configuration.location()
    }

    /// `AllData` copies every record to the S3 configuration's bucket.
    fn backup(&self) -> Option<S3Location> {
        (self.s3_backup_mode.as_deref() == Some("AllData")).then(|| self.s3_configuration.location())
    }

    fn validate(&self, v: &mut Validator, path: &str) -> Result<(), AwsError> {
        let endpoint_path = format!("{path}.endpointConfiguration");
        if v.required(&endpoint_path, self.endpoint_configuration.as_ref()) {
            let endpoint = self.endpoint_configuration.clone().unwrap_or_default();
            if v.required(&format!("{endpoint_path}.url"), endpoint.url.as_ref()) {
                v.string(&format!("{endpoint_path}.url"), endpoint.url.as_deref(), 1, 1000, Some(&HTTP_URL));
            }
            v.string(&format!("{endpoint_path}.name"), endpoint.name.as_deref(), 1, 256, None);
            v.string(&format!("{endpoint_path}.accessKey"), endpoint.access_key.as_deref(), 0, 4096, None);
        }
        validate_buffering(v, &format!("{path}.bufferingHints"), self.buffering_hints.as_ref(), 64);
        if let Some(request) = &self.request_configuration {
            v.one_of(
                &format!("{path}.requestConfiguration.contentEncoding"),
                request.content_encoding.as_deref(),
                &["NONE", "GZIP"],
            );
        }
        validate_retry(v, &format!("{path}.retryOptions"), self.retry_options.as_ref());
        v.one_of(&format!("{path}.s3BackupMode"), self.s3_backup_mode.as_deref(), &["FailedDataOnly", "AllData"]);
        validate_s3_part(v, path, self.processing_configuration.as_ref(), &self.s3_configuration, None)
    }

    fn describe(&self, entry: &mut Map<String, Value>) -> Result<(), AwsError> {
        let mut http = self.clone();
        if let Some(endpoint) = &mut http.endpoint_configuration {
            endpoint.access_key = None;
        }
        http.buffering_hints = Some(self.buffering_hints.clone().unwrap_or_default().filled());
        http.retry_options.get_or_insert(RetryOptions { duration_in_seconds: Some(RetryOptions::DEFAULT_SECS) });
        http.s3_backup_mode.get_or_insert_with(|| "FailedDataOnly".into());
        http.s3_configuration = self.s3_configuration.described();
        let mut http = to_value(&http)?;
        rename(&mut http, "S3Configuration", "S3DestinationDescription");
        entry.insert("HttpEndpointDestinationDescription".into(), http);
        Ok(())
    }

    fn build(
        &self,
        service: &FirehoseService,
        meta: &DeliveryStreamMeta,
    ) -> Result<Arc<dyn Destination>, FirehoseError> {
        let client = service.http()?;
        Ok(Arc::new(HttpEndpointDestination::new(self, &meta.arn, client, service.config.http_timeout)?))
    }
}
