//! Text profiles: what a file's bytes look like as text, taken at seal time and again at verify
//! time, so drift diagnosis can name what moved (BOM, line ends, Unicode form, JSON escapes)
//! without holding the sealed bytes. Also owns the normalized form (`norm/1`) whose digest lets
//! diagnosis say a text is the same up to cosmetic drift even when its bytes cannot be rebuilt.

use crate::digest::Digest;
pub use crate::json::escape_non_ascii;
use serde::{Deserialize, Serialize};
use unicode_normalization::{IsNormalized, UnicodeNormalization};

/// Files larger than this, in bytes, are sealed without a profile (and so without drift
/// diagnosis): profiling needs the whole text in memory.
pub const PROFILE_LIMIT: u64 = 16 * 1024 * 1024;

/// The UTF-8 byte order mark.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A file's profile: binary, or UTF-8 text with its measurements.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "encoding")]
pub enum Profile {
    /// Not valid UTF-8, or holds a NUL byte.
    #[serde(rename = "binary")]
    Binary,
    /// Valid UTF-8 without NUL bytes.
    #[serde(rename = "utf-8")]
    Text(Box<TextProfile>),
}

/// How lines end in a text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineEnds {
    /// No line terminator at all.
    None,
    /// Only `\n`.
    Lf,
    /// Only `\r\n`.
    Crlf,
    /// Only lone `\r` (classic Mac OS).
    Cr,
    /// More than one kind.
    Mixed,
}

/// Measurements of a UTF-8 text. Counts are of Unicode scalar values (characters) or lines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextProfile {
    /// Starts with the UTF-8 BOM (EF BB BF).
    pub bom: bool,
    /// Kind of line terminators.
    pub eol: LineEnds,
    /// The last byte is a line terminator.
    pub final_newline: bool,
    /// Number of lines (terminators, plus one for an unterminated last line).
    pub lines: u64,
    /// Characters outside ASCII (the BOM not counted).
    pub non_ascii: u64,
    /// Typographic characters that tools fold to ASCII (see [`fold_char`]).
    pub typographic: u64,
    /// Tab characters.
    pub tabs: u64,
    /// Lines ending in a space or tab.
    pub trailing_ws_lines: u64,
    /// The text is in Unicode Normalization Form C (UAX #15).
    pub nfc: bool,
    /// The text (after any BOM) parses as JSON (RFC 8259).
    pub json: bool,
    /// Number of `\uXXXX` escapes (a `\\u` is an escaped backslash, not counted).
    pub u_escapes: u64,
    /// SHA-256 of the text's normalized form [`normalize`] (`norm/1`).
    pub norm_sha256: Digest,
    /// For JSON: SHA-256 of the canonical form ([`crate::json::canonical`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_sha256: Option<Digest>,
    /// For JSON whose bytes are exactly what a known serializer style renders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_style: Option<crate::json::Style>,
    /// Where the typographic characters stand ([`TypoMap`]), when there are at most
    /// [`MAP_LIMIT`]: enough to undo a fold to ASCII exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typo_map: Option<String>,
    /// Trailing whitespace per line ([`TrailingMap`]), when at most [`MAP_LIMIT`] lines have
    /// some: enough to undo stripping it exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trailing_map: Option<TrailingMap>,
}

/// Most entries a typographic or trailing-whitespace map holds; a text with more gets no map
/// (its fold or strip can then be shown consistent, not proven), so the seal record stays small.
pub const MAP_LIMIT: usize = 4096;

/// Typographic characters and their places, as a compact string: for each typographic
/// character in order, the number of characters since the previous one ended (in decimal),
/// then the character itself. `"12—3“5”"`: `—` at character 12 of the text (BOM not
/// counted), `“` at 16, `”` at 22.
pub struct TypoMap;

impl TypoMap {
    /// The map of `body`, or `None` above [`MAP_LIMIT`] entries or with none.
    pub fn of(body: &str) -> Option<String> {
        let mut out = String::new();
        let (mut since, mut n) = (0u64, 0usize);
        let mut from = 0;
        for (at, c) in typographic_chars(body) {
            n += 1;
            if n > MAP_LIMIT {
                return None;
            }
            since += char_count(&body.as_bytes()[from..at]);
            out.push_str(&since.to_string());
            out.push(c);
            since = 0;
            from = at + c.len_utf8();
        }
        (n > 0).then_some(out)
    }

