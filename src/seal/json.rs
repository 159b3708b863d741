//! JSON forms for drift diagnosis: the canonical form whose digest proves two JSON texts hold
//! the same value (RFC 8785 style), and serializer styles, so a JSON file that a pipeline
//! re-indented or re-spaced can be rendered back byte for byte.
//!
//! Values are parsed keeping key order and each number's exact text (serde_json's
//! `preserve_order` and `arbitrary_precision`), so re-rendering changes only whitespace,
//! separators, key order and escapes: never a value.

use crate::digest::Digest;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Escapes every non-ASCII character as `\uXXXX` (lowercase hex, UTF-16 surrogate pairs
/// above U+FFFF), exactly as Python's `json.dumps(..., ensure_ascii=True)` does. Valid only for
/// JSON text, where non-ASCII characters can stand only inside strings.
pub fn escape_non_ascii(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut units = [0u16; 2];
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// Parses JSON text (no BOM) into a value that keeps key order and number text.
pub fn parse(text: &str) -> Option<Value> {
    serde_json::from_str(text).ok()
}

/// The canonical form: no insignificant whitespace, object members sorted by the UTF-16 code
/// units of their names (RFC 8785 §3.2.3), strings with the minimal escapes serde_json writes
/// (RFC 8785 §3.2.2.2), numbers as their source text. It departs from RFC 8785 only in
/// numbers, which are kept as written instead of re-serialized as ECMAScript doubles: a
/// pipeline that rewrites `1.0` as `1` has changed the text of a value, and that is reported.
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

/// SHA-256 of [`canonical`].
pub fn canonical_digest(value: &Value) -> Digest {
    Digest::of(canonical(value).as_bytes())
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&string(k));
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar_text(scalar)),
    }
}

fn string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

fn scalar_text(v: &Value) -> String {
    serde_json::to_string(v).expect("a scalar serializes")
}

/// Indentation of a pretty-printed style.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Indent {
    /// All on one line.
    None,
    /// This many spaces per level.
    Spaces(u8),
    /// One tab per level.
    Tab,
}

/// A serializer's output style, recorded at seal time when a JSON file's bytes are exactly
/// what that style renders from its own value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Style {
    /// Indentation.
    pub indent: Indent,
    /// Space after `,` between items on one line (Python's default `", "`).
    pub space_after_comma: bool,
    /// Space after `:` (Python, serde_json pretty and most pretty-printers: `": "`).
    pub space_after_colon: bool,
    /// Object members sorted by name (Python `sort_keys=True`, `jq -S`).
    pub sorted_keys: bool,
    /// Non-ASCII characters written as `\uXXXX` (Python `ensure_ascii=True`).
    pub ensure_ascii: bool,
    /// The text ends with a newline.
    pub final_newline: bool,
}

/// The styles tried at seal time: compact (serde_json, `JSON.stringify`), Python's default,
/// and pretty-printed with 2 or 4 spaces or a tab (Python `indent=`, `jq`, serde_json pretty,
/// `JSON.stringify(v, null, 2)`), each with and without sorted keys, escapes and final newline.
fn candidate_styles() -> impl Iterator<Item = Style> {
    let layouts = [
        (Indent::None, false, false),
        (Indent::None, true, true),
        (Indent::Spaces(2), false, true),
        (Indent::Spaces(4), false, true),
        (Indent::Tab, false, true),
    ];
    layouts
        .into_iter()
        .flat_map(|(indent, space_after_comma, space_after_colon)| {
            [false, true].into_iter().flat_map(move |sorted_keys| {
                [false, true].into_iter().flat_map(move |ensure_ascii| {
                    [true, false].into_iter().map(move |final_newline| Style {
                        indent,
                        space_after_comma,
                        space_after_colon,
                        sorted_keys,
                        ensure_ascii,
                        final_newline,
                    })
                })
            })
        })
}

/// True for the styles [`detect_style`] can record; a seal record naming any other (a
/// hostile one with a 255-space indent, say) is not rendered.
pub fn is_known_style(style: &Style) -> bool {
    candidate_styles().any(|s| s == *style)
}

/// The style that renders `value` to exactly `text`, if one of the known styles does. The
/// layout is read off the text (indentation of its second line, final newline, escapes), so
/// at most a few renders are compared, not every known style.
pub fn detect_style(value: &Value, text: &str) -> Option<Style> {
    let final_newline = text.ends_with('\n');
    let body = text.strip_suffix('\n').unwrap_or(text);
    let layouts: Vec<(Indent, bool, bool)> = match body.split('\n').nth(1) {
        None => vec![(Indent::None, false, false), (Indent::None, true, true)],
        Some(second) if second.starts_with('\t') => vec![(Indent::Tab, false, true)],
        Some(second) => match second.len() - second.trim_start_matches(' ').len() {
            2 => vec![(Indent::Spaces(2), false, true)],
            4 => vec![(Indent::Spaces(4), false, true)],
            _ => vec![],
        },
    };
    // Key order as written works for sorted keys too; escapes only matter for ASCII text.
    let escapes: &[bool] = if text.is_ascii() && text.contains("\\u") {
        &[false, true]
    } else {
        &[false]
    };
    layouts
        .into_iter()
        .flat_map(|(indent, space_after_comma, space_after_colon)| {
            escapes.iter().map(move |&ensure_ascii| Style {
                indent,
                space_after_comma,
                space_after_colon,
                sorted_keys: false,
                ensure_ascii,
                final_newline,
            })
        })
        .find(|s| render(value, s) == text)
        .map(|s| Style {
            sorted_keys: keys_sorted(value),
            ..s
        })
}

