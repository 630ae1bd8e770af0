//! Dynamic partitioning's inline parsing: the MetadataExtraction processor's JQ query
//! (`JsonParsingEngine` JQ-1.6), run by jaq, turns each JSON record into its
//! `!{partitionKeyFromQuery:...}` keys. The query is compiled once per destination
//! configuration; each record then costs one JSON parse and one query run.

use jaq_core::load::{lex, parse, Arena, File, Loader};
use jaq_core::{compile, data, Compiler, Ctx, Vars};
use jaq_json::{Num, Val};

use super::bounded::{self, Bounded};
use crate::error::FirehoseError;

/// Queries compute with bounded values, so that no record can make one allocate or run without
/// limit (`processing::bounded`).
type Data = data::JustLut<Bounded>;

/// A MetadataExtractionQuery (JQ), compiled once per destination configuration.
pub struct MetadataQuery {
    filter: jaq_core::Filter<Data>,
}

impl MetadataQuery {
    /// Compiles e.g. `{customer_id: .customer_id, year: .event.year}`; a query that does not compile
    /// is an InvalidArgumentException.
    pub fn compile(query: &str) -> Result<Self, FirehoseError> {
        if let Some(name) = unbounded_names(query).next() {
            return Err(FirehoseError::InvalidQuery(format!(
                "MetadataExtractionQuery uses `{name}`, which Tideline does not run: the query runs inside the \
                 server, where unbounded recursion or iteration would take it down. Queries may use paths, \
                 object construction and the other built-ins, but not {}.",
                UNBOUNDED.join(", ")
            )));
        }
        let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
        // `env` would hand the server's environment (credentials included) to whoever may create a
        // delivery stream, through the S3 prefix; Firehose's own environment is not the user's either.
        let funs =
            jaq_core::funs().chain(jaq_std::funs().filter(|(name, _, _)| *name != "env")).chain(bounded::json_funs());
        let arena = Arena::default();
        let modules = Loader::new(defs)
            .load(&arena, File { code: query, path: () })
            .map_err(|errs| FirehoseError::InvalidQuery(load_error(query, errs)))?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errs| FirehoseError::InvalidQuery(compile_error(query, errs)))?;
        Ok(Self { filter })
    }

    /// Runs the query on one record (a JSON document): the partition keys in the object's key
    /// order, each value as text. Err when the record is not JSON or the query does not yield an
    /// object of scalar values (the record then goes to the error output).
    pub fn extract(&self, record: &[u8]) -> Result<Vec<(String, String)>, String> {
        // jaq's parser recurses once per nesting level, without a limit of its own.
        if nesting_depth(record) > MAX_NESTING {
            return Err(format!("record is nested deeper than {MAX_NESTING} levels"));
        }
        match bounded::evaluate(|| self.run(record)) {
            Ok(keys) => keys,
            Err(exceeded) => Err(format!("the metadata extraction query exceeded its bounds: {exceeded}")),
        }
    }

    fn run(&self, record: &[u8]) -> Result<Vec<(String, String)>, String> {
        let input = Bounded::parse(record)?;
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new([]));
        let mut outputs = self.filter.id.run((ctx, input));
        let value = match outputs.next() {
            None => return Err("the metadata extraction query produced no output".into()),
            // `halt` must not end the server (as jaq's `unwrap_valr` would): it is one more failure.
            Some(Err(exn)) => match exn.get_err() {
                Ok(err) => return Err(format!("the metadata extraction query failed: {}", error_text(err))),
                Err(_) => return Err("the metadata extraction query halted".into()),
            },
            Some(Ok(value)) => value.into_val(),
        };
        if outputs.next().is_some() {
            return Err("the metadata extraction query produced more than one output".into());
        }
        let Val::Obj(object) = value else {
            return Err(format!("the metadata extraction query must produce an object, not {}", short(&value)));
        };
        object
            .iter()
            .map(|(key, value)| {
                let key = text(key).ok_or_else(|| format!("partition key {} is not a string", short(key)))?;
                match value {
                    Val::Null => Err(format!("partition key \"{key}\" is null (missing from the record?)")),
                    _ => match text(value) {
                        Some(value) => Ok((key, value)),
                        None => Err(format!("partition key \"{key}\" is not a string or number: {}", short(value))),
                    },
                }
            })
            .collect()
    }
}