    /// Parses a map into (character index, character) pairs; `None` if malformed.
    pub fn parse(map: &str) -> Option<Vec<(u64, char)>> {
        let mut out = Vec::new();
        let (mut pos, mut num, mut digits) = (0u64, 0u64, false);
        for c in map.chars() {
            if let Some(d) = c.to_digit(10) {
                num = num.checked_mul(10)?.checked_add(u64::from(d))?;
                digits = true;
            } else {
                if !digits || fold_char(c).is_none() {
                    return None;
                }
                pos = pos.checked_add(num)?;
                out.push((pos, c));
                pos = pos.checked_add(1)?;
                num = 0;
                digits = false;
            }
        }
        (!digits).then_some(out)
    }
}

/// Characters in a UTF-8 byte slice (bytes that are not continuation bytes).
fn char_count(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| (b & 0xC0) != 0x80).count() as u64
}

/// Every typographic character of `text` with its byte offset. All of them start with the
/// lead byte 0xC2 (U+00A0) or 0xE2 (U+2000..U+2FFF), so only those bytes are looked at.
fn typographic_chars(text: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    memchr::memchr2_iter(0xC2, 0xE2, text.as_bytes()).filter_map(move |at| {
        let c = text[at..].chars().next()?;
        fold_char(c).map(|_| (at, c))
    })
}

/// Trailing whitespace per line: `[[line delta, whitespace], ...]`, the line delta counted
/// from the previous entry's line (the first from line 0), lines split at `\n`.
pub type TrailingMap = Vec<(u64, String)>;

fn trailing_map(body: &str) -> Option<TrailingMap> {
    let mut out = Vec::new();
    let mut last = 0u64;
    for (i, line) in body.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let ws = &line[line.trim_end_matches([' ', '\t']).len()..];
        if !ws.is_empty() {
            if out.len() == MAP_LIMIT {
                return None;
            }
            out.push((i as u64 - last, ws.to_string()));
            last = i as u64;
        }
    }
    (!out.is_empty()).then_some(out)
}

impl Profile {
    /// Profiles `bytes`.
    pub fn of(bytes: &[u8]) -> Profile {
        match std::str::from_utf8(bytes) {
            Ok(text) if !bytes.contains(&0) => Profile::Text(Box::new(TextProfile::of(text))),
            _ => Profile::Binary,
        }
    }

    /// The text profile, if the file is text.
    pub fn text(&self) -> Option<&TextProfile> {
        match self {
            Profile::Text(t) => Some(t),
            Profile::Binary => None,
        }
    }
}

impl TextProfile {
    /// Profiles a UTF-8 text. Mostly single byte-level passes; the character-level work
    /// (non-ASCII counts, NFC, the typographic map) is skipped for ASCII text, and the
    /// normalized form is streamed into its digest, never built in memory.
    pub fn of(text: &str) -> TextProfile {
        let bom = text.starts_with('\u{FEFF}');
        let body = text.strip_prefix('\u{FEFF}').unwrap_or(text);
        let bytes = body.as_bytes();
        // Line ends are found with memchr; each one's preceding byte tells trailing blanks.
        let (mut lf, mut crlf, mut cr, mut trailing_ws_lines) = (0u64, 0u64, 0u64, 0u64);
        let blank_before = |at: usize| at > 0 && matches!(bytes[at - 1], b' ' | b'\t');
        let mut skip_lf = usize::MAX;
        for at in memchr::memchr2_iter(b'\r', b'\n', bytes) {
            if at == skip_lf {
                continue;
            }
            if bytes[at] == b'\r' && bytes.get(at + 1) == Some(&b'\n') {
                crlf += 1;
                skip_lf = at + 1;
            } else if bytes[at] == b'\r' {
                cr += 1;
            } else {
                lf += 1;
            }
            trailing_ws_lines += u64::from(blank_before(at));
        }
        trailing_ws_lines += u64::from(blank_before(bytes.len()));
        let tabs = bytes.iter().filter(|&&b| b == b'\t').count() as u64;
        let eol = match (lf > 0, crlf > 0, cr > 0) {
            (false, false, false) => LineEnds::None,
            (true, false, false) => LineEnds::Lf,
            (false, true, false) => LineEnds::Crlf,
            (false, false, true) => LineEnds::Cr,
            _ => LineEnds::Mixed,
        };
        let final_newline = body.ends_with('\n') || body.ends_with('\r');
        let terminators = lf + crlf + cr;
        let lines = terminators + u64::from(!body.is_empty() && !final_newline);
        let ascii = body.is_ascii();
        let (non_ascii, typographic, nfc) = if ascii {
            (0, 0, true)
        } else {
            let (non_ascii, nfc) = non_ascii_and_nfc(body);
            (non_ascii, typographic_chars(body).count() as u64, nfc)
        };
        let value = json_value(body);
        let json = value.is_some();
        let u_escapes = count_u_escapes(body);
        TextProfile {
            bom,
            eol,
            final_newline,
            lines,
            non_ascii,
            typographic,
            tabs,
            trailing_ws_lines,
            nfc,
            json,
            u_escapes,
            norm_sha256: norm_digest(body, json && u_escapes > 0, nfc),
            json_sha256: value.as_ref().map(crate::json::canonical_digest),
            json_style: value
                .as_ref()
                .and_then(|v| crate::json::detect_style(v, body)),
            typo_map: if typographic > 0 {
                TypoMap::of(body)
            } else {
                None
            },
            trailing_map: if trailing_ws_lines > 0 {
                trailing_map(body)
            } else {
                None
            },
        }
    }
}