fn keys_sorted(value: &Value) -> bool {
    match value {
        Value::Object(map) => {
            let keys: Vec<&String> = map.keys().collect();
            keys.windows(2).all(|w| w[0] <= w[1]) && map.values().all(keys_sorted)
        }
        Value::Array(items) => items.iter().all(keys_sorted),
        _ => true,
    }
}

/// Renders `value` in `style`. Empty arrays and objects are `[]` and `{}` in every style.
pub fn render(value: &Value, style: &Style) -> String {
    let mut out = String::new();
    write_styled(value, style, 0, &mut out);
    if style.ensure_ascii {
        out = escape_non_ascii(&out);
    }
    if style.final_newline {
        out.push('\n');
    }
    out
}

fn newline_indent(style: &Style, depth: usize, out: &mut String) {
    match style.indent {
        Indent::None => {}
        Indent::Spaces(n) => {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', n as usize * depth));
        }
        Indent::Tab => {
            out.push('\n');
            out.extend(std::iter::repeat_n('\t', depth));
        }
    }
}

fn write_styled(value: &Value, style: &Style, depth: usize, out: &mut String) {
    let comma = |out: &mut String| {
        out.push(',');
        if style.indent == Indent::None && style.space_after_comma {
            out.push(' ');
        }
    };
    match value {
        Value::Object(map) if !map.is_empty() => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            if style.sorted_keys {
                members.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    comma(out);
                }
                newline_indent(style, depth + 1, out);
                out.push_str(&string(k));
                out.push_str(if style.space_after_colon { ": " } else { ":" });
                write_styled(v, style, depth + 1, out);
            }
            newline_indent(style, depth, out);
            out.push('}');
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    comma(out);
                }
                newline_indent(style, depth + 1, out);
                write_styled(v, style, depth + 1, out);
            }
            newline_indent(style, depth, out);
            out.push(']');
        }
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
        scalar => out.push_str(&scalar_text(scalar)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PY_INDENT2: &str = "{\n  \"b\": [\n    1,\n    2.50\n  ],\n  \"a\": \"Việt — x\",\n  \"e\": {},\n  \"f\": []\n}\n";

    #[test]
    fn canonical_ignores_whitespace_and_key_order_but_not_values() {
        let a = parse(PY_INDENT2).unwrap();
        let b = parse(r#"{"a":"Vi\u1ec7t \u2014 x","f":[],"e":{},"b":[1,2.50]}"#).unwrap();
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(
            canonical(&a),
            r#"{"a":"Việt — x","b":[1,2.50],"e":{},"f":[]}"#
        );
        let c = parse(r#"{"a":"Việt — x","f":[],"e":{},"b":[1,2.5]}"#).unwrap();
        assert_ne!(
            canonical_digest(&a),
            canonical_digest(&c),
            "2.50 -> 2.5 changes a value's text"
        );
    }

    #[test]
    fn canonical_sorts_by_utf16_code_units() {
        // U+1F600 is D83D DE00 in UTF-16, so it sorts before U+E000 (0xD83D < 0xE000),
        // although it comes after it by code point.
        let v = parse("{\"\u{E000}\": 2, \"\u{1F600}\": 1}").unwrap();
        assert_eq!(canonical(&v), "{\"\u{1F600}\":1,\"\u{E000}\":2}");
    }

    #[test]
    fn detects_and_renders_python_styles() {
        let v = parse(PY_INDENT2).unwrap();
        let style = detect_style(&v, PY_INDENT2).expect("python indent=2 style");
        assert_eq!(style.indent, Indent::Spaces(2));
        assert!(!style.sorted_keys && !style.ensure_ascii && style.final_newline);
        for s in candidate_styles() {
            let text = render(&v, &s);
            let back = parse(&text).unwrap();
            assert_eq!(canonical(&back), canonical(&v), "{s:?}");
            let found = detect_style(&back, &text).unwrap();
            assert_eq!(render(&back, &found), text, "{s:?}");
        }
        let compact_default = "{\"b\": [1, 2.50], \"a\": \"x\"}";
        let s = detect_style(&parse(compact_default).unwrap(), compact_default).unwrap();
        assert!(s.space_after_comma && s.indent == Indent::None && !s.final_newline);
        assert_eq!(detect_style(&v, "{ \"b\" : [1,2.50] }"), None);
    }
}
