//! LOGTOJSON's log formats: for each `logFormat`, the line it matches and the JSON field names its
//! captures get, as the Kinesis Agent defines them (awslabs/amazon-kinesis-agent @ aa0d908:
//! `processing/parsers/PatternConstants.java`, `ApacheLogParser.java`, `SysLogParser.java`; the
//! field names are also in the AWS guide "Pre-process data with agents").
//!
//! The agent's patterns are Java regular expressions; they are written here for the `regex` crate
//! with Java's meaning kept: `\w`, `\d` and `\s` are ASCII there, and `.` stops at any line
//! terminator (so a line ending in `\r` does not match, as in the agent).

use regex::Regex;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LogFormat {
    CommonApacheLog,
    CombinedApacheLog,
    ApacheErrorLog,
    Syslog,
    Rfc3339Syslog,
}

const WORD_CHAR: &str = "[A-Za-z0-9_]";
const SPACE: &str = r"[ \t\n\x0B\x0C\r]";
/// Java's `.`: anything but a line terminator.
const ANY: &str = r"[^\n\r\x{85}\x{2028}\x{2029}]";
const INT: &str = "(?:[+-]?(?:[0-9]+))";
const POSINT: &str = "(?:[1-9][0-9]*)";
const NONNEGINT: &str = "(?:[0-9]+)";
const NOQUOTE: &str = "[^\"]+";
const USER: &str = "(?:[a-zA-Z0-9._-]+)";
const IP: &str = r"(?:[0-9.]+)";
const MONTHDAY: &str = "(?:(?:0[1-9])|(?:[12][0-9])|(?:3[01])|[1-9])";
const DAY: &str = "(?:Mon(?:day)?|Tue(?:sday)?|Wed(?:nesday)?|Thu(?:rsday)?|Fri(?:day)?|Sat(?:urday)?|Sun(?:day)?)";
const MONTH: &str = r"\b(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|Jun(?:e)?|Jul(?:y)?|Aug(?:ust)?|Sep(?:tember)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\b";
const YEAR: &str = "(?:[1-9][0-9]*)";
const HOUR: &str = "(?:2[0123]|[01]?[0-9])";
const MINUTE: &str = "(?:[0-5][0-9])";
const SECOND: &str = "(?:(?:[0-5]?[0-9]|60)(?:[:.,][0-9]+)?)";
const RFC3339: &str =
    "(?:[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\\.[0-9]+)?)(?:Z|(?:[-+][0-9]{2}:[0-9]{2}))";

const COMMON_FIELDS: [&str; 7] = ["host", "ident", "authuser", "datetime", "request", "response", "bytes"];
const COMBINED_EXTRA_FIELDS: [&str; 2] = ["referer", "agent"];
const ERROR_FIELDS: [&str; 7] = ["timestamp", "module", "severity", "processid", "threadid", "client", "message"];
const SYSLOG_FIELDS: [&str; 5] = ["timestamp", "hostname", "program", "processid", "message"];

fn time() -> String {
    format!("(?:{HOUR}:{MINUTE}:{SECOND})")
}

const HOST_NAME: &str = r"(?:[A-Za-z0-9_\-]+)(?:\.(?:[A-Za-z0-9_\-]+))*(?:\.?|\b)";

fn ip_or_host() -> String {
    format!("(?:{HOST_NAME}|{IP})")
}

fn common_apache_log() -> String {
    let http_date = format!("(?:{MONTHDAY}/{MONTH}/{YEAR}:{}{SPACE}{INT})", time());
    format!("({}) ({USER}) ({USER}) \\[({http_date})\\] \"({NOQUOTE})\" ({INT}|\\-) ({INT}|\\-)", ip_or_host())
}

/// The syslog line after its timestamp: an optional `<facility.priority>`, the host, the program
/// with an optional `[pid]`, and the message. Java's `.` in `<n.n>` is any character.
fn syslog_rest() -> String {
    format!("(?:<{NONNEGINT}{ANY}{NONNEGINT}> )?({USER}) ([A-Za-z0-9_._/%-]+)(?:\\[({POSINT})\\])?: ({ANY}*)")
}

impl LogFormat {
    pub fn parse(name: &str) -> Option<LogFormat> {
        Some(match name {
            "COMMONAPACHELOG" => LogFormat::CommonApacheLog,
            "COMBINEDAPACHELOG" => LogFormat::CombinedApacheLog,
            "APACHEERRORLOG" => LogFormat::ApacheErrorLog,
            "SYSLOG" => LogFormat::Syslog,
            "RFC3339SYSLOG" => LogFormat::Rfc3339Syslog,
            _ => return None,
        })
    }

