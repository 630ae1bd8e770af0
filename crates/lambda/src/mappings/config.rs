//! Event-source mapping configuration: the Create/Update request shapes, their validation and
//! defaults for Kinesis sources, and `EventSourceMappingConfiguration` as AWS returns it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tideline_proto::Validator;

use super::filter::Filters;
use crate::error::{LambdaError, Result};
use crate::functions::finish;

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct FilterCriteria {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Vec<FilterEntry>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct FilterEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct DestinationConfig {
    #[serde(default)]
    pub on_failure: OnFailure,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct OnFailure {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

/// The settings shared by Create and Update (all optional on the wire).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Settings {
    pub function_name: Option<String>,
    pub enabled: Option<bool>,
    pub batch_size: Option<i64>,
    pub filter_criteria: Option<FilterCriteria>,
    pub maximum_batching_window_in_seconds: Option<i64>,
    pub parallelization_factor: Option<i64>,
    pub destination_config: Option<DestinationConfig>,
    pub maximum_record_age_in_seconds: Option<i64>,
    pub bisect_batch_on_function_error: Option<bool>,
    pub maximum_retry_attempts: Option<i64>,
    pub tumbling_window_in_seconds: Option<i64>,
    pub function_response_types: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateRequest {
    pub event_source_arn: Option<String>,
    pub starting_position: Option<String>,
    /// Epoch seconds, as REST-JSON sends timestamps.
    pub starting_position_timestamp: Option<f64>,
    #[serde(flatten)]
    pub settings: Settings,
}

/// `EventSourceMappingConfiguration`; also what is kept on disk (with the state fields the
/// service fills in).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MappingConfiguration {
    #[serde(rename = "UUID")]
    pub uuid: String,
    pub starting_position: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starting_position_timestamp: Option<f64>,
    pub batch_size: i64,
    pub maximum_batching_window_in_seconds: i64,
    pub parallelization_factor: i64,
    pub event_source_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_criteria: Option<FilterCriteria>,
    pub function_arn: String,
    pub last_modified: f64,
    pub last_processing_result: String,
    pub state: String,
    pub state_transition_reason: String,
    pub destination_config: DestinationConfig,
    pub maximum_record_age_in_seconds: i64,
    pub bisect_batch_on_function_error: bool,
    pub maximum_retry_attempts: i64,
    pub tumbling_window_in_seconds: i64,
    pub function_response_types: Vec<String>,
    pub event_source_mapping_arn: String,
}

impl MappingConfiguration {
    pub fn enabled(&self) -> bool {
        self.state == "Enabled"
    }

    pub fn reports_item_failures(&self) -> bool {
        self.function_response_types.iter().any(|kind| kind == "ReportBatchItemFailures")
    }

    /// The mapping's filters (validated when set, so a stored pattern always parses).
    pub fn filters(&self) -> Filters {
        Filters::parse(&patterns(self.filter_criteria.as_ref())).unwrap_or_else(|_| Filters::none())
    }
}

pub fn patterns(criteria: Option<&FilterCriteria>) -> Vec<String> {
    criteria
        .and_then(|criteria| criteria.filters.as_ref())
        .map(|filters| filters.iter().filter_map(|filter| filter.pattern.clone()).collect())
        .unwrap_or_default()
}

/// Range checks of the API model (ValidationException), then Lambda's own checks
/// (InvalidParameterValueException).
pub fn validate(settings: &Settings, starting_position: Option<&str>) -> Result<()> {
    let mut v = Validator::new();
    v.integer("batchSize", settings.batch_size, 1, 10_000);
    v.integer("maximumBatchingWindowInSeconds", settings.maximum_batching_window_in_seconds, 0, 300);
    v.integer("parallelizationFactor", settings.parallelization_factor, 1, 10);
    v.integer("maximumRecordAgeInSeconds", settings.maximum_record_age_in_seconds, -1, 604_800);
    v.integer("maximumRetryAttempts", settings.maximum_retry_attempts, -1, 10_000);
    v.integer("tumblingWindowInSeconds", settings.tumbling_window_in_seconds, 0, 900);
    v.one_of("startingPosition", starting_position, &["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"]);
    let types = settings.function_response_types.as_deref().unwrap_or_default();
    if types.len() > 1 {
        v.length("functionResponseTypes", None, types.len(), 0, 1);
    }
    for kind in types {
        v.one_of("functionResponseTypes", Some(kind), &["ReportBatchItemFailures"]);
    }
    finish(v)?;
    if let Some(age) = settings.maximum_record_age_in_seconds {
        if (0..60).contains(&age) {
            return Err(LambdaError::invalid(
                "MaximumRecordAgeInSeconds must be -1 (infinite) or between 60 and 604800 seconds.",
            ));
        }
    }
    Filters::parse(&patterns(settings.filter_criteria.as_ref()))?;
    if let Some(destination) =
        settings.destination_config.as_ref().and_then(|config| config.on_failure.destination.as_deref())
    {
        if super::destination::Destination::parse(destination).is_none() {
            return Err(LambdaError::invalid(format!(
                "Tideline delivers on-failure records to a Kinesis stream (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME), \
                 a Firehose delivery stream (arn:aws:firehose:REGION:ACCOUNT:deliverystream/NAME) or a bucket \
                 (arn:aws:s3:::BUCKET): {destination}"
            )));
        }
    }
    Ok(())
}

/// Applies the settings present in an update (or a create's, over the defaults).
pub fn apply(configuration: &mut MappingConfiguration, settings: Settings) {
    let Settings {
        function_name: _,
        enabled,
        batch_size,
        filter_criteria,
        maximum_batching_window_in_seconds,
        parallelization_factor,
        destination_config,
        maximum_record_age_in_seconds,
        bisect_batch_on_function_error,
        maximum_retry_attempts,
        tumbling_window_in_seconds,
        function_response_types,
    } = settings;
    if let Some(enabled) = enabled {
        configuration.state = if enabled { "Enabled" } else { "Disabled" }.into();
    }
    let numbers = [
        (&mut configuration.batch_size, batch_size),
        (&mut configuration.maximum_batching_window_in_seconds, maximum_batching_window_in_seconds),
        (&mut configuration.parallelization_factor, parallelization_factor),
        (&mut configuration.maximum_record_age_in_seconds, maximum_record_age_in_seconds),
        (&mut configuration.maximum_retry_attempts, maximum_retry_attempts),
        (&mut configuration.tumbling_window_in_seconds, tumbling_window_in_seconds),
    ];
    for (field, value) in numbers {
        if let Some(value) = value {
            *field = value;
        }
    }
    if let Some(criteria) = filter_criteria {
        configuration.filter_criteria =
            criteria.filters.as_ref().is_some_and(|filters| !filters.is_empty()).then_some(criteria);
    }
    if let Some(destination) = destination_config {
        configuration.destination_config = destination;
    }
    if let Some(bisect) = bisect_batch_on_function_error {
        configuration.bisect_batch_on_function_error = bisect;
    }
    if let Some(types) = function_response_types {
        configuration.function_response_types = types;
    }
}
