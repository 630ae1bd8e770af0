//! Jobs as Managed Service for Apache Flink applications: a kinesisanalyticsv2-shaped JSON 1.1
//! service (`X-Amz-Target: KinesisAnalytics_20180523.<Operation>`, signing name
//! `kinesisanalytics`) whose application code is Flink SQL (`ApplicationConfiguration.
//! ApplicationCodeConfiguration.CodeContent.TextContent`). CreateApplication checks the SQL,
//! StartApplication runs its `INSERT INTO` statements as a [`Job`] reading streams in process,
//! StopApplication stops it after a last checkpoint; a job whose query fails stops itself and
//! turns its application READY at once (the error is in the server log). Applications are kept in
//! `<data-dir>/analytics/applications.json`; a RUNNING one is started again when the server
//! starts, from its checkpoints.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tideline_firehose::FirehoseService;
use tideline_proto::{
    AwsError, BoxFuture, Call, ErrorCode, Operations, Pattern, Reply, Route, Service, Timestamp, Validator,
};
use tideline_streams::StreamsService;

use crate::engine::Engine;
use crate::engine::Stats;
use crate::jobs::{write_atomically, Job};
use crate::source::InProcess;

pub const TARGET_PREFIX: &str = "KinesisAnalytics_20180523";
const RUNTIMES: &[&str] = &[
    "SQL-1_0",
    "FLINK-1_6",
    "FLINK-1_8",
    "ZEPPELIN-FLINK-1_0",
    "FLINK-1_11",
    "FLINK-1_13",
    "ZEPPELIN-FLINK-2_0",
    "FLINK-1_15",
    "ZEPPELIN-FLINK-3_0",
    "FLINK-1_18",
    "FLINK-1_19",
    "FLINK-1_20",
    "FLINK-2_2",
    "FLINK-2_3",
];
static NAME: Pattern = Pattern::new("[a-zA-Z0-9_.-]+");

/// Where applications live and how their ARNs read.
pub struct ApplicationsConfig {
    /// `<data-dir>/analytics`; `None` for an in-memory server.
    pub dir: Option<PathBuf>,
    pub region: String,
    pub account_id: String,
    /// Each query's cap on open window state, bytes (`--sql-max-window-state`).
    pub max_window_state: u64,
}

#[derive(Clone, Serialize, Deserialize)]
struct Application {
    name: String,
    description: Option<String>,
    runtime: String,
    role: String,
    code: String,
    status: String,
    version: i64,
    created_ms: i64,
    updated_ms: i64,
}

pub struct ApplicationsService {
    streams: Arc<StreamsService>,
    firehose: Arc<FirehoseService>,
    config: ApplicationsConfig,
    apps: Mutex<BTreeMap<String, Application>>,
    /// Started jobs, until stopped (a failed job, already stopped, is reaped by the next start,
    /// stop or delete of its application).
    jobs: tokio::sync::Mutex<BTreeMap<String, Job>>,
    /// The jobs running, for `/metrics` and to tell a failing job from a newer one of the same
    /// application. Locked before `apps` when both are.
    running: Mutex<BTreeMap<String, RunningJob>>,
    next_job_id: AtomicU64,
}