/// The ASCII a typographic character is commonly folded to by editors, knowledge bases and
/// "smart punctuation" undo: dashes and the minus sign to `-`, curly quotes to straight ones,
/// the ellipsis to `...`, non-breaking and thin spaces to a space, arrows and relations to
/// their ASCII spellings. `None` for every other character.
pub fn fold_char(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2015}'
        | '\u{2212}' => "-",
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' => "'",
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' => "\"",
        '\u{2026}' => "...",
        '\u{00A0}' | '\u{2007}' | '\u{2009}' | '\u{200A}' | '\u{202F}' => " ",
        '\u{2192}' => "->",
        '\u{2190}' => "<-",
        '\u{2194}' => "<->",
        '\u{2260}' => "!=",
        '\u{2264}' => "<=",
        '\u{2265}' => ">=",
        _ => return None,
    })
}

/// Replaces every typographic character with its ASCII fold ([`fold_char`]).
pub fn fold_typographic(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match fold_char(c) {
            Some(ascii) => out.push_str(ascii),
            None => out.push(c),
        }
    }
    out
}

/// Counts `\uXXXX` escapes, skipping escaped backslashes so `\\u0041` counts zero. Jumps
/// from backslash to backslash with `memchr`: the byte-by-byte walk it replaced was 7 % of
/// sealing the Rust sysroot (52,073 files, 680 MB of them text).
pub fn count_u_escapes(text: &str) -> u64 {
    let b = text.as_bytes();
    let (mut i, mut n) = (0, 0);
    while let Some(k) = b.get(i..).and_then(|rest| memchr::memchr(b'\\', rest)) {
        let at = i + k;
        if b.get(at + 1) == Some(&b'u')
            && b.get(at + 2..at + 6)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
        {
            n += 1;
            i = at + 6;
        } else {
            // The escaped character, whatever it is, cannot start an escape.
            i = at + 2;
        }
    }
    n
}

/// The maximal runs of non-ASCII bytes of `bytes`, as byte ranges. Each is a whole run of
/// characters, since every byte of a multi-byte UTF-8 character is at least 0x80. ASCII is
/// skipped 16 bytes at a time.
fn non_ascii_runs(bytes: &[u8]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    const STEP: usize = 16;
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            match bytes.get(i..i + STEP) {
                Some(block) if block.is_ascii() => i += STEP,
                _ if bytes[i] < 0x80 => i += 1,
                _ => break,
            }
        }
        let start = i;
        i += bytes[i..].iter().take_while(|&&b| b >= 0x80).count();
        (i > start).then_some(start..i)
    })
}

