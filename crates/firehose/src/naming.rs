//! S3 object names as Firehose builds them: `<evaluated prefix><stream>-<version>-<time>-<uuid><ext>`.
//!
//! Prefixes may hold `!{namespace:value}` expressions: `timestamp` (a Java `DateTimeFormatter`
//! pattern, in UTC), `firehose` (`random-string`, `error-output-type`), `partitionKeyFromQuery` and
//! `partitionKeyFromLambda`. See <https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html>.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Timelike, Utc, Weekday};

use crate::error::FirehoseError;

/// What a prefix expression can refer to.
pub struct PrefixContext<'a> {
    /// `!{timestamp:...}` uses this (ms since the epoch): the oldest record's arrival time.
    pub timestamp_ms: i64,
    pub query_keys: &'a BTreeMap<String, String>,
    pub lambda_keys: &'a BTreeMap<String, String>,
    /// `!{firehose:error-output-type}`; None outside the error output.
    pub error_output_type: Option<&'a str>,
}

const ERROR_OUTPUT_TYPE: &str = "!{firehose:error-output-type}";
/// What AWS prefixes the messages of the semantic rules on Prefix and ErrorOutputPrefix with (sic).
const CONSTRAINT: &str = "Ths supplied prefix(es) do not satisfy the following constraint: ";

const INVALID_USAGE: &str = "Invalid expression usage";

fn invalid(message: String) -> FirehoseError {
    FirehoseError::InvalidPrefix(message)
}

fn unfilled(expression: String) -> FirehoseError {
    FirehoseError::UnfilledExpression(expression)
}

/// The template for failed records. Without an ErrorOutputPrefix, AWS writes them under the Prefix
/// (which then holds no expressions): `<Prefix><error-output-type>/YYYY/MM/dd/HH/`.
pub fn error_output_template<'a>(prefix: Option<&'a str>, error_output_prefix: Option<&'a str>) -> &'a str {
    match error_output_prefix {
        Some(error_prefix) if !error_prefix.is_empty() => error_prefix,
        _ => prefix.unwrap_or(""),
    }
}

