//! The Redshift destination, served by any PostgreSQL server. AWS writes each batch to an
//! intermediate S3 object (records concatenated as sent) and runs `COPY table FROM 's3://…'` with
//! the stream's CopyOptions; here the same concatenated bytes are parsed the way Redshift's COPY
//! parses them (pipe-delimited text, CSV, JSON 'auto') and loaded with one `COPY … FROM STDIN` in
//! one transaction, so a retried batch never half-applies. No intermediate object or manifest is
//! written: the delivery loop puts the records of a batch whose retries ran out in the error
//! output instead.

use std::borrow::Cow;
use std::pin::pin;
use std::time::Duration;

use bytes::Bytes;
use futures_sink::Sink;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Transaction};

mod config;

pub use config::RedshiftConfig;

use super::{Batch, DeliveryError, Destination};
use crate::error::{ErrorOutput, FirehoseError};
use crate::processing::FailedRecord;

/// RedshiftRetryOptions.DurationInSeconds: default 3600, at most 7200 (API reference).
const DEFAULT_RETRY_SECS: i64 = 3600;
const MAX_RETRY_SECS: i64 = 7200;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// CopyData messages of this size keep memory flat on the server side for large batches.
const COPY_CHUNK: usize = 1 << 20;

/// Messages of Firehose's Redshift data delivery errors (CloudWatch Logs "Data Delivery Errors").
const TABLE_NOT_FOUND: &str = "The table to which to load data was not found. Ensure that the specified table exists.";
const SYNTAX_ERROR: &str = "The COPY command contains a syntax error. Retry the command.";
const AUTHENTICATION_FAILED: &str =
    "The provided user name and password failed authentication. Provide a valid user name and password.";
const DATA_LOAD_FAILED: &str = "Loading data into the table failed.";
const COLUMN_NOT_FOUND: &str = "A column in the COPY command does not exist in the table. Specify a valid column name.";
const DATABASE_NOT_FOUND: &str = "The database specified in the Amazon Redshift destination configuration or JDBC URL was not found. Specify a valid database name.";
const INCORRECT_COPY_OPTIONS: &str = "Conflicting or redundant COPY options were provided. Some options are not compatible in certain combinations. Check the COPY command reference for more info.";
const MISSING_COLUMN: &str = "There is a column defined in the table schema as NOT NULL without a DEFAULT value and not included in the column list. Exclude this column, ensure that the loaded data always provides a value for this column, or add a default value to the Amazon Redshift schema for this table.";
const CONNECTION_FAILED: &str = "The connection to the specified Amazon Redshift cluster failed. Ensure that security settings allow Kinesis Firehose connections, that the cluster or database specified in the Amazon Redshift destination configuration or JDBC URL is correct, and that the cluster is available.";
const INSUFFICIENT_PRIVILEGE: &str = "The user does not have permissions to load data into the table. Check the Amazon Redshift user permissions for the INSERT privilege.";
const READ_ONLY_CLUSTER: &str =
    "The query cannot be executed because the system is in resize mode. Try the query again later.";
const DISK_FULL: &str = "Data could not be loaded because the disk is full. Increase the capacity of the Amazon Redshift cluster or delete unused data to free disk space.";
const INTERNAL_ERROR: &str = "An internal error occurred while attempting to deliver data. Delivery will be retried; if the error persists, then it will be reported to AWS for resolution.";

fn error(code: &'static str, message: &str, detail: impl std::fmt::Display) -> DeliveryError {
    DeliveryError::new(code, format!("{message} ({detail})"))
}

fn syntax_error(detail: impl std::fmt::Display) -> DeliveryError {
    error("Redshift.SyntaxError", SYNTAX_ERROR, detail)
}

fn incorrect_options(detail: impl std::fmt::Display) -> DeliveryError {
    error("Redshift.IncorrectCopyOptions", INCORRECT_COPY_OPTIONS, detail)
}

fn load_failed(detail: impl std::fmt::Display) -> DeliveryError {
    error("Redshift.DataLoadFailed", DATA_LOAD_FAILED, detail)
}

pub struct RedshiftDestination {
    connection: tokio_postgres::Config,
    /// What the CopyCommand asks for; an invalid one fails every attempt, as its COPY would on
    /// Redshift (AWS does not validate CopyOptions when the stream is created).
    plan: Result<CopyPlan, DeliveryError>,
    retry: Duration,
    /// One session, reused across batches and replaced once it breaks.
    client: Mutex<Option<Client>>,
}

impl RedshiftDestination {
    pub fn new(config: &RedshiftConfig) -> Result<Self, FirehoseError> {
        let invalid = |message: &str| FirehoseError::InvalidRedshift(message.into());
        let url = config.cluster_jdbc_url.as_deref().ok_or_else(|| invalid("ClusterJDBCURL is required"))?;
        let endpoint = Endpoint::parse(url)?;
        let copy = config.copy_command.as_ref().ok_or_else(|| invalid("CopyCommand is required"))?;
        if copy.data_table_name.trim().is_empty() {
            return Err(invalid("CopyCommand.DataTableName must not be empty"));
        }
        let user = config
            .username
            .as_deref()
            .filter(|user| !user.is_empty())
            .ok_or_else(|| invalid("Username is required"))?;
        let mut connection = tokio_postgres::Config::new();
        connection
            .host(&endpoint.host)
            .port(endpoint.port)
            .dbname(&endpoint.database)
            .user(user)
            .application_name("tideline-firehose")
            .connect_timeout(CONNECT_TIMEOUT);
        if let Some(password) = &config.password {
            connection.password(password);
        }
        let plan =
            CopyPlan::new(&copy.data_table_name, copy.data_table_columns.as_deref(), copy.copy_options.as_deref());
        let seconds = config
            .retry_options
            .as_ref()
            .and_then(|retry| retry.duration_in_seconds)
            .unwrap_or(DEFAULT_RETRY_SECS)
            .clamp(0, MAX_RETRY_SECS);
        Ok(Self { connection, plan, retry: Duration::from_secs(seconds.unsigned_abs()), client: Mutex::new(None) })
    }

    async fn connect(&self) -> Result<Client, DeliveryError> {
        let (client, connection) = self.connection.connect(NoTls).await.map_err(|err| classify(&err))?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%err, "redshift destination: PostgreSQL connection ended");
            }
        });
        Ok(client)
    }
}

#[async_trait::async_trait]
impl Destination for RedshiftDestination {
    /// COPY is all or nothing (MAXERROR is accepted but not applied), so no record is refused alone.
    async fn deliver(&self, batch: &Batch) -> Result<Vec<FailedRecord>, DeliveryError> {
        let plan = self.plan.as_ref().map_err(Clone::clone)?;
        if batch.records.is_empty() {
            return Ok(Vec::new());
        }
        // The intermediate S3 object: records back to back, as Firehose concatenates them.
        let mut data = Vec::with_capacity(batch.records.iter().map(|record| record.data.len()).sum());
        for record in &batch.records {
            data.extend_from_slice(&record.data);
        }
        // Held for the whole attempt: one COPY at a time per destination, as Firehose issues
        // the next COPY only after the previous one finished.
        let mut slot = self.client.lock().await;
        let mut client = match slot.take() {
            Some(client) if !client.is_closed() => client,
            _ => self.connect().await?,
        };
        let result = plan.load(&mut client, Bytes::from(data)).await;
        let broken = client.is_closed() || matches!(&result, Err(err) if err.code == "Redshift.ConnectionFailed");
        if !broken {
            *slot = Some(client);
        }
        result.map(|()| Vec::new())
    }

