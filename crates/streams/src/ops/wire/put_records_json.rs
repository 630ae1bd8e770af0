//! PutRecords' JSON request read in one pass, for the shape every SDK sends: an object with
//! `StreamName`/`StreamARN` and `Records`, each record an object of `Data`, `PartitionKey` and
//! `ExplicitHashKey`, strings without escapes. Data is decoded from base64 straight into one
//! buffer for the whole request, and keys are copied beside it, as they are met; there is no serde
//! visitor, no member name lookup through `deserialize_identifier`, no UTF-8 check of member names
//! or ASCII keys, and one `Bytes` slice per member instead of a `BytesMut` split.
//!
//! It decides nothing about bad input: whatever it does not certainly read exactly as serde_json
//! would (an escape, a control character, a member it does not know, a member given twice,
//! non-canonical base64, anything malformed) makes it give up, and the request goes through the
//! serde decoder (`put_records.rs`) from the start, which accepts, refuses and words errors as
//! before. Hand-written because no JSON crate reads one fixed shape into one buffer while leaving
//! every refusal, with its exact message, to serde_json.

use std::ops::Range;

use tideline_proto::Packed;

use crate::ops::records::{PutRecordsEntry, PutRecordsInput};
use crate::rules;

/// The request, if it has the common shape; `None`: let serde decide.
pub(crate) fn read(body: &[u8]) -> Option<PutRecordsInput> {
    let mut scanner = Scanner { body, at: 0 };
    let (mut stream_name, mut stream_arn, mut records) = (None, None, None);
    // Base64 is longer than what it decodes to: the body bounds the data and keys it carries.
    let mut packed = Packed::with_capacity(body.len());
    scanner.expect(b'{')?;
    scanner.members(&[b"StreamName", b"StreamARN", b"Records"], |scanner, member| {
        match member {
            0 => stream_name = scanner.optional(Scanner::text)?,
            1 => stream_arn = scanner.optional(Scanner::text)?,
            _ => records = scanner.optional(|scanner| scanner.entries(&mut packed))?,
        }
        Some(())
    })?;
    scanner.skip_whitespace();
    if scanner.at != body.len() {
        return None;
    }
    let packed = packed.freeze();
    let slice = |range: Option<Range<usize>>| range.map(|range| packed.slice(range));
    let records = records.map(|records: Vec<Place>| {
        records
            .into_iter()
            .map(|place| PutRecordsEntry {
                data: slice(place.data),
                partition_key: slice(place.partition_key),
                explicit_hash_key: place.explicit_hash_key,
            })
            .collect()
    });
    Some(PutRecordsInput { stream_name, stream_arn, records })
}

/// A record as read: where its data and key are in the request's buffer.
struct Place {
    data: Option<Range<usize>>,
    partition_key: Option<Range<usize>>,
    explicit_hash_key: Option<String>,
}

