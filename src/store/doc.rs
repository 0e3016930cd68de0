//! Reading the wanted keys of a flat JSON document, the hot path of every export.
//!
//! Both stores keep a lead's submitted fields as one flat JSON object and an export usually
//! wants a handful of its few dozen keys. Running a full JSON parser over every document (as
//! `json_extract` per column does, and as serde's visitor machinery does even when it ignores a
//! value) spends most of an export's time on keys nobody asked for. So the object is *scanned*
//! rather than parsed: the ends of keys and skipped values are found eight bytes at a time,
//! only the values of wanted keys are decoded (plain strings and small integers directly, the
//! rest by serde_json, so exact number text and escapes are serde_json's), and the scan stops
//! as soon as every wanted key has been seen.
//!
//! The byte-walking steps ([`skip_whitespace`], [`string_end`], [`value_end`]) also serve
//! `ingest`, which finds the source text of a money value in an NDJSON line.
//!
//! Consequences worth knowing: a document with a duplicated key yields the FIRST occurrence of
//! it (documents written by exportd never have one); a malformed document yields NULL for the
//! wanted keys after the point where it breaks rather than failing the run; bytes after the
//! closing brace are ignored.

use crate::value::Value;
use rust_decimal::Decimal;
use serde::de::{self, MapAccess, Visitor};
use std::fmt;

/// The keys an export reads from one JSON column and the output slot of each. An export reads a
/// handful of keys from documents of a few dozen, so a linear scan (length first, then bytes)
/// beats hashing every key of every document.
#[derive(Debug, Default)]
pub(crate) struct WantedKeys {
    keys: Vec<(String, usize)>,
    /// (slot, copy) pairs: a key asked for twice is decoded once and copied.
    copies: Vec<(usize, usize)>,
}

impl WantedKeys {
    /// Asks for `key`, to be decoded into output slot `slot`.
    pub(crate) fn push(&mut self, key: String, slot: usize) {
        match self.keys.iter().find(|(k, _)| *k == key) {
            Some(&(_, first)) => self.copies.push((first, slot)),
            None => self.keys.push((key, slot)),
        }
    }

    /// The position of `key` in the wanted list and its output slot.
    fn find(&self, key: &[u8]) -> Option<(usize, usize)> {
        self.keys
            .iter()
            .position(|(k, _)| k.len() == key.len() && k.as_bytes() == key)
            .map(|i| (i, self.keys[i].1))
    }
}

/// Decodes the wanted keys of one flat JSON document into their slots (see the module doc for
/// duplicated keys and malformed documents). Slots of keys the document lacks are not touched.
pub(crate) fn decode_doc(text: &[u8], wanted: &WantedKeys, out: &mut [Value]) {
    let _ = scan(text, wanted, out);
    for &(slot, copy) in &wanted.copies {
        out[copy] = out[slot].clone();
    }
}

/// The scan behind [`decode_doc`]; `None` where the document stops being a JSON object.
fn scan(text: &[u8], wanted: &WantedKeys, out: &mut [Value]) -> Option<()> {
    // Which wanted keys were seen (one bit each), to stop early; with 64 or more wanted keys
    // the scan reads to the end.
    let all_found = match wanted.keys.len() {
        0 => return Some(()),
        n if n < 64 => Some((1u64 << n) - 1),
        _ => None,
    };
    let mut found = 0u64;
    let mut at = skip_whitespace(text, 0);
    if *text.get(at)? != b'{' {
        return None;
    }
    at = skip_whitespace(text, at + 1);
    if *text.get(at)? == b'}' {
        return Some(());
    }
    loop {
        if *text.get(at)? != b'"' {
            return None;
        }
        let (key_end, escaped) = string_end(text, at)?;
        let raw_key = &text[at + 1..key_end];
        let hit = if escaped {
            let key: String = serde_json::from_slice(&text[at..=key_end]).ok()?;
            wanted.find(key.as_bytes())
        } else {
            wanted.find(raw_key)
        };
        at = skip_whitespace(text, key_end + 1);
        if *text.get(at)? != b':' {
            return None;
        }
        at = skip_whitespace(text, at + 1);
        let value_end = value_end(text, at)?;
        if let Some((position, slot)) = hit {
            let bit = if position < 64 { 1u64 << position } else { 0 };
            if found & bit == 0 {
                out[slot] = decode_value(&text[at..value_end])?;
                found |= bit;
                if Some(found) == all_found {
                    return Some(());
                }
            }
        }
        at = skip_whitespace(text, value_end);
        match *text.get(at)? {
            b',' => at = skip_whitespace(text, at + 1),
            b'}' => return Some(()),
            _ => return None,
        }
    }
}

