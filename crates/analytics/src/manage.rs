//! `tideline sql --submit NAME / --list / --stop NAME / --delete NAME`: SQL jobs kept in a server
//! (or in AWS Managed Service for Apache Flink), managed through the kinesisanalyticsv2 API with
//! the official SDK. A submitted script becomes a Flink application whose code is the SQL
//! (`PLAINTEXT` `TextContent`), created and then started.

use aws_sdk_kinesisanalyticsv2::types::{
    ApplicationCodeConfiguration, ApplicationConfiguration, ApplicationDetail, CodeContent, CodeContentType,
    RuntimeEnvironment,
};
use aws_sdk_kinesisanalyticsv2::Client;
use serde_json::json;
use tideline_cli::{print_json, print_text, status_style, CliError, Connection, Output, Table};

/// What to do with the server's applications.
pub enum Action {
    Submit { name: String, sql: String, runtime: String, role: String },
    List,
    Stop { name: String },
    Delete { name: String },
}

pub async fn run(action: Action, connection: &Connection) -> Result<(), CliError> {
    let client = Client::new(&connection.sdk_config().await);
    let output = connection.output;
    match action {
        Action::Submit { name, sql, runtime, role } => {
            let code = ApplicationCodeConfiguration::builder()
                .code_content(CodeContent::builder().text_content(sql).build())
                .code_content_type(CodeContentType::Plaintext)
                .build()
                .map_err(|error| CliError::Usage(error.to_string()))?;
            client
                .create_application()
                .application_name(&name)
                .runtime_environment(RuntimeEnvironment::from(runtime.as_str()))
                .service_execution_role(role)
                .application_configuration(
                    ApplicationConfiguration::builder().application_code_configuration(code).build(),
                )
                .send()
                .await?;
            client.start_application().application_name(&name).send().await?;
            print_application(output, "submitted", &describe(&client, &name).await?)
        }
        Action::List => list(&client, output).await,
        Action::Stop { name } => {
            client.stop_application().application_name(&name).send().await?;
            print_application(output, "stopped", &describe(&client, &name).await?)
        }
        Action::Delete { name } => {
            // DeleteApplication asks for the creation time, so that an application made again
            // under the same name is not deleted by a stale command.
            let detail = describe(&client, &name).await?;
            let created = detail
                .create_timestamp()
                .ok_or_else(|| CliError::Request(format!("the server gave no CreateTimestamp for {name}")))?;
            client.delete_application().application_name(&name).create_timestamp(*created).send().await?;
            match output {
                Output::Json => print_json(&json!({"application": name, "status": "DELETED"})),
                Output::Text => print_text(&format!("deleted {name}\n")),
            }
        }
    }
}

async fn describe(client: &Client, name: &str) -> Result<ApplicationDetail, CliError> {
    let reply = client.describe_application().application_name(name).send().await?;
    reply.application_detail.ok_or_else(|| CliError::Request(format!("the server described no application {name}")))
}

fn print_application(output: Output, done: &str, detail: &ApplicationDetail) -> Result<(), CliError> {
    let status = detail.application_status().as_str();
    match output {
        Output::Json => print_json(&json!({
            "application": detail.application_name(),
            "arn": detail.application_arn(),
            "status": status,
            "version": detail.application_version_id(),
        })),
        Output::Text => {
            let status = tideline_cli::styled(status_style(status), status);
            print_text(&format!("{done} {} ({status})\n{}\n", detail.application_name(), detail.application_arn()))
        }
    }
}

async fn list(client: &Client, output: Output) -> Result<(), CliError> {
    let summaries: Vec<_> =
        client.list_applications().into_paginator().items().send().collect::<Result<_, _>>().await?;
    match output {
        Output::Json => print_json(&json!(summaries
            .iter()
            .map(|app| json!({
                "application": app.application_name(),
                "arn": app.application_arn(),
                "status": app.application_status().as_str(),
                "version": app.application_version_id(),
                "runtime": app.runtime_environment().as_str(),
            }))
            .collect::<Vec<_>>())),
        Output::Text if summaries.is_empty() => print_text("no applications\n"),
        Output::Text => {
            let mut table = Table::new(&["NAME", "STATUS", "VERSION", "RUNTIME"]);
            for app in &summaries {
                let status = app.application_status().as_str();
                table.row(vec![
                    (app.application_name().to_owned(), Default::default()),
                    (status.to_owned(), status_style(status)),
                    (app.application_version_id().to_string(), Default::default()),
                    (app.runtime_environment().as_str().to_owned(), Default::default()),
                ]);
            }
            print_text(&table.render())
        }
    }
}
