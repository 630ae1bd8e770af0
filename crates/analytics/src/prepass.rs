//! The text pre-pass that runs before sqlparser, for the Flink syntax sqlparser does not know:
//! statements split on `;`, and in `CREATE TABLE` the `WATERMARK FOR c AS expr` item, columns
//! declared `METADATA [FROM 'key'] [VIRTUAL]`, computed columns `name AS expression` (among them
//! the processing-time column `pt AS PROCTIME()`), `PRIMARY KEY … NOT ENFORCED`, `PARTITIONED BY (…)` and Flink's `TIMESTAMP_LTZ` types. Scanning skips quoted text, so a quoted `;` or `(` is data.

use crate::error::{invalid, Result};

/// Byte offsets of the characters outside quotes and comments, with the character.
fn unquoted(sql: &str) -> Vec<(usize, char)> {
    let mut out = Vec::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut chars = sql.char_indices().peekable();
    while let Some((index, ch)) = chars.next() {
        match quote {
            Some(open) if ch == open => quote = None,
            Some(_) => {}
            None if ch == '\'' || ch == '"' || ch == '`' => quote = Some(ch),
            None if ch == '-' && chars.peek().is_some_and(|(_, next)| *next == '-') => {
                // A comment runs to the end of the line; it is kept as blanks.
                for (_, next) in chars.by_ref() {
                    if next == '\n' {
                        break;
                    }
                }
            }
            None => out.push((index, ch)),
        }
    }
    out
}

/// The statements of a script, without their `;` and without empty ones.
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut start = 0;
    for (index, ch) in unquoted(sql) {
        if ch == ';' {
            statements.push(sql[start..index].to_string());
            start = index + 1;
        }
    }
    statements.push(sql[start..].to_string());
    statements.into_iter().map(|s| strip_comments(&s)).filter(|s| !s.trim().is_empty()).collect()
}

/// `sql` with its `--` comments removed (they would otherwise hide the statement's kind).
fn strip_comments(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(ch) = chars.next() {
        match quote {
            Some(open) => {
                out.push(ch);
                if ch == open {
                    quote = None;
                }
            }
            None if ch == '\'' || ch == '"' || ch == '`' => {
                quote = Some(ch);
                out.push(ch);
            }
            None if ch == '-' && chars.peek() == Some(&'-') => {
                for next in chars.by_ref() {
                    if next == '\n' {
                        break;
                    }
                }
                out.push('\n');
            }
            None => out.push(ch),
        }
    }
    out.trim().to_string()
}

/// The index of the `)` closing the `(` at `open`.
pub fn closing_paren(sql: &str, open: usize) -> Result<usize> {
    let mut depth = 0usize;
    for (index, ch) in unquoted(sql).into_iter().filter(|(index, _)| *index >= open) {
        match ch {
            '(' => depth += 1,
            ')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Ok(index);
                }
            }
            _ => {}
        }
    }
    Err(invalid("unbalanced parentheses"))
}

/// `text` split at its top-level commas (not inside parentheses or quotes).
pub fn split_top_level(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (index, ch) in unquoted(text) {
        match ch {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(text[start..index].trim().to_string());
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(text[start..].trim().to_string());
    parts.into_iter().filter(|part| !part.is_empty()).collect()
}

/// The first unquoted, case-insensitive occurrence of the word `word` at or after `from`.
pub fn find_word(sql: &str, word: &str, from: usize) -> Option<usize> {
    let upper = sql.to_ascii_uppercase();
    let word = word.to_ascii_uppercase();
    let outside: std::collections::HashSet<usize> = unquoted(sql).into_iter().map(|(index, _)| index).collect();
    let boundary =
        |index: usize| upper[index..].chars().next().is_none_or(|ch| !(ch.is_ascii_alphanumeric() || ch == '_'));
    let mut at = from;
    while let Some(found) = upper.get(at..).and_then(|rest| rest.find(&word)) {
        let index = at + found;
        let before_ok = index == 0 || boundary(index - 1);
        if outside.contains(&index) && before_ok && boundary(index + word.len()) {
            return Some(index);
        }
        at = index + word.len();
    }
    None
}

/// What the pre-pass takes out of a Flink `CREATE TABLE` before sqlparser reads the rest.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FlinkTableExtras {
    /// `WATERMARK FOR column AS expression`.
    pub watermark: Option<(String, String)>,
    /// Columns read from record metadata: (column, metadata key).
    pub metadata: Vec<(String, String)>,
    /// Computed columns, in declared order.
    pub computed: Vec<ComputedItem>,
    /// The computed column `name AS PROCTIME()`: the wall-clock time a row was read.
    pub proctime: Option<String>,
    pub partitioned_by: Vec<String>,
}

/// A computed column as declared: `name AS expression [COMMENT '…']`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputedItem {
    /// How many columns are declared before it: where it stands among the table's columns.
    pub position: usize,
    pub name: String,
    /// The expression as written (Flink's type names made DataFusion's), without the comment.
    pub expression: String,
}

