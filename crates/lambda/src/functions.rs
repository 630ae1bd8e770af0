//! Functions: CreateFunction, GetFunction, ListFunctions, UpdateFunctionCode,
//! UpdateFunctionConfiguration and DeleteFunction, with AWS's request and response shapes, and
//! the registry they keep (configuration on disk, code unpacked, the runner told).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};
use tideline_proto::{Pattern, Validator};

use crate::code;
use crate::error::{LambdaError, Result};
use crate::runner::FunctionSpec;
use crate::service::LambdaService;
use crate::store::Kind;

static FUNCTION_NAME: Pattern = Pattern::new(
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST(\.PUBLISHED)?|[a-zA-Z0-9-_]+))?",
);
static ROLE: Pattern = Pattern::new(r"arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+");
static HANDLER: Pattern = Pattern::new(r"[^\s]+");

/// Every `Runtime` value of the API model; Tideline runs the Python, Node and provided ones.
const RUNTIMES: &[&str] = &[
    "nodejs",
    "nodejs4.3",
    "nodejs6.10",
    "nodejs8.10",
    "nodejs10.x",
    "nodejs12.x",
    "nodejs14.x",
    "nodejs16.x",
    "nodejs18.x",
    "nodejs20.x",
    "nodejs22.x",
    "nodejs24.x",
    "java8",
    "java8.al2",
    "java11",
    "java17",
    "java21",
    "java25",
    "python2.7",
    "python3.6",
    "python3.7",
    "python3.8",
    "python3.9",
    "python3.10",
    "python3.11",
    "python3.12",
    "python3.13",
    "python3.14",
    "dotnetcore1.0",
    "dotnetcore2.0",
    "dotnetcore2.1",
    "dotnetcore3.1",
    "dotnet6",
    "dotnet8",
    "dotnet10",
    "nodejs4.3-edge",
    "go1.x",
    "ruby2.5",
    "ruby2.7",
    "ruby3.2",
    "ruby3.3",
    "ruby3.4",
    "ruby4.0",
    "provided",
    "provided.al2",
    "provided.al2023",
    "nodejs26.x",
    "python3.15",
    "java8.al2023",
    "java11.al2023",
    "java17.al2023",
    "custom",
];

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Environment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variables: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct FunctionCode {
    zip_file: Option<String>,
    s3_bucket: Option<String>,
    image_uri: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateFunctionRequest {
    function_name: Option<String>,
    runtime: Option<String>,
    role: Option<String>,
    handler: Option<String>,
    code: Option<FunctionCode>,
    description: Option<String>,
    timeout: Option<i64>,
    memory_size: Option<i64>,
    environment: Option<Environment>,
    package_type: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpdateFunctionCodeRequest {
    zip_file: Option<String>,
    s3_bucket: Option<String>,
    image_uri: Option<String>,
    revision_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpdateFunctionConfigurationRequest {
    runtime: Option<String>,
    role: Option<String>,
    handler: Option<String>,
    description: Option<String>,
    timeout: Option<i64>,
    memory_size: Option<i64>,
    environment: Option<Environment>,
    revision_id: Option<String>,
}

/// `FunctionConfiguration` as AWS returns it; also what is kept on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionConfiguration {
    pub function_name: String,
    pub function_arn: String,
    pub runtime: String,
    pub role: String,
    pub handler: String,
    pub code_size: u64,
    pub description: String,
    pub timeout: u32,
    pub memory_size: u32,
    pub last_modified: String,
    pub code_sha256: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    pub tracing_config: serde_json::Value,
    pub revision_id: String,
    pub state: String,
    pub last_update_status: String,
    pub package_type: String,
    pub architectures: Vec<String>,
    pub ephemeral_storage: serde_json::Value,
    pub logging_config: serde_json::Value,
    pub snap_start: serde_json::Value,
}

/// A function as stored: its configuration and where its code is unpacked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredFunction {
    pub configuration: FunctionConfiguration,
    pub code_dir: PathBuf,
    /// PutFunctionConcurrency's ReservedConcurrentExecutions: the most invocations of this
    /// function that run at once (0 stops it). None: it shares the server's limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_concurrency: Option<u32>,
}

impl StoredFunction {
    pub fn spec(&self) -> FunctionSpec {
        let configuration = &self.configuration;
        let variables = configuration.environment.as_ref().and_then(|environment| environment.variables.clone());
        FunctionSpec {
            name: configuration.function_name.clone(),
            arn: configuration.function_arn.clone(),
            runtime: configuration.runtime.clone(),
            handler: configuration.handler.clone(),
            code_dir: self.code_dir.clone(),
            environment: variables.unwrap_or_default().into_iter().collect(),
            timeout: Duration::from_secs(u64::from(configuration.timeout)),
            memory_mb: configuration.memory_size,
            reserved_concurrency: self.reserved_concurrency,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetFunctionResponse {
    pub configuration: FunctionConfiguration,
    code: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    concurrency: Option<Concurrency>,
}

/// PutFunctionConcurrency's request and the Concurrency of responses; GetFunctionConcurrency
/// answers `{}` for a function without a reservation.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Concurrency {
    #[serde(skip_serializing_if = "Option::is_none")]
    reserved_concurrent_executions: Option<i64>,
}

/// The account's concurrency as AWS sets it by default (GetAccountSettings' ConcurrentExecutions)
/// and the part of it that must stay unreserved: reservations are checked against these as AWS
/// checks them. How many invocations this server runs at once is `--lambda-max-concurrency`.
const ACCOUNT_CONCURRENCY: u64 = 1000;
const UNRESERVED_MINIMUM: u64 = 100;

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListFunctionsResponse {
    functions: Vec<FunctionConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
}

/// `FunctionName` in any of its forms (name, partial or full ARN, with a qualifier) to the
/// function's name; qualifiers other than `$LATEST` name versions Tideline does not publish.
pub fn resolve_name(service: &LambdaService, function_name: &str, qualifier: Option<&str>) -> Result<String> {
    let mut v = Validator::new();
    v.string("functionName", Some(function_name), 1, 256, Some(&FUNCTION_NAME));
    finish(v)?;
    let mut parts = function_name.rsplit(':');
    let (name, inline_qualifier) = match function_name.split(':').count() {
        1 => (function_name, None),
        // `name:qualifier` or `account:function:name`.
        2 => (parts.nth(1).unwrap_or_default(), parts.next()),
        count => {
            let segments: Vec<&str> = function_name.split(':').collect();
            let at = segments.iter().position(|segment| *segment == "function").unwrap_or(count - 1);
            (segments.get(at + 1).copied().unwrap_or_default(), segments.get(at + 2).copied())
        }
    };
    let qualifier = qualifier.or(inline_qualifier);
    if qualifier.is_some_and(|qualifier| qualifier != "$LATEST") {
        let arn = format!("{}:{}", service.function_arn(name), qualifier.unwrap_or_default());
        return Err(LambdaError::not_found_function(&arn));
    }
    Ok(name.to_string())
}

/// A Validator's result as Lambda's ValidationException.
pub fn finish(v: Validator) -> Result<()> {
    v.finish().map_err(|error| LambdaError::Validation(error.message.unwrap_or_default()))
}

fn validate_common(
    v: &mut Validator,
    runtime: Option<&str>,
    role: Option<&str>,
    handler: Option<&str>,
    description: Option<&str>,
    timeout: Option<i64>,
    memory_size: Option<i64>,
) {
    v.one_of("runtime", runtime, RUNTIMES);
    v.string("role", role, 0, 10_000, Some(&ROLE));
    v.string("handler", handler, 0, 128, Some(&HANDLER));
    v.string("description", description, 0, 256, None);
    v.integer("timeout", timeout, 1, 900);
    v.integer("memorySize", memory_size, 128, 10_240);
}

fn supported_runtime(runtime: &str) -> Result<()> {
    match crate::runner::runtimes::family(runtime) {
        Some(_) => Ok(()),
        None => Err(LambdaError::invalid(format!(
            "The runtime parameter of {runtime} is not supported by Tideline (python3.x, nodejs*, provided*)."
        ))),
    }
}

fn zip_bytes(zip_file: Option<&str>, s3_bucket: Option<&str>, image_uri: Option<&str>) -> Result<Vec<u8>> {
    match (zip_file, s3_bucket, image_uri) {
        (Some(zip), _, _) => base64::engine::general_purpose::STANDARD.decode(zip).map_err(|_| {
            LambdaError::invalid("Could not unzip uploaded file. Please check your file, then try to upload again.")
        }),
        (None, Some(_), _) => {
            Err(LambdaError::invalid("Tideline takes function code as Code.ZipFile; S3 locations are not supported."))
        }
        (None, None, Some(_)) => {
            Err(LambdaError::invalid("Tideline runs Zip packages; container images are not supported."))
        }
        (None, None, None) => Err(LambdaError::invalid("Please provide a source for function code.")),
    }
}

fn timestamp_now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

fn revision_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl LambdaService {
    fn unpack(&self, name: &str, zip: &[u8]) -> Result<PathBuf> {
        let dir = self.store.new_code_dir(name)?;
        if let Err(error) = code::unpack(zip, &dir, self.config.max_unzipped_bytes) {
            self.store.remove_code_dir(&dir);
            return Err(error);
        }
        Ok(dir)
    }

    fn function(&self, name: &str) -> Result<StoredFunction> {
        self.functions
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| LambdaError::not_found_function(&self.function_arn(name)))
    }

    /// Saves a function and gives its runner the new specification; `creating` refuses a name
    /// taken meanwhile (two concurrent creates of one name: one wins).
    fn commit(&self, function: StoredFunction, creating: bool) -> Result<FunctionConfiguration> {
        let name = function.configuration.function_name.clone();
        let mut functions = self.functions.write();
        if creating && functions.contains_key(&name) {
            return Err(LambdaError::ResourceConflict(format!("Function already exist: {name}")));
        }
        let configuration = function.configuration.clone();
        self.install(&mut functions, function)?;
        Ok(configuration)
    }

    /// Saves a function, gives its runner the new specification and registers it, under the
    /// registry's lock (held by the caller, who checked what the change depends on).
    fn install(&self, functions: &mut HashMap<String, StoredFunction>, function: StoredFunction) -> Result<()> {
        let name = function.configuration.function_name.clone();
        self.store.save(Kind::Function, &name, &function)?;
        self.runner.install(function.spec());
        functions.insert(name, function);
        Ok(())
    }

    pub async fn create_function(&self, request: CreateFunctionRequest) -> Result<FunctionConfiguration> {
        let mut v = Validator::new();
        v.required("functionName", request.function_name.as_ref());
        v.string("functionName", request.function_name.as_deref(), 1, 140, Some(&FUNCTION_NAME));
        v.required("role", request.role.as_ref());
        v.required("code", request.code.as_ref());
        validate_common(
            &mut v,
            request.runtime.as_deref(),
            request.role.as_deref(),
            request.handler.as_deref(),
            request.description.as_deref(),
            request.timeout,
            request.memory_size,
        );
        v.one_of("packageType", request.package_type.as_deref(), &["Zip", "Image"]);
        finish(v)?;
        let name = resolve_name(self, request.function_name.as_deref().unwrap_or_default(), None)?;
        let (Some(runtime), Some(handler)) = (request.runtime, request.handler) else {
            return Err(LambdaError::invalid(
                "Runtime and Handler are mandatory parameters for functions created with deployment packages.",
            ));
        };
        supported_runtime(&runtime)?;
        let code = request.code.unwrap_or_default();
        let zip = zip_bytes(code.zip_file.as_deref(), code.s3_bucket.as_deref(), code.image_uri.as_deref())?;
        if self.functions.read().contains_key(&name) {
            return Err(LambdaError::ResourceConflict(format!("Function already exist: {name}")));
        }
        let digest = code::digest(&zip);
        let code_dir = self.unpack(&name, &zip)?;
        let configuration = FunctionConfiguration {
            function_arn: self.function_arn(&name),
            function_name: name.clone(),
            runtime,
            role: request.role.unwrap_or_default(),
            handler,
            code_size: digest.size,
            description: request.description.unwrap_or_default(),
            timeout: request.timeout.unwrap_or(3) as u32,
            memory_size: request.memory_size.unwrap_or(128) as u32,
            last_modified: timestamp_now(),
            code_sha256: digest.sha256,
            version: "$LATEST".into(),
            environment: request.environment,
            tracing_config: serde_json::json!({ "Mode": "PassThrough" }),
            revision_id: revision_id(),
            state: "Active".into(),
            last_update_status: "Successful".into(),
            package_type: "Zip".into(),
            architectures: vec!["x86_64".into()],
            ephemeral_storage: serde_json::json!({ "Size": 512 }),
            logging_config: serde_json::json!({ "LogFormat": "Text", "LogGroup": format!("/aws/lambda/{name}") }),
            snap_start: serde_json::json!({ "ApplyOn": "None", "OptimizationStatus": "Off" }),
        };
        let created =
            self.commit(StoredFunction { configuration, code_dir: code_dir.clone(), reserved_concurrency: None }, true);
        if created.is_err() {
            self.store.remove_code_dir(&code_dir);
        }
        created
    }

    pub async fn get_function(&self, name: &str) -> Result<GetFunctionResponse> {
        let function = self.function(name)?;
        let location = format!("file://{}", function.code_dir.display());
        Ok(GetFunctionResponse {
            configuration: function.configuration,
            code: serde_json::json!({ "RepositoryType": "S3", "Location": location }),
            concurrency: function
                .reserved_concurrency
                .map(|reserved| Concurrency { reserved_concurrent_executions: Some(i64::from(reserved)) }),
        })
    }

    pub async fn put_function_concurrency(&self, name: &str, request: Concurrency) -> Result<Concurrency> {
        let field = "reservedConcurrentExecutions";
        let reserved = match request.reserved_concurrent_executions {
            None => {
                return Err(LambdaError::Validation(format!(
                    "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
                )))
            }
            Some(reserved) if reserved < 0 => {
                return Err(LambdaError::Validation(format!(
                    "1 validation error detected: Value '{reserved}' at '{field}' failed to satisfy constraint: Member must have value greater than or equal to 0"
                )))
            }
            Some(reserved) => reserved,
        };
        self.reserve(name, Some(u32::try_from(reserved).unwrap_or(u32::MAX)))?;
        Ok(Concurrency { reserved_concurrent_executions: Some(reserved) })
    }

    pub async fn get_function_concurrency(&self, name: &str) -> Result<Concurrency> {
        let reserved = self.function(name)?.reserved_concurrency;
        Ok(Concurrency { reserved_concurrent_executions: reserved.map(i64::from) })
    }

    pub async fn delete_function_concurrency(&self, name: &str) -> Result<()> {
        self.reserve(name, None)
    }

    /// Sets a function's reservation, refusing one that leaves less of the account unreserved
    /// than AWS allows; checked and saved under the registry's lock, so that two reservations
    /// made at once cannot both pass.
    fn reserve(&self, name: &str, reserved: Option<u32>) -> Result<()> {
        let mut functions = self.functions.write();
        let arn = self.function_arn(name);
        let function = functions.get(name).ok_or_else(|| LambdaError::not_found_function(&arn))?;
        let others: u64 = functions
            .iter()
            .filter(|(other, _)| other.as_str() != name)
            .filter_map(|(_, function)| function.reserved_concurrency.map(u64::from))
            .sum();
        if others + reserved.map_or(0, u64::from) > ACCOUNT_CONCURRENCY - UNRESERVED_MINIMUM {
            return Err(LambdaError::InvalidParameterValue(format!(
                "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [{UNRESERVED_MINIMUM}]."
            )));
        }
        let function = StoredFunction { reserved_concurrency: reserved, ..function.clone() };
        self.install(&mut functions, function)
    }

    pub async fn list_functions(&self, marker: Option<&str>, max_items: Option<i64>) -> Result<ListFunctionsResponse> {
        let mut v = Validator::new();
        v.integer("maxItems", max_items, 1, 10_000);
        finish(v)?;
        let limit = max_items.unwrap_or(50) as usize;
        let functions = self.functions.read();
        let mut names: Vec<&String> =
            functions.keys().filter(|name| marker.is_none_or(|marker| name.as_str() > marker)).collect();
        names.sort();
        let next_marker = (names.len() > limit).then(|| names[limit - 1].clone());
        let functions = names.into_iter().take(limit).map(|name| functions[name].configuration.clone()).collect();
        Ok(ListFunctionsResponse { functions, next_marker })
    }

    fn check_revision(function: &StoredFunction, revision_id: Option<&str>) -> Result<()> {
        match revision_id {
            Some(revision) if revision != function.configuration.revision_id => Err(LambdaError::PreconditionFailed(
                "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id".into(),
            )),
            _ => Ok(()),
        }
    }

    pub async fn update_function_code(
        &self,
        name: &str,
        request: UpdateFunctionCodeRequest,
    ) -> Result<FunctionConfiguration> {
        let mut function = self.function(name)?;
        Self::check_revision(&function, request.revision_id.as_deref())?;
        let zip = zip_bytes(request.zip_file.as_deref(), request.s3_bucket.as_deref(), request.image_uri.as_deref())?;
        let digest = code::digest(&zip);
        let old_dir = std::mem::replace(&mut function.code_dir, self.unpack(name, &zip)?);
        let configuration = &mut function.configuration;
        configuration.code_sha256 = digest.sha256;
        configuration.code_size = digest.size;
        configuration.last_modified = timestamp_now();
        configuration.revision_id = revision_id();
        let updated = self.commit(function, false)?;
        self.store.remove_code_dir(&old_dir);
        Ok(updated)
    }

    pub async fn update_function_configuration(
        &self,
        name: &str,
        request: UpdateFunctionConfigurationRequest,
    ) -> Result<FunctionConfiguration> {
        let mut v = Validator::new();
        validate_common(
            &mut v,
            request.runtime.as_deref(),
            request.role.as_deref(),
            request.handler.as_deref(),
            request.description.as_deref(),
            request.timeout,
            request.memory_size,
        );
        finish(v)?;
        let mut function = self.function(name)?;
        Self::check_revision(&function, request.revision_id.as_deref())?;
        if let Some(runtime) = &request.runtime {
            supported_runtime(runtime)?;
        }
        let configuration = &mut function.configuration;
        let fields = [
            (&mut configuration.runtime, request.runtime),
            (&mut configuration.role, request.role),
            (&mut configuration.handler, request.handler),
            (&mut configuration.description, request.description),
        ];
        for (field, value) in fields {
            if let Some(value) = value {
                *field = value;
            }
        }
        if let Some(timeout) = request.timeout {
            configuration.timeout = timeout as u32;
        }
        if let Some(memory_size) = request.memory_size {
            configuration.memory_size = memory_size as u32;
        }
        if let Some(environment) = request.environment {
            configuration.environment = Some(environment);
        }
        configuration.last_modified = timestamp_now();
        configuration.revision_id = revision_id();
        self.commit(function, false)
    }

    pub async fn delete_function(&self, name: &str) -> Result<()> {
        let function = self.function(name)?;
        self.store.delete(Kind::Function, name)?;
        self.functions.write().remove(name);
        self.runner.remove(name);
        self.store.remove_code_dir(&function.code_dir);
        Ok(())
    }

    /// Functions kept from an earlier run, handed to the runner.
    pub(crate) fn load_functions(&self) {
        for function in self.store.load_all::<StoredFunction>(Kind::Function) {
            self.runner.install(function.spec());
            self.functions.write().insert(function.configuration.function_name.clone(), function);
        }
    }
}