/// The index of the first non-whitespace byte at or after `at` (JSON's four whitespace bytes).
pub(super) fn skip_whitespace(text: &[u8], mut at: usize) -> usize {
    while matches!(text.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// The index of the quote closing the string that opens at `start`, and whether the string
/// holds an escape.
pub(super) fn string_end(text: &[u8], start: usize) -> Option<(usize, bool)> {
    let mut at = start + 1;
    let mut escaped = false;
    loop {
        let next = at + quote_or_backslash(text.get(at..)?)?;
        if text[next] == b'"' {
            return Some((next, escaped));
        }
        // An escape: the next byte is escaped (`\uXXXX` continues with hex digits, no quotes).
        escaped = true;
        at = next + 2;
    }
}

/// The first `"` or `\` in `s`. Keys and values are mostly too short for a vectorised search
/// (memchr) to pay off, so this tests eight bytes per step in a register (the "has zero byte"
/// trick: a byte of `w ^ pattern` is zero where `w` holds the pattern byte; borrows can only
/// flag bytes above the first match, so the lowest flag is exact).
fn quote_or_backslash(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut words = s.chunks_exact(8);
    for (i, word) in words.by_ref().enumerate() {
        let w = u64::from_le_bytes(word.try_into().ok()?);
        let hits =
            zero_bytes(w ^ (ONES * u64::from(b'"'))) | zero_bytes(w ^ (ONES * u64::from(b'\\')));
        if hits != 0 {
            return Some(i * 8 + (hits.trailing_zeros() / 8) as usize);
        }
    }
    let tail = words.remainder();
    let start = s.len() - tail.len();
    tail.iter()
        .position(|&b| b == b'"' || b == b'\\')
        .map(|i| start + i)
}

/// The index just past the JSON value that starts at `start`.
pub(super) fn value_end(text: &[u8], start: usize) -> Option<usize> {
    match *text.get(start)? {
        b'"' => Some(string_end(text, start)?.0 + 1),
        b'{' | b'[' => nested_end(text, start),
        _ => {
            let len = text[start..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(text.len() - start);
            (len > 0).then_some(start + len)
        }
    }
}

/// The index just past the object or array that opens at `start` (nesting is rare in flat
/// documents, so a plain byte walk does).
fn nested_end(text: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut at = start;
    while at < text.len() {
        match text[at] {
            b'"' => at = string_end(text, at)?.0,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(at + 1);
                }
            }
            _ => {}
        }
        at += 1;
    }
    None
}

/// One wanted value. Plain strings and small integers (most values) skip serde_json; anything
/// else is decoded by it, so numbers keep their exact text and escapes are handled once.
fn decode_value(raw: &[u8]) -> Option<Value> {
    match raw {
        [b'"', inner @ .., b'"'] if !inner.contains(&b'\\') => {
            Some(Value::Text(std::str::from_utf8(inner).ok()?.to_owned()))
        }
        b"true" => Some(Value::Bool(true)),
        b"false" => Some(Value::Bool(false)),
        b"null" => Some(Value::Null),
        b"0" => Some(Value::Int(0)),
        // Up to 18 digits always fit an i64; negative numbers and the rest go to serde_json.
        [b'1'..=b'9', rest @ ..] if rest.len() < 18 && rest.iter().all(u8::is_ascii_digit) => {
            std::str::from_utf8(raw).ok()?.parse().ok().map(Value::Int)
        }
        _ => serde_json::from_slice::<CellSeed>(raw).ok().map(|c| c.0),
    }
}

/// One JSON value decoded straight into a cell: numbers keep their exact decimal text.
pub(crate) struct CellSeed(pub(crate) Value);

impl<'de> de::Deserialize<'de> for CellSeed {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct CellVisitor;
        impl<'de> Visitor<'de> for CellVisitor {
            type Value = CellSeed;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<CellSeed, E> {
                Ok(CellSeed(Value::Null))
            }
            fn visit_none<E>(self) -> Result<CellSeed, E> {
                Ok(CellSeed(Value::Null))
            }
            fn visit_bool<E>(self, v: bool) -> Result<CellSeed, E> {
                Ok(CellSeed(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<CellSeed, E> {
                Ok(CellSeed(Value::Int(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<CellSeed, E> {
                Ok(CellSeed(
                    i64::try_from(v)
                        .map(Value::Int)
                        .unwrap_or(Value::Float(v as f64)),
                ))
            }
            fn visit_f64<E>(self, v: f64) -> Result<CellSeed, E> {
                // The shortest text that round-trips is the text that was written.
                Ok(CellSeed(
                    v.to_string()
                        .parse::<Decimal>()
                        .map(Value::Decimal)
                        .unwrap_or(Value::Float(v)),
                ))
            }
            fn visit_str<E>(self, v: &str) -> Result<CellSeed, E> {
                Ok(CellSeed(Value::Text(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<CellSeed, E> {
                Ok(CellSeed(Value::Text(v)))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<CellSeed, A::Error> {
                let v: serde_json::Value =
                    de::Deserialize::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(CellSeed(Value::Text(v.to_string())))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<CellSeed, A::Error> {
                let v: serde_json::Value =
                    de::Deserialize::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(CellSeed(Value::Text(v.to_string())))
            }
        }
        d.deserialize_any(CellVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn wanted(keys: &[&str]) -> WantedKeys {
        let mut w = WantedKeys::default();
        for (slot, key) in keys.iter().enumerate() {
            w.push((*key).to_owned(), slot);
        }
        w
    }

    fn decode(text: &str, keys: &[&str]) -> Vec<Value> {
        let mut out = vec![Value::Null; keys.len()];
        decode_doc(text.as_bytes(), &wanted(keys), &mut out);
        out
    }

    /// What a full parse says the cell of `key` is: the reference the scan must agree with.
    fn parsed(text: &str, key: &str) -> Value {
        let doc: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).expect("object");
        doc.get(key)
            .map(|v| {
                serde_json::from_str::<CellSeed>(&v.to_string())
                    .expect("value")
                    .0
            })
            .unwrap_or(Value::Null)
    }

    #[test]
    fn wanted_values_keep_their_type_and_exact_text() {
        let text = r#"{"a": "x y", "b": true, "c": 58, "d": 45.10, "e": null, "f": -3,
            "g": "q\"uo\u00e9", "h": [1, {"i": "]"}], "j": {"k": "}"}, "l": 12345678901234567890,
            "m": 1e3, "n": 0, "o": false}"#;
        let keys = [
            "a", "b", "c", "d", "e", "f", "g", "h", "j", "l", "m", "n", "o",
        ];
        let got = decode(text, &keys);
        for (key, value) in keys.iter().zip(&got) {
            assert_eq!(*value, parsed(text, key), "key {key}");
        }
        assert_eq!(got[0], Value::Text("x y".into()));
        assert_eq!(got[3], Value::Decimal("45.1".parse().expect("decimal")));
        assert_eq!(got[6], Value::Text("q\"uoé".into()));
        assert_eq!(got[7], Value::Text(r#"[1,{"i":"]"}]"#.into()));
    }

    #[test]
    fn keys_the_document_lacks_and_escaped_keys() {
        let got = decode(r#"{"em\u0061il": "a@b.co", "z": 1}"#, &["email", "missing"]);
        assert_eq!(got, vec![Value::Text("a@b.co".into()), Value::Null]);
        assert_eq!(decode("{}", &["a"]), vec![Value::Null]);
        assert_eq!(decode(" { } ", &["a"]), vec![Value::Null]);
    }

    #[test]
    fn a_malformed_document_yields_what_came_before_the_break() {
        assert_eq!(
            decode(r#"{"a": 1, "b": tru, "c": 3}"#, &["a", "b", "c"]),
            vec![Value::Int(1), Value::Null, Value::Null]
        );
        for broken in [
            "",
            "[1]",
            "{",
            r#"{"a""#,
            r#"{"a": "#,
            r#"{"a": "x"#,
            "{\"a\" 1}",
        ] {
            assert_eq!(decode(broken, &["a"]), vec![Value::Null], "{broken:?}");
        }
        // Invalid UTF-8 inside a wanted string is not passed on.
        let mut out = vec![Value::Null];
        decode_doc(b"{\"a\": \"\xff\"}", &wanted(&["a"]), &mut out);
        assert_eq!(out, vec![Value::Null]);
    }

    #[test]
    fn quotes_and_backslashes_are_found_at_every_offset() {
        for len in 0..40 {
            for at in 0..len {
                for mark in [b'"', b'\\'] {
                    let mut s = vec![b'x'; len];
                    // Bytes that differ from the marks by one bit, and high bytes, never match.
                    for (i, b) in s.iter_mut().enumerate() {
                        *b = [b'x', b'#', b'^', 0xe9, b'!', b']'][i % 6];
                    }
                    s[at] = mark;
                    if at + 1 < len {
                        s[at + 1] = b'"';
                    }
                    assert_eq!(quote_or_backslash(&s), Some(at), "{len} {at}");
                }
            }
            assert_eq!(quote_or_backslash(&vec![b'a'; len]), None);
        }
    }

    #[test]
    fn the_first_of_duplicated_keys_wins_and_the_scan_stops_when_all_are_found() {
        assert_eq!(decode(r#"{"a": 1, "a": 2}"#, &["a"]), vec![Value::Int(1)]);
        // Everything after the last wanted key is never looked at, broken or not.
        assert_eq!(decode(r#"{"a": 1, garbage"#, &["a"]), vec![Value::Int(1)]);
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            (-1e6f64..1e6).prop_map(serde_json::Value::from),
            ".{0,12}".prop_map(serde_json::Value::String),
            prop::collection::vec(any::<i32>(), 0..3).prop_map(|v| serde_json::json!(v)),
        ]
    }

    proptest! {
        /// On any flat object serde_json writes, compact or pretty, the scan reads each wanted
        /// key exactly as a full parse does.
        #[test]
        fn the_scan_agrees_with_a_full_parse(
            entries in prop::collection::vec(("[a-z.\"\\\\é]{1,6}", json_value()), 0..12),
            pretty in any::<bool>(),
            extra in "[a-z]{1,3}",
        ) {
            let doc: serde_json::Map<String, serde_json::Value> = entries.into_iter().collect();
            let text = if pretty {
                serde_json::to_string_pretty(&doc).expect("json")
            } else {
                serde_json::to_string(&doc).expect("json")
            };
            let mut keys: Vec<&str> = doc.keys().map(String::as_str).step_by(2).collect();
            keys.push(&extra);
            let got = decode(&text, &keys);
            for (key, value) in keys.iter().zip(&got) {
                prop_assert_eq!(value, &parsed(&text, key), "key {} in {}", key, text);
            }
        }
    }
}
