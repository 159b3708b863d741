//! Undoing one cause of drift: each [`Undo`] turns current text back the way one tool's
//! change would be reversed (a BOM removed, CRLF turned LF, folded dashes restored from the
//! sealed map, mojibake decoded back), and [`rebuild`] applies a set of them to give
//! candidate original bytes. Which sets to try is the search's business.

use crate::profile::{self, BOM, LineEnds, TextProfile};
use crate::reject::{Cause, RejectCode};
use std::collections::BTreeMap;
use unicode_normalization::UnicodeNormalization;

/// A legacy single-byte encoding that UTF-8 gets misread as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Legacy {
    /// Windows-1252 (WHATWG, as `encoding_rs` implements it).
    Cp1252,
    /// ISO-8859-1, byte for code point.
    Latin1,
}

impl Legacy {
    pub(super) fn name(self) -> &'static str {
        match self {
            Legacy::Cp1252 => "Windows-1252",
            Legacy::Latin1 => "Latin-1",
        }
    }

    /// Encodes `text` back to the bytes it was decoded from; `None` if a character has no
    /// byte in this encoding.
    pub(super) fn encode(self, text: &str) -> Option<Vec<u8>> {
        match self {
            Legacy::Cp1252 => {
                let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(text);
                (!unmappable).then(|| bytes.into_owned())
            }
            Legacy::Latin1 => text
                .chars()
                .map(|c| u8::try_from(u32::from(c)).ok())
                .collect(),
        }
    }
}

/// Undoes one round of mojibake: the text's characters are encoded back to the legacy bytes
/// they were decoded from, and those bytes are read as the UTF-8 they were.
pub(super) fn unmojibake(text: &str, legacy: Legacy) -> Option<String> {
    if text.is_ascii() {
        return None;
    }
    String::from_utf8(legacy.encode(text)?).ok()
}

/// One reversible transformation tried on the current text to rebuild the sealed bytes.
/// Variants are listed in the order they are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Undo {
    Mojibake { legacy: Legacy, rounds: u8 },
    Restyle,
    Unescape,
    LineEnds(LineEnds),
    Normalize { nfc: bool },
    TrailingWhitespace,
    Tabs { width: u8, leading_only: bool },
    Typographic { double_dash: bool },
    FinalNewline { add: bool },
    Bom { add: bool },
}

impl Undo {
    /// Position in the order undos are applied (the order of the variants above).
    pub(super) fn rank(self) -> u8 {
        match self {
            Undo::Mojibake { .. } => 0,
            Undo::Restyle => 1,
            Undo::Unescape => 2,
            Undo::LineEnds(_) => 3,
            Undo::Normalize { .. } => 4,
            Undo::TrailingWhitespace => 5,
            Undo::Tabs { .. } => 6,
            Undo::Typographic { .. } => 7,
            Undo::FinalNewline { .. } => 8,
            Undo::Bom { .. } => 9,
        }
    }

    /// Applies the undo to `body` (text without its BOM; `bom` says whether one goes in
    /// front). Returns the new body (`None` when it is unchanged, so nothing is copied) and
    /// BOM, or `None` when the undo cannot apply to this text.
    pub(super) fn transform(
        self,
        body: &str,
        bom: bool,
        s: Option<&TextProfile>,
    ) -> Option<(Option<String>, bool)> {
        let changed = |t: String| Some((Some(t), bom));
        match self {
            Undo::Mojibake { legacy, rounds } => {
                let mut t = unmojibake(body, legacy)?;
                for _ in 1..rounds {
                    t = unmojibake(&t, legacy)?;
                }
                // A BOM read as mojibake (`ï»¿`) comes back as U+FEFF in the body.
                match t.strip_prefix('\u{FEFF}') {
                    Some(rest) => Some((Some(rest.to_string()), true)),
                    None => changed(t),
                }
            }
            Undo::Restyle => {
                let style = s?.json_style.filter(crate::json::is_known_style)?;
                changed(crate::json::render(&crate::json::parse(body)?, &style))
            }
            Undo::Unescape => changed(profile::unescape_non_ascii(body)),
            Undo::LineEnds(target) => {
                let lf = body.replace("\r\n", "\n").replace('\r', "\n");
                changed(match target {
                    LineEnds::Crlf => lf.replace('\n', "\r\n"),
                    LineEnds::Cr => lf.replace('\n', "\r"),
                    _ => lf,
                })
            }
            Undo::Normalize { nfc: true } => changed(body.nfc().collect()),
            Undo::Normalize { nfc: false } => changed(body.nfd().collect()),
            Undo::TrailingWhitespace => changed(restore_trailing(body, s?.trailing_map.as_ref()?)?),
            Undo::Tabs {
                width,
                leading_only,
            } => changed(unexpand(body, usize::from(width), leading_only)),
            Undo::Typographic { double_dash } => {
                let map = profile::TypoMap::parse(s?.typo_map.as_deref()?)?;
                changed(restore_typographic(body, &map, double_dash)?)
            }
            Undo::FinalNewline { add: true } if body.ends_with(['\n', '\r']) => Some((None, bom)),
            Undo::FinalNewline { add: true } => changed(
                [
                    body,
                    match s.map(|s| s.eol) {
                        Some(LineEnds::Crlf) => "\r\n",
                        Some(LineEnds::Cr) => "\r",
                        _ => "\n",
                    },
                ]
                .concat(),
            ),
            Undo::FinalNewline { add: false } => {
                let end = body
                    .strip_suffix("\r\n")
                    .or_else(|| body.strip_suffix(['\n', '\r']))
                    .unwrap_or(body)
                    .len();
                changed(body[..end].to_string())
            }
            Undo::Bom { add } => Some((None, add)),
        }
    }