/// Evaluates a Prefix or ErrorOutputPrefix. An empty template gives the default `YYYY/MM/dd/HH/`
/// (for the error output: `<error-output-type>/YYYY/MM/dd/HH/`). Err names what could not be
/// evaluated (a key the record lacks).
///
/// As AWS does, a Prefix without a `timestamp` expression gets `yyyy/MM/dd/HH/` appended (unless it
/// partitions by key), and a template without expressions used for the error output gets
/// `<error-output-type>/yyyy/MM/dd/HH/` appended. No slash is inserted before either.
pub fn evaluate_prefix(template: &str, context: &PrefixContext<'_>) -> Result<String, FirehoseError> {
    let field = if context.error_output_type.is_some() { Field::ErrorOutputPrefix } else { Field::Prefix };
    let segments = parse(template, field)?;
    let time = DateTime::from_timestamp_millis(context.timestamp_ms).unwrap_or_default();
    let mut out = String::with_capacity(template.len() + 32);
    for segment in &segments {
        match segment {
            Segment::Literal(text) => out.push_str(text),
            Segment::Timestamp(tokens) => format_time(tokens, &time, &mut out),
            Segment::RandomString => out.push_str(&uuid::Uuid::new_v4().simple().to_string()[..11]),
            Segment::ErrorOutputType => {
                out.push_str(context.error_output_type.ok_or_else(|| unfilled(ERROR_OUTPUT_TYPE.into()))?)
            }
            Segment::QueryKey(key) => out.push_str(
                context.query_keys.get(*key).ok_or_else(|| unfilled(format!("!{{partitionKeyFromQuery:{key}}}")))?,
            ),
            Segment::LambdaKey(key) => out.push_str(
                context.lambda_keys.get(*key).ok_or_else(|| unfilled(format!("!{{partitionKeyFromLambda:{key}}}")))?,
            ),
        }
    }
    let has = |f: fn(&Segment<'_>) -> bool| segments.iter().any(f);
    match context.error_output_type {
        Some(error_type) if !has(|s| s.is_expression()) => {
            out.push_str(error_type);
            out.push('/');
            push_default_time(&time, &mut out);
        }
        None if !has(|s| matches!(s, Segment::Timestamp(_) | Segment::QueryKey(_) | Segment::LambdaKey(_))) => {
            push_default_time(&time, &mut out)
        }
        _ => {}
    }
    Ok(out)
}

fn push_default_time(time: &DateTime<Utc>, out: &mut String) {
    out.push_str(&time.format("%Y/%m/%d/%H/").to_string());
}

/// `<prefix><stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid><extension>`, time in UTC.
pub fn object_key(prefix: &str, stream: &str, version: u64, now_ms: i64, extension: &str) -> String {
    let time = DateTime::from_timestamp_millis(now_ms).unwrap_or_default().format("%Y-%m-%d-%H-%M-%S");
    format!("{prefix}{stream}-{version}-{time}-{}{extension}", uuid::Uuid::new_v4())
}

/// CreateDeliveryStream/UpdateDestination checks of Prefix and ErrorOutputPrefix, with AWS's
/// InvalidArgumentException messages.
pub fn validate_prefixes(
    prefix: Option<&str>,
    error_output_prefix: Option<&str>,
    dynamic_partitioning: bool,
) -> Result<(), FirehoseError> {
    let prefix = parse(prefix.unwrap_or(""), Field::Prefix)?;
    let error_prefix = parse(error_output_prefix.unwrap_or(""), Field::ErrorOutputPrefix)?;
    let any = |segments: &[Segment<'_>], f: fn(&Segment<'_>) -> bool| segments.iter().any(f);
    if any(&prefix, |s| matches!(s, Segment::ErrorOutputType)) {
        return Err(invalid(format!("{CONSTRAINT}Prefix must not contain any occurrence of {ERROR_OUTPUT_TYPE}")));
    }
    if any(&error_prefix, |s| s.is_partition_key()) {
        return Err(invalid("Dynamic Partitioning Namespaces can't be part of an error prefix expression".into()));
    }
    let partitioned = any(&prefix, |s| s.is_partition_key());
    if partitioned && !dynamic_partitioning {
        return Err(invalid(
            "Dynamic Partitioning Namespaces can only be part of a prefix expression when Dynamic \
                    Partitioning is enabled."
                .into(),
        ));
    }
    if dynamic_partitioning && !partitioned {
        return Err(invalid(
            "S3 Prefix should contain Dynamic Partitioning namespaces when Dynamic Partitioning is enabled".into(),
        ));
    }
    if any(&prefix, |s| s.is_expression()) && error_prefix.is_empty() {
        return Err(invalid(format!(
            "{CONSTRAINT}ErrorOutputPrefix cannot be null or empty when Prefix contains expressions"
        )));
    }
    if any(&error_prefix, |s| s.is_expression()) && !any(&error_prefix, |s| matches!(s, Segment::ErrorOutputType)) {
        return Err(invalid(format!(
            "{CONSTRAINT}ErrorOutputPrefix must contain at least one occurrence of {ERROR_OUTPUT_TYPE}"
        )));
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Field {
    Prefix,
    ErrorOutputPrefix,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Prefix => "Prefix",
            Field::ErrorOutputPrefix => "ErrorOutputPrefix",
        }
    }
}

#[derive(Debug, PartialEq)]
enum Segment<'a> {
    Literal(&'a str),
    Timestamp(Vec<Token>),
    RandomString,
    ErrorOutputType,
    QueryKey(&'a str),
    LambdaKey(&'a str),
}

impl Segment<'_> {
    fn is_expression(&self) -> bool {
        !matches!(self, Segment::Literal(_))
    }

    fn is_partition_key(&self) -> bool {
        matches!(self, Segment::QueryKey(_) | Segment::LambdaKey(_))
    }
}

/// Splits a template into literal text and `!{namespace:value}` expressions.
fn parse(template: &str, field: Field) -> Result<Vec<Segment<'_>>, FirehoseError> {
    let invalid_value =
        || invalid(format!("Invalid conversion character used in the value of the expression in {}", field.name()));
    let mut segments = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("!{") {
        if start > 0 {
            segments.push(Segment::Literal(&rest[..start]));
        }
        let body_and_more = &rest[start + 2..];
        let end = body_and_more.find('}').ok_or_else(|| invalid(INVALID_USAGE.into()))?;
        let body = &body_and_more[..end];
        rest = &body_and_more[end + 1..];
        let (namespace, value) = body.split_once(':').ok_or_else(|| invalid(INVALID_USAGE.into()))?;
        if body.contains("!{") {
            return Err(invalid(INVALID_USAGE.into()));
        }
        segments.push(match namespace {
            "timestamp" => Segment::Timestamp(parse_pattern(value).map_err(|e| match e {
                PatternError::Invalid => invalid_value(),
                PatternError::Unsupported(letter) => invalid(format!(
                    "Tideline does not support the pattern letter '{letter}' in !{{timestamp:{value}}} ({})",
                    field.name()
                )),
            })?),
            "firehose" => match value {
                "random-string" => Segment::RandomString,
                "error-output-type" => Segment::ErrorOutputType,
                _ => return Err(invalid_value()),
            },
            "partitionKeyFromQuery" | "partitionKeyFromLambda" if value.is_empty() => {
                return Err(invalid(INVALID_USAGE.into()))
            }
            "partitionKeyFromQuery" => Segment::QueryKey(value),
            "partitionKeyFromLambda" => Segment::LambdaKey(value),
            _ => return Err(invalid(format!("Namespace to the left of colon ({namespace}) is an invalid keyword!"))),
        });
    }
    if !rest.is_empty() {
        segments.push(Segment::Literal(rest));
    }
    Ok(segments)
}

/// One element of a `DateTimeFormatter` pattern: literal text, or a field letter and its count.
#[derive(Debug, PartialEq)]
enum Token {
    Text(String),
    Field(char, usize),
}

enum PatternError {
    /// The pattern is not one `DateTimeFormatter.ofPattern` (and so AWS) accepts.
    Invalid,
    /// A valid letter Tideline does not format.
    Unsupported(char),
}

/// Parses a `DateTimeFormatter` pattern, with Java's limits on how many times each letter repeats.
fn parse_pattern(pattern: &str) -> Result<Vec<Token>, PatternError> {
    let mut tokens = Vec::new();
    let mut text = String::new();
    let mut chars = pattern.chars().peekable();
    let mut optional_depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                // `''` is a quote; otherwise everything up to the closing quote is literal.
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    text.push('\'');
                    continue;
                }
                loop {
                    match chars.next() {
                        None => return Err(PatternError::Invalid),
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            text.push('\'');
                        }
                        Some('\'') => break,
                        Some(other) => text.push(other),
                    }
                }
            }
            // Optional sections print when their fields are available, which they always are here.
            '[' => optional_depth += 1,
            ']' => optional_depth = optional_depth.checked_sub(1).ok_or(PatternError::Invalid)?,
            '{' | '}' | '#' => return Err(PatternError::Invalid),
            c if c.is_ascii_alphabetic() => {
                let mut count = 1;
                while chars.peek() == Some(&c) {
                    chars.next();
                    count += 1;
                }
                check_count(c, count)?;
                if !text.is_empty() {
                    tokens.push(Token::Text(std::mem::take(&mut text)));
                }
                tokens.push(Token::Field(c, count));
            }
            other => text.push(other),
        }
    }
    if !text.is_empty() {
        tokens.push(Token::Text(text));
    }
    Ok(tokens)
}