/// The number of non-ASCII characters of `body`, and whether it is in Unicode Normalization
/// Form C (UAX #15), found by looking only at its non-ASCII runs: the check over every
/// character, ASCII included, was 12 % of sealing the Rust sysroot and the full check of a
/// text the quick one left in doubt another 9 %.
///
/// Why the runs decide it. An ASCII character has combining class 0 and NFC_QC=Yes, so it
/// never reorders with or composes onto what comes before it: normalization can be split
/// before every ASCII character (UAX #15, section 9). Each run is therefore checked with the
/// one ASCII character before it, which a combining mark in the run may compose onto: first
/// by the quick check (whose only state, the previous combining class, is 0 after an ASCII
/// character, as at the start of a text), then, where that says Maybe, in full.
fn non_ascii_and_nfc(body: &str) -> (u64, bool) {
    let (mut non_ascii, mut nfc) = (0u64, true);
    for run in non_ascii_runs(body.as_bytes()) {
        let part = &body[run.clone()];
        // Lead bytes of multi-byte characters count the characters.
        non_ascii += part.bytes().filter(|&b| b >= 0xC0).count() as u64;
        if nfc {
            nfc = match unicode_normalization::is_nfc_quick(part.chars()) {
                IsNormalized::Yes => true,
                IsNormalized::No => false,
                IsNormalized::Maybe => {
                    unicode_normalization::is_nfc(&body[run.start.saturating_sub(1)..run.end])
                }
            };
        }
    }
    (non_ascii, nfc)
}

/// Replaces `\uXXXX` escapes of non-ASCII characters (surrogate pairs joined) with the
/// characters themselves: the inverse of Python's `json.dumps(..., ensure_ascii=True)` on text
/// that `ensure_ascii=False` wrote. Escapes of ASCII characters, other escapes and lone
/// surrogates are left as they are.
pub fn unescape_non_ascii(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut i = 0;
    let hex4 = |at: usize| -> Option<u32> {
        let h = b.get(at..at + 4)?;
        if !h.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
    };
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        if b.get(i + 1) != Some(&b'u') {
            i += 2;
            continue;
        }
        let Some(unit) = hex4(i + 2) else {
            i += 2;
            continue;
        };
        let (ch, len) = if (0xD800..0xDC00).contains(&unit) {
            let low = (b.get(i + 6..i + 8) == Some(b"\\u"))
                .then(|| hex4(i + 8))
                .flatten();
            match low {
                Some(lo) if (0xDC00..0xE000).contains(&lo) => (
                    char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (lo - 0xDC00)),
                    12,
                ),
                _ => (None, 6),
            }
        } else {
            (char::from_u32(unit), 6)
        };
        match ch {
            Some(c) if !c.is_ascii() => {
                out.push_str(&text[last..i]);
                out.push(c);
                i += len;
                last = i;
            }
            _ => i += len,
        }
    }
    out.push_str(&text[last..]);
    out
}

/// The normalized form `norm/1` of a UTF-8 text, the one whose digest the seal records as
/// `norm_sha256`. In order: drop a leading BOM; for JSON, unescape non-ASCII `\uXXXX`
/// escapes; turn CRLF and lone CR into LF; NFC; fold typographic characters to ASCII; in each
/// line collapse runs of spaces and tabs to one space and of `-` to one `-`, and drop trailing
/// spaces; drop trailing newlines at the end. Two texts with the same normalized form differ
/// only by cosmetic drift.
pub fn normalize(text: &str) -> String {
    let body = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let json = json_value(body).is_some();
    let mut out = String::with_capacity(body.len());
    normalize_into(body, json, false, &mut |c| out.push(c));
    out
}

/// The JSON value of a text that is a JSON object or array (what the profile calls JSON);
/// `None` for anything else, top-level scalars included.
fn json_value(body: &str) -> Option<serde_json::Value> {
    matches!(
        body.as_bytes().trim_ascii_start().first(),
        Some(b'{' | b'[')
    )
    .then(|| crate::json::parse(body))
    .flatten()
}

