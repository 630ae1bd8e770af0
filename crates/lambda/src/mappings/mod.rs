//! Event-source mappings from Kinesis streams: the Create/Get/Update/Delete/List operations and
//! the registry of running mappings, each a [`worker`] task.

mod checkpoint;
pub mod config;
mod destination;
pub mod event;
pub mod filter;
pub mod metrics;
mod worker;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::task::JoinHandle;

use self::checkpoint::Checkpoints;
use self::config::{CreateRequest, MappingConfiguration, Settings};
use crate::error::{LambdaError, Result};
use crate::service::LambdaService;
use crate::store::Kind;

/// What GetEventSourceMapping reports of a mapping's work.
pub struct Status {
    last_processing_result: Mutex<String>,
}

impl Status {
    fn new() -> Arc<Self> {
        Arc::new(Self { last_processing_result: Mutex::new("No records processed".into()) })
    }

    pub fn ok(&self) {
        *self.last_processing_result.lock() = "OK".into();
    }

    pub fn problem(&self, message: &str) {
        *self.last_processing_result.lock() = message.to_string();
    }

    fn last(&self) -> String {
        self.last_processing_result.lock().clone()
    }
}

struct Entry {
    configuration: MappingConfiguration,
    status: Arc<Status>,
    task: Option<JoinHandle<()>>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[derive(Default)]
pub struct Mappings {
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListResponse {
    event_source_mappings: Vec<MappingConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
}

/// The stream a source ARN reads: a stream ARN, or an enhanced fan-out consumer's
/// (`.../stream/NAME/consumer/CONSUMER:TIMESTAMP`), whose records are the stream's.
pub fn source_stream(arn: &str) -> Option<String> {
    let rest = arn.strip_prefix("arn:")?;
    let mut parts = rest.splitn(5, ':');
    let (_, service, _, _, resource) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let name = resource.strip_prefix("stream/")?;
    (service == "kinesis").then(|| name.split('/').next().unwrap_or(name).to_string()).filter(|name| !name.is_empty())
}

fn epoch_seconds() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

fn not_found() -> LambdaError {
    LambdaError::ResourceNotFound("The resource you requested does not exist.".into())
}

impl LambdaService {
    /// The function a mapping's `FunctionName` names, which must exist.
    fn mapping_function(&self, function_name: &str) -> Result<(String, String)> {
        let name = crate::functions::resolve_name(self, function_name, None)?;
        let functions = self.functions.read();
        let function =
            functions.get(&name).ok_or_else(|| LambdaError::not_found_function(&self.function_arn(&name)))?;
        Ok((name, function.configuration.role.clone()))
    }

    pub async fn create_event_source_mapping(self: &Arc<Self>, request: CreateRequest) -> Result<MappingConfiguration> {
        let mut v = tideline_proto::Validator::new();
        v.required("functionName", request.settings.function_name.as_ref());
        crate::functions::finish(v)?;
        config::validate(&request.settings, request.starting_position.as_deref())?;
        let Some(source) = request.event_source_arn.clone() else {
            return Err(LambdaError::invalid("Unrecognized event source, must be kinesis stream."));
        };
        let stream = source_stream(&source).ok_or_else(|| {
            LambdaError::invalid(format!("Unrecognized event source, must be kinesis stream: {source}"))
        })?;
        if self.streams.stream_info(Some(&stream), None).is_err() {
            return Err(LambdaError::invalid(format!("Stream not found: {source}")));
        }
        let Some(starting_position) = request.starting_position.clone() else {
            return Err(LambdaError::invalid("1 validation error detected: Value null at 'startingPosition' failed to satisfy constraint: Member must not be null for Kinesis event sources."));
        };
        if starting_position == "AT_TIMESTAMP" && request.starting_position_timestamp.is_none() {
            return Err(LambdaError::invalid(
                "StartingPositionTimestamp must be set when StartingPosition is AT_TIMESTAMP.",
            ));
        }
        let (name, _) = self.mapping_function(request.settings.function_name.as_deref().unwrap_or_default())?;
        let uuid = uuid::Uuid::new_v4().to_string();
        let mut configuration = MappingConfiguration {
            event_source_mapping_arn: format!(
                "arn:aws:lambda:{}:{}:event-source-mapping:{uuid}",
                self.config.region, self.config.account
            ),
            uuid: uuid.clone(),
            starting_position,
            starting_position_timestamp: request.starting_position_timestamp,
            batch_size: 100,
            maximum_batching_window_in_seconds: 0,
            parallelization_factor: 1,
            event_source_arn: source,
            filter_criteria: None,
            function_arn: self.function_arn(&name),
            last_modified: epoch_seconds(),
            last_processing_result: "No records processed".into(),
            state: "Enabled".into(),
            state_transition_reason: "User action".into(),
            destination_config: Default::default(),
            maximum_record_age_in_seconds: -1,
            bisect_batch_on_function_error: false,
            maximum_retry_attempts: -1,
            tumbling_window_in_seconds: 0,
            function_response_types: Vec::new(),
        };
        config::apply(&mut configuration, request.settings);
        self.store.save(Kind::Mapping, &uuid, &configuration)?;
        let mut response = configuration.clone();
        response.state = "Creating".into();
        self.start_mapping(configuration);
        Ok(response)
    }