    fn retry_duration(&self) -> Option<Duration> {
        Some(self.retry)
    }

    /// AWS puts a manifest of the skipped S3 objects under `errors/` in the S3 configuration's
    /// bucket; without intermediate objects the records themselves go to that folder.
    fn error_output(&self) -> ErrorOutput {
        ErrorOutput::Errors
    }
}

/// Maps a PostgreSQL failure to the Firehose error code the same failure has on Redshift.
fn classify(err: &tokio_postgres::Error) -> DeliveryError {
    let Some(db) = err.as_db_error() else {
        // No server answer: I/O, a closed session, or a client-side refusal (e.g. the server
        // asked for a password that the configuration lacks).
        let text = err.to_string();
        return if text.contains("password") {
            error("Redshift.AuthenticationFailed", AUTHENTICATION_FAILED, text)
        } else {
            error("Redshift.ConnectionFailed", CONNECTION_FAILED, text)
        };
    };
    let detail = db.message();
    let code = db.code();
    if *code == SqlState::INVALID_PASSWORD || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
        error("Redshift.AuthenticationFailed", AUTHENTICATION_FAILED, detail)
    } else if *code == SqlState::INVALID_CATALOG_NAME {
        error("Redshift.DatabaseNotFound", DATABASE_NOT_FOUND, detail)
    } else if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::INVALID_SCHEMA_NAME {
        error("Redshift.TableNotFound", TABLE_NOT_FOUND, detail)
    } else if *code == SqlState::UNDEFINED_COLUMN {
        error("Redshift.ColumnNotFound", COLUMN_NOT_FOUND, detail)
    } else if *code == SqlState::SYNTAX_ERROR || *code == SqlState::INVALID_NAME {
        syntax_error(detail)
    } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        error("Redshift.InsufficientPrivilege", INSUFFICIENT_PRIVILEGE, detail)
    } else if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
        error("Redshift.ReadOnlyCluster", READ_ONLY_CLUSTER, detail)
    } else if *code == SqlState::DISK_FULL {
        error("Redshift.DiskFull", DISK_FULL, detail)
    } else if code.code().starts_with("08") || code.code().starts_with("57") {
        // Connection exceptions and shutdowns (admin_shutdown, cannot_connect_now, …).
        error("Redshift.ConnectionFailed", CONNECTION_FAILED, detail)
    } else if code.code().starts_with("22") || code.code().starts_with("23") {
        // Data exceptions and integrity violations: Redshift reports a failed load.
        load_failed(detail)
    } else {
        error("InternalError", INTERNAL_ERROR, detail)
    }
}

/// `jdbc:redshift://HOST:PORT/DB` or `jdbc:postgresql://HOST:PORT/DB`, JDBC properties ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    host: String,
    port: u16,
    database: String,
}

