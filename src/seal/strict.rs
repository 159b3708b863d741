//! Strict reading of the JSON documents `packet` itself defines (the seal record, rollback
//! evidence): what RFC 8259 leaves open is closed here, because a lenient reader is a way
//! around a check.
//!
//! RFC 8259 §4 says only that names within an object SHOULD be unique, and parsers differ on
//! which of two equal names wins (serde_json and Python keep the last, others the first). A
//! document whose meaning depends on the reader is refused: [`check`] rejects a duplicate
//! name at any depth, however it is escaped (`"a"` and `"\u0061"` are one name). Nesting is
//! bounded by [`MAX_DEPTH`] without recursion, so a 100,000-deep member cannot exhaust a
//! stack or hide behind a skipped value.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;
use std::fmt;

/// Deepest nesting of arrays and objects accepted in our own documents. The seal record
/// nests 4 deep and rollback evidence 3; 64 leaves producers room and stays far below any
/// stack limit.
pub const MAX_DEPTH: usize = 64;

/// The deepest nesting of `[` and `{` in JSON text, counted outside strings in one pass over
/// the bytes (no parse, no recursion). Text that is not JSON gives some number; the parse
/// that follows rejects it.
pub fn max_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Refuses what JSON text (RFC 8259 §8) must not carry in our documents, before any parse: a
/// UTF-8 byte order mark (§8.1: a sender MUST NOT add one; it means an editor or converter
/// rewrote the file) and a `\u` escape of a lone UTF-16 surrogate (§8.2: such a string has no
/// Unicode meaning, and readers replace, keep or refuse it differently). One pass over the
/// bytes; the error says which and where (byte offset).
pub fn check_text(bytes: &[u8]) -> Result<(), String> {
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Err(
            "starts with a UTF-8 BOM (RFC 8259 §8.1): an editor or converter rewrote it".into(),
        );
    }
    // No `\u` anywhere, no surrogate escape: most records and evidence, seen at memchr speed.
    // memchr for the backslash, not memmem for the pair: memmem builds a searcher per call,
    // which on one short record line per file cost more than the search.
    if !memchr::memchr_iter(b'\\', bytes).any(|at| bytes.get(at + 1) == Some(&b'u')) {
        return Ok(());
    }
    let hex4 = |at: usize| -> Option<u16> {
        let digits = bytes.get(at..at + 4)?;
        u16::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    };
    let (mut in_string, mut i) = (false, 0usize);
    // A high surrogate escape still waiting for its low half, with its offset.
    let mut pending: Option<usize> = None;
    while i < bytes.len() {
        let b = bytes[i];
        if !in_string {
            in_string = b == b'"';
            i += 1;
            continue;
        }
        let escape = (b == b'\\').then(|| bytes.get(i + 1).copied()).flatten();
        let unit = match escape {
            Some(b'u') => hex4(i + 2),
            _ => None,
        };
        match (pending, unit) {
            (Some(_), Some(0xDC00..=0xDFFF)) => pending = None,
            (Some(at), _) => return Err(lone_surrogate(bytes, at)),
            (None, Some(0xD800..=0xDBFF)) => pending = Some(i),
            (None, Some(0xDC00..=0xDFFF)) => return Err(lone_surrogate(bytes, i)),
            _ => {}
        }
        match (escape, unit) {
            (Some(_), Some(_)) => i += 6,
            (Some(_), None) => i += 2,
            (None, _) => {
                in_string = b != b'"';
                i += 1;
            }
        }
    }
    match pending {
        Some(at) => Err(lone_surrogate(bytes, at)),
        None => Ok(()),
    }
}

fn lone_surrogate(bytes: &[u8], at: usize) -> String {
    let escape = String::from_utf8_lossy(&bytes[at..(at + 6).min(bytes.len())]);
    format!(
        "lone UTF-16 surrogate escape `{escape}` at byte {at} (RFC 8259 §8.2): a string with no Unicode meaning"
    )
}

/// Checks that `bytes` are one JSON value nested at most [`MAX_DEPTH`] deep, with no object
/// holding the same name twice. The error names the problem and where (`entries[0]`), for a
/// reject message.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    check_text(bytes)?;
    let depth = max_depth(bytes);
    if depth > MAX_DEPTH {
        return Err(format!(
            "nested {depth} levels deep, above the limit of {MAX_DEPTH}"
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let found = Unique { at: String::new() }
        .deserialize(&mut de)
        .and_then(|()| de.end());
    match found {
        Ok(()) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// A value checked for duplicate names; `at` is where it stands, for the message.
struct Unique {
    at: String,
}

impl<'de> DeserializeSeed<'de> for Unique {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        while seq
            .next_element_seed(Unique {
                at: format!("{}[{i}]", self.at),
            })?
            .is_some()
        {
            i += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut names = HashSet::new();
        // Keys arrive unescaped, so `"a"` and `"\u0061"` compare equal here.
        while let Some(name) = map.next_key::<String>()? {
            let at = if self.at.is_empty() {
                name.clone()
            } else {
                format!("{}.{name}", self.at)
            };
            map.next_value_seed(Unique { at: at.clone() })?;
            if !names.insert(name) {
                return Err(de::Error::custom(format!(
                    "duplicate member `{at}`: readers disagree on which value counts"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_found_at_any_depth_however_escaped() {
        assert!(check(br#"{"a":1,"b":{"c":[{"d":1,"e":2}]}}"#).is_ok());
        let top = check(br#"{"a":1,"a":1}"#).unwrap_err();
        assert!(top.contains("duplicate member `a`"), "{top}");
        let deep = check(br#"{"entries":[{"h":"x"},{"h":"x","\u0068":"y"}]}"#).unwrap_err();
        assert!(deep.contains("`entries[1].h`"), "{deep}");
        // Numbers of any size pass through untouched (arbitrary_precision).
        assert!(check(br#"{"n":123456789012345678901234567890.5e3}"#).is_ok());
        assert!(check(b"{\"a\":1} x").is_err());
    }

    #[test]
    fn boms_and_lone_surrogates_are_refused() {
        assert!(check(b"\xEF\xBB\xBF{}").unwrap_err().contains("BOM"));
        for bad in [
            r#"{"a":"\ud800"}"#,
            r#"{"a":"x\uD83Dy"}"#,
            r#"{"a":"\udc00"}"#,
            r#"{"a":"\ud800\u0041"}"#,
            r#"{"\ud800":1}"#,
        ] {
            let why = check(bad.as_bytes()).unwrap_err();
            assert!(why.contains("lone UTF-16 surrogate"), "{bad}: {why}");
        }
        // A pair is one character; an escaped backslash before `u` is no escape.
        assert!(check(br#"{"a":"\ud83d\ude00","b":"\\ud800","c":"\u00e9"}"#).is_ok());
    }

    #[test]
    fn depth_is_bounded_without_recursion() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(max_depth(deep.as_bytes()), 100_000);
        assert!(
            check(deep.as_bytes())
                .unwrap_err()
                .contains("100000 levels")
        );
        // Brackets inside strings do not count.
        assert_eq!(max_depth(br#"{"a":"[[[{\"]"}"#), 1);
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(check(ok.as_bytes()).is_ok());
    }
}