/// SHA-256 of the normalized form of `body` (BOM already dropped), streamed: the form is
/// never held in memory. `unescape`: the text is JSON with `\u` escapes; `nfc`: it is known
/// to be in NFC already, so normalization can be skipped.
fn norm_digest(body: &str, unescape: bool, nfc: bool) -> Digest {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    if !unescape && nfc {
        // Text already in NFC needs no normalization: the line rules run on bytes. Runs of
        // plain bytes (not a blank, a dash, a line end or the 0xC2/0xE2 lead byte of a
        // character that may fold) are copied whole.
        const fn special_bytes() -> [bool; 256] {
            let mut t = [false; 256];
            t[b' ' as usize] = true;
            t[b'\t' as usize] = true;
            t[b'-' as usize] = true;
            t[b'\r' as usize] = true;
            t[b'\n' as usize] = true;
            t[0xC2] = true;
            t[0xE2] = true;
            t
        }
        const SPECIAL: [bool; 256] = special_bytes();
        let mut buf: Vec<u8> = Vec::with_capacity(16384);
        let mut line = LineFold::default();
        let bytes = body.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let start = i;
            while i < bytes.len() && !SPECIAL[bytes[i] as usize] {
                i += 1;
            }
            if i > start {
                line.push_bytes(&bytes[start..i], &mut buf);
            }
            if i == bytes.len() {
                break;
            }
            match bytes[i] {
                b'\r' => {
                    if bytes.get(i + 1) == Some(&b'\n') {
                        i += 1;
                    }
                    line.push('\n', &mut |c| buf.push(c as u8));
                }
                0xC2 | 0xE2 => {
                    let c = body[i..].chars().next().expect("valid UTF-8");
                    match fold_char(c) {
                        Some(ascii) => {
                            for a in ascii.bytes() {
                                line.push(char::from(a), &mut |c| buf.push(c as u8));
                            }
                        }
                        None => line.push_bytes(&bytes[i..i + c.len_utf8()], &mut buf),
                    }
                    i += c.len_utf8() - 1;
                }
                b => line.push(char::from(b), &mut |c| buf.push(c as u8)),
            }
            i += 1;
            if buf.len() >= 16000 {
                hasher.update(&buf);
                buf.clear();
            }
        }
        hasher.update(&buf);
        return Digest(hasher.finalize().into());
    }
    let mut buf = String::with_capacity(8192);
    normalize_into(body, unescape, nfc, &mut |c| {
        buf.push(c);
        if buf.len() >= 8000 {
            hasher.update(buf.as_bytes());
            buf.clear();
        }
    });
    hasher.update(buf.as_bytes());
    Digest(hasher.finalize().into())
}

/// The normalization of [`normalize`] as a stream of characters into `emit`.
fn normalize_into(body: &str, unescape: bool, nfc: bool, emit: &mut impl FnMut(char)) {
    let unescaped;
    let body = if unescape {
        unescaped = unescape_non_ascii(body);
        unescaped.as_str()
    } else {
        body
    };
    // Line ends: CRLF and lone CR become LF (they never combine, so NFC may come after).
    let mut chars = body.chars().peekable();
    let lf = std::iter::from_fn(move || {
        let c = chars.next()?;
        if c == '\r' {
            if chars.peek() == Some(&'\n') {
                chars.next();
            }
            return Some('\n');
        }
        Some(c)
    });
    let mut line = LineFold::default();
    let mut push = |c: char| match fold_char(c) {
        Some(ascii) => ascii.chars().for_each(|a| line.push(a, emit)),
        None => line.push(c, emit),
    };
    if nfc {
        lf.for_each(&mut push);
    } else {
        lf.nfc().for_each(&mut push);
    }
}

/// The per-line part of `norm/1`: tabs as spaces, runs of spaces and of `-` collapsed,
/// trailing spaces dropped, trailing newlines at the end dropped (spaces and newlines are held
/// back until a later character shows they are not trailing).
#[derive(Default)]
struct LineFold {
    /// Last character kept on this line (`'\0'` at its start).
    prev: char,
    /// A space kept but not yet emitted.
    space: bool,
    /// Newlines not yet emitted.
    newlines: usize,
}

impl LineFold {
    /// Pushes a run of bytes holding no blank, dash or line end: held-back newlines and
    /// space go out first, and the run ends any run of spaces or dashes.
    fn push_bytes(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        out.extend(std::iter::repeat_n(b'\n', self.newlines));
        self.newlines = 0;
        if self.space {
            out.push(b' ');
            self.space = false;
        }
        out.extend_from_slice(bytes);
        // The last byte is neither a blank nor a dash: it ends any run of them.
        self.prev = '\u{80}';
    }

