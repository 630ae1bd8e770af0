//! Flink's scalar functions whose names or meanings differ from DataFusion's, registered in every
//! session: `JSON_VALUE(json, path)`, `DATE_FORMAT(timestamp, 'yyyy-MM-dd HH:mm:ss')` (Java
//! date patterns, where DataFusion's `date_format` alias of `to_char` takes chrono's),
//! `TO_TIMESTAMP(string[, format])` (Java date patterns, a TIMESTAMP(3), NULL when the text does
//! not parse, where DataFusion's takes chrono's and errs), `TO_TIMESTAMP_LTZ(epoch, precision)` and
//! `PROCTIME()` (in queries, and as a table's computed column: evaluated once per batch read,
//! `computed.rs`). Everything else is DataFusion's own.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, StringArray, TimestampMillisecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{
    create_udf, ColumnarValue, ScalarUDF, Signature, SimpleScalarUDF, TypeSignature, Volatility,
};
use datafusion::prelude::SessionContext;

const MILLIS: DataType = DataType::Timestamp(TimeUnit::Millisecond, None);

/// Registers the functions of the module doc in `ctx`.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(create_udf(
        "json_value",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args| per_row(args, json_value)),
    ));
    ctx.register_udf(create_udf(
        "date_format",
        vec![MILLIS, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args| per_row(args, date_format)),
    ));
    let text = DataType::Utf8;
    let string_and_format =
        vec![TypeSignature::Exact(vec![text.clone()]), TypeSignature::Exact(vec![text.clone(), text])];
    ctx.register_udf(ScalarUDF::from(SimpleScalarUDF::new_with_signature(
        "to_timestamp",
        Signature::one_of(string_and_format, Volatility::Immutable),
        MILLIS,
        Arc::new(to_timestamp),
    )));
    ctx.register_udf(create_udf(
        "to_timestamp_ltz",
        vec![DataType::Int64, DataType::Int64],
        MILLIS,
        Volatility::Immutable,
        Arc::new(to_timestamp_ltz),
    ));
    ctx.register_udf(create_udf(
        "proctime",
        vec![],
        MILLIS,
        Volatility::Volatile,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::TimestampMillisecond(Some(now_ms()), None)))),
    ));
}

/// The wall clock, epoch milliseconds: what `PROCTIME()` reads.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A two-argument function of text computed row by row; a NULL argument gives NULL.
fn per_row(
    args: &[ColumnarValue],
    function: fn(&str, &str) -> Option<String>,
) -> datafusion::error::Result<ColumnarValue> {
    let arrays = ColumnarValue::values_to_arrays(args)?;
    let [first, second] = arrays.as_slice() else {
        return Err(DataFusionError::Plan("expected two arguments".into()));
    };
    let (first, second) = (text(first)?, text(second)?);
    let out: StringArray = (0..first.len())
        .map(|row| match (first.is_null(row), second.is_null(row)) {
            (false, false) => function(first.value(row), second.value(row)),
            _ => None,
        })
        .collect();
    Ok(ColumnarValue::Array(Arc::new(out)))
}

/// A column as text (a timestamp as `yyyy-MM-ddTHH:mm:ss.SSS`, which [`date_format`] reads).
fn text(array: &ArrayRef) -> datafusion::error::Result<StringArray> {
    let cast = cast(array, &DataType::Utf8)?;
    Ok(cast.as_any().downcast_ref::<StringArray>().cloned().unwrap_or_else(|| StringArray::new_null(array.len())))
}

/// Flink's `JSON_VALUE(json, path)` in its default lax mode: the scalar at `path` as text; NULL
/// when the text is not JSON, the path is absent or names an object or array.
///
/// Hand-written: Flink's paths are SQL/JSON paths (`$.a.b`, `$.a[0]`, `$['a']`), whose lax
/// semantics (a scalar result or NULL) no JSONPath crate (RFC 9535 node lists) gives directly.
fn json_value(json: &str, path: &str) -> Option<String> {
    let mut value: &serde_json::Value = &serde_json::from_str(json).ok()?;
    let mut rest = path.trim().strip_prefix('$')?;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            value = value.get(after[..end].trim_matches('"'))?;
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let member = after[..end].trim();
            value = match member.parse::<usize>() {
                Ok(index) => value.get(index)?,
                Err(_) => value.get(member.trim_matches(|ch| ch == '\'' || ch == '"'))?,
            };
            rest = &after[end + 1..];
        } else {
            return None;
        }
    }
    match value {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Number(number) => Some(number.to_string()),
        serde_json::Value::Bool(flag) => Some(flag.to_string()),
        serde_json::Value::Null | serde_json::Value::Array(_) | serde_json::Value::Object(_) => None,
    }
}