/// A `CREATE TABLE` statement in the form sqlparser reads, and the Flink parts taken out of it.
pub fn flink_create_table(sql: &str) -> Result<(String, FlinkTableExtras)> {
    let open = sql.find('(').ok_or_else(|| invalid("CREATE TABLE needs a column list"))?;
    let close = closing_paren(sql, open)?;
    let mut extras = FlinkTableExtras::default();
    let mut columns = Vec::new();
    for item in split_top_level(&sql[open + 1..close]) {
        let upper = item.to_ascii_uppercase();
        let words: Vec<&str> = upper.split_whitespace().collect();
        if words.first() == Some(&"WATERMARK") {
            let for_at = find_word(&item, "FOR", 0).ok_or_else(|| invalid("WATERMARK needs FOR <column>"))?;
            let as_at = find_word(&item, "AS", for_at).ok_or_else(|| invalid("WATERMARK needs AS <expression>"))?;
            let column = unquote_ident(item[for_at + 3..as_at].trim());
            extras.watermark = Some((column, item[as_at + 2..].trim().to_string()));
        } else if words.first() == Some(&"PRIMARY") || words.first() == Some(&"CONSTRAINT") {
            // A declared key is not enforced on a stream (Flink requires NOT ENFORCED too).
        } else if let Some(metadata_at) = find_word(&item, "METADATA", 0) {
            let column = item[..metadata_at].trim().to_string();
            let name = unquote_ident(column.split_whitespace().next().unwrap_or_default());
            let rest = &item[metadata_at + "METADATA".len()..];
            let key = match find_word(rest, "FROM", 0) {
                Some(from) => rest[from + 4..]
                    .split_whitespace()
                    .next()
                    .map(|key| key.trim_matches('\'').to_string())
                    .unwrap_or_default(),
                None => name.clone(),
            };
            extras.metadata.push((name, key));
            columns.push(column);
        } else if words.get(1) == Some(&"AS") {
            // A computed column (`name AS expression`): typed and evaluated by `crate::computed`.
            let name = unquote_ident(item.split_whitespace().next().unwrap_or_default());
            let as_at = find_word(&item, "AS", 0).unwrap_or_default();
            let end = find_word(&item, "COMMENT", as_at).unwrap_or(item.len());
            let expression = flink_types(item[as_at + 2..end].trim());
            if expression.to_ascii_uppercase().split_whitespace().collect::<String>() == "PROCTIME()"
                && extras.proctime.replace(name.clone()).is_some()
            {
                return Err(invalid("a table can have only one processing-time attribute (AS PROCTIME())"));
            }
            extras.computed.push(ComputedItem { position: columns.len() + extras.computed.len(), name, expression });
        } else {
            columns.push(item);
        }
    }
    let mut tail = sql[close + 1..].to_string();
    if let Some(partitioned) = find_word(&tail, "PARTITIONED", 0) {
        let open = tail[partitioned..]
            .find('(')
            .map(|at| at + partitioned)
            .ok_or_else(|| invalid("PARTITIONED BY needs (columns)"))?;
        let end = closing_paren(&tail, open)?;
        extras.partitioned_by = split_top_level(&tail[open + 1..end]).iter().map(|c| unquote_ident(c)).collect();
        tail.replace_range(partitioned..=end, "");
    }
    let rewritten = format!("{}({}){}", &sql[..open], columns.join(", "), tail);
    Ok((flink_types(&rewritten), extras))
}

/// Flink's local-time-zone timestamps as plain timestamps: event times are UTC epoch instants.
fn flink_types(sql: &str) -> String {
    let mut out = sql.to_string();
    while let Some(at) = find_word(&out, "WITH LOCAL TIME ZONE", 0) {
        out.replace_range(at..at + "WITH LOCAL TIME ZONE".len(), "");
    }
    while let Some(at) = find_word(&out, "TIMESTAMP_LTZ", 0) {
        out.replace_range(at..at + "TIMESTAMP_LTZ".len(), "TIMESTAMP");
    }
    out
}

pub fn unquote_ident(ident: &str) -> String {
    ident.trim().trim_matches(|ch| ch == '`' || ch == '"').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_outside_quotes_and_comments() {
        let sql = "CREATE TABLE t (a STRING) WITH ('x' = 'a;b'); -- one; two\nSELECT * FROM t;";
        let statements = split_statements(sql);
        assert_eq!(statements, ["CREATE TABLE t (a STRING) WITH ('x' = 'a;b')", "SELECT * FROM t"]);
    }

    #[test]
    fn flink_table_items_are_taken_out() {
        let sql = "CREATE TABLE t (id STRING, ts TIMESTAMP(3), \
                   arrival TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL, \
                   `shard-id` VARCHAR(128) METADATA VIRTUAL, pt AS PROCTIME(), \
                   total AS v * 2 COMMENT 'twice', WATERMARK FOR ts AS ts - INTERVAL '5' SECOND, PRIMARY KEY (id) NOT ENFORCED) \
                   PARTITIONED BY (id) WITH ('connector' = 'kinesis')";
        let (rewritten, extras) = flink_create_table(sql).unwrap();
        assert_eq!(
            rewritten,
            "CREATE TABLE t (id STRING, ts TIMESTAMP(3), arrival TIMESTAMP(3), `shard-id` VARCHAR(128))  WITH ('connector' = 'kinesis')"
        );
        assert_eq!(extras.watermark, Some(("ts".into(), "ts - INTERVAL '5' SECOND".into())));
        assert_eq!(extras.metadata, [("arrival".into(), "timestamp".into()), ("shard-id".into(), "shard-id".into())]);
        assert_eq!(extras.partitioned_by, ["id"]);
        assert_eq!(extras.proctime.as_deref(), Some("pt"));
        let computed = |position, name: &str, expression: &str| ComputedItem {
            position,
            name: name.into(),
            expression: expression.into(),
        };
        assert_eq!(extras.computed, [computed(4, "pt", "PROCTIME()"), computed(5, "total", "v * 2")]);
        let error = flink_create_table("CREATE TABLE t (a AS PROCTIME(), b AS proctime ( )) WITH ()").unwrap_err();
        assert!(error.to_string().contains("only one processing-time attribute"), "{error}");
    }

    #[test]
    fn words_are_found_outside_quotes_only() {
        assert_eq!(find_word("SELECT 'table' FROM table(x)", "TABLE", 0), Some(20));
        assert_eq!(find_word("tables", "TABLE", 0), None);
    }
}