impl Endpoint {
    fn parse(url: &str) -> Result<Self, FirehoseError> {
        let invalid = |why: &str| FirehoseError::InvalidRedshift(format!("ClusterJDBCURL {url:?} is invalid: {why}"));
        let (rest, default_port) = if let Some(rest) = url.strip_prefix("jdbc:redshift://") {
            (rest, 5439)
        } else if let Some(rest) = url.strip_prefix("jdbc:postgresql://") {
            (rest, 5432)
        } else {
            return Err(invalid("it must start with jdbc:redshift:// or jdbc:postgresql://"));
        };
        let rest = rest.split(['?', ';']).next().unwrap_or_default();
        let (authority, database) = rest.split_once('/').ok_or_else(|| invalid("it names no database"))?;
        if database.is_empty() || database.contains('/') {
            return Err(invalid("it names no database"));
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(bracketed) => {
                let (host, after) = bracketed.split_once(']').ok_or_else(|| invalid("unclosed '['"))?;
                (host, after.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        if host.is_empty() {
            return Err(invalid("it names no host"));
        }
        let port = match port {
            Some(port) => port.parse::<u16>().map_err(|_| invalid("the port is not a number from 0 to 65535"))?,
            None => default_port,
        };
        Ok(Self { host: host.to_string(), port, database: database.to_string() })
    }
}

/// The CopyCommand, parsed: the table, its column list and the data format.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CopyPlan {
    /// The table as SQL, every part quoted: `"schema"."table"`.
    table: String,
    /// DataTableColumns, folded and unquoted; None: every column of the table.
    columns: Option<Vec<String>>,
    options: CopyOptions,
}

impl CopyPlan {
    fn new(table: &str, columns: Option<&str>, options: Option<&str>) -> Result<Self, DeliveryError> {
        let parts = identifiers(table, '.')?;
        if parts.len() > 2 {
            return Err(syntax_error(format!("table name {table:?} has more than a schema and a name")));
        }
        let table = parts.iter().map(|part| quote_identifier(part)).collect::<Vec<_>>().join(".");
        let columns = match columns.filter(|columns| !columns.trim().is_empty()) {
            Some(columns) => Some(identifiers(columns, ',')?),
            None => None,
        };
        let options = CopyOptions::parse(options.unwrap_or_default())?;
        Ok(Self { table, columns, options })
    }

    async fn load(&self, client: &mut Client, data: Bytes) -> Result<(), DeliveryError> {
        let transaction = client.transaction().await.map_err(|err| classify(&err))?;
        let table_columns = table_columns(&transaction, &self.table).await?;
        let targets = self.targets(&table_columns)?;
        // Parsing a buffer of up to 128 MiB is seconds of CPU: not on the runtime threads.
        let (options, owned): (CopyOptions, Vec<Column>) =
            (self.options.clone(), targets.iter().map(|column| (*column).clone()).collect());
        let rows = tokio::task::spawn_blocking(move || {
            let targets: Vec<&Column> = owned.iter().collect();
            encode_rows(&data, &options, &targets)
        })
        .await
        .map_err(|join| error("Redshift.InternalError", "Internal error", format!("parsing failed: {join}")))??;
        if rows.is_empty() {
            // Nothing but blank lines or whitespace: an empty COPY, which commits nothing.
            return Ok(());
        }
        let column_list = targets.iter().map(|column| quote_identifier(&column.name)).collect::<Vec<_>>().join(", ");
        let statement = format!("COPY {} ({column_list}) FROM STDIN", self.table);
        let sink = transaction.copy_in::<_, Bytes>(&statement).await.map_err(|err| classify(&err))?;
        let mut sink = pin!(sink);
        let rows = Bytes::from(rows);
        let mut offset = 0;
        while offset < rows.len() {
            let end = rows.len().min(offset + COPY_CHUNK);
            std::future::poll_fn(|cx| sink.as_mut().poll_ready(cx)).await.map_err(|err| classify(&err))?;
            sink.as_mut().start_send(rows.slice(offset..end)).map_err(|err| classify(&err))?;
            offset = end;
        }
        sink.as_mut().finish().await.map_err(|err| classify(&err))?;
        transaction.commit().await.map_err(|err| classify(&err))
    }

    /// The columns the data fills, in order, as Redshift picks them: the column list, else every
    /// column but identity and generated ones.
    fn targets<'a>(&self, table: &'a [Column]) -> Result<Vec<&'a Column>, DeliveryError> {
        let targets = match &self.columns {
            Some(names) => names
                .iter()
                .map(|name| {
                    table.iter().find(|column| &column.name == name).ok_or_else(|| {
                        error("Redshift.ColumnNotFound", COLUMN_NOT_FOUND, format!("column {name:?} does not exist"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => table.iter().filter(|column| !column.generated).collect(),
        };
        if let Some(missing) = table
            .iter()
            .find(|column| column.not_null && !column.has_default && !column.generated && !targets.contains(column))
        {
            return Err(error("Redshift.MissingColumn", MISSING_COLUMN, format!("column {:?}", missing.name)));
        }
        Ok(targets)
    }
}

/// A column of the target table, as COPY needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    name: String,
    /// CHAR/VARCHAR/TEXT-like: empty fields load as empty strings rather than NULL.
    string: bool,
    not_null: bool,
    has_default: bool,
    /// Identity or generated: filled by the database unless named in the column list.
    generated: bool,
}

async fn table_columns(client: &Transaction<'_>, table: &str) -> Result<Vec<Column>, DeliveryError> {
    let rows = client
        .query(
            "SELECT a.attname::text, t.typcategory = 'S', a.attnotnull, a.atthasdef, \
                    a.attidentity <> '' OR a.attgenerated <> '' \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&table],
        )
        .await
        .map_err(|err| classify(&err))?;
    rows.iter()
        .map(|row| {
            Ok(Column {
                name: row.try_get(0)?,
                string: row.try_get(1)?,
                not_null: row.try_get(2)?,
                has_default: row.try_get(3)?,
                generated: row.try_get(4)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()
        .map_err(|err| classify(&err))
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `schema.Table`, `"Mixed Case".t`, `a, "b c"`: SQL identifiers separated by `separator`,
/// unquoted ones folded to lower case as Redshift and PostgreSQL fold them.
fn identifiers(text: &str, separator: char) -> Result<Vec<String>, DeliveryError> {
    let mut names = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut name = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('"') if chars.next_if_eq(&'"').is_some() => name.push('"'),
                    Some('"') => break,
                    Some(c) => name.push(c),
                    None => return Err(syntax_error(format!("unterminated quoted identifier in {text:?}"))),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != separator && !c.is_whitespace()) {
                name.extend(c.to_lowercase());
            }
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if name.is_empty() {
            return Err(syntax_error(format!("empty identifier in {text:?}")));
        }
        names.push(name);
        match chars.next() {
            None => return Ok(names),
            Some(c) if c == separator => {}
            Some(c) => return Err(syntax_error(format!("unexpected {c:?} in {text:?}"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Format {
    /// Redshift's default: one row per line, fields split by the delimiter (`|`).
    Text {
        delimiter: String,
        escape: bool,
    },
    Csv {
        delimiter: String,
        quote: char,
    },
    /// JSON 'auto' (keys match column names exactly) or 'auto ignorecase'.
    Json {
        ignore_case: bool,
    },
}

/// The CopyOptions that decide how the data reads; options about S3, compression, encryption
/// or statistics change nothing here and are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CopyOptions {
    format: Format,
    null_as: String,
    empty_as_null: bool,
    blanks_as_null: bool,
    trim_blanks: bool,
    fill_record: bool,
    ignore_header: usize,
    ignore_blank_lines: bool,
    /// ACCEPTINVCHARS: invalid UTF-8 bytes become this character instead of failing the load.
    invalid_char: Option<char>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// Upper-cased.
    Word(String),
    /// A quoted string, as written between the quotes (backslashes kept).
    Text(String),
    Number(u64),
}

fn tokenize(options: &str) -> Result<Vec<Token>, DeliveryError> {
    let mut tokens = Vec::new();
    let mut chars = options.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_whitespace() || c == ',' || c == ';' {
            continue;
        }
        if c == '\'' {
            let mut text = String::new();
            loop {
                match chars.next() {
                    Some('\'') if chars.next_if_eq(&'\'').is_some() => text.push('\''),
                    Some('\'') => break,
                    Some(c) => text.push(c),
                    None => return Err(syntax_error("unterminated quoted string in CopyOptions")),
                }
            }
            tokens.push(Token::Text(text));
        } else if c.is_ascii_digit() {
            let mut digits = c.to_string();
            while let Some(digit) = chars.next_if(char::is_ascii_digit) {
                digits.push(digit);
            }
            let number = digits.parse().map_err(|_| syntax_error(format!("number {digits} is too large")))?;
            tokens.push(Token::Number(number));
        } else if c.is_alphabetic() || c == '_' {
            let mut word = c.to_uppercase().collect::<String>();
            while let Some(c) = chars.next_if(|c| c.is_alphanumeric() || *c == '_') {
                word.extend(c.to_uppercase());
            }
            tokens.push(Token::Word(word));
        } else {
            return Err(syntax_error(format!("unexpected {c:?} in CopyOptions")));
        }
    }
    Ok(tokens)
}

struct Tokens(std::iter::Peekable<std::vec::IntoIter<Token>>);

impl Tokens {
    fn skip_as(&mut self) {
        self.0.next_if_eq(&Token::Word("AS".into()));
    }

    fn text(&mut self, option: &str) -> Result<String, DeliveryError> {
        self.skip_as();
        match self.0.next() {
            Some(Token::Text(text)) => Ok(text),
            _ => Err(syntax_error(format!("{option} needs a quoted value"))),
        }
    }

    fn optional_text(&mut self) -> Option<String> {
        self.skip_as();
        match self.0.next_if(|token| matches!(token, Token::Text(_))) {
            Some(Token::Text(text)) => Some(text),
            _ => None,
        }
    }

    fn number(&mut self, option: &str) -> Result<u64, DeliveryError> {
        self.skip_as();
        match self.0.next() {
            Some(Token::Number(number)) => Ok(number),
            _ => Err(syntax_error(format!("{option} needs a number"))),
        }
    }

    fn optional_word(&mut self, words: &[&str]) {
        self.0.next_if(|token| matches!(token, Token::Word(word) if words.contains(&word.as_str())));
    }
}

/// A one-character option value: QUOTE and ACCEPTINVCHARS.
fn single_char(option: &str, text: &str) -> Result<char, DeliveryError> {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok(c),
        _ => Err(syntax_error(format!("{option} must be a single character, not {text:?}"))),
    }
}

/// DELIMITER values may spell characters as `\t` or in octal (`\001`).
fn delimiter(text: &str) -> Result<String, DeliveryError> {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(digit @ '0'..='7') => {
                let mut value = digit.to_digit(8).unwrap_or_default();
                for _ in 0..2 {
                    if let Some(next) = chars.next_if(|c| c.is_digit(8)) {
                        value = value * 8 + next.to_digit(8).unwrap_or_default();
                    }
                }
                out.push(char::from_u32(value).ok_or_else(|| syntax_error(format!("bad delimiter {text:?}")))?);
            }
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    if out.is_empty() || out.contains('\n') {
        return Err(syntax_error(format!("invalid DELIMITER {text:?}")));
    }
    Ok(out)
}

impl CopyOptions {
    fn parse(options: &str) -> Result<Self, DeliveryError> {
        let mut tokens = Tokens(tokenize(options)?.into_iter().peekable());
        let (mut csv, mut json, mut escape) = (false, None, false);
        let (mut delimiter_text, mut quote) = (None, None);
        let mut parsed = Self {
            format: Format::Text { delimiter: "|".into(), escape: false },
            null_as: "\\N".into(),
            empty_as_null: false,
            blanks_as_null: false,
            trim_blanks: false,
            fill_record: false,
            ignore_header: 0,
            ignore_blank_lines: false,
            invalid_char: None,
        };
        while let Some(token) = tokens.0.next() {
            let Token::Word(word) = token else {
                return Err(syntax_error(format!("unexpected {token:?} in CopyOptions")));
            };
            match word.as_str() {
                "FORMAT" => tokens.skip_as(),
                "CSV" => csv = true,
                "QUOTE" => quote = Some(single_char("QUOTE", &tokens.text("QUOTE")?)?),
                "DELIMITER" => delimiter_text = Some(delimiter(&tokens.text("DELIMITER")?)?),
                "JSON" => {
                    let option = tokens.optional_text().unwrap_or_else(|| "auto".into());
                    json = Some(match option.trim().to_ascii_lowercase().as_str() {
                        "auto" => false,
                        "auto ignorecase" => true,
                        other if other.starts_with("s3://") => {
                            return Err(incorrect_options("JSONPaths files are not supported by Tideline"))
                        }
                        _ => return Err(syntax_error(format!("JSON option {option:?}"))),
                    });
                }
                "ESCAPE" => escape = true,
                "NULL" => parsed.null_as = tokens.text("NULL AS")?,
                "EMPTYASNULL" => parsed.empty_as_null = true,
                "BLANKSASNULL" => parsed.blanks_as_null = true,
                "TRIMBLANKS" => parsed.trim_blanks = true,
                "FILLRECORD" => parsed.fill_record = true,
                "IGNOREBLANKLINES" => parsed.ignore_blank_lines = true,
                "IGNOREHEADER" => {
                    let lines = tokens.number("IGNOREHEADER")?;
                    parsed.ignore_header = usize::try_from(lines).unwrap_or(usize::MAX);
                }
                "ACCEPTINVCHARS" => {
                    let replacement = tokens.optional_text().unwrap_or_else(|| "?".into());
                    parsed.invalid_char = Some(single_char("ACCEPTINVCHARS", &replacement)?);
                }
                // Compression, S3, credentials and type-conversion tuning: nothing to do here.
                "GZIP" | "LZOP" | "BZIP2" | "ZSTD" | "MANIFEST" | "ENCRYPTED" | "TRUNCATECOLUMNS" | "ROUNDEC"
                | "EXPLICIT_IDS" | "ACCEPTANYDATE" | "ESCAPE_QUOTES" => {}
                "TIMEFORMAT"
                | "DATEFORMAT"
                | "REGION"
                | "IAM_ROLE"
                | "CREDENTIALS"
                | "ACCESS_KEY_ID"
                | "SECRET_ACCESS_KEY"
                | "SESSION_TOKEN"
                | "MASTER_SYMMETRIC_KEY" => {
                    tokens.optional_text();
                }
                "MAXERROR" | "COMPROWS" | "READRATIO" => {
                    tokens.number(&word)?;
                }
                "COMPUPDATE" | "STATUPDATE" => tokens.optional_word(&["ON", "OFF", "TRUE", "FALSE", "PRESET"]),
                "FIXEDWIDTH" | "AVRO" | "PARQUET" | "ORC" | "SHAPEFILE" | "REMOVEQUOTES" | "NOLOAD" => {
                    return Err(incorrect_options(format!("{word} is not supported by Tideline")))
                }
                _ => return Err(syntax_error(format!("unknown COPY option {word}"))),
            }
        }
        parsed.format = match json {
            Some(ignore_case) => {
                if csv || delimiter_text.is_some() || quote.is_some() {
                    return Err(incorrect_options("JSON can't be used with CSV, DELIMITER or QUOTE"));
                }
                Format::Json { ignore_case }
            }
            None if csv => {
                if escape {
                    return Err(incorrect_options("CSV can't be used with ESCAPE"));
                }
                Format::Csv { delimiter: delimiter_text.unwrap_or_else(|| ",".into()), quote: quote.unwrap_or('"') }
            }
            None => {
                if quote.is_some() {
                    return Err(incorrect_options("QUOTE can be used only with CSV"));
                }
                Format::Text { delimiter: delimiter_text.unwrap_or_else(|| "|".into()), escape }
            }
        };
        Ok(parsed)
    }
}

/// One field of a text or CSV row, before the column's NULL rules apply.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    /// Matched NULL AS.
    Null,
    Value(String),
}

/// UTF-8 text of the data, with ACCEPTINVCHARS' replacement for each invalid byte.
fn decode(data: &[u8], replacement: Option<char>) -> Result<Cow<'_, str>, DeliveryError> {
    match (std::str::from_utf8(data), replacement) {
        (Ok(text), _) => Ok(Cow::Borrowed(text)),
        (Err(err), None) => Err(load_failed(format!(
            "Invalid UTF-8 at byte {}; ACCEPTINVCHARS loads such data with a replacement character",
            err.valid_up_to()
        ))),
        (Err(_), Some(replacement)) => {
            let mut text = String::with_capacity(data.len());
            for chunk in data.utf8_chunks() {
                text.push_str(chunk.valid());
                text.extend(std::iter::repeat_n(replacement, chunk.invalid().len()));
            }
            Ok(Cow::Owned(text))
        }
    }
}

/// The text after the first `lines` lines (IGNOREHEADER).
fn skip_lines(text: &str, lines: usize) -> &str {
    let mut rest = text;
    for _ in 0..lines {
        rest = rest.split_once('\n').map_or("", |(_, after)| after);
    }
    rest
}

/// Redshift's delimited text: a row per line; with ESCAPE a backslash makes the next character
/// (delimiter, newline, backslash) literal.
fn split_text(text: &str, delimiter: &str, escape: bool, options: &CopyOptions) -> Vec<Vec<Field>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut value = String::new();
    let mut field_start = 0;
    let mut index = 0;
    let finish_field = |row: &mut Vec<Field>, value: &mut String, raw: &str| {
        row.push(if raw == options.null_as { Field::Null } else { Field::Value(std::mem::take(value)) });
        value.clear();
    };
    while let Some(c) = text[index..].chars().next() {
        if escape && c == '\\' {
            index += 1;
            match text[index..].chars().next() {
                Some(next) => {
                    value.push(next);
                    index += next.len_utf8();
                }
                None => value.push('\\'),
            }
        } else if text[index..].starts_with(delimiter) {
            finish_field(&mut row, &mut value, &text[field_start..index]);
            index += delimiter.len();
            field_start = index;
        } else if c == '\n' {
            let blank = row.is_empty() && field_start == index;
            if !(blank && options.ignore_blank_lines) {
                finish_field(&mut row, &mut value, &text[field_start..index]);
                rows.push(std::mem::take(&mut row));
            }
            index += 1;
            field_start = index;
        } else {
            value.push(c);
            index += c.len_utf8();
        }
    }
    if field_start < text.len() || !row.is_empty() {
        finish_field(&mut row, &mut value, &text[field_start..]);
        rows.push(row);
    }
    rows
}

/// Redshift's CSV: fields optionally enclosed in the quote character, a doubled quote inside
/// stands for one; blanks between a delimiter and an opening quote are ignored.
fn split_csv(
    text: &str,
    delimiter: &str,
    quote: char,
    options: &CopyOptions,
) -> Result<Vec<Vec<Field>>, DeliveryError> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut index = 0;
    let is_blank = |c: char| (c == ' ' || c == '\t') && !delimiter.starts_with(c);
    loop {
        let rest = &text[index..];
        if rest.is_empty() {
            if !row.is_empty() {
                // The data ended right after a delimiter: its last field is empty.
                row.push(Field::Value(String::new()));
                rows.push(row);
            }
            break;
        }
        if row.is_empty() {
            if let Some(after) = rest.strip_prefix("\r\n").or_else(|| rest.strip_prefix('\n')) {
                index = text.len() - after.len();
                if !options.ignore_blank_lines {
                    rows.push(vec![Field::Value(String::new())]);
                }
                continue;
            }
        }
        let leading = rest.len() - rest.trim_start_matches(is_blank).len();
        if rest[leading..].starts_with(quote) {
            index += leading + quote.len_utf8();
            let mut value = String::new();
            loop {
                let Some(c) = text[index..].chars().next() else {
                    return Err(load_failed("unterminated quoted CSV field"));
                };
                index += c.len_utf8();
                if c != quote {
                    value.push(c);
                } else if text[index..].starts_with(quote) {
                    value.push(quote);
                    index += quote.len_utf8();
                } else {
                    break;
                }
            }
            index += text[index..].len() - text[index..].trim_start_matches(is_blank).len();
            row.push(Field::Value(value));
        } else {
            // Searched within the line only, so a file without delimiters stays linear.
            let line_end = rest.find('\n').unwrap_or(rest.len());
            let end = rest[..line_end].find(delimiter).unwrap_or(line_end);
            let mut raw = &rest[..end];
            if end == line_end {
                raw = raw.strip_suffix('\r').unwrap_or(raw);
            }
            index += end;
            row.push(if raw == options.null_as { Field::Null } else { Field::Value(raw.to_string()) });
        }
        let rest = &text[index..];
        if rest.starts_with(delimiter) {
            index += delimiter.len();
        } else if let Some(after) = rest.strip_prefix("\r\n").or_else(|| rest.strip_prefix('\n')) {
            index = text.len() - after.len();
            rows.push(std::mem::take(&mut row));
        } else if rest.is_empty() {
            rows.push(std::mem::take(&mut row));
            break;
        } else {
            return Err(load_failed(format!(
                "unexpected characters after a closing quote in CSV row {}",
                rows.len() + 1
            )));
        }
    }
    Ok(rows)
}

/// The field as the column receives it: NULL AS, empty fields of non-character columns,
/// EMPTYASNULL, BLANKSASNULL and TRIMBLANKS.
fn field_value(field: Field, column: &Column, options: &CopyOptions) -> Option<String> {
    let Field::Value(mut value) = field else {
        return None;
    };
    if column.string && options.trim_blanks {
        value.truncate(value.trim_end_matches(' ').len());
    }
    let null = if column.string {
        (options.empty_as_null && value.is_empty()) || (options.blanks_as_null && value.trim().is_empty())
    } else {
        value.is_empty()
    };
    (!null).then_some(value)
}

/// A JSON value as COPY loads it into a column: strings unquoted, nested objects and arrays as
/// their JSON text.
fn json_value(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

/// The data as the rows of a PostgreSQL text-format COPY (tab-separated, `\N` for NULL).
fn encode_rows(data: &[u8], options: &CopyOptions, columns: &[&Column]) -> Result<Vec<u8>, DeliveryError> {
    let text = decode(data, options.invalid_char)?;
    let text = skip_lines(&text, options.ignore_header);
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let mut row_values: Vec<Option<String>> = Vec::with_capacity(columns.len());
    let mut push_row = |values: &mut Vec<Option<String>>| {
        for (position, value) in values.drain(..).enumerate() {
            if position > 0 {
                out.push('\t');
            }
            push_copy_value(&mut out, value.as_deref());
        }
        out.push('\n');
    };
    match &options.format {
        Format::Json { ignore_case } => {
            let lowered: Vec<String> = columns.iter().map(|column| column.name.to_lowercase()).collect();
            for (number, value) in serde_json::Deserializer::from_str(text).into_iter::<Value>().enumerate() {
                let value =
                    value.map_err(|err| load_failed(format!("invalid JSON in object {}: {err}", number + 1)))?;
                let Value::Object(object) = value else {
                    return Err(load_failed(format!(
                        "JSON value {} is not an object (arrays need a JSONPaths file, which Tideline does not support)",
                        number + 1
                    )));
                };
                for (column, lowered) in columns.iter().zip(&lowered) {
                    let found = if *ignore_case {
                        object.iter().find(|(key, _)| key.to_lowercase() == *lowered).map(|(_, value)| value)
                    } else {
                        object.get(&column.name)
                    };
                    row_values.push(json_value(found));
                }
                push_row(&mut row_values);
            }
        }
        Format::Text { .. } | Format::Csv { .. } => {
            let rows = match &options.format {
                Format::Csv { delimiter, quote } => split_csv(text, delimiter, *quote, options)?,
                Format::Text { delimiter, escape } => split_text(text, delimiter, *escape, options),
                Format::Json { .. } => Vec::new(),
            };
            for (number, mut fields) in rows.into_iter().enumerate() {
                if fields.len() > columns.len() {
                    return Err(load_failed(format!(
                        "Extra column(s) found in row {}: {} fields for {} columns",
                        number + 1,
                        fields.len(),
                        columns.len()
                    )));
                }
                if fields.len() < columns.len() {
                    if !options.fill_record {
                        return Err(load_failed(format!(
                            "Delimiter not found in row {}: {} fields for {} columns",
                            number + 1,
                            fields.len(),
                            columns.len()
                        )));
                    }
                    fields.resize(columns.len(), Field::Null);
                }
                row_values
                    .extend(fields.into_iter().zip(columns).map(|(field, column)| field_value(field, column, options)));
                push_row(&mut row_values);
            }
        }
    }
    Ok(out.into_bytes())
}

fn push_copy_value(out: &mut String, value: Option<&str>) {
    let Some(value) = value else {
        out.push_str("\\N");
        return;
    };
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::config::CopyCommand;
    use super::*;

    fn options(text: &str) -> CopyOptions {
        match CopyOptions::parse(text) {
            Ok(options) => options,
            Err(err) => panic!("{text:?}: {err}"),
        }
    }

    fn column(name: &str, string: bool) -> Column {
        Column { name: name.into(), string, not_null: false, has_default: false, generated: false }
    }

    fn encode(data: &str, copy_options: &str, columns: &[Column]) -> Result<String, DeliveryError> {
        let refs: Vec<&Column> = columns.iter().collect();
        encode_rows(data.as_bytes(), &options(copy_options), &refs)
            .map(|out| String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn jdbc_urls() {
        let endpoint = Endpoint::parse("jdbc:redshift://example.abc.us-east-1.redshift.amazonaws.com:5439/dev")
            .map_err(|e| e.to_string());
        assert_eq!(
            endpoint,
            Ok(Endpoint {
                host: "example.abc.us-east-1.redshift.amazonaws.com".into(),
                port: 5439,
                database: "dev".into()
            })
        );
        let endpoint = Endpoint::parse("jdbc:postgresql://127.0.0.1/db?ssl=true").map_err(|e| e.to_string());
        assert_eq!(endpoint, Ok(Endpoint { host: "127.0.0.1".into(), port: 5432, database: "db".into() }));
        let endpoint = Endpoint::parse("jdbc:redshift://[::1]:6000/x").map_err(|e| e.to_string());
        assert_eq!(endpoint, Ok(Endpoint { host: "::1".into(), port: 6000, database: "x".into() }));
        for bad in ["postgres://h:1/db", "jdbc:redshift://h:1", "jdbc:redshift://h:99999/db", "jdbc:redshift://:1/db"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn retry_duration_defaults_to_an_hour_and_is_capped() {
        let mut config = RedshiftConfig {
            cluster_jdbc_url: Some("jdbc:redshift://h:5439/dev".into()),
            copy_command: Some(CopyCommand { data_table_name: "t".into(), ..Default::default() }),
            username: Some("u".into()),
            password: Some("p".into()),
            ..Default::default()
        };
        let destination = RedshiftDestination::new(&config).map_err(|err| err.to_string());
        assert_eq!(destination.map(|d| d.retry_duration()), Ok(Some(Duration::from_secs(3600))));
        config.retry_options = Some(crate::model::RetryOptions { duration_in_seconds: Some(99_999) });
        let destination = RedshiftDestination::new(&config).map_err(|err| err.to_string());
        assert_eq!(destination.map(|d| d.retry_duration()), Ok(Some(Duration::from_secs(7200))));
        config.username = None;
        assert!(RedshiftDestination::new(&config).is_err());
    }

    #[test]
    fn table_and_column_names_fold_like_sql() {
        let plan = CopyPlan::new("Public.\"My \"\"Events\"\"\"", Some(" Id , \"Name\""), None);
        let plan = plan.map(|plan| (plan.table, plan.columns));
        assert_eq!(plan, Ok(("\"public\".\"My \"\"Events\"\"\"".into(), Some(vec!["id".into(), "Name".into()]))));
        assert_eq!(CopyPlan::new("a.b.c", None, None).map_err(|err| err.code), Err("Redshift.SyntaxError"));
        assert_eq!(CopyPlan::new("t", Some("a,,b"), None).map_err(|err| err.code), Err("Redshift.SyntaxError"));
    }

    #[test]
    fn copy_options() {
        assert_eq!(options("").format, Format::Text { delimiter: "|".into(), escape: false });
        assert_eq!(options("json 'auto'").format, Format::Json { ignore_case: false });
        assert_eq!(options("FORMAT AS JSON 'auto ignorecase' GZIP").format, Format::Json { ignore_case: true });
        assert_eq!(
            options("CSV QUOTE AS '''' DELIMITER '\\t' IGNOREHEADER 1").format,
            Format::Csv { delimiter: "\t".into(), quote: '\'' }
        );
        assert_eq!(
            options("DELIMITER AS '\\001' ESCAPE").format,
            Format::Text { delimiter: "\u{1}".into(), escape: true }
        );
        let parsed = options("delimiter ',' null as 'NULL' emptyasnull blanksasnull acceptinvchars '^' maxerror 10 timeformat 'auto' compupdate off");
        assert_eq!(parsed.null_as, "NULL");
        assert!(parsed.empty_as_null && parsed.blanks_as_null);
        assert_eq!(parsed.invalid_char, Some('^'));
        let code = |text: &str| CopyOptions::parse(text).map(|_| ()).map_err(|err| err.code);
        assert_eq!(code("CSV JSON 'auto'"), Err("Redshift.IncorrectCopyOptions"));
        assert_eq!(code("CSV ESCAPE"), Err("Redshift.IncorrectCopyOptions"));
        assert_eq!(code("QUOTE '\"'"), Err("Redshift.IncorrectCopyOptions"));
        assert_eq!(code("JSON 's3://bucket/paths.json'"), Err("Redshift.IncorrectCopyOptions"));
        assert_eq!(code("FIXEDWIDTH 'a:1'"), Err("Redshift.IncorrectCopyOptions"));
        assert_eq!(code("BOGUS"), Err("Redshift.SyntaxError"));
        assert_eq!(code("DELIMITER"), Err("Redshift.SyntaxError"));
        assert_eq!(code("NULL AS 'x"), Err("Redshift.SyntaxError"));
    }

    #[test]
    fn pipe_delimited_text() {
        let columns = [column("id", false), column("name", true), column("note", true)];
        let out = encode("1|a b|\\N\n2||x\\y\n3|\t|z", "", &columns);
        assert_eq!(out.as_deref(), Ok("1\ta b\t\\N\n2\t\tx\\\\y\n3\t\\t\tz\n"));
        // With ESCAPE, a backslash makes the delimiter and the newline literal.
        let out = encode("1|a\\|b|c\\\nd\n", "ESCAPE", &columns);
        assert_eq!(out.as_deref(), Ok("1\ta|b\tc\\nd\n"));
        let err = encode("1|a\n", "", &columns).map_err(|err| err.code);
        assert_eq!(err, Err("Redshift.DataLoadFailed"));
        let err = encode("1|a|b|c\n", "", &columns).map_err(|err| err.code);
        assert_eq!(err, Err("Redshift.DataLoadFailed"));
        assert_eq!(encode("1|a\n", "FILLRECORD", &columns).as_deref(), Ok("1\ta\t\\N\n"));
    }

    #[test]
    fn empty_fields_and_null_rules() {
        let columns = [column("n", false), column("s", true)];
        assert_eq!(encode("|\n", "", &columns).as_deref(), Ok("\\N\t\n"));
        assert_eq!(encode("|\n", "EMPTYASNULL", &columns).as_deref(), Ok("\\N\t\\N\n"));
        assert_eq!(encode("1|  \n", "BLANKSASNULL", &columns).as_deref(), Ok("1\t\\N\n"));
        assert_eq!(encode("1|x  \n", "TRIMBLANKS", &columns).as_deref(), Ok("1\tx\n"));
        assert_eq!(encode("NULL|NULL\n", "NULL AS 'NULL'", &columns).as_deref(), Ok("\\N\t\\N\n"));
        assert_eq!(encode("h|h\n1|a\n", "IGNOREHEADER 1", &columns).as_deref(), Ok("1\ta\n"));
        assert_eq!(encode("1|a\n\n2|b\n", "IGNOREBLANKLINES", &columns).as_deref(), Ok("1\ta\n2\tb\n"));
    }

    #[test]
    fn csv() {
        let columns = [column("id", false), column("name", true)];
        let data = "1,\"a, \"\"quoted\"\"\nline\"\r\n2,  \"b\"  \n3,plain\n4,\n";
        let out = encode(data, "CSV", &columns);
        assert_eq!(out.as_deref(), Ok("1\ta, \"quoted\"\\nline\n2\tb\n3\tplain\n4\t\n"));
        assert_eq!(encode("1;'x;y'", "CSV DELIMITER ';' QUOTE ''''", &columns).as_deref(), Ok("1\tx;y\n"));
        let err = encode("1,\"open\n", "CSV", &columns).map_err(|err| err.code);
        assert_eq!(err, Err("Redshift.DataLoadFailed"));
        let err = encode("1,\"a\"b\n", "CSV", &columns).map_err(|err| err.code);
        assert_eq!(err, Err("Redshift.DataLoadFailed"));
    }

    #[test]
    fn json_auto() {
        let columns = [column("id", false), column("name", true), column("tags", true), column("ok", false)];
        let data = "{\"id\": 1, \"name\": \"a\\tb\", \"tags\": [1, {\"x\": null}], \"ok\": true, \"other\": 5}\n{\"id\":2}{\"ID\":3,\"Name\":\"n\"}";
        let out = encode(data, "JSON 'auto'", &columns);
        assert_eq!(out.as_deref(), Ok("1\ta\\tb\t[1,{\"x\":null}]\ttrue\n2\t\\N\t\\N\t\\N\n\\N\t\\N\t\\N\t\\N\n"));
        let out = encode("{\"ID\":3,\"Name\":\"n\"}", "JSON 'auto ignorecase'", &columns);
        assert_eq!(out.as_deref(), Ok("3\tn\t\\N\t\\N\n"));
        for bad in ["[1, 2]", "{\"id\": 1", "{\"id\": 1}, {\"id\": 2}", "7"] {
            let err = encode(bad, "JSON 'auto'", &columns).map_err(|err| err.code);
            assert_eq!(err, Err("Redshift.DataLoadFailed"), "{bad}");
        }
        assert_eq!(encode(" \n ", "JSON 'auto'", &columns).as_deref(), Ok(""));
    }

    #[test]
    fn invalid_utf8() {
        let columns = [column("s", true)];
        let refs: Vec<&Column> = columns.iter().collect();
        let err = encode_rows(b"a\xffb\n", &options(""), &refs).map_err(|err| err.code);
        assert_eq!(err, Err("Redshift.DataLoadFailed"));
        let out = encode_rows(b"a\xff\xfeb\n", &options("ACCEPTINVCHARS '^'"), &refs);
        assert_eq!(out.map(|out| String::from_utf8_lossy(&out).into_owned()).as_deref(), Ok("a^^b\n"));
    }

    #[test]
    fn missing_not_null_column_is_redshift_missing_column() {
        let mut required = column("req", false);
        required.not_null = true;
        let table = [column("a", true), required];
        let plan = CopyPlan::new("t", Some("a"), None);
        let code = plan.and_then(|plan| plan.targets(&table).map(|_| ())).map_err(|err| err.code);
        assert_eq!(code, Err("Redshift.MissingColumn"));
        let plan = CopyPlan::new("t", Some("a, nope"), None);
        let code = plan.and_then(|plan| plan.targets(&table).map(|_| ())).map_err(|err| err.code);
        assert_eq!(code, Err("Redshift.ColumnNotFound"));
    }

    /// Against a real PostgreSQL: `TIDELINE_TEST_POSTGRES_URL=postgresql://user:password@127.0.0.1:PORT/db`
    /// (a superuser: the test creates its tables, a role, and terminates its own sessions).
    mod postgres {
        use std::str::FromStr;

        use bytes::Bytes;
        use tokio_postgres::config::Host;

        use super::super::config::CopyCommand;
        use super::super::*;
        use crate::model::RetryOptions;
        use crate::processing::OutRecord;

        struct Server {
            host: String,
            port: u16,
            user: String,
            password: String,
            database: String,
        }

        fn server() -> Option<Server> {
            let Ok(url) = std::env::var("TIDELINE_TEST_POSTGRES_URL") else {
                eprintln!("TIDELINE_TEST_POSTGRES_URL is not set: skipping the PostgreSQL test");
                return None;
            };
            let config = match tokio_postgres::Config::from_str(&url) {
                Ok(config) => config,
                Err(err) => panic!("TIDELINE_TEST_POSTGRES_URL: {err}"),
            };
            let host = match config.get_hosts().first() {
                Some(Host::Tcp(host)) => host.clone(),
                other => panic!("TIDELINE_TEST_POSTGRES_URL needs a TCP host, not {other:?}"),
            };
            Some(Server {
                host,
                port: config.get_ports().first().copied().unwrap_or(5432),
                user: config.get_user().unwrap_or("postgres").to_string(),
                password: config.get_password().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default(),
                database: config.get_dbname().unwrap_or("postgres").to_string(),
            })
        }

        impl Server {
            fn config(&self, table: &str, columns: Option<&str>, options: &str) -> RedshiftConfig {
                RedshiftConfig {
                    cluster_jdbc_url: Some(format!("jdbc:postgresql://{}:{}/{}", self.host, self.port, self.database)),
                    copy_command: Some(CopyCommand {
                        data_table_name: table.into(),
                        data_table_columns: columns.map(Into::into),
                        copy_options: Some(options.into()),
                    }),
                    username: Some(self.user.clone()),
                    password: Some(self.password.clone()),
                    retry_options: Some(RetryOptions { duration_in_seconds: Some(60) }),
                    ..Default::default()
                }
            }

            fn destination(&self, table: &str, columns: Option<&str>, options: &str) -> RedshiftDestination {
                match RedshiftDestination::new(&self.config(table, columns, options)) {
                    Ok(destination) => destination,
                    Err(err) => panic!("{err}"),
                }
            }

            async fn admin(&self) -> Client {
                let url = format!(
                    "host={} port={} user={} password={} dbname={}",
                    self.host, self.port, self.user, self.password, self.database
                );
                let (client, connection) = match tokio_postgres::connect(&url, NoTls).await {
                    Ok(pair) => pair,
                    Err(err) => panic!("connecting to {url}: {err}"),
                };
                tokio::spawn(connection);
                client
            }
        }

        async fn run(client: &Client, sql: &str) {
            if let Err(err) = client.batch_execute(sql).await {
                panic!("{sql}: {err}");
            }
        }

        async fn rows(client: &Client, sql: &str) -> Vec<String> {
            match client.query(sql, &[]).await {
                Ok(rows) => rows.iter().map(|row| row.get::<_, String>(0)).collect(),
                Err(err) => panic!("{sql}: {err}"),
            }
        }

        fn batch(records: &[&str]) -> Batch {
            let records = records
                .iter()
                .enumerate()
                .map(|(i, data)| OutRecord::new(i.to_string(), 0, Bytes::from(data.to_string())))
                .collect();
            Batch { version: 1, records }
        }

        fn unique(prefix: &str) -> String {
            format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
        }

        async fn deliver(destination: &RedshiftDestination, records: &[&str]) -> Result<(), String> {
            match destination.deliver(&batch(records)).await {
                Ok(failed) if failed.is_empty() => Ok(()),
                Ok(failed) => panic!("records refused one by one: {failed:?}"),
                Err(err) => Err(err.code.to_string()),
            }
        }

        #[tokio::test]
        async fn loads_json_csv_and_text() {
            let Some(server) = server() else { return };
            let admin = server.admin().await;
            let table = unique("events");
            run(
                &admin,
                &format!(
                    "CREATE TABLE {table} (id int NOT NULL, name varchar(40), payload jsonb, score numeric, \
                     loaded timestamptz NOT NULL DEFAULT now())"
                ),
            )
            .await;

            let json = server.destination(&table, Some("id,name,payload,score"), "JSON 'auto'");
            let records =
                ["{\"id\":1,\"name\":\"a\",\"payload\":{\"k\":[1,2]},\"score\":1.5}\n", "{\"id\":2,\"extra\":true}\n"];
            assert_eq!(deliver(&json, &records).await, Ok(()));
            let csv = server.destination(&table, Some("id, name"), "CSV");
            assert_eq!(deliver(&csv, &["3,\"c, with \"\"quotes\"\"\"\n", "4,\n"]).await, Ok(()));
            let text = server.destination(&table, Some("id,name,score"), "DELIMITER '|' GZIP");
            assert_eq!(deliver(&text, &["5|e\\f|\n", "6|\\N|2\n"]).await, Ok(()));

            let got = rows(
                &admin,
                &format!(
                    "SELECT concat_ws('/', id, coalesce(name, '<null>'), payload::text, score) FROM {table} ORDER BY id"
                ),
            )
            .await;
            assert_eq!(
                got,
                ["1/a/{\"k\": [1, 2]}/1.5", "2/<null>", "3/c, with \"quotes\"", "4/", "5/e\\f", "6/<null>/2",]
            );
        }

        #[tokio::test]
        async fn a_failing_batch_loads_nothing_and_maps_to_firehose_codes() {
            let Some(server) = server() else { return };
            let admin = server.admin().await;
            let table = unique("strict");
            run(&admin, &format!("CREATE TABLE {table} (id int NOT NULL, name text)")).await;

            let destination = server.destination(&table, None, "JSON 'auto'");
            // The second record does not fit an int: the whole batch is rolled back.
            let records = ["{\"id\":1,\"name\":\"a\"}", "{\"id\":\"x\"}"];
            assert_eq!(deliver(&destination, &records).await, Err("Redshift.DataLoadFailed".into()));
            assert_eq!(deliver(&destination, &["{\"name\":\"no id\"}"]).await, Err("Redshift.DataLoadFailed".into()));
            assert_eq!(rows(&admin, &format!("SELECT count(*)::text FROM {table}")).await, ["0"]);

            let missing = server.destination(&unique("missing"), None, "JSON 'auto'");
            assert_eq!(deliver(&missing, &["{}"]).await, Err("Redshift.TableNotFound".into()));
            let columns = server.destination(&table, Some("id,nope"), "");
            assert_eq!(deliver(&columns, &["1|2\n"]).await, Err("Redshift.ColumnNotFound".into()));
            let omitted = server.destination(&table, Some("name"), "");
            assert_eq!(deliver(&omitted, &["x\n"]).await, Err("Redshift.MissingColumn".into()));
            let options = server.destination(&table, None, "CSV ESCAPE");
            assert_eq!(deliver(&options, &["1,a\n"]).await, Err("Redshift.IncorrectCopyOptions".into()));

            let mut config = server.config(&table, None, "");
            config.password = Some("wrong password".into());
            let wrong = RedshiftDestination::new(&config).map_err(|err| err.to_string());
            let code = match wrong {
                Ok(wrong) => deliver(&wrong, &["1|a\n"]).await,
                Err(err) => Err(err.to_string()),
            };
            assert_eq!(code, Err("Redshift.AuthenticationFailed".into()));

            let mut config = server.config(&table, None, "");
            config.cluster_jdbc_url =
                Some(format!("jdbc:redshift://{}:{}/{}", server.host, server.port, unique("nodb")));
            let code = match RedshiftDestination::new(&config) {
                Ok(destination) => deliver(&destination, &["1|a\n"]).await,
                Err(err) => Err(err.to_string()),
            };
            assert_eq!(code, Err("Redshift.DatabaseNotFound".into()));

            let mut config = server.config(&table, None, "");
            // Port 1 on loopback: nothing listens there.
            config.cluster_jdbc_url = Some(format!("jdbc:redshift://127.0.0.1:1/{}", server.database));
            let code = match RedshiftDestination::new(&config) {
                Ok(destination) => deliver(&destination, &["1|a\n"]).await,
                Err(err) => Err(err.to_string()),
            };
            assert_eq!(code, Err("Redshift.ConnectionFailed".into()));
        }

        #[tokio::test]
        async fn insufficient_privilege() {
            let Some(server) = server() else { return };
            let admin = server.admin().await;
            let table = unique("private");
            let role = unique("reader");
            run(&admin, &format!("CREATE TABLE {table} (id int); CREATE ROLE {role} LOGIN PASSWORD 'pw'")).await;
            let mut config = server.config(&table, None, "");
            config.username = Some(role.clone());
            config.password = Some("pw".into());
            let code = match RedshiftDestination::new(&config) {
                Ok(destination) => deliver(&destination, &["1\n"]).await,
                Err(err) => Err(err.to_string()),
            };
            run(&admin, &format!("DROP TABLE {table}; DROP ROLE {role}")).await;
            assert_eq!(code, Err("Redshift.InsufficientPrivilege".into()));
        }

        #[tokio::test]
        async fn reconnects_after_the_session_is_killed() {
            let Some(server) = server() else { return };
            let admin = server.admin().await;
            let table = unique("reconnect");
            // A role of its own, so that terminating its sessions spares the other tests'.
            let role = unique("loader");
            run(
                &admin,
                &format!("CREATE TABLE {table} (id int); CREATE ROLE {role} LOGIN PASSWORD 'pw'; GRANT INSERT ON {table} TO {role}"),
            )
            .await;
            let mut config = server.config(&table, None, "");
            config.username = Some(role.clone());
            config.password = Some("pw".into());
            let destination = match RedshiftDestination::new(&config) {
                Ok(destination) => destination,
                Err(err) => panic!("{err}"),
            };
            assert_eq!(deliver(&destination, &["1\n"]).await, Ok(()));
            let kill = format!("SELECT pg_terminate_backend(pid)::text FROM pg_stat_activity WHERE usename = '{role}'");
            assert_eq!(rows(&admin, &kill).await, ["true"]);
            // The first attempt may still find the dead session; the next one reconnects.
            let mut result = deliver(&destination, &["2\n"]).await;
            if result.is_err() {
                assert_eq!(result, Err("Redshift.ConnectionFailed".into()));
                result = deliver(&destination, &["2\n"]).await;
            }
            assert_eq!(result, Ok(()));
            let ids = rows(&admin, &format!("SELECT string_agg(id::text, ',' ORDER BY id) FROM {table}")).await;
            drop(destination);
            run(&admin, &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"))
                .await;
            assert_eq!(ids, ["1,2"]);
        }
    }
}