/// A running job as `/metrics` sees it.
struct RunningJob {
    id: u64,
    queries: Vec<Arc<Stats>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl ApplicationsService {
    /// Opens the applications of `config.dir` and starts again those that were running.
    pub async fn open(
        streams: Arc<StreamsService>,
        firehose: Arc<FirehoseService>,
        config: ApplicationsConfig,
    ) -> Result<Arc<Self>, std::io::Error> {
        let apps: BTreeMap<String, Application> = match &config.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                match std::fs::read(dir.join("applications.json")) {
                    Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other)?,
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
                    Err(error) => return Err(error),
                }
            }
            None => BTreeMap::new(),
        };
        let running: Vec<String> =
            apps.values().filter(|app| app.status == "RUNNING").map(|app| app.name.clone()).collect();
        let service = Arc::new(ApplicationsService {
            streams,
            firehose,
            config,
            apps: Mutex::new(apps),
            jobs: tokio::sync::Mutex::new(BTreeMap::new()),
            running: Mutex::new(BTreeMap::new()),
            next_job_id: AtomicU64::new(0),
        });
        for name in running {
            if let Err(error) = service.start_job(&name).await {
                tracing::warn!(application = %name, %error, "cannot resume analytics application");
                service.set_status(&name, "READY");
            }
        }
        Ok(service)
    }

    /// Stops every job after a last checkpoint; the applications stay RUNNING, to be started
    /// again with the server.
    pub async fn shutdown(&self) {
        let jobs = std::mem::take(&mut *self.jobs.lock().await);
        for (_, job) in jobs {
            job.stop().await;
        }
    }

    fn arn(&self, name: &str) -> String {
        format!("arn:aws:kinesisanalytics:{}:{}:application/{name}", self.config.region, self.config.account_id)
    }

    fn save(&self, apps: &BTreeMap<String, Application>) -> Result<(), AwsError> {
        let Some(dir) = &self.config.dir else { return Ok(()) };
        let bytes = serde_json::to_vec_pretty(apps).map_err(|error| AwsError::internal(error.to_string()))?;
        tokio::task::block_in_place(|| write_atomically(&dir.join("applications.json"), &bytes))
            .map_err(|error| AwsError::internal(format!("cannot save applications: {error}")))
    }

    /// Called by job `id` of application `name` when one of its queries fails (the job has
    /// stopped itself): the application is READY again, as after a failed Flink job, unless the
    /// job was stopped or replaced meanwhile. Status and `/metrics` change under the `running`
    /// lock, so a scrape never sees one without the other.
    fn job_failed(&self, name: &str, id: u64, error: &str) {
        let mut running = self.running.lock();
        if running.get(name).is_none_or(|job| job.id != id) {
            return;
        }
        self.set_status(name, "READY");
        running.remove(name);
        tracing::warn!(application = %name, %error, "analytics job failed and stopped; the application is READY");
    }

    fn set_status(&self, name: &str, status: &str) {
        let mut apps = self.apps.lock();
        if let Some(app) = apps.get_mut(name) {
            app.status = status.to_string();
            app.updated_ms = now_ms();
        }
        if let Err(error) = self.save(&apps) {
            tracing::warn!(%error, "cannot save applications");
        }
    }

    fn not_found(&self, name: &str) -> AwsError {
        AwsError::not_found(format!("Application {name} is not found for account {}", self.config.account_id))
    }

    fn get(&self, name: &str) -> Result<Application, AwsError> {
        self.apps.lock().get(name).cloned().ok_or_else(|| self.not_found(name))
    }

    fn checkpoint_dir(&self, name: &str) -> Option<PathBuf> {
        self.config.dir.as_ref().map(|dir| dir.join("checkpoints").join(name))
    }

    async fn start_job(self: &Arc<Self>, name: &str) -> Result<(), AwsError> {
        let app = self.get(name)?;
        let cap = self.config.max_window_state;
        let queries = compile(&app.code).await?.into_iter().map(|query| query.with_max_window_state(cap)).collect();
        // A failed job of this application is still held: its tasks end before its checkpoints are read again.
        self.stop_job(name).await;
        let checkpoints = self.checkpoint_dir(name);
        if let Some(dir) = &checkpoints {
            std::fs::create_dir_all(dir).map_err(|error| AwsError::internal(error.to_string()))?;
        }
        let id = self.next_job_id.fetch_add(1, Ordering::Relaxed);
        let (service, application) = (Arc::downgrade(self), name.to_string());
        let on_failure = Arc::new(move |error: &str| {
            if let Some(service) = service.upgrade() {
                service.job_failed(&application, id, error);
            }
        });
        let access = Arc::new(InProcess { streams: Arc::clone(&self.streams), firehose: Arc::clone(&self.firehose) });
        let job = {
            // Held while the job starts: a query failing at once waits for the job to be RUNNING
            // before it turns it READY.
            let mut running = self.running.lock();
            let job = Job::start(queries, access, checkpoints, on_failure);
            let queries = job.queries.iter().map(|query| Arc::clone(&query.stats)).collect();
            running.insert(name.to_string(), RunningJob { id, queries });
            self.set_status(name, "RUNNING");
            job
        };
        let replaced = self.jobs.lock().await.insert(name.to_string(), job);
        if let Some(replaced) = replaced {
            // Two starts raced past the READY check: the older job ends rather than run unowned.
            replaced.stop().await;
        }
        Ok(())
    }

    async fn stop_job(&self, name: &str) {
        let job = self.jobs.lock().await.remove(name);
        if let Some(job) = job {
            job.stop().await;
        }
        self.running.lock().remove(name);
    }

    fn detail(&self, app: &Application) -> ApplicationDetail {
        ApplicationDetail {
            application_arn: self.arn(&app.name),
            application_description: app.description.clone(),
            application_name: app.name.clone(),
            runtime_environment: app.runtime.clone(),
            service_execution_role: app.role.clone(),
            application_status: app.status.clone(),
            application_version_id: app.version,
            create_timestamp: Timestamp(app.created_ms),
            last_update_timestamp: Timestamp(app.updated_ms),
            application_mode: "STREAMING",
            application_configuration_description: ConfigurationDescription {
                application_code_configuration_description: CodeDescription {
                    code_content_type: "PLAINTEXT",
                    code_content_description: CodeContentDescription {
                        code_size: app.code.len() as i64,
                        text_content: app.code.clone(),
                    },
                },
            },
        }
    }
}