/// Flink's `DATE_FORMAT(timestamp, format)`: `format` is a Java date pattern.
fn date_format(timestamp: &str, format: &str) -> Option<String> {
    let parsed = chrono::NaiveDateTime::parse_from_str(timestamp, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(timestamp, "%Y-%m-%d %H:%M:%S%.f"))
        .ok()?;
    Some(parsed.format(&java_pattern(format)).to_string())
}

/// A Java `DateTimeFormatter` pattern as a chrono format string: runs of the same letter are one
/// field, text in single quotes is literal.
fn java_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut at = 0;
    while at < chars.len() {
        let letter = chars[at];
        let run = chars[at..].iter().take_while(|&&ch| ch == letter).count();
        if letter == '\'' {
            let end = chars[at + 1..].iter().position(|&ch| ch == '\'').map_or(chars.len(), |p| at + 1 + p);
            out.extend(chars[at + 1..end].iter().map(|&ch| if ch == '%' { "%%".to_string() } else { ch.to_string() }));
            at = end + 1;
            continue;
        }
        let field = match (letter, run) {
            ('y', 2) => "%y".to_string(),
            ('y', _) | ('u', _) => "%Y".to_string(),
            ('M', 1) => "%-m".to_string(),
            ('M', 2) => "%m".to_string(),
            ('M', 3) => "%b".to_string(),
            ('M', _) => "%B".to_string(),
            ('d', 1) => "%-d".to_string(),
            ('d', _) => "%d".to_string(),
            ('H', 1) => "%-H".to_string(),
            ('H', _) => "%H".to_string(),
            ('h', _) => "%I".to_string(),
            ('m', 1) => "%-M".to_string(),
            ('m', _) => "%M".to_string(),
            ('s', 1) => "%-S".to_string(),
            ('s', _) => "%S".to_string(),
            // chrono has 3, 6 or 9 fraction digits.
            ('S', 1..=3) => "%3f".to_string(),
            ('S', 4..=6) => "%6f".to_string(),
            ('S', _) => "%9f".to_string(),
            ('a', _) => "%p".to_string(),
            ('E', 1..=3) => "%a".to_string(),
            ('E', _) => "%A".to_string(),
            ('D', _) => "%j".to_string(),
            ('%', _) => "%%".repeat(run),
            (other, _) => other.to_string().repeat(run),
        };
        out.push_str(&field);
        at += run;
    }
    out
}

/// Flink's `TO_TIMESTAMP(string[, format])`: epoch milliseconds of `string` read as UTC with the
/// Java pattern `format`, or by default as `yyyy-MM-dd HH:mm:ss` with an optional fraction (or a
/// bare date); NULL when it does not parse, as in Flink.
fn to_timestamp(args: &[ColumnarValue]) -> datafusion::error::Result<ColumnarValue> {
    let arrays = ColumnarValue::values_to_arrays(args)?;
    let (texts, formats) = match arrays.as_slice() {
        [texts] => (text(texts)?, None),
        [texts, formats] => (text(texts)?, Some(text(formats)?)),
        _ => return Err(DataFusionError::Plan("TO_TIMESTAMP takes (string[, format])".into())),
    };
    // The format is nearly always one literal: its chrono form is made once, not per row.
    let mut pattern: Option<(String, String)> = None;
    let out: TimestampMillisecondArray = (0..texts.len())
        .map(|row| {
            if texts.is_null(row) {
                return None;
            }
            let chrono_format = match &formats {
                None => None,
                Some(formats) if formats.is_null(row) => return None,
                Some(formats) => {
                    let java = formats.value(row);
                    if pattern.as_ref().is_none_or(|(cached, _)| cached != java) {
                        pattern = Some((java.to_string(), java_pattern(java)));
                    }
                    pattern.as_ref().map(|(_, chrono_format)| chrono_format.as_str())
                }
            };
            match chrono_format {
                Some(format) => parse_utc_ms(texts.value(row), format),
                None => parse_utc_ms(texts.value(row), "%Y-%m-%d %H:%M:%S%.f")
                    .or_else(|| parse_utc_ms(texts.value(row), "%Y-%m-%d")),
            }
        })
        .collect();
    Ok(ColumnarValue::Array(Arc::new(out)))
}