    /// The pattern a whole record (without its newline) must match.
    pub fn pattern(self) -> String {
        match self {
            // Anything may follow the Apache access-log fields.
            LogFormat::CommonApacheLog => format!("{}{ANY}*", common_apache_log()),
            LogFormat::CombinedApacheLog => {
                format!("{} \"({NOQUOTE})\" \"({NOQUOTE})\"{ANY}*", common_apache_log())
            }
            LogFormat::ApacheErrorLog => {
                let timestamp = format!("(?:{DAY}{SPACE}+{MONTH}{SPACE}+{MONTHDAY}{SPACE}+{}{SPACE}+{YEAR})", time());
                let uri_host = format!("(?:{}(?::{POSINT})?)", ip_or_host());
                format!(
                    "\\[({timestamp})\\] \\[(?:({WORD_CHAR}+):)?({WORD_CHAR}+)\\] \\[pid ({NONNEGINT})(?::tid ({NONNEGINT}))?\\] \\[client ({uri_host})\\] ({ANY}*)"
                )
            }
            LogFormat::Syslog => {
                format!("({MONTH}{SPACE}+{MONTHDAY}{SPACE}+{}) {}", time(), syslog_rest())
            }
            LogFormat::Rfc3339Syslog => format!("({RFC3339}) {}", syslog_rest()),
        }
    }

    pub fn fields(self) -> Vec<String> {
        let names: Vec<&str> = match self {
            LogFormat::CommonApacheLog => COMMON_FIELDS.to_vec(),
            LogFormat::CombinedApacheLog => COMMON_FIELDS.iter().chain(&COMBINED_EXTRA_FIELDS).copied().collect(),
            LogFormat::ApacheErrorLog => ERROR_FIELDS.to_vec(),
            LogFormat::Syslog | LogFormat::Rfc3339Syslog => SYSLOG_FIELDS.to_vec(),
        };
        names.into_iter().map(String::from).collect()
    }

    /// Apache logs write `-` for a missing field; the agent turns it into null. Syslog keeps it.
    pub fn dash_is_null(self) -> bool {
        matches!(self, LogFormat::CommonApacheLog | LogFormat::CombinedApacheLog | LogFormat::ApacheErrorLog)
    }
}

/// A compiled LOGTOJSON parser: the pattern, anchored to the whole record, and the field names.
#[derive(Clone, Debug)]
pub struct LogParser {
    pattern: Regex,
    fields: Vec<String>,
    dash_is_null: bool,
}

