//! `dataProcessingOptions`: what the Kinesis Agent does to each record between cutting it from the
//! file and sending it, one option after the other in the configured order (SINGLELINE, CSVTOJSON,
//! LOGTOJSON, ADDBRACKETS). Behaviour as in awslabs/amazon-kinesis-agent @ aa0d908
//! (`processing/processors/*.java`, `processing/utils/ProcessingUtilsFactory.java`):
//! - records are read as UTF-8 (invalid bytes become U+FFFD) and JSON is written compactly, keys in
//!   the configured order, with a newline after it;
//! - LOGTOJSON skips a record that does not match its format (the record is not sent);
//! - ADDMETADATA, ADDEC2METADATA and USINGPLUGGIN, and `jsonFormat` PRETTYPRINT, are refused at
//!   start: Tideline does not implement them. Any other option name is refused as the agent does.

mod log_formats;

use regex::Regex;
use serde::Deserialize;

use log_formats::{LogFormat, LogParser};

/// One entry of `dataProcessingOptions` as written in the configuration file.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawOption {
    option_name: String,
    custom_field_names: Option<Vec<String>>,
    delimiter: Option<String>,
    log_format: Option<String>,
    match_pattern: Option<String>,
    json_format: Option<String>,
    #[serde(default)]
    parse_options: Vec<String>,
}

#[derive(Clone, Debug)]
enum Step {
    /// Lines joined into one; each trimmed unless NO_TRIM; joined with a literal `\\n` (backslash,
    /// backslash, n: the agent's delimiter) with ESCAPE_NEW_LINE, else with nothing.
    SingleLine {
        trim: bool,
        escape_new_line: bool,
    },
    /// `delimiter` is a regular expression, as Java's `String.split` takes it.
    CsvToJson {
        fields: Vec<String>,
        delimiter: Regex,
    },
    LogToJson(LogParser),
    /// `{` + the record + `}`: the record's newline stays inside the braces, as in the agent.
    AddBrackets,
}

/// The configured options, in order; empty when none are configured.
#[derive(Clone, Debug, Default)]
pub struct Chain(Vec<Step>);

impl Chain {
    pub fn new(options: Vec<RawOption>) -> Result<Chain, String> {
        options
            .into_iter()
            .enumerate()
            .map(|(index, option)| {
                Step::new(option).map_err(|message| format!("dataProcessingOptions[{index}]: {message}"))
            })
            .collect::<Result<_, _>>()
            .map(Chain)
    }

    /// The record after every option, or None when an option skips it.
    pub fn apply(&self, record: Vec<u8>) -> Option<Vec<u8>> {
        self.0.iter().try_fold(record, |record, step| step.apply(&record))
    }
}

impl Step {
    fn new(option: RawOption) -> Result<Step, String> {
        if let Some(format) = option.json_format.as_deref().filter(|format| *format != "COMPACT") {
            return Err(format!("jsonFormat {format:?} is not supported by tideline agent (COMPACT is)"));
        }
        match option.option_name.as_str() {
            "SINGLELINE" => {
                if let Some(unknown) =
                    option.parse_options.iter().find(|o| !["NO_TRIM", "ESCAPE_NEW_LINE"].contains(&o.as_str()))
                {
                    return Err(format!("parseOptions {unknown:?}: expected NO_TRIM or ESCAPE_NEW_LINE"));
                }
                Ok(Step::SingleLine {
                    trim: !option.parse_options.iter().any(|o| o == "NO_TRIM"),
                    escape_new_line: option.parse_options.iter().any(|o| o == "ESCAPE_NEW_LINE"),
                })
            }
            "CSVTOJSON" => {
                let fields = option.custom_field_names.ok_or("CSVTOJSON needs customFieldNames")?;
                let delimiter = option.delimiter.unwrap_or_else(|| ",".into());
                let delimiter = Regex::new(&delimiter).map_err(|e| format!("delimiter {delimiter:?}: {e}"))?;
                Ok(Step::CsvToJson { fields, delimiter })
            }
            "LOGTOJSON" => {
                let name = option.log_format.ok_or("LOGTOJSON needs logFormat")?;
                let format = LogFormat::parse(&name).ok_or_else(|| {
                    format!("logFormat {name:?}: expected COMMONAPACHELOG, COMBINEDAPACHELOG, APACHEERRORLOG, SYSLOG or RFC3339SYSLOG")
                })?;
                Ok(Step::LogToJson(LogParser::new(format, option.match_pattern.as_deref(), option.custom_field_names)?))
            }
            "ADDBRACKETS" => Ok(Step::AddBrackets),
            name @ ("ADDMETADATA" | "ADDEC2METADATA" | "USINGPLUGGIN") => {
                Err(format!("optionName {name:?} is not supported by tideline agent"))
            }
            other => Err(format!("optionName {other:?}: expected SINGLELINE, CSVTOJSON, LOGTOJSON or ADDBRACKETS")),
        }
    }