/// A position in the body. Every method returns `None` where the body leaves the common shape.
struct Scanner<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.body.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, without taking it.
    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.body.get(self.at).copied()
    }

    /// The next byte after whitespace.
    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    /// A string's bytes between its quotes, as sent: the first `"` after the opening one ends it,
    /// so a string with an escaped quote is cut short; its callers refuse the `\` such a cut
    /// leaves (base64, the checks of `plain_string`) or match it against names without one.
    fn raw_string(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let rest = self.body.get(self.at..)?;
        let len = memchr::memchr(b'"', rest)?;
        self.at += len + 1;
        Some(&rest[..len])
    }

    /// A string that serde_json reads as exactly its bytes: no escapes, no control characters,
    /// valid UTF-8 (checked only when a byte is not ASCII: keys nearly always are).
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        let text = self.raw_string()?;
        // No early exit, so that the compiler vectorizes it: nearly every string passes.
        let (plain, ascii) = text
            .iter()
            .fold((true, true), |(plain, ascii), &b| (plain & (b >= 0x20) & (b != b'\\'), ascii & b.is_ascii()));
        (plain && (ascii || std::str::from_utf8(text).is_ok())).then_some(text)
    }

    fn text(&mut self) -> Option<String> {
        String::from_utf8(self.plain_string()?.to_vec()).ok()
    }

    /// `null` (as serde reads an absent `Option`) or what `read` reads.
    fn optional<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.peek()? != b'n' {
            return read(self).map(Some);
        }
        let end = self.at + 4;
        (self.body.get(self.at..end)? == b"null").then(|| self.at = end)?;
        Some(None)
    }

    /// The index in `names` of the member name that comes next, as `raw_string` would read it
    /// and compare it: matched as sent, so a name with an escape matches none. Compared in place
    /// rather than found with `memchr` first: two of a record's four strings are names, and
    /// `memchr`'s set-up cost more than the comparison.
    fn member_name(&mut self, names: &[&[u8]]) -> Option<usize> {
        self.expect(b'"')?;
        let rest = self.body.get(self.at..)?;
        let member = names.iter().position(|name| rest.get(name.len()) == Some(&b'"') && rest.starts_with(name))?;
        self.at += names[member].len() + 1;
        Some(member)
    }

    /// An object's members, after its `{`: `read` gets the index in `names` of each, to read its
    /// value. A member not in `names` or given twice is left to serde (which skips the one and
    /// refuses the other).
    fn members(&mut self, names: &[&[u8]], mut read: impl FnMut(&mut Self, usize) -> Option<()>) -> Option<()> {
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        let mut seen = 0u8; // one bit per name
        loop {
            let member = self.member_name(names)?;
            if seen & (1 << member) != 0 {
                return None;
            }
            seen |= 1 << member;
            self.expect(b':')?;
            read(self, member)?;
            match self.next()? {
                b',' => continue,
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// The `Records` array.
    fn entries(&mut self, packed: &mut Packed) -> Option<Vec<Place>> {
        self.expect(b'[')?;
        // As the serde decoder: room for the most a valid call carries.
        let mut entries = Vec::with_capacity(rules::MAX_PUT_RECORDS);
        if self.peek()? == b']' {
            self.at += 1;
            return Some(entries);
        }
        loop {
            entries.push(self.entry(packed)?);
            match self.next()? {
                b',' => continue,
                b']' => return Some(entries),
                _ => return None,
            }
        }
    }

    fn entry(&mut self, packed: &mut Packed) -> Option<Place> {
        let mut place = Place { data: None, partition_key: None, explicit_hash_key: None };
        self.expect(b'{')?;
        self.members(&[b"Data", b"PartitionKey", b"ExplicitHashKey"], |scanner, member| {
            match member {
                0 => place.data = scanner.optional(|s| packed.push_canonical_base64(s.raw_string()?))?,
                1 => place.partition_key = scanner.optional(|s| Some(packed.push(s.plain_string()?)))?,
                _ => place.explicit_hash_key = scanner.optional(Scanner::text)?,
            }
            Some(())
        })?;
        Some(place)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tideline_proto::Codec;

    /// What serde's decoder makes of `body`, for comparison.
    fn by_serde(body: &[u8]) -> Option<PutRecordsInput> {
        Codec::Json.decode::<PutRecordsInput>(body).ok()
    }

    fn same(a: &PutRecordsInput, b: &PutRecordsInput) -> bool {
        let entries = |input: &PutRecordsInput| {
            input.records.as_ref().map(|records| {
                records
                    .iter()
                    .map(|e| (e.data.clone(), e.partition_key.clone(), e.explicit_hash_key.clone()))
                    .collect::<Vec<_>>()
            })
        };
        a.stream_name == b.stream_name && a.stream_arn == b.stream_arn && entries(a) == entries(b)
    }

    /// Whenever the fast path reads a body, serde reads the same request from it.
    fn check(body: &[u8]) -> bool {
        match read(body) {
            Some(fast) => {
                let serde = by_serde(body);
                assert!(serde.as_ref().is_some_and(|serde| same(&fast, serde)), "{}", String::from_utf8_lossy(body));
                true
            }
            None => false,
        }
    }

    #[test]
    fn reads_what_sdks_send() {
        // The Rust SDK and tideline-bench (compact), boto3 (spaces after separators), nulls.
        for body in [
            r#"{"Records":[{"Data":"aGVsbG8=","PartitionKey":"k"},{"Data":"","PartitionKey":"é","ExplicitHashKey":"12"}],"StreamName":"s"}"#,
            r#"{"StreamName": "s", "Records": [{"Data": "aGVsbG8=", "PartitionKey": "k"}]}"#,
            "{\n \"StreamARN\" : \"arn:aws:kinesis:us-east-1:000000000000:stream/s\",\r\n\t\"Records\":[ ] }\n",
            r#"{"StreamName":null,"Records":null}"#,
            r#"{"Records":[{"Data":null,"PartitionKey":null,"ExplicitHashKey":null}]}"#,
            r#"{"Records":[{}]}"#,
            r#"{}"#,
        ] {
            assert!(check(body.as_bytes()), "not read: {body}");
        }
    }

    #[test]
    fn leaves_everything_else_to_serde() {
        for body in [
            r#""#,
            r#"{"Records":[{"Data":"abc","PartitionKey":"k"}]}"#,
            r#"{"Records":[{"Data":"ab!=","PartitionKey":"k"}]}"#,
            r#"{"Records":[{"Data":"aGVsbG9=","PartitionKey":"k"}]}"#,
            r#"{"Records":[{"Data":"aGVs\u0062G8=","PartitionKey":"k"}]}"#,
            r#"{"Records":[{"Data":5,"PartitionKey":"k"}]}"#,
            r#"{"Records":[{"Data":"aGVsbG8=","PartitionKey":"k\"x"}]}"#,
            r#"{"Records":[{"Data":"aGVsbG8=","PartitionKey":"k\u00e9"}]}"#,
            "{\"Records\":[{\"Data\":\"aGVsbG8=\",\"PartitionKey\":\"k\tx\"}]}",
            r#"{"Records":[{"Data":"aGVsbG8=","PartitionKey":"k","PartitionKey":"j"}]}"#,
            r#"{"Records":[{"Data":"aGVsbG8=","PartitionKey":"k","Extra":1}]}"#,
            r#"{"Records":[{"Data":"aGVsbG8=","PartitionKey":"k"},]}"#,
            r#"{"Records":[{"Data":"aGVsbG8=","PartitionKey":"k"}]"#,
            r#"{"Records":[{"Data":"aGVsbG8=","PartitionKey":"k"}]} x"#,
            r#"{"Records":[{"Data":"aGVsbG8=","PartitionKey":"k"}],}"#,
            r#"{"StreamName":"a","StreamName":"b"}"#,
            r#"{"Stream\u004eame":"a"}"#,
            r#"{"Records":[null]}"#,
            r#"{"Records":{"Data":"aGVsbG8="}}"#,
            r#"{"Records":nul}"#,
            r#"{"Records":nullx}"#,
            r#"[]"#,
        ] {
            assert!(!check(body.as_bytes()), "read: {body}");
        }
        assert!(!check(b"{\"StreamName\":\"a\xffb\"}"));
    }

    /// Bodies made of the pieces the fast path knows and the ways they can go wrong.
    fn body() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            " ",
            "\n",
            "null",
            "nul",
            "\"",
            "\\",
            "\\\"",
            "\"Data\"",
            "\"PartitionKey\"",
            "\"ExplicitHashKey\"",
            "\"StreamName\"",
            "\"StreamARN\"",
            "\"Records\"",
            "\"Other\"",
            "\"aGVsbG8=\"",
            "\"aGVsbA==\"",
            "\"aGVsbB==\"",
            "\"abc\"",
            "\"\"",
            "\"k\"",
            "\"é\"",
            "\"12\"",
            "\u{1}",
            "5",
            "\u{ff}",
        ]);
        prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat().into_bytes())
    }

    proptest! {
        #[test]
        fn reads_nothing_serde_reads_otherwise(body in body()) {
            check(&body);
        }

        #[test]
        fn reads_well_formed_requests(
            keys in prop::collection::vec("[ -~é]{0,8}", 0..5),
            data in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 0..5),
            spaced in any::<bool>(),
        ) {
            let records: Vec<serde_json::Value> = keys.iter().zip(&data).map(|(key, data)| serde_json::json!({
                "Data": tideline_proto::Blob(bytes::Bytes::from(data.clone())),
                "PartitionKey": key,
            })).collect();
            let value = serde_json::json!({ "StreamName": "s", "Records": records });
            let body = if spaced { serde_json::to_vec_pretty(&value) } else { serde_json::to_vec(&value) };
            let body = body.unwrap();
            // Keys with `"` or `\` are escaped, and left to serde; all others are read here.
            let escaped = keys.iter().zip(&data).any(|(key, _)| key.contains(['"', '\\']));
            prop_assert_eq!(check(&body), !escaped);
        }
    }
}