impl LogParser {
    /// `matchPattern` replaces the format's pattern and then needs `customFieldNames`;
    /// `customFieldNames` alone renames the format's fields, one for one.
    pub fn new(
        format: LogFormat,
        match_pattern: Option<&str>,
        custom_fields: Option<Vec<String>>,
    ) -> Result<LogParser, String> {
        let (pattern, fields) = match (match_pattern, custom_fields) {
            (Some(_), None) => return Err("customFieldNames must be specified when matchPattern is specified".into()),
            (Some(pattern), Some(fields)) => (pattern.to_string(), fields),
            (None, Some(fields)) if fields.len() != format.fields().len() => {
                return Err(format!(
                "customFieldNames has {} names but {format:?} has {} fields; give matchPattern to change the fields",
                fields.len(),
                format.fields().len()
            ))
            }
            (None, fields) => (format.pattern(), fields.unwrap_or_else(|| format.fields())),
        };
        let anchored = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| format!("matchPattern {pattern:?}: {e}"))?;
        // The agent would drop every record of such a pattern; refusing it at start says why.
        if anchored.captures_len() - 1 != fields.len() {
            return Err(format!(
                "matchPattern has {} groups but customFieldNames has {} names",
                anchored.captures_len() - 1,
                fields.len()
            ));
        }
        Ok(LogParser { pattern: anchored, fields, dash_is_null: format.dash_is_null() })
    }

    /// The record's fields in order, None for a field that is absent; None when the record does
    /// not match (the agent then skips the record).
    pub fn parse<'a>(&'a self, record: &'a str) -> Option<Vec<(&'a str, Option<&'a str>)>> {
        let captures = self.pattern.captures(record)?;
        Some(
            self.fields
                .iter()
                .enumerate()
                .map(|(index, field)| {
                    let value =
                        captures.get(index + 1).map(|m| m.as_str()).filter(|v| !(self.dash_is_null && *v == "-"));
                    (field.as_str(), value)
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(format: LogFormat, line: &str) -> Option<Vec<(String, Option<String>)>> {
        let parser = LogParser::new(format, None, None).unwrap();
        parser.parse(line).map(|fields| fields.into_iter().map(|(k, v)| (k.to_string(), v.map(String::from))).collect())
    }

    fn values(format: LogFormat, line: &str) -> Vec<Option<String>> {
        parse(format, line).unwrap().into_iter().map(|(_, v)| v).collect()
    }

    fn some(values: &[&str]) -> Vec<Option<String>> {
        values.iter().map(|v| if *v == "-" { None } else { Some(v.to_string()) }).collect()
    }

    #[test]
    fn apache_access_logs() {
        let common = r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#;
        assert_eq!(
            values(LogFormat::CommonApacheLog, common),
            some(&[
                "127.0.0.1",
                "-",
                "frank",
                "10/Oct/2000:13:55:36 -0700",
                "GET /apache_pb.gif HTTP/1.0",
                "200",
                "2326"
            ])
        );
        let combined = format!(r#"{common} "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#);
        let fields = parse(LogFormat::CombinedApacheLog, &combined).unwrap();
        assert_eq!(fields[7], ("referer".into(), Some("http://www.example.com/start.html".into())));
        assert_eq!(fields[8], ("agent".into(), Some("Mozilla/4.08 [en] (Win98; I ;Nav)".into())));
        // Trailing text is allowed after the access-log fields; a CR is not (Java's `.`).
        assert!(parse(LogFormat::CommonApacheLog, &format!("{common} extra")).is_some());
        assert!(parse(LogFormat::CommonApacheLog, &format!("{common}\r")).is_none());
        assert!(parse(LogFormat::CommonApacheLog, "not a log line").is_none());
    }

    #[test]
    fn apache_error_log() {
        let line = "[Wed Oct 11 14:32:52 2000] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187] File does not exist: /usr/local/apache2/htdocs/favicon.ico";
        assert_eq!(
            values(LogFormat::ApacheErrorLog, line),
            some(&[
                "Wed Oct 11 14:32:52 2000",
                "core",
                "error",
                "35708",
                "4328636416",
                "72.15.99.187",
                "File does not exist: /usr/local/apache2/htdocs/favicon.ico"
            ])
        );
        let without_module = "[Wed Oct 11 14:32:52 2000] [error] [pid 35708] [client 72.15.99.187] oops";
        assert_eq!(
            values(LogFormat::ApacheErrorLog, without_module),
            vec![
                Some("Wed Oct 11 14:32:52 2000".into()),
                None,
                Some("error".into()),
                Some("35708".into()),
                None,
                Some("72.15.99.187".into()),
                Some("oops".into())
            ]
        );
    }

    #[test]
    fn syslogs() {
        assert_eq!(
            values(
                LogFormat::Syslog,
                "Mar 12 12:00:08 server2 rcd[308]: Loaded 12 packages in 'ximian-red-carpet|351'"
            ),
            some(&["Mar 12 12:00:08", "server2", "rcd", "308", "Loaded 12 packages in 'ximian-red-carpet|351'"])
        );
        let without_pid = values(LogFormat::Syslog, "Mar  2 09:01:02 host cron: - started");
        assert_eq!(without_pid[3], None);
        assert_eq!(without_pid[4], Some("- started".into()), "syslog keeps a dash");
        assert_eq!(
            values(LogFormat::Rfc3339Syslog, "2016-04-06T13:50:20.123+02:00 <4.2> web-1 nginx[12]: upstream timed out"),
            some(&["2016-04-06T13:50:20.123+02:00", "web-1", "nginx", "12", "upstream timed out"])
        );
        assert!(parse(LogFormat::Rfc3339Syslog, "Mar 12 12:00:08 server2 rcd[308]: x").is_none());
    }

    #[test]
    fn custom_fields_and_patterns() {
        let renamed = (1..=5).map(|i| format!("f{i}")).collect::<Vec<_>>();
        let parser = LogParser::new(LogFormat::Syslog, None, Some(renamed)).unwrap();
        assert_eq!(parser.parse("Mar 12 12:00:08 h p: m").unwrap()[0], ("f1", Some("Mar 12 12:00:08")));
        assert!(LogParser::new(LogFormat::Syslog, None, Some(vec!["a".into()])).is_err());
        assert!(LogParser::new(LogFormat::Syslog, Some("(a)"), None).is_err());
        assert!(LogParser::new(LogFormat::Syslog, Some("(a)(b)"), Some(vec!["x".into()])).is_err());
        let custom =
            LogParser::new(LogFormat::CommonApacheLog, Some(r"(\S+) (\S+)"), Some(vec!["a".into(), "b".into()]))
                .unwrap();
        assert_eq!(custom.parse("x -").unwrap(), vec![("a", Some("x")), ("b", None)]);
        assert!(custom.parse("x y z").is_none(), "the pattern must match the whole record");
    }
}
