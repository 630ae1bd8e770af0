//! Which runtime client starts a function: one entry per runtime family, as a folder of
//! runtimes would have one file each. A new runtime is one more arm in [`launch`].

use std::path::PathBuf;

use super::sandbox::Launch;
use super::FunctionSpec;
use crate::error::{LambdaError, Result};

/// Where the runtime clients are, and the environment every runtime process gets from the server.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The interpreter that runs `python -m awslambdaric` (PyPI `awslambdaric` installed in it).
    pub python: PathBuf,
    /// The npm `aws-lambda-ric` command (its `bin`), run as `aws-lambda-ric <handler>`.
    pub node_ric: PathBuf,
    /// Tideline's own endpoint, for `AWS_ENDPOINT_URL`: boto3 inside a function talks to Tideline.
    pub endpoint_url: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// The runtime families Tideline runs, by the `Runtime` values of CreateFunction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Python,
    Node,
    /// `provided`, `provided.al2`, `provided.al2023`: the package's `bootstrap` executable.
    Provided,
}

pub fn family(runtime: &str) -> Option<Family> {
    if runtime.starts_with("python3.") {
        Some(Family::Python)
    } else if runtime.starts_with("nodejs") {
        Some(Family::Node)
    } else if runtime == "provided" || runtime.starts_with("provided.") {
        Some(Family::Provided)
    } else {
        None
    }
}

pub fn launch(config: &RuntimeConfig, spec: &FunctionSpec) -> Result<Launch> {
    let family = family(&spec.runtime)
        .ok_or_else(|| LambdaError::invalid(format!("Runtime {} is not supported by Tideline.", spec.runtime)))?;
    let (program, args) = match family {
        Family::Python => (config.python.clone(), vec!["-m".into(), "awslambdaric".into(), spec.handler.clone()]),
        Family::Node => (config.node_ric.clone(), vec![spec.handler.clone()]),
        Family::Provided => (spec.code_dir.join("bootstrap"), Vec::new()),
    };
    Ok(Launch { program, args, working_dir: spec.code_dir.clone(), env: environment(config, spec, family) })
}

/// The variables AWS sets in a function's environment (those that mean something outside AWS),
/// the function's own `Environment.Variables`, and what makes SDKs inside talk to Tideline.
fn environment(config: &RuntimeConfig, spec: &FunctionSpec, family: Family) -> Vec<(String, String)> {
    let task_root = spec.code_dir.display().to_string();
    let inherited = ["PATH", "HOME", "LANG", "TZ"].into_iter().filter_map(|key| {
        let value = std::env::var(key).ok()?;
        Some((key.to_string(), value))
    });
    let mut env: Vec<(String, String)> = inherited.collect();
    let fixed = [
        ("AWS_LAMBDA_FUNCTION_NAME", spec.name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", spec.memory_mb.to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", spec.name)),
        ("AWS_EXECUTION_ENV", format!("AWS_Lambda_{}", spec.runtime)),
        ("_HANDLER", spec.handler.clone()),
        ("LAMBDA_TASK_ROOT", task_root.clone()),
        ("LAMBDA_RUNTIME_DIR", task_root.clone()),
        ("AWS_REGION", config.region.clone()),
        ("AWS_DEFAULT_REGION", config.region.clone()),
        ("AWS_ACCESS_KEY_ID", config.access_key_id.clone()),
        ("AWS_SECRET_ACCESS_KEY", config.secret_access_key.clone()),
        ("AWS_ENDPOINT_URL", config.endpoint_url.clone()),
    ];
    env.extend(fixed.into_iter().map(|(key, value)| (key.to_string(), value)));
    if family == Family::Python {
        // Handlers' print() output reaches the log as it happens, as in AWS's Python runtimes.
        env.push(("PYTHONUNBUFFERED".into(), "1".into()));
        env.push(("PYTHONPATH".into(), task_root));
    }
    env.extend(spec.environment.iter().map(|(key, value)| (key.clone(), value.clone())));
    env
}