    /// Registers a mapping and, when enabled, starts its worker.
    fn start_mapping(self: &Arc<Self>, configuration: MappingConfiguration) {
        let uuid = configuration.uuid.clone();
        let status = Status::new();
        let task = self.spawn_worker(&configuration, &status);
        let entry = Entry { configuration, status, task };
        self.mappings.entries.lock().insert(uuid, entry);
    }

    fn spawn_worker(
        self: &Arc<Self>,
        configuration: &MappingConfiguration,
        status: &Arc<Status>,
    ) -> Option<JoinHandle<()>> {
        if !configuration.enabled() {
            return None;
        }
        let stream_name = source_stream(&configuration.event_source_arn)?;
        let function_name = configuration.function_arn.rsplit(':').next().unwrap_or_default().to_string();
        let role = self
            .functions
            .read()
            .get(&function_name)
            .map(|function| function.configuration.role.clone())
            .unwrap_or_default();
        let stream_arn = self
            .streams
            .stream_info(Some(&stream_name), None)
            .map(|info| info.arn)
            .unwrap_or_else(|_| configuration.event_source_arn.clone());
        let context = worker::Context {
            streams: Arc::clone(&self.streams),
            firehose: Arc::clone(&self.firehose),
            runner: Arc::clone(&self.runner),
            configuration: configuration.clone(),
            metrics: self.metrics.mapping(&configuration.uuid, &function_name),
            function_name,
            role,
            stream_name,
            stream_arn,
            region: self.config.region.clone(),
            checkpoints: Checkpoints::load(Arc::clone(&self.store), &configuration.uuid),
            status: Arc::clone(status),
            filters: configuration.filters(),
        };
        Some(tokio::spawn(worker::run(Arc::new(context))))
    }

    pub async fn get_event_source_mapping(&self, uuid: &str) -> Result<MappingConfiguration> {
        let entries = self.mappings.entries.lock();
        let entry = entries.get(uuid).ok_or_else(not_found)?;
        let mut configuration = entry.configuration.clone();
        configuration.last_processing_result = entry.status.last();
        Ok(configuration)
    }

    pub async fn update_event_source_mapping(
        self: &Arc<Self>,
        uuid: &str,
        settings: Settings,
    ) -> Result<MappingConfiguration> {
        config::validate(&settings, None)?;
        let function = match settings.function_name.as_deref() {
            Some(function_name) => Some(self.mapping_function(function_name)?.0),
            None => None,
        };
        let mut entries = self.mappings.entries.lock();
        let entry = entries.get_mut(uuid).ok_or_else(not_found)?;
        let mut configuration = entry.configuration.clone();
        config::apply(&mut configuration, settings);
        if let Some(function) = function {
            configuration.function_arn = self.function_arn(&function);
        }
        configuration.last_modified = epoch_seconds();
        self.store.save(Kind::Mapping, uuid, &configuration)?;
        // The running worker stops (its in-flight batch will run again under the new settings:
        // its checkpoint has not moved) and a new one starts from the checkpoints.
        if let Some(task) = entry.task.take() {
            task.abort();
        }
        entry.task = self.spawn_worker(&configuration, &entry.status);
        entry.configuration = configuration.clone();
        configuration.last_processing_result = entry.status.last();
        configuration.state = "Updating".into();
        Ok(configuration)
    }

    pub async fn delete_event_source_mapping(&self, uuid: &str) -> Result<MappingConfiguration> {
        let entry = self.mappings.entries.lock().remove(uuid).ok_or_else(not_found)?;
        self.store.delete(Kind::Mapping, uuid)?;
        self.store.delete(Kind::Checkpoint, uuid)?;
        let function_name = entry.configuration.function_arn.rsplit(':').next().unwrap_or_default().to_string();
        self.metrics.forget(uuid, &function_name);
        let mut configuration = entry.configuration.clone();
        configuration.last_processing_result = entry.status.last();
        configuration.state = "Deleting".into();
        Ok(configuration)
    }

    pub async fn list_event_source_mappings(
        &self,
        event_source_arn: Option<&str>,
        function_name: Option<&str>,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<ListResponse> {
        let mut v = tideline_proto::Validator::new();
        v.integer("maxItems", max_items, 1, 10_000);
        crate::functions::finish(v)?;
        let function_arn = match function_name {
            Some(name) => Some(self.function_arn(&crate::functions::resolve_name(self, name, None)?)),
            None => None,
        };
        let entries = self.mappings.entries.lock();
        let mut matching: Vec<MappingConfiguration> = entries
            .values()
            .filter(|entry| event_source_arn.is_none_or(|arn| entry.configuration.event_source_arn == arn))
            .filter(|entry| function_arn.as_deref().is_none_or(|arn| entry.configuration.function_arn == arn))
            .filter(|entry| marker.is_none_or(|marker| entry.configuration.uuid.as_str() > marker))
            .map(|entry| {
                let mut configuration = entry.configuration.clone();
                configuration.last_processing_result = entry.status.last();
                configuration
            })
            .collect();
        matching.sort_by(|a, b| a.uuid.cmp(&b.uuid));
        let limit = max_items.unwrap_or(100) as usize;
        let next_marker = (matching.len() > limit).then(|| matching[limit - 1].uuid.clone());
        matching.truncate(limit);
        Ok(ListResponse { event_source_mappings: matching, next_marker })
    }

    /// Mappings kept from an earlier run start again from their checkpoints.
    pub(crate) fn load_mappings(self: &Arc<Self>) {
        for configuration in self.store.load_all::<MappingConfiguration>(Kind::Mapping) {
            self.start_mapping(configuration);
        }
    }
}