/// The application's statements as queries; every one must write to a table.
async fn compile(code: &str) -> Result<Vec<crate::engine::Query>, AwsError> {
    let code_error = |message: String| AwsError::new(ErrorCode::Named("CodeValidationException"), message);
    let queries = Engine::new().compile(code).await.map_err(|error| code_error(error.to_string()))?;
    if queries.is_empty() {
        return Err(code_error("The application code has no INSERT INTO statement to run".into()));
    }
    if queries.iter().any(|query| query.sink.is_none()) {
        return Err(code_error(
            "An application's SELECT must be part of an INSERT INTO: its rows need a sink table".into(),
        ));
    }
    Ok(queries)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateInput {
    application_name: Option<String>,
    application_description: Option<String>,
    runtime_environment: Option<String>,
    service_execution_role: Option<String>,
    application_configuration: Option<ConfigurationInput>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigurationInput {
    application_code_configuration: Option<CodeInput>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CodeInput {
    code_content: Option<CodeContentInput>,
    code_content_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CodeContentInput {
    text_content: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ApplicationDetail {
    #[serde(rename = "ApplicationARN")]
    application_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    application_description: Option<String>,
    application_name: String,
    runtime_environment: String,
    service_execution_role: String,
    application_status: String,
    application_version_id: i64,
    create_timestamp: Timestamp,
    last_update_timestamp: Timestamp,
    application_mode: &'static str,
    application_configuration_description: ConfigurationDescription,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigurationDescription {
    application_code_configuration_description: CodeDescription,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CodeDescription {
    code_content_type: &'static str,
    code_content_description: CodeContentDescription,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CodeContentDescription {
    text_content: String,
    code_size: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DetailOutput {
    application_detail: ApplicationDetail,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NameInput {
    application_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteInput {
    application_name: Option<String>,
    create_timestamp: Option<Timestamp>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListInput {
    limit: Option<i64>,
    next_token: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Summary {
    application_name: String,
    #[serde(rename = "ApplicationARN")]
    application_arn: String,
    application_status: String,
    application_version_id: i64,
    runtime_environment: String,
    application_mode: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListOutput {
    application_summaries: Vec<Summary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

#[derive(Serialize)]
struct Empty {}

fn validated_name(name: Option<&str>) -> Result<String, AwsError> {
    let mut v = Validator::new();
    v.required("applicationName", name);
    v.string("applicationName", name, 1, 128, Some(&NAME));
    v.finish()?;
    Ok(name.unwrap_or_default().to_string())
}

async fn create(service: &Arc<ApplicationsService>, input: CreateInput) -> Result<DetailOutput, AwsError> {
    let mut v = Validator::new();
    let name = input.application_name.as_deref();
    v.required("applicationName", name);
    v.string("applicationName", name, 1, 128, Some(&NAME));
    v.required("runtimeEnvironment", input.runtime_environment.as_deref());
    v.one_of("runtimeEnvironment", input.runtime_environment.as_deref(), RUNTIMES);
    v.required("serviceExecutionRole", input.service_execution_role.as_deref());
    v.string("serviceExecutionRole", input.service_execution_role.as_deref(), 1, 2048, None);
    v.finish()?;
    let name = name.unwrap_or_default().to_string();
    let runtime = input.runtime_environment.unwrap_or_default();
    if !runtime.starts_with("FLINK-") {
        return Err(AwsError::new(
            ErrorCode::Named("UnsupportedOperationException"),
            format!("Runtime environment {runtime} is not supported by Tideline: Flink SQL applications (FLINK-1_x, FLINK-2_x) are"),
        ));
    }
    let code = input.application_configuration.and_then(|configuration| configuration.application_code_configuration);
    let (content_type, text) = match code {
        Some(code) => (code.code_content_type, code.code_content.and_then(|content| content.text_content)),
        None => (None, None),
    };
    if content_type.as_deref().is_some_and(|kind| kind != "PLAINTEXT") {
        return Err(AwsError::invalid_argument(
            "Tideline runs Flink SQL given as PLAINTEXT TextContent; ZIPFILE code is not supported",
        ));
    }
    let code = text.ok_or_else(|| {
        AwsError::invalid_argument(
            "ApplicationCodeConfiguration.CodeContent.TextContent must hold the application's Flink SQL",
        )
    })?;
    compile(&code).await?;
    let now = now_ms() / 1000 * 1000;
    let app = Application {
        name: name.clone(),
        description: input.application_description,
        runtime,
        role: input.service_execution_role.unwrap_or_default(),
        code,
        status: "READY".into(),
        version: 1,
        created_ms: now,
        updated_ms: now,
    };
    let mut apps = service.apps.lock();
    if apps.contains_key(&name) {
        return Err(AwsError::in_use(format!("Application {name} already exists")));
    }
    apps.insert(name.clone(), app.clone());
    service.save(&apps)?;
    Ok(DetailOutput { application_detail: service.detail(&app) })
}

async fn describe(service: &Arc<ApplicationsService>, input: NameInput) -> Result<DetailOutput, AwsError> {
    let name = validated_name(input.application_name.as_deref())?;
    Ok(DetailOutput { application_detail: service.detail(&service.get(&name)?) })
}

async fn list(service: &Arc<ApplicationsService>, input: ListInput) -> Result<ListOutput, AwsError> {
    let mut v = Validator::new();
    v.integer("limit", input.limit, 1, 50);
    v.finish()?;
    let limit = input.limit.unwrap_or(50) as usize;
    let apps = service.apps.lock();
    let after = input.next_token.unwrap_or_default();
    let mut summaries: Vec<Summary> = apps
        .values()
        .filter(|app| app.name > after)
        .take(limit + 1)
        .map(|app| Summary {
            application_name: app.name.clone(),
            application_arn: service.arn(&app.name),
            application_status: app.status.clone(),
            application_version_id: app.version,
            runtime_environment: app.runtime.clone(),
            application_mode: "STREAMING",
        })
        .collect();
    let next_token = (summaries.len() > limit).then(|| {
        summaries.truncate(limit);
        summaries.last().map(|summary| summary.application_name.clone()).unwrap_or_default()
    });
    Ok(ListOutput { application_summaries: summaries, next_token })
}

async fn start(service: &Arc<ApplicationsService>, input: NameInput) -> Result<Empty, AwsError> {
    let name = validated_name(input.application_name.as_deref())?;
    let app = service.get(&name)?;
    if app.status != "READY" {
        return Err(AwsError::in_use(format!(
            "Application {name} is in {} status; it must be READY to start",
            app.status
        )));
    }
    service.start_job(&name).await?;
    Ok(Empty {})
}

async fn stop(service: &Arc<ApplicationsService>, input: NameInput) -> Result<Empty, AwsError> {
    let name = validated_name(input.application_name.as_deref())?;
    let app = service.get(&name)?;
    if app.status != "RUNNING" {
        return Err(AwsError::in_use(format!(
            "Application {name} is in {} status; it must be RUNNING to stop",
            app.status
        )));
    }
    service.stop_job(&name).await;
    service.set_status(&name, "READY");
    Ok(Empty {})
}

async fn delete(service: &Arc<ApplicationsService>, input: DeleteInput) -> Result<Empty, AwsError> {
    let name = validated_name(input.application_name.as_deref())?;
    let mut v = Validator::new();
    v.required("createTimestamp", input.create_timestamp.as_ref());
    v.finish()?;
    let app = service.get(&name)?;
    // Compared in whole seconds: JSON carries the timestamp as fractional epoch seconds.
    if input.create_timestamp.map(|at| at.0 / 1000) != Some(app.created_ms / 1000) {
        return Err(AwsError::invalid_argument(format!(
            "CreateTimestamp does not match the application {name}'s creation time"
        )));
    }
    service.stop_job(&name).await;
    if let Some(dir) = service.checkpoint_dir(&name) {
        let _ = std::fs::remove_dir_all(dir);
    }
    let mut apps = service.apps.lock();
    apps.remove(&name);
    service.save(&apps)?;
    Ok(Empty {})
}

static OPERATIONS: LazyLock<Operations<Arc<ApplicationsService>>> = LazyLock::new(|| {
    Operations::new()
        .op("CreateApplication", create)
        .op("DescribeApplication", describe)
        .op("ListApplications", list)
        .op("StartApplication", start)
        .op("StopApplication", stop)
        .op("DeleteApplication", delete)
});

/// The handle the server registers; the service itself is shared with its jobs.
pub struct ApplicationsApi(pub Arc<ApplicationsService>);

impl Service for ApplicationsApi {
    fn name(&self) -> &'static str {
        "kinesisanalytics"
    }

    fn route(&self) -> Route {
        Route::Target(TARGET_PREFIX)
    }

    fn signing_name(&self) -> &'static str {
        "kinesisanalytics"
    }

    fn operation_name(&self, call: &Call<'_>) -> Option<&'static str> {
        OPERATIONS.name_of(call)
    }

    fn handle<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Reply, AwsError>> {
        Box::pin(OPERATIONS.dispatch(&self.0, call))
    }

    fn metrics_text(&self) -> String {
        let running = self.0.running.lock();
        let now = now_ms();
        let mut text = String::new();
        // Label values need no escaping: application names match [a-zA-Z0-9_.-]+ (CreateApplication).
        text.push_str("# HELP tideline_analytics_job_running Whether an application's job is running: started, and none of its queries has failed (a failed job stops).\n");
        text.push_str("# TYPE tideline_analytics_job_running gauge\n");
        for app in self.0.apps.lock().values() {
            let up = running.contains_key(&app.name);
            text.push_str(&format!(
                "tideline_analytics_job_running{{application=\"{}\"}} {}\n",
                app.name,
                u8::from(up)
            ));
        }
        for family in QUERY_FAMILIES {
            text.push_str(&format!("# HELP {0} {1}\n# TYPE {0} {2}\n", family.name, family.help, family.kind));
            for (name, job) in running.iter() {
                for (index, stats) in job.queries.iter().enumerate() {
                    if let Some(value) = (family.value)(stats, now) {
                        text.push_str(&format!(
                            "{}{{application=\"{name}\",query=\"{index}\"}} {value}\n",
                            family.name
                        ));
                    }
                }
            }
        }
        text
    }
}

/// A metric family with one sample per running query.
struct QueryFamily {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    /// The query's value at `now` (epoch ms), if it has one.
    value: fn(&Stats, i64) -> Option<f64>,
}

const QUERY_FAMILIES: [QueryFamily; 4] = [
    QueryFamily {
        name: "tideline_analytics_rows_in_total",
        kind: "counter",
        help: "Rows read by a job's query.",
        value: |stats, _| Some(stats.rows_in.load(Ordering::Relaxed) as f64),
    },
    QueryFamily {
        name: "tideline_analytics_rows_out_total",
        kind: "counter",
        help: "Rows written by a job's query.",
        value: |stats, _| Some(stats.rows_out.load(Ordering::Relaxed) as f64),
    },
    QueryFamily {
        name: "tideline_analytics_late_rows_total",
        kind: "counter",
        help: "Rows dropped because their windows had closed.",
        value: |stats, _| Some(stats.late_rows.load(Ordering::Relaxed) as f64),
    },
    QueryFamily {
        name: "tideline_analytics_watermark_lag_seconds",
        kind: "gauge",
        help: "How far a job's watermark is behind the clock (windowed queries, once they have one).",
        value: |stats, now| match stats.watermark_ms.load(Ordering::Relaxed) {
            i64::MIN => None,
            watermark => Some((now - watermark) as f64 / 1000.0),
        },
    },
];