/// `text` in chrono's `format` as UTC epoch milliseconds; a format with only a date gives its
/// midnight.
fn parse_utc_ms(text: &str, format: &str) -> Option<i64> {
    let time = chrono::NaiveDateTime::parse_from_str(text, format)
        .ok()
        .or_else(|| chrono::NaiveDate::parse_from_str(text, format).ok()?.and_hms_opt(0, 0, 0))?;
    Some(time.and_utc().timestamp_millis())
}

/// Flink's `TO_TIMESTAMP_LTZ(epoch, precision)`: epoch seconds (precision 0) or milliseconds (3).
fn to_timestamp_ltz(args: &[ColumnarValue]) -> datafusion::error::Result<ColumnarValue> {
    let arrays = ColumnarValue::values_to_arrays(args)?;
    let [epoch, precision] = arrays.as_slice() else {
        return Err(DataFusionError::Plan("TO_TIMESTAMP_LTZ takes (epoch, precision)".into()));
    };
    let (epoch, precision) = (integers(epoch)?, integers(precision)?);
    let mut out = Vec::with_capacity(epoch.len());
    for row in 0..epoch.len() {
        out.push(match (epoch.is_null(row), precision.is_null(row)) {
            (false, false) => match precision.value(row) {
                0 => epoch.value(row).checked_mul(1000),
                3 => Some(epoch.value(row)),
                other => {
                    return Err(DataFusionError::Plan(format!(
                        "The precision value '{other}' for function TO_TIMESTAMP_LTZ(numeric, precision) is \
                         unsupported, the supported value is '0' for second or '3' for millisecond."
                    )))
                }
            },
            _ => None,
        });
    }
    Ok(ColumnarValue::Array(Arc::new(TimestampMillisecondArray::from(out))))
}

fn integers(array: &ArrayRef) -> datafusion::error::Result<Int64Array> {
    let cast = cast(array, &DataType::Int64)?;
    Ok(cast.as_any().downcast_ref::<Int64Array>().cloned().unwrap_or_else(|| Int64Array::new_null(array.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths_give_scalars_or_null() {
        let json = r#"{"a": {"b": [10, "x"], "c d": true}, "n": null}"#;
        assert_eq!(json_value(json, "$.a.b[0]").as_deref(), Some("10"));
        assert_eq!(json_value(json, "$.a.b[1]").as_deref(), Some("x"));
        assert_eq!(json_value(json, "$.a['c d']").as_deref(), Some("true"));
        assert_eq!(json_value(json, "$.a"), None);
        assert_eq!(json_value(json, "$.n"), None);
        assert_eq!(json_value(json, "$.missing"), None);
        assert_eq!(json_value("not json", "$.a"), None);
    }

    #[test]
    fn to_timestamp_reads_flinks_default_and_java_patterns() {
        let at = |text: &str, format: Option<&str>| {
            let mut args = vec![ColumnarValue::Scalar(ScalarValue::Utf8(Some(text.to_string())))];
            args.extend(format.map(|format| ColumnarValue::Scalar(ScalarValue::Utf8(Some(format.to_string())))));
            let ColumnarValue::Array(array) = to_timestamp(&args).unwrap() else { panic!() };
            let array = array.as_any().downcast_ref::<TimestampMillisecondArray>().unwrap().clone();
            (!array.is_null(0)).then(|| array.value(0))
        };
        assert_eq!(at("2024-01-01 00:00:05", None), Some(1_704_067_205_000));
        assert_eq!(at("2024-01-01 00:00:05.250", None), Some(1_704_067_205_250));
        assert_eq!(at("2024-01-01", None), Some(1_704_067_200_000));
        assert_eq!(at("01/01/2024 00:00:05", Some("dd/MM/yyyy HH:mm:ss")), Some(1_704_067_205_000));
        assert_eq!(at("20240101", Some("yyyyMMdd")), Some(1_704_067_200_000));
        assert_eq!(at("not a time", None), None);
    }

    #[test]
    fn java_date_patterns() {
        assert_eq!(java_pattern("yyyy-MM-dd HH:mm:ss.SSS"), "%Y-%m-%d %H:%M:%S.%3f");
        assert_eq!(
            date_format("2024-01-02T03:04:05.678", "yyyy/MM/dd 'at' HH:mm").as_deref(),
            Some("2024/01/02 at 03:04")
        );
    }
}