    /// The cause this undo reverses, described from what was sealed to what is there now.
    pub(super) fn cause(self, s: Option<&TextProfile>, now: &TextProfile) -> Cause {
        let (code, detail) = match self {
            Undo::Mojibake { legacy, rounds } => (
                RejectCode::DriftMojibake,
                format!(
                    "UTF-8 decoded as {} and encoded again as UTF-8, {} ({} non-ASCII characters now)",
                    legacy.name(),
                    if rounds == 1 {
                        "once".to_string()
                    } else {
                        format!("{rounds} times")
                    },
                    now.non_ascii
                ),
            ),
            Undo::Restyle => (
                RejectCode::DriftJsonReformat,
                format!(
                    "JSON re-serialized with an equal value; sealed style {}",
                    s.and_then(|s| s.json_style)
                        .map_or_else(String::new, |st| style_name(&st))
                ),
            ),
            Undo::Unescape => (
                RejectCode::DriftJsonAsciiEscape,
                format!(
                    "JSON re-encoded with ensure_ascii: {} \\uXXXX escapes now stand for non-ASCII characters",
                    now.u_escapes
                ),
            ),
            Undo::LineEnds(target) => (
                RejectCode::DriftCrlf,
                format!("line ends {} -> {}", eol_name(target), eol_name(now.eol)),
            ),
            Undo::Normalize { nfc } => (
                RejectCode::DriftUnicodeNormalization,
                if nfc {
                    "Unicode normalization NFC -> NFD (accents decomposed)".into()
                } else {
                    "Unicode normalization changed to NFC (accents composed)".into()
                },
            ),
            Undo::TrailingWhitespace
                if s.is_some_and(|s| s.trailing_ws_lines <= now.trailing_ws_lines) =>
            {
                (
                    RejectCode::DriftTabs,
                    format!(
                        "trailing tabs expanded to spaces: {} tabs sealed, {} now",
                        s.map_or(0, |s| s.tabs),
                        now.tabs
                    ),
                )
            }
            Undo::TrailingWhitespace => (
                RejectCode::DriftTrailingWhitespace,
                format!(
                    "trailing whitespace stripped: {} lines had some, {} now",
                    s.map_or(0, |s| s.trailing_ws_lines),
                    now.trailing_ws_lines
                ),
            ),
            Undo::Tabs {
                width,
                leading_only,
            } => (
                RejectCode::DriftTabs,
                format!(
                    "tabs expanded to spaces ({}tab width {width}): {} tabs sealed, {} now",
                    if leading_only {
                        "indentation only, "
                    } else {
                        ""
                    },
                    s.map_or(0, |s| s.tabs),
                    now.tabs
                ),
            ),
            Undo::Typographic { double_dash } => (
                RejectCode::DriftUnicode,
                format!(
                    "typographic characters folded to ASCII ({}): {} sealed, {} now",
                    if double_dash {
                        "em-dash written as --"
                    } else {
                        "each to its ASCII look-alike"
                    },
                    s.map_or(0, |s| s.typographic),
                    now.typographic
                ),
            ),
            Undo::FinalNewline { add } => (
                RejectCode::DriftFinalNewline,
                if add {
                    "final newline removed".into()
                } else {
                    "final newline added".into()
                },
            ),
            Undo::Bom { add } => (
                RejectCode::DriftBom,
                if add {
                    "UTF-8 BOM (EF BB BF) removed".into()
                } else {
                    "UTF-8 BOM (EF BB BF) added".into()
                },
            ),
        };
        Cause { code, detail }
    }
}