    fn apply(&self, record: &[u8]) -> Option<Vec<u8>> {
        let text = String::from_utf8_lossy(record);
        Some(match self {
            Step::SingleLine { trim, escape_new_line } => {
                let lines = java_split(text.split('\n').collect());
                let lines: Vec<&str> =
                    lines.into_iter().map(|line| if *trim { line.trim_matches(|c| c <= ' ') } else { line }).collect();
                let mut out = lines.join(if *escape_new_line { "\\\\n" } else { "" });
                out.push('\n');
                out.into_bytes()
            }
            Step::CsvToJson { fields, delimiter } => {
                let line = text.strip_suffix('\n').unwrap_or(&text);
                let columns = java_split(delimiter.split(line).collect());
                let values =
                    fields.iter().enumerate().map(|(index, field)| (field.as_str(), columns.get(index).copied()));
                json_line(values.collect())
            }
            Step::LogToJson(parser) => json_line(parser.parse(text.strip_suffix('\n').unwrap_or(&text))?),
            Step::AddBrackets => format!("{{{text}}}").into_bytes(),
        })
    }
}

/// Java's `String.split`: when the separator occurs, trailing empty parts are dropped.
fn java_split(mut parts: Vec<&str>) -> Vec<&str> {
    if parts.len() > 1 {
        while parts.last() == Some(&"") {
            parts.pop();
        }
    }
    parts
}

/// A compact JSON object and a newline. A repeated field name keeps its first place and its last
/// value, as the agent's ordered map does.
fn json_line(fields: Vec<(&str, Option<&str>)>) -> Vec<u8> {
    let mut object: Vec<(&str, Option<&str>)> = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        match object.iter_mut().find(|(existing, _)| *existing == name) {
            Some(slot) => slot.1 = value,
            None => object.push((name, value)),
        }
    }
    let quoted = |text: &str| serde_json::Value::from(text).to_string();
    let members: Vec<String> = object
        .into_iter()
        .map(|(name, value)| format!("{}:{}", quoted(name), value.map_or_else(|| "null".to_string(), quoted)))
        .collect();
    format!("{{{}}}\n", members.join(",")).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(options: serde_json::Value) -> Result<Chain, String> {
        Chain::new(serde_json::from_value(options).unwrap())
    }

    fn apply(options: serde_json::Value, record: &str) -> Option<String> {
        chain(options).unwrap().apply(record.as_bytes().to_vec()).map(|out| String::from_utf8(out).unwrap())
    }

    #[test]
    fn csv_to_json() {
        let options = serde_json::json!([{"optionName": "CSVTOJSON", "customFieldNames": ["f1", "f2", "f3"]}]);
        assert_eq!(apply(options.clone(), "v1, v2\n").unwrap(), "{\"f1\":\"v1\",\"f2\":\" v2\",\"f3\":null}\n");
        assert_eq!(apply(options.clone(), "a,b,c,d\n").unwrap(), "{\"f1\":\"a\",\"f2\":\"b\",\"f3\":\"c\"}\n");
        assert_eq!(apply(options.clone(), "a,,\n").unwrap(), "{\"f1\":\"a\",\"f2\":null,\"f3\":null}\n");
        assert_eq!(apply(options, "\"q\"\\\n").unwrap(), "{\"f1\":\"\\\"q\\\"\\\\\",\"f2\":null,\"f3\":null}\n");
        let tabs =
            serde_json::json!([{"optionName": "CSVTOJSON", "customFieldNames": ["a", "b", "a"], "delimiter": "\\t"}]);
        assert_eq!(apply(tabs, "1\t2\t3\n").unwrap(), "{\"a\":\"3\",\"b\":\"2\"}\n");
        assert!(chain(serde_json::json!([{"optionName": "CSVTOJSON"}])).is_err());
    }

    #[test]
    fn options_run_in_order() {
        let options = serde_json::json!([
            {"optionName": "SINGLELINE"},
            {"optionName": "LOGTOJSON", "logFormat": "SYSLOG"},
        ]);
        assert_eq!(
            apply(options.clone(), "Mar 12 12:00:08 host app[7]: first\n   second\n").unwrap(),
            "{\"timestamp\":\"Mar 12 12:00:08\",\"hostname\":\"host\",\"program\":\"app\",\"processid\":\"7\",\"message\":\"firstsecond\"}\n"
        );
        assert_eq!(apply(options, "not syslog\n"), None, "a record that does not match is skipped");
        let brackets = serde_json::json!([{"optionName": "SINGLELINE"}, {"optionName": "ADDBRACKETS"}]);
        assert_eq!(apply(brackets, " \"a\": 1,\n \"b\": 2\n").unwrap(), "{\"a\": 1,\"b\": 2\n}");
    }

    #[test]
    fn single_line_parse_options() {
        let escaped = serde_json::json!([{"optionName": "SINGLELINE", "parseOptions": ["ESCAPE_NEW_LINE", "NO_TRIM"]}]);
        assert_eq!(apply(escaped, "a \n b\n\n").unwrap(), "a \\\\n b\n");
    }

    #[test]
    fn unsupported_and_unknown_options_are_refused() {
        for (option, expected) in [
            (serde_json::json!({"optionName": "ADDEOL"}), "expected SINGLELINE"),
            (serde_json::json!({"optionName": "ADDMETADATA"}), "not supported"),
            (serde_json::json!({"optionName": "LOGTOJSON"}), "needs logFormat"),
            (serde_json::json!({"optionName": "LOGTOJSON", "logFormat": "NGINX"}), "logFormat \"NGINX\""),
            (
                serde_json::json!({"optionName": "CSVTOJSON", "customFieldNames": [], "jsonFormat": "PRETTYPRINT"}),
                "jsonFormat",
            ),
        ] {
            let error = chain(serde_json::json!([{"optionName": "SINGLELINE"}, option])).unwrap_err();
            assert!(error.starts_with("dataProcessingOptions[1]: ") && error.contains(expected), "{error}");
        }
    }
}