    fn push(&mut self, c: char, emit: &mut impl FnMut(char)) {
        match c {
            '\n' => {
                self.space = false;
                self.prev = '\0';
                self.newlines += 1;
            }
            ' ' | '\t' => {
                if self.prev != ' ' {
                    self.space = true;
                    self.prev = ' ';
                }
            }
            _ => {
                if c == '-' && self.prev == '-' {
                    return;
                }
                for _ in 0..self.newlines {
                    emit('\n');
                }
                self.newlines = 0;
                if self.space {
                    emit(' ');
                    self.space = false;
                }
                emit(c);
                self.prev = c;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first implementation of `norm/1`, kept as the oracle the streaming one must match.
    fn reference_normalize(text: &str) -> String {
        let body = text.strip_prefix('\u{FEFF}').unwrap_or(text);
        let json = serde_json::from_str::<serde::de::IgnoredAny>(body).is_ok();
        let unescaped;
        let body = if json {
            unescaped = unescape_non_ascii(body);
            unescaped.as_str()
        } else {
            body
        };
        let lf = body.replace("\r\n", "\n").replace('\r', "\n");
        let folded = fold_typographic(&lf.nfc().collect::<String>());
        let mut out = String::with_capacity(folded.len());
        for (i, line) in folded.split('\n').enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let mut prev = '\0';
            let start = out.len();
            for c in line.chars() {
                let c = if c == '\t' { ' ' } else { c };
                if (c == ' ' || c == '-') && prev == c {
                    continue;
                }
                out.push(c);
                prev = c;
            }
            let trimmed = out[start..].trim_end_matches(' ').len();
            out.truncate(start + trimmed);
        }
        let end = out.trim_end_matches('\n').len();
        out.truncate(end);
        out
    }

    proptest::proptest! {
        #[test]
        fn streaming_norm_matches_the_reference(text in "[ -~\t\r\n—–“”‘’…→ ệếạ\u{0301}\u{0302}\u{00A0}-]{0,80}") {
            let reference = reference_normalize(&text);
            proptest::prop_assert_eq!(normalize(&text), reference.clone());
            let p = TextProfile::of(&text);
            proptest::prop_assert_eq!(p.norm_sha256, Digest::of(reference.as_bytes()));
        }
    }

    /// The byte-by-byte count [`count_u_escapes`] replaced.
    fn reference_u_escapes(text: &str) -> u64 {
        let b = text.as_bytes();
        let (mut i, mut n) = (0, 0);
        while i < b.len() {
            if b[i] == b'\\' {
                if b.get(i + 1) == Some(&b'u')
                    && b.get(i + 2..i + 6)
                        .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
                {
                    n += 1;
                    i += 6;
                    continue;
                }
                i += 2;
                continue;
            }
            i += 1;
        }
        n
    }

    proptest::proptest! {
        // Letters that compose with a following mark, marks of several combining classes
        // (0301 above, 0323 below, 0327 attached), precomposed letters, Hangul jamo that
        // compose and a syllable, kana with a voicing mark, a CJK compatibility ideograph
        // (never NFC), all between ASCII: every way a run could be judged apart from its
        // neighbours wrongly.
        #[test]
        fn nfc_by_runs_is_unicode_normalizations_verdict(
            text in "[aeAE o.\n\u{0301}\u{0323}\u{0327}\u{0302}éệÅ\u{1100}\u{1161}\u{11A8}\u{AC00}\u{304B}\u{3099}\u{F900}—]{0,24}"
        ) {
            let (non_ascii, nfc) = non_ascii_and_nfc(&text);
            proptest::prop_assert_eq!(nfc, unicode_normalization::is_nfc(&text));
            proptest::prop_assert_eq!(non_ascii, text.chars().filter(|c| !c.is_ascii()).count() as u64);
        }

        #[test]
        fn u_escapes_are_counted_as_the_byte_walk_counts(text in r#"(\\|u|00e9|x|"|\\u00e9|\\\\){0,16}"#) {
            proptest::prop_assert_eq!(count_u_escapes(&text), reference_u_escapes(&text));
        }
    }

    #[test]
    fn non_ascii_runs_are_maximal_and_skip_long_ascii() {
        let text = format!("{}é—{}ệ", "a".repeat(40), "b".repeat(17));
        let runs: Vec<_> = non_ascii_runs(text.as_bytes()).collect();
        assert_eq!(runs, vec![40..45, 62..65]);
        assert_eq!(
            non_ascii_runs(b"plain ascii, longer than sixteen bytes").count(),
            0
        );
        // A mark after an ASCII letter composes onto it: the run alone would pass.
        assert_eq!(non_ascii_and_nfc("cafe\u{0301}"), (1, false));
        assert_eq!(non_ascii_and_nfc("caf\u{00E9}"), (1, true));
    }

    #[test]
    fn streaming_norm_matches_the_reference_on_real_documents() {
        for doc in [
            include_str!("../../selftest/reference/001_d6b50f88b93da72f.txt"),
            include_str!("../../selftest/notes.md"),
            include_str!("../../selftest/evidence.json"),
        ] {
            for variant in [
                doc.to_string(),
                doc.replace('\n', "\r\n"),
                escape_non_ascii(doc),
                doc.nfd().collect(),
            ] {
                assert_eq!(normalize(&variant), reference_normalize(&variant));
                assert_eq!(
                    TextProfile::of(&variant).norm_sha256,
                    Digest::of(reference_normalize(&variant).as_bytes())
                );
            }
        }
    }

    fn text(bytes: &[u8]) -> TextProfile {
        match Profile::of(bytes) {
            Profile::Text(t) => *t,
            Profile::Binary => panic!("binary"),
        }
    }

    #[test]
    fn binary_is_invalid_utf8_or_nul() {
        assert_eq!(Profile::of(b"\xff\xfe"), Profile::Binary);
        assert_eq!(Profile::of(b"a\0b"), Profile::Binary);
        assert!(matches!(Profile::of(b""), Profile::Text(_)));
    }

    #[test]
    fn line_ends_and_final_newline() {
        assert_eq!(text(b"a\nb\n").eol, LineEnds::Lf);
        assert_eq!(text(b"a\r\nb\r\n").eol, LineEnds::Crlf);
        assert_eq!(text(b"a\rb").eol, LineEnds::Cr);
        assert_eq!(text(b"a\r\nb\n").eol, LineEnds::Mixed);
        assert_eq!(text(b"ab").eol, LineEnds::None);
        let t = text(b"a\nb");
        assert_eq!((t.lines, t.final_newline), (2, false));
        let t = text(b"a\r\nb\r\n");
        assert_eq!((t.lines, t.final_newline), (2, true));
    }

    #[test]
    fn counts_bom_non_ascii_typographic() {
        let t = text("\u{FEFF}Plan — R2 “quoted” Tiếng Việt\t \n".as_bytes());
        assert!(t.bom);
        assert_eq!(t.typographic, 3);
        assert_eq!(t.non_ascii, 3 + 2);
        assert_eq!((t.tabs, t.trailing_ws_lines), (1, 1));
        assert!(t.nfc);
        let nfd: String = "Tiếng Việt".nfd().collect();
        assert!(!text(nfd.as_bytes()).nfc);
    }

    #[test]
    fn json_and_u_escapes() {
        let t = text(br#"{"a": "\u2014 \\u0041 \u0041"}"#);
        assert!(t.json);
        assert_eq!(t.u_escapes, 2);
        assert!(!text(b"{not json").json);
    }

    #[test]
    fn escape_and_unescape_are_inverse_on_json() {
        let original = r#"{"note": "em — dash, Việt, 𝄞 clef, \\u2014 literal, \" quote"}"#;
        let escaped = escape_non_ascii(original);
        assert!(escaped.is_ascii());
        assert!(escaped.contains(r"\u2014"));
        assert!(escaped.contains(r"\ud834\udd1e"), "{escaped}");
        assert_eq!(unescape_non_ascii(&escaped), original);
        // ASCII escapes stay: they were not made by ensure_ascii.
        assert_eq!(unescape_non_ascii(r#""\u0041""#), r#""\u0041""#);
        // Lone surrogates stay escaped.
        assert_eq!(unescape_non_ascii(r#""\ud800x""#), r#""\ud800x""#);
    }

    #[test]
    fn normalized_form_absorbs_cosmetic_drift_only() {
        let original = "Plan — “R2”…\nline\twith  spaces\n";
        let drifted = "\u{FEFF}Plan - \"R2\"...\r\nline with spaces   \r\n\r\n";
        assert_eq!(normalize(original), normalize(drifted));
        let edited = "Plan — “R3”…\nline\twith  spaces\n";
        assert_ne!(normalize(original), normalize(edited));
        let deleted = "Plan — “R2”…\n";
        assert_ne!(normalize(original), normalize(deleted));
    }

    #[test]
    fn normalized_form_of_json_ignores_ascii_escapes() {
        let j = "{\"a\": \"Việt — x\"}\n";
        assert_eq!(normalize(j), normalize(&escape_non_ascii(j)));
        assert_eq!(
            text(j.as_bytes()).norm_sha256,
            text(escape_non_ascii(j).as_bytes()).norm_sha256
        );
    }
}