pub(super) fn style_name(s: &crate::json::Style) -> String {
    let indent = match s.indent {
        crate::json::Indent::None if s.space_after_comma => "one line, `, ` and `: `".to_string(),
        crate::json::Indent::None => "compact".to_string(),
        crate::json::Indent::Spaces(n) => format!("indent {n}"),
        crate::json::Indent::Tab => "tab indent".to_string(),
    };
    let mut out = indent;
    if s.sorted_keys {
        out.push_str(", sorted keys");
    }
    if s.ensure_ascii {
        out.push_str(", ensure_ascii");
    }
    out
}

pub(super) fn eol_name(e: LineEnds) -> &'static str {
    match e {
        LineEnds::None => "none",
        LineEnds::Lf => "LF",
        LineEnds::Crlf => "CRLF",
        LineEnds::Cr => "CR",
        LineEnds::Mixed => "mixed",
    }
}

/// Gives every line the map names exactly the trailing whitespace recorded for it, replacing
/// what it ends with now: that undoes both stripping and the expansion of a trailing tab.
pub(super) fn restore_trailing(body: &str, map: &profile::TrailingMap) -> Option<String> {
    let mut want = BTreeMap::new();
    let mut line = 0u64;
    for (delta, ws) in map {
        line = line.checked_add(*delta)?;
        if ws.is_empty() || !ws.chars().all(|c| c == ' ' || c == '\t') {
            return None;
        }
        want.insert(line, ws.as_str());
    }
    let mut out = String::with_capacity(body.len() + want.len() * 2);
    for (i, l) in body.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let (content, cr) = match l.strip_suffix('\r') {
            Some(c) => (c, "\r"),
            None => (l, ""),
        };
        match want.get(&(i as u64)) {
            Some(ws) => {
                out.push_str(content.trim_end_matches([' ', '\t']));
                out.push_str(ws);
            }
            None => out.push_str(content),
        }
        out.push_str(cr);
    }
    Some(out)
}

/// GNU `unexpand` with tab stops every `width` columns: blanks before the first non-blank
/// (or, with `leading_only` false, every run of two or more blanks ending at a tab stop)
/// become tabs.
pub(super) fn unexpand(body: &str, width: usize, leading_only: bool) -> String {
    let mut out = String::with_capacity(body.len());
    for (i, line) in body.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let (mut col, mut run, mut leading) = (0usize, 0usize, true);
        for c in line.chars() {
            if c == ' ' && (leading || !leading_only) {
                run += 1;
                col += 1;
                if col % width == 0 {
                    if run >= 2 || (leading && run >= 1) {
                        out.push('\t');
                    } else {
                        out.extend(std::iter::repeat_n(' ', run));
                    }
                    run = 0;
                }
                continue;
            }
            out.extend(std::iter::repeat_n(' ', run));
            run = 0;
            if c == '\t' {
                col += width - col % width;
            } else {
                leading = false;
                col += 1;
            }
            out.push(c);
        }
        out.extend(std::iter::repeat_n(' ', run));
    }
    out
}

/// Puts the typographic characters back at the places the map records. At each place the
/// text must hold the character itself (not folded) or its ASCII fold (`--` is also taken for
/// a dash when `double_dash`); otherwise `None`.
pub(super) fn restore_typographic(
    body: &str,
    map: &[(u64, char)],
    double_dash: bool,
) -> Option<String> {
    let mut out = String::with_capacity(body.len() + map.len() * 2);
    let mut rest = body;
    let mut pos = 0u64;
    for &(at, c) in map {
        while pos < at {
            let ch = rest.chars().next()?;
            out.push(ch);
            rest = &rest[ch.len_utf8()..];
            pos += 1;
        }
        let fold = profile::fold_char(c)?;
        let dash = fold == "-" && double_dash;
        let taken = if rest.starts_with(c) {
            c.len_utf8()
        } else if dash && rest.starts_with("--") {
            2
        } else if rest.starts_with(fold) {
            fold.len()
        } else {
            return None;
        };
        out.push(c);
        rest = &rest[taken..];
        pos += 1;
    }
    out.push_str(rest);
    Some(out)
}

/// Applies `undos` (in slot order) to the current body; the rebuilt bytes, BOM included.
pub(super) fn rebuild(
    bom: bool,
    body: &str,
    undos: &[Undo],
    s: Option<&TextProfile>,
) -> Option<Vec<u8>> {
    let (mut bom, mut owned) = (bom, None::<String>);
    for u in undos {
        let (next, b) = u.transform(owned.as_deref().unwrap_or(body), bom, s)?;
        bom = b;
        if next.is_some() {
            owned = next;
        }
    }
    let body = owned.as_deref().unwrap_or(body);
    let mut bytes = Vec::with_capacity(body.len() + 3);
    if bom {
        bytes.extend_from_slice(BOM);
    }
    bytes.extend_from_slice(body.as_bytes());
    Some(bytes)
}