fn check_count(letter: char, count: usize) -> Result<(), PatternError> {
    let max = match letter {
        'y' | 'u' | 'Y' | 'n' | 'N' | 'A' => 19,
        'S' => 9,
        'G' | 'M' | 'L' | 'Q' | 'q' | 'E' | 'X' | 'x' | 'Z' => 5,
        'O' if count == 1 || count == 4 => 4,
        'O' => return Err(PatternError::Invalid),
        'D' => 3,
        'd' | 'h' | 'H' | 'k' | 'K' | 'm' | 's' | 'w' => 2,
        'a' => 1,
        // Valid `DateTimeFormatter` letters whose output depends on zone names or locale rules.
        'z' | 'v' | 'V' | 'e' | 'c' | 'F' | 'W' | 'g' | 'B' => return Err(PatternError::Unsupported(letter)),
        _ => return Err(PatternError::Invalid),
    };
    if count > max {
        return Err(PatternError::Invalid);
    }
    Ok(())
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn format_time(tokens: &[Token], time: &DateTime<Utc>, out: &mut String) {
    for token in tokens {
        match token {
            Token::Text(text) => out.push_str(text),
            Token::Field(letter, count) => format_field(*letter, *count, time, out),
        }
    }
}

fn format_field(letter: char, count: usize, time: &DateTime<Utc>, out: &mut String) {
    let number = |out: &mut String, value: i64| out.push_str(&pad(value, count));
    let text = |out: &mut String, full: &str| match count {
        4 => out.push_str(full),
        5 => out.push_str(&full[..1]),
        _ => out.push_str(&full[..3]),
    };
    match letter {
        'G' => out.push_str(match count {
            4 => "Anno Domini",
            5 => "A",
            _ => "AD",
        }),
        'y' | 'u' | 'Y' => {
            let year = if letter == 'Y' { week_based(time.date_naive()).0 } else { i64::from(time.year()) };
            // Java's `yy` is the two-digit "reduced" year.
            if count == 2 {
                out.push_str(&pad(year.rem_euclid(100), 2))
            } else {
                number(out, year)
            }
        }
        'w' => number(out, week_based(time.date_naive()).1),
        'D' => number(out, i64::from(time.ordinal())),
        'M' | 'L' if count >= 3 => text(out, MONTHS[time.month0() as usize]),
        'M' | 'L' => number(out, i64::from(time.month())),
        'Q' | 'q' => {
            let quarter = time.month0() / 3 + 1;
            match count {
                3 => out.push_str(&format!("Q{quarter}")),
                4 => out.push_str(["1st quarter", "2nd quarter", "3rd quarter", "4th quarter"][quarter as usize - 1]),
                5 => out.push_str(&quarter.to_string()),
                _ => number(out, i64::from(quarter)),
            }
        }
        'd' => number(out, i64::from(time.day())),
        'E' => text(out, weekday_name(time.weekday())),
        'a' => out.push_str(if time.hour12().0 { "PM" } else { "AM" }),
        'H' => number(out, i64::from(time.hour())),
        'k' => number(out, i64::from(if time.hour() == 0 { 24 } else { time.hour() })),
        'K' => number(out, i64::from(time.hour() % 12)),
        'h' => number(out, i64::from(time.hour12().1)),
        'm' => number(out, i64::from(time.minute())),
        's' => number(out, i64::from(time.second())),
        // A fraction: the leading `count` digits of the nanoseconds.
        'S' => out.push_str(&format!("{:09}", time.nanosecond() % 1_000_000_000)[..count]),
        'n' => number(out, i64::from(time.nanosecond() % 1_000_000_000)),
        'A' => {
            number(out, i64::from(time.num_seconds_from_midnight()) * 1000 + i64::from(time.timestamp_subsec_millis()))
        }
        'N' => number(
            out,
            i64::from(time.num_seconds_from_midnight()) * 1_000_000_000 + i64::from(time.nanosecond() % 1_000_000_000),
        ),
        // The zone is UTC, so the offset letters print their zero-offset forms.
        'X' => out.push('Z'),
        'x' => out.push_str(match count {
            1 => "+00",
            2 | 4 => "+0000",
            _ => "+00:00",
        }),
        'Z' => out.push_str(match count {
            4 => "GMT",
            5 => "Z",
            _ => "+0000",
        }),
        'O' => out.push_str("GMT"),
        _ => {}
    }
}

/// Zero-pads to `width` digits, as Java's `appendValue(field, width, 19, ...)` does.
fn pad(value: i64, width: usize) -> String {
    if value < 0 {
        format!("-{:0width$}", value.unsigned_abs())
    } else {
        format!("{value:0width$}")
    }
}

fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

/// Week-based year and week (`Y`, `w`) under the US rules of a default JVM: weeks start on Sunday,
/// and week 1 is the one holding January 1st.
fn week_based(date: NaiveDate) -> (i64, i64) {
    let week_one = |year: i32| {
        NaiveDate::from_ymd_opt(year, 1, 1)
            .map(|jan1| jan1 - Duration::days(i64::from(jan1.weekday().num_days_from_sunday())))
    };
    let year = date.year();
    let (year, start) = match (week_one(year), week_one(year + 1)) {
        (_, Some(next)) if date >= next => (year + 1, next),
        (Some(start), _) => (year, start),
        _ => return (i64::from(year), 1),
    };
    (i64::from(year), (date - start).num_days() / 7 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 2018-08-27T10:30:15.123Z, the instant of the AWS documentation's examples.
    const AUG_27: i64 = 1_535_365_815_123;

    fn keys(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn eval(template: &str, error_output_type: Option<&str>) -> Result<String, String> {
        let query = keys(&[("customer_id", "1234567890"), ("device", "mobile")]);
        let lambda = keys(&[("year", "2019")]);
        let context =
            PrefixContext { timestamp_ms: AUG_27, query_keys: &query, lambda_keys: &lambda, error_output_type };
        evaluate_prefix(template, &context).map_err(|error| error.to_string())
    }

    fn ok(template: &str) -> String {
        eval(template, None).unwrap()
    }

    #[test]
    fn default_prefixes() {
        assert_eq!(ok(""), "2018/08/27/10/");
        assert_eq!(eval("", Some("processing-failed")).unwrap(), "processing-failed/2018/08/27/10/");
    }

    #[test]
    fn literal_prefixes_get_the_time_appended_without_a_slash() {
        assert_eq!(ok("logs/"), "logs/2018/08/27/10/");
        assert_eq!(ok("myFirehosePrefix"), "myFirehosePrefix2018/08/27/10/");
        assert_eq!(eval("logs/", Some("processing-failed")).unwrap(), "logs/processing-failed/2018/08/27/10/");
    }

    #[test]
    fn aws_documentation_examples() {
        assert_eq!(
            eval("myFirehoseFailures/!{firehose:error-output-type}/", Some("processing-failed")).unwrap(),
            "myFirehoseFailures/processing-failed/"
        );
        assert_eq!(
            eval(
                "myFirehoseFailures/!{firehose:error-output-type}/!{timestamp:yyyy}/anyMonth/!{timestamp:dd}",
                Some("processing-failed")
            )
            .unwrap(),
            "myFirehoseFailures/processing-failed/2018/anyMonth/27"
        );
        assert_eq!(
            ok("myPrefix/year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/"),
            "myPrefix/year=2018/month=08/day=27/hour=10/"
        );
        assert_eq!(
            eval(
                "myErrorPrefix/!{timestamp:'year='yyyy'/month='MM'/day='dd'/hour='HH}/!{firehose:error-output-type}",
                Some("splunk-failed")
            )
            .unwrap(),
            "myErrorPrefix/year=2018/month=08/day=27/hour=10/splunk-failed"
        );
        assert_eq!(ok("!{timestamp:yyyy/MM/dd}"), "2018/08/27");
        assert_eq!(ok("dt=!{timestamp:yyyy'-'MM'-'dd}/h=!{timestamp:HH}/"), "dt=2018-08-27/h=10/");
    }

    #[test]
    fn partition_keys_replace_the_default_time() {
        assert_eq!(
            ok("customer_id=!{partitionKeyFromQuery:customer_id}/device=!{partitionKeyFromQuery:device}/\
                year=!{partitionKeyFromLambda:year}/"),
            "customer_id=1234567890/device=mobile/year=2019/"
        );
    }

    #[test]
    fn a_missing_value_names_the_expression() {
        assert_eq!(eval("!{partitionKeyFromQuery:missing}/", None), Err("!{partitionKeyFromQuery:missing}".into()));
        assert_eq!(
            eval("a/!{partitionKeyFromLambda:customer_id}", None),
            Err("!{partitionKeyFromLambda:customer_id}".into())
        );
        assert_eq!(eval("!{firehose:error-output-type}", None), Err(ERROR_OUTPUT_TYPE.into()));
    }

    #[test]
    fn random_strings_are_eleven_fresh_alphanumerics_and_keep_the_default_time() {
        let evaluated = ok("!{firehose:random-string}/!{firehose:random-string}/");
        let (first, rest) = evaluated.split_once('/').unwrap();
        let (second, time) = rest.split_once('/').unwrap();
        for random in [first, second] {
            assert_eq!(random.len(), 11);
            assert!(random.chars().all(|c| c.is_ascii_alphanumeric()));
        }
        assert_ne!(first, second);
        assert_eq!(time, "2018/08/27/10/");
    }

    #[test]
    fn pattern_letters() {
        let cases = [
            ("yyyy-MM-dd HH:mm:ss.SSS", "2018-08-27 10:30:15.123"),
            ("yy y uuuu yyyyy", "18 2018 2018 02018"),
            ("M MM MMM MMMM MMMMM LLL", "8 08 Aug August A Aug"),
            ("d D DD DDD", "27 239 239 239"),
            ("E EEE EEEE EEEEE", "Mon Mon Monday M"),
            ("h hh K k a", "10 10 10 10 AM"),
            ("Q QQ QQQ QQQQ", "3 03 Q3 3rd quarter"),
            ("G GGGG", "AD Anno Domini"),
            ("S SSSSSS n A", "1 123000 123000000 37815123"),
            ("X x xxx Z ZZZZ ZZZZZ O", "Z +00 +00:00 +0000 GMT Z GMT"),
            ("YYYY ww", "2018 35"),
            ("'o''clock' '' [HH]", "o'clock ' 10"),
            ("yyyy/MM/dd/HH/", "2018/08/27/10/"),
        ];
        for (pattern, expected) in cases {
            assert_eq!(ok(&format!("!{{timestamp:{pattern}}}")), expected, "{pattern}");
        }
    }

    #[test]
    fn week_based_year_follows_us_weeks() {
        // Sunday 2017-12-31 starts the week holding 2018-01-01, so it is week 1 of 2018.
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(week_based(day(2017, 12, 31)), (2018, 1));
        assert_eq!(week_based(day(2017, 12, 30)), (2017, 52));
        assert_eq!(week_based(day(2018, 1, 6)), (2018, 1));
        assert_eq!(week_based(day(2018, 1, 7)), (2018, 2));
        assert_eq!(week_based(day(2021, 1, 1)), (2021, 1));
    }

    #[test]
    fn midnight_and_noon_hours() {
        let empty = BTreeMap::new();
        let at = |ms| {
            let context =
                PrefixContext { timestamp_ms: ms, query_keys: &empty, lambda_keys: &empty, error_output_type: None };
            evaluate_prefix("!{timestamp:H k K h a}", &context).unwrap()
        };
        assert_eq!(at(0), "0 24 0 12 AM");
        assert_eq!(at(12 * 3_600_000), "12 12 0 12 PM");
    }

    #[test]
    fn object_keys() {
        let key = object_key("2018/08/27/10/", "my-stream", 3, AUG_27, ".gz");
        let rest = key.strip_prefix("2018/08/27/10/my-stream-3-2018-08-27-10-30-15-").unwrap();
        let uuid = rest.strip_suffix(".gz").unwrap();
        assert!(uuid::Uuid::parse_str(uuid).is_ok(), "{uuid}");
        assert_eq!(uuid.len(), 36);
        assert_ne!(key, object_key("2018/08/27/10/", "my-stream", 3, AUG_27, ".gz"));
        // Out-of-range clocks fall back to the epoch instead of panicking.
        assert!(object_key("", "s", 1, i64::MAX, "").starts_with("s-1-1970-01-01-00-00-00-"));
    }

    #[test]
    fn error_output_templates() {
        assert_eq!(error_output_template(Some("logs/"), None), "logs/");
        assert_eq!(error_output_template(Some("logs/"), Some("")), "logs/");
        assert_eq!(error_output_template(Some("logs/"), Some("err/")), "err/");
        assert_eq!(error_output_template(None, None), "");
    }

    fn check(prefix: Option<&str>, error: Option<&str>, dynamic: bool) -> Result<(), String> {
        validate_prefixes(prefix, error, dynamic).map_err(|error| error.to_string())
    }

    #[test]
    fn valid_configurations() {
        let error = Some("errors/!{firehose:error-output-type}/!{timestamp:yyyy}/");
        for (prefix, error, dynamic) in [
            (None, None, false),
            (Some(""), Some(""), false),
            (Some("logs/"), None, false),
            (Some("logs/"), Some("errors/"), false),
            (None, Some("myFirehoseFailures/!{firehose:error-output-type}/"), false),
            (Some("!{timestamp:yyyy}/!{firehose:random-string}/"), error, false),
            (Some("c=!{partitionKeyFromQuery:c}/l=!{partitionKeyFromLambda:l}/"), error, true),
        ] {
            assert_eq!(check(prefix, error, dynamic), Ok(()), "{prefix:?} {error:?}");
        }
    }

    #[test]
    fn aws_rejections() {
        let error = Some("e/!{firehose:error-output-type}/");
        let cases = [
            (
                Some("!{timestamp:yyyy/MM/dd}"),
                None,
                false,
                "Ths supplied prefix(es) do not satisfy the following constraint: ErrorOutputPrefix cannot be null \
                 or empty when Prefix contains expressions",
            ),
            (
                Some("!{firehose:error-output-type}/"),
                error,
                false,
                "Ths supplied prefix(es) do not satisfy the following constraint: Prefix must not contain any \
                 occurrence of !{firehose:error-output-type}",
            ),
            (
                Some("a/"),
                Some("e/!{timestamp:yyyy}/"),
                false,
                "Ths supplied prefix(es) do not satisfy the following constraint: ErrorOutputPrefix must contain at \
                 least one occurrence of !{firehose:error-output-type}",
            ),
            (
                Some("!{partitionKeyFromQuery:c}/"),
                error,
                false,
                "Dynamic Partitioning Namespaces can only be part of a prefix expression when Dynamic Partitioning \
                 is enabled.",
            ),
            (
                Some("!{timestamp:yyyy}/"),
                error,
                true,
                "S3 Prefix should contain Dynamic Partitioning namespaces when Dynamic Partitioning is enabled",
            ),
            (
                Some("!{partitionKeyFromQuery:c}/"),
                Some("e/!{firehose:error-output-type}/!{partitionKeyFromLambda:c}/"),
                true,
                "Dynamic Partitioning Namespaces can't be part of an error prefix expression",
            ),
            (Some("a/!{foo:bar}/"), error, false, "Namespace to the left of colon (foo) is an invalid keyword!"),
            (Some("a/!{timestamp:yyyy"), error, false, "Invalid expression usage"),
            (Some("a/!{timestamp}/"), error, false, "Invalid expression usage"),
            (Some("a/!{timestamp:!{yyyy}/"), error, false, "Invalid expression usage"),
            (Some("a/!{partitionKeyFromQuery:}/"), error, true, "Invalid expression usage"),
            (
                Some("!{firehose:random}/"),
                error,
                false,
                "Invalid conversion character used in the value of the expression in Prefix",
            ),
            (
                Some("a/"),
                Some("!{firehose:error-output-type}/!{timestamp:yyyy-bb}"),
                false,
                "Invalid conversion character used in the value of the expression in ErrorOutputPrefix",
            ),
        ];
        for (prefix, error, dynamic, message) in cases {
            assert_eq!(check(prefix, error, dynamic), Err(message.to_string()), "{prefix:?} {error:?}");
        }
    }

    #[test]
    fn invalid_timestamp_patterns() {
        for pattern in ["yyyy-ii", "'unterminated", "HHH", "ddd", "aa", "MMMMMM", "OO", "yyyy]", "#", "p"] {
            let prefix = format!("!{{timestamp:{pattern}}}");
            assert_eq!(
                check(Some(&prefix), Some("!{firehose:error-output-type}"), false),
                Err("Invalid conversion character used in the value of the expression in Prefix".into()),
                "{pattern}"
            );
        }
        let unsupported = check(Some("!{timestamp:z}"), Some("!{firehose:error-output-type}"), false);
        assert!(unsupported.unwrap_err().starts_with("Tideline does not support the pattern letter 'z'"));
    }

    proptest! {
        #[test]
        fn evaluation_and_validation_never_panic(template in "(!\\{|\\}|[a-zA-Z:'/\\[\\]-]){0,40}", ms in any::<i64>()) {
            let empty = BTreeMap::new();
            for error_output_type in [None, Some("processing-failed")] {
                let context = PrefixContext { timestamp_ms: ms, query_keys: &empty, lambda_keys: &empty, error_output_type };
                let _ = evaluate_prefix(&template, &context);
            }
            let _ = validate_prefixes(Some(&template), Some(&template), false);
        }

        #[test]
        fn literal_text_is_kept_verbatim(literal in "[a-zA-Z0-9=/_.-]{1,40}") {
            prop_assert_eq!(ok(&literal), format!("{literal}2018/08/27/10/"));
        }

        #[test]
        fn formats_like_chrono(ms in -30_000_000_000_000i64..250_000_000_000_000) {
            let empty = BTreeMap::new();
            let context = PrefixContext { timestamp_ms: ms, query_keys: &empty, lambda_keys: &empty, error_output_type: None };
            let expected = DateTime::from_timestamp_millis(ms).unwrap().format("%Y/%m/%d/%H/%M/%S").to_string();
            prop_assert_eq!(evaluate_prefix("!{timestamp:yyyy/MM/dd/HH/mm/ss}", &context).unwrap(), expected);
        }
    }
}