/// Words a query may not use: `def` (user recursion), the built-ins that recurse or iterate
/// without a bound of their own, and `*` (`"x" * 1e11` asks for 100 GB at once). jq code runs on
/// the server's threads; a stack overflow or a failed allocation there aborts the process, and an
/// endless generator never gives the thread back. What remains is bounded while it runs
/// (`processing::bounded`).
const UNBOUNDED: &[&str] =
    &["def", "recurse", "repeat", "while", "until", "range", "limit", "combinations", "input", "inputs", "*"];

/// Records nested deeper than this fail alone (serde_json's default limit is the same).
const MAX_NESTING: usize = bounded::MAX_DEPTH;

/// The forbidden words the query uses as names (not inside string literals, not as `.field`).
fn unbounded_names(query: &str) -> impl Iterator<Item = &'static str> + '_ {
    let bytes = query.as_bytes();
    let mut names = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Skip the string literal, escapes included.
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'*' => {
                names.push("*");
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let is_field = start > 0 && matches!(bytes[start - 1], b'.' | b'$');
                if !is_field {
                    names.push(&query[start..i]);
                }
            }
            _ => i += 1,
        }
    }
    UNBOUNDED.iter().copied().filter(move |word| names.contains(word))
}

/// How deeply arrays and objects nest in a JSON text (strings skipped); bytes are not validated.
pub(crate) fn nesting_depth(record: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &byte in record {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// A scalar as partition-key text: strings without quotes, numbers as jq 1.6 prints them.
fn text(value: &Val) -> Option<String> {
    match value {
        Val::TStr(s) | Val::BStr(s) => Some(String::from_utf8_lossy(s).into_owned()),
        Val::Bool(b) => Some(b.to_string()),
        Val::Num(Num::Int(i)) => Some(i.to_string()),
        // jq 1.6 would round these to a double; the exact digits are the better partition key.
        Val::Num(Num::BigInt(i)) => Some(i.to_string()),
        Val::Num(Num::Float(f)) => float_text(*f),
        // Decimals keep their input spelling in jaq (`1.50`, `1e3`); jq 1.6 parses all numbers as
        // doubles and prints `1.5`, `1000`.
        Val::Num(Num::Dec(s)) => s.parse().ok().and_then(float_text),
        Val::Null | Val::Arr(_) | Val::Obj(_) => None,
    }
}

/// Integral doubles print without a fraction, as jq 1.6 does (`2021`, not `2021.0`); others in
/// their shortest round-trip form. NaN and infinities are not keys.
fn float_text(f: f64) -> Option<String> {
    if !f.is_finite() {
        None
    } else if f.fract() == 0.0 && f.abs() < 1e17 {
        Some(format!("{}", f as i64))
    } else {
        serde_json::Number::from_f64(f).map(|n| n.to_string())
    }
}

/// A query's error as text: a string error (jq's `error("...")`, and jaq's own messages) without
/// JSON quotes and escapes.
fn error_text(error: jaq_core::Error<Bounded>) -> String {
    match error.into_val().into_val() {
        Val::TStr(text) | Val::BStr(text) => String::from_utf8_lossy(&text).into_owned(),
        other => other.to_string(),
    }
}

/// A value for an error message, cut short.
fn short(value: &Val) -> String {
    super::abbreviate(value.to_string())
}

/// Byte offset of `rest`, a suffix of `query` that jaq's errors point at.
fn offset(query: &str, rest: &str) -> usize {
    query.len().saturating_sub(rest.len())
}

fn load_error(query: &str, errs: jaq_core::load::Errors<&str, ()>) -> String {
    let mut messages = Vec::new();
    for (_, err) in errs {
        match err {
            jaq_core::load::Error::Io(errs) => messages.extend(errs.into_iter().map(|(_, e)| e)),
            jaq_core::load::Error::Lex(errs) => {
                messages.extend(errs.into_iter().map(|(expect, rest): lex::Error<&str>| {
                    format!("expected {} at offset {}", expect.as_str(), offset(query, rest))
                }))
            }
            jaq_core::load::Error::Parse(errs) => {
                messages.extend(errs.into_iter().map(|(expect, rest): parse::Error<&str>| {
                    format!("expected {} at offset {}", expect.as_str(), offset(query, rest))
                }))
            }
        }
    }
    format!("invalid MetadataExtractionQuery {query:?}: {}", messages.join("; "))
}

fn compile_error(query: &str, errs: compile::Errors<&str, ()>) -> String {
    let messages: Vec<String> = errs
        .into_iter()
        .flat_map(|(_, errs)| errs)
        .map(|(name, undefined)| format!("undefined {} {name}", undefined.as_str()))
        .collect();
    format!("invalid MetadataExtractionQuery {query:?}: {}", messages.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(query: &str, record: &str) -> Result<Vec<(String, String)>, String> {
        MetadataQuery::compile(query).map_err(|e| e.to_string())?.extract(record.as_bytes())
    }

    fn query(query: &str) -> MetadataQuery {
        match MetadataQuery::compile(query) {
            Ok(query) => query,
            Err(e) => panic!("{e}"),
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn nested_fields_in_query_order() {
        let record = r#"{"customer_id": "1234567890", "type": {"device": "mobile"}, "event": {"year": 2021}}"#;
        let out = keys("{year: .event.year, customer_id: .customer_id, device: .type.device}", record);
        assert_eq!(out, Ok(pairs(&[("year", "2021"), ("customer_id", "1234567890"), ("device", "mobile")])));
    }

    #[test]
    fn numbers_render_as_jq_1_6() {
        let record = r#"{"i": -7, "f": 1.5, "whole": 3.0, "exp": 1e3, "big": 123456789012345678901234567890,
                         "tiny": 1e-7, "bool": true}"#;
        let out = keys(
            "{i: .i, f: .f, whole: .whole, exp: .exp, big: .big, tiny: .tiny, bool: .bool, sum: (.i + .f)}",
            record,
        );
        assert_eq!(
            out,
            Ok(pairs(&[
                ("i", "-7"),
                ("f", "1.5"),
                ("whole", "3"),
                ("exp", "1000"),
                ("big", "123456789012345678901234567890"),
                ("tiny", "1e-7"),
                ("bool", "true"),
                ("sum", "-5.5"),
            ]))
        );
    }

    #[test]
    fn strings_lose_their_quotes_and_keep_unicode() {
        let out = keys(r#"{k: .name, q: "lit\"eral"}"#, r#"{"name": "Zoë/ü"}"#);
        assert_eq!(out, Ok(pairs(&[("k", "Zoë/ü"), ("q", "lit\"eral")])));
    }

    #[test]
    fn strftime_on_epoch_seconds() {
        let query = r#"{year: .ts|strftime("%Y"), month: .ts|strftime("%m"),
                        day: .ts|strftime("%d"), hour: .ts|strftime("%H")}"#;
        let out = keys(query, r#"{"ts": 1565382027}"#);
        assert_eq!(out, Ok(pairs(&[("year", "2019"), ("month", "08"), ("day", "09"), ("hour", "20")])));
    }

    #[test]
    fn string_functions() {
        let out = keys(
            r#"{a: (.s | ascii_downcase), b: (.s | split("-") | .[1]), c: (.n | tostring)}"#,
            r#"{"s": "AB-CD", "n": 4}"#,
        );
        assert_eq!(out, Ok(pairs(&[("a", "ab-cd"), ("b", "CD"), ("c", "4")])));
    }

    #[test]
    fn missing_key_is_null_and_fails() {
        let err = keys("{customer_id: .customer_id, device: .type.device}", r#"{"customer_id": 1}"#).unwrap_err();
        assert!(err.contains("\"device\" is null"), "{err}");
    }

    #[test]
    fn non_scalar_values_fail() {
        let err = keys("{a: .a}", r#"{"a": {"b": 1}}"#).unwrap_err();
        assert!(err.contains("\"a\" is not a string or number"), "{err}");
        let err = keys("{a: .a}", r#"{"a": [1]}"#).unwrap_err();
        assert!(err.contains("not a string or number"), "{err}");
    }

    #[test]
    fn result_must_be_one_object() {
        assert!(keys(".a", r#"{"a": "x"}"#).unwrap_err().contains("must produce an object"));
        assert!(keys("empty", "{}").unwrap_err().contains("no output"));
        assert!(keys("{a: .[]}", r#"{"x": 1, "y": 2}"#).unwrap_err().contains("more than one output"));
        assert_eq!(keys("{}", "{}"), Ok(vec![]));
    }

    #[test]
    fn record_that_is_not_json_fails() {
        let query = query("{a: .a}");
        assert!(query.extract(b"not json").unwrap_err().contains("not valid JSON"));
        assert!(query.extract(b"").unwrap_err().contains("not valid JSON"));
        assert!(query.extract(b"{\"a\": 1} {\"a\": 2}").unwrap_err().contains("not valid JSON"));
        assert!(query.extract(&[0xff, 0xfe]).is_err());
        // A trailing newline, as producers often add, is fine.
        assert_eq!(query.extract(b"{\"a\": 1}\n"), Ok(pairs(&[("a", "1")])));
    }

    #[test]
    fn runtime_errors_fail_the_record_only() {
        let query = query("{a: .a.b}");
        assert!(query.extract(br#"{"a": "text"}"#).unwrap_err().contains("query failed"));
        assert_eq!(query.extract(br#"{"a": {"b": "ok"}}"#), Ok(pairs(&[("a", "ok")])));
        let err = keys(r#"{a: error("custom")}"#, "{}").unwrap_err();
        assert!(err.contains("custom"), "{err}");
        let err = query.extract(br#"{"a": "text"}"#).unwrap_err();
        assert_eq!(err, r#"the metadata extraction query failed: cannot index "text" with "b""#);
    }

    #[test]
    fn halt_does_not_end_the_process() {
        assert!(keys("halt", "{}").unwrap_err().contains("halted"));
        assert!(keys(r#""bye" | halt_error(1)"#, "{}").unwrap_err().contains("halted"));
    }

    #[test]
    fn environment_is_not_reachable() {
        let err = MetadataQuery::compile("{p: env.PATH}").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("undefined filter env"), "{err}");
        let err = MetadataQuery::compile("{p: $ENV.PATH}").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("undefined variable"), "{err}");
    }

    #[test]
    fn syntax_errors_are_reported() {
        let err = MetadataQuery::compile("{a: .a").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.starts_with("invalid MetadataExtractionQuery"), "{err}");
        assert!(err.contains("expected"), "{err}");
        let err = MetadataQuery::compile("{a: nosuchfn}").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("undefined filter nosuchfn"), "{err}");
        assert!(MetadataQuery::compile(r#"import "x" as x; {}"#).is_err());
    }

    #[test]
    fn compiled_query_is_reusable_and_shareable() {
        fn shareable<T: Send + Sync>(_: &T) {}
        let query = query("{id: .id}");
        shareable(&query);
        for i in 0..100 {
            assert_eq!(query.extract(format!("{{\"id\": {i}}}").as_bytes()), Ok(pairs(&[("id", &i.to_string())])));
        }
    }

    #[test]
    fn unbounded_recursion_and_iteration_are_refused_at_compile_time() {
        for query in [
            "{k: (def f: f + 1; f)}",
            "{k: last(repeat(1))}",
            "{k: [range(1e18)] | length}",
            "{k: [.[] | recurse(.+1)]}",
        ] {
            let error = MetadataQuery::compile(query).err().map(|e| e.to_string()).expect(query);
            assert!(error.contains("Tideline does not run"), "{query}: {error}");
        }
        // The same words as field names or inside strings are fine.
        for query in [r#"{k: .def, r: .range, s: "while until"}"#, "{k: .a.repeat}", "{k: .a | ascii_downcase}"] {
            assert!(MetadataQuery::compile(query).is_ok(), "{query}");
        }
    }

    #[test]
    fn deeply_nested_records_fail_alone() {
        let query = MetadataQuery::compile("{k: .a}").expect("compiles");
        let deep = format!(r#"{{"a": 1, "b": {}{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        let error = query.extract(deep.as_bytes()).expect_err("too deep");
        assert!(error.contains("nested deeper than 128"), "{error}");
        let fine = format!(r#"{{"a": 1, "b": {}{}}}"#, "[".repeat(100), "]".repeat(100));
        assert_eq!(query.extract(fine.as_bytes()).expect("fits"), [("k".to_string(), "1".to_string())]);
        assert_eq!(nesting_depth(br#"{"s": "[[[[{{{{"}"#), 1);
    }

    fn doubling(times: usize) -> String {
        format!("\"ab\"{}", " | (. + .)".repeat(times))
    }

    #[test]
    fn a_query_that_doubles_a_string_fails_the_record_before_it_allocates() {
        let query = query(&format!("{{k: ({} | length), id: .id}}", doubling(40)));
        let error = query.extract(br#"{"id": 1}"#).expect_err("too large");
        assert!(error.contains("exceeded its bounds: a value larger than 16 MiB"), "{error}");
        // Nothing is left over from the failed evaluation: the next record has a budget of its own.
        let small = MetadataQuery::compile(&format!("{{k: ({} | length)}}", doubling(10))).expect("compiles");
        assert_eq!(small.extract(b"{}"), Ok(pairs(&[("k", "2048")])));
    }

    #[test]
    fn try_cannot_swallow_an_exceeded_bound() {
        let error = keys(&format!("{{k: (try ({}) catch \"caught\")}}", doubling(40)), "{}").expect_err("bound");
        assert!(error.contains("exceeded its bounds"), "{error}");
    }

    #[test]
    fn collecting_and_nesting_are_bounded() {
        let strings = format!("[{}]", vec![format!("\"{}\"", "x".repeat(1000)); 200].join(","));
        // 200^3 strings of 1000 bytes would be 8 GB.
        let error = keys("{k: ([.[] as $a | .[] as $b | .[]] | length)}", &strings).expect_err("size");
        assert!(error.contains("larger than 16 MiB"), "{error}");
        let array = format!("[{}]", vec!["1"; 2000].join(","));
        // 2000 levels of nesting overflow the stack when the value is dropped or printed.
        let error = keys("{k: (reduce .[] as $x (null; [.]) | tojson)}", &array).expect_err("depth");
        assert!(error.contains("nested deeper than 128"), "{error}");
        let error = keys(r#"{k: (.s | fromjson | length)}"#, &format!(r#"{{"s": "{}"}}"#, "[".repeat(10_000)))
            .expect_err("depth");
        assert!(error.contains("nested deeper than 128"), "{error}");
    }

    #[test]
    fn loops_that_build_nothing_are_bounded_in_steps() {
        let array = format!("[{}]", vec!["1"; 2000].join(","));
        let error =
            keys("{k: (first(.[] as $a | .[] as $b | .[] | select(false)) // \"none\")}", &array).expect_err("steps");
        assert!(error.contains("more than 20000000 operations") || error.contains("more than 2 s"), "{error}");
    }

    #[test]
    fn json_built_ins_behave_as_in_jq() {
        let record = r#"{"s": "a-b-a", "a": [1, 2, 1], "o": {"x": 1}, "n": -3, "j": "{\"y\": 2}"}"#;
        let query = r#"{len: (.s | length), n: (.n | length), has: (.o | has("x")), idx: (.s | indices("a") | tojson),
                        ai: (.a | index(1)), c: (.o | contains({x: 1})), j: (.j | fromjson | .y), t: (.a | tojson),
                        b: (.a | sort | bsearch(2)), u: (.o | .x |= . + 1 | .x), m: (.a | map(. + 1) | tojson)}"#;
        assert_eq!(
            keys(query, record),
            Ok(pairs(&[
                ("len", "5"),
                ("n", "3"),
                ("has", "true"),
                ("idx", "[0,4]"),
                ("ai", "0"),
                ("c", "true"),
                ("j", "2"),
                ("t", "[1,2,1]"),
                ("b", "2"),
                ("u", "2"),
                ("m", "[2,3,2]"),
            ]))
        );
    }
}
