//! Drift diagnosis: for a sealed file whose bytes no longer match, name the cause (BOM, line
//! ends, Unicode form or typographic folding, JSON `ensure_ascii` escapes) and say how well it
//! is proven, using only the current bytes and the profile sealed at build time.
//!
//! Proof levels: `proven` when undoing the named causes on the current bytes gives back the
//! sealed SHA-256 exactly; `consistent` when the normalized-text digest (`norm/1`) sealed at
//! build time matches the current one, so the text is the same up to cosmetic drift but the
//! exact bytes cannot be rebuilt; otherwise the content changed.

use crate::digest::Digest;
use crate::profile::{self, BOM, LineEnds, Profile, TextProfile};
use crate::reject::RejectCode;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use unicode_normalization::UnicodeNormalization;

/// Files larger than this, in bytes, are not diagnosed; the report says so.
pub const DIAGNOSE_LIMIT: u64 = profile::PROFILE_LIMIT;

/// How well a diagnosis is proven.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Proof {
    /// Undoing the causes on the current bytes reproduces the sealed SHA-256 exactly.
    Proven,
    /// The sealed normalized-text digest equals the current one: same text up to the named
    /// cosmetic causes, exact bytes not rebuildable.
    Consistent,
    /// The text itself changed; no cosmetic cause explains it.
    ContentChanged,
    /// Diagnosis was not attempted (file too large, binary, or no seal profile to compare).
    NotTried,
}

impl Proof {
    fn label(self) -> &'static str {
        match self {
            Proof::Proven => "proven",
            Proof::Consistent => "consistent",
            Proof::ContentChanged => "content changed",
            Proof::NotTried => "not tried",
        }
    }
}

/// One diagnosed cause of drift.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    /// A `DRIFT_*` code.
    pub code: RejectCode,
    /// What moved, e.g. `line ends LF -> CRLF`.
    pub detail: String,
}

/// The diagnosis of one mismatched file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// How well the causes are proven.
    pub proof: Proof,
    /// The causes (empty for `content-changed` and `not-tried`).
    pub causes: Vec<Cause>,
    /// One sentence for people.
    pub summary: String,
}

impl Diagnosis {
    fn new(proof: Proof, causes: Vec<Cause>, summary: String) -> Diagnosis {
        Diagnosis {
            proof,
            causes,
            summary,
        }
    }

    /// Codes of the causes, in order.
    pub fn codes(&self) -> Vec<RejectCode> {
        self.causes.iter().map(|c| c.code).collect()
    }

    /// Text lines, each prefixed with `indent`: `diagnosis: <proof>: <summary>` then one
    /// `<CODE>: <detail>` per cause.
    pub fn render(&self, indent: &str) -> String {
        let mut out = format!(
            "{indent}diagnosis ({}): {}",
            self.proof.label(),
            self.summary
        );
        for c in &self.causes {
            let _ = write!(out, "\n{indent}  {}: {}", c.code, c.detail);
        }
        out
    }
}

/// A diagnosis, with the sealed bytes rebuilt from the current ones when it is proven (their
/// SHA-256 has been checked against the sealed digest).
#[derive(Clone, Debug)]
pub struct Finding {
    /// The diagnosis.
    pub diagnosis: Diagnosis,
    /// The original bytes, for a proven diagnosis only.
    pub rebuilt: Option<Vec<u8>>,
}

impl From<Diagnosis> for Finding {
    fn from(diagnosis: Diagnosis) -> Finding {
        Finding {
            diagnosis,
            rebuilt: None,
        }
    }
}

/// Most rebuilds tried for one file; the search stops there and says so.
const MAX_ATTEMPTS: usize = 256;

/// Most bytes of text the rebuilds of one file may process in all (attempts times the file's
/// size), so a large file's search stays within seconds: 1 GiB is about 100 rebuilds of a
/// 10 MiB file.
const SEARCH_BYTES: usize = 1 << 30;

/// A legacy single-byte encoding that UTF-8 gets misread as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Legacy {
    /// Windows-1252 (WHATWG, as `encoding_rs` implements it).
    Cp1252,
    /// ISO-8859-1, byte for code point.
    Latin1,
}

impl Legacy {
    fn name(self) -> &'static str {
        match self {
            Legacy::Cp1252 => "Windows-1252",
            Legacy::Latin1 => "Latin-1",
        }
    }

    /// Encodes `text` back to the bytes it was decoded from; `None` if a character has no
    /// byte in this encoding.
    fn encode(self, text: &str) -> Option<Vec<u8>> {
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
fn unmojibake(text: &str, legacy: Legacy) -> Option<String> {
    if text.is_ascii() {
        return None;
    }
    String::from_utf8(legacy.encode(text)?).ok()
}

/// One reversible transformation tried on the current text to rebuild the sealed bytes.
/// Variants are listed in the order they are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Undo {
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
    fn rank(self) -> u8 {
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
    fn transform(
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
    fn cause(self, s: Option<&TextProfile>, now: &TextProfile) -> Cause {
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

fn style_name(s: &crate::json::Style) -> String {
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

fn eol_name(e: LineEnds) -> &'static str {
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
fn restore_trailing(body: &str, map: &profile::TrailingMap) -> Option<String> {
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
fn unexpand(body: &str, width: usize, leading_only: bool) -> String {
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
fn restore_typographic(body: &str, map: &[(u64, char)], double_dash: bool) -> Option<String> {
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

/// For each slot of causes the profiles point to, its variants (one is chosen at most).
fn candidate_slots(s: Option<&TextProfile>, now: &TextProfile, body: &str) -> Vec<Vec<Undo>> {
    let mut slots: Vec<Vec<Undo>> = Vec::new();
    let mut unmojibaked: Option<String> = None;
    // Counts cannot rule mojibake out (a fold first can remove as many non-ASCII characters as
    // mojibake adds); a reversal that yields valid UTF-8 is itself the evidence, and the
    // digest decides.
    if now.non_ascii > 0 {
        let mut variants = Vec::new();
        for legacy in [Legacy::Cp1252, Legacy::Latin1] {
            let mut t = body.to_string();
            for rounds in 1..=3u8 {
                match unmojibake(&t, legacy) {
                    Some(next) if next != t => {
                        variants.push(Undo::Mojibake { legacy, rounds });
                        t = next;
                    }
                    _ => break,
                }
            }
            if unmojibaked.is_none() && !variants.is_empty() {
                unmojibaked = Some(t);
            }
        }
        if !variants.is_empty() {
            slots.push(variants);
        }
    }
    // Mojibake hides what happened before it (an NFD text's combining marks become `Ì‚`):
    // the text with the mojibake undone suggests undos too.
    let mut profiles = vec![now.clone()];
    if let Some(t) = &unmojibaked {
        profiles.push(TextProfile::of(t));
    }
    for p in &profiles {
        for slot in profile_slots(s, p) {
            if !slots.contains(&slot) {
                slots.push(slot);
            }
        }
    }
    slots.sort_by_key(|slot| slot[0].rank());
    slots
}

/// Undos suggested by how the sealed profile differs from `now`.
fn profile_slots(s: Option<&TextProfile>, now: &TextProfile) -> Vec<Vec<Undo>> {
    let mut slots: Vec<Vec<Undo>> = Vec::new();
    match s {
        Some(s) => {
            if s.json_style.is_some() && s.json_sha256.is_some() && s.json_sha256 == now.json_sha256
            {
                slots.push(vec![Undo::Restyle]);
            }
            if now.u_escapes > s.u_escapes {
                slots.push(vec![Undo::Unescape]);
            }
            if s.eol != now.eol && matches!(s.eol, LineEnds::Lf | LineEnds::Crlf | LineEnds::Cr) {
                slots.push(vec![Undo::LineEnds(s.eol)]);
            }
            if s.nfc != now.nfc {
                slots.push(vec![Undo::Normalize { nfc: s.nfc }]);
            }
            // Stripped trailing whitespace, or a trailing tab expanded to spaces.
            let trailing_moved = s.trailing_ws_lines > now.trailing_ws_lines || s.tabs > now.tabs;
            if trailing_moved && s.trailing_map.is_some() {
                slots.push(vec![Undo::TrailingWhitespace]);
            }
            if s.tabs > now.tabs {
                slots.push(
                    [(8, true), (4, true), (2, true), (8, false), (4, false)]
                        .into_iter()
                        .map(|(width, leading_only)| Undo::Tabs {
                            width,
                            leading_only,
                        })
                        .collect(),
                );
            }
            if s.typographic > now.typographic && s.typo_map.is_some() {
                slots.push(vec![
                    Undo::Typographic { double_dash: false },
                    Undo::Typographic { double_dash: true },
                ]);
            }
            if s.final_newline != now.final_newline {
                slots.push(vec![Undo::FinalNewline {
                    add: s.final_newline,
                }]);
            }
            if s.bom != now.bom {
                slots.push(vec![Undo::Bom { add: s.bom }]);
            }
        }
        None => {
            if now.u_escapes > 0 {
                slots.push(vec![Undo::Unescape]);
            }
            if matches!(now.eol, LineEnds::Crlf | LineEnds::Cr | LineEnds::Mixed) {
                slots.push(vec![Undo::LineEnds(LineEnds::Lf)]);
            }
            if !now.nfc {
                slots.push(vec![Undo::Normalize { nfc: true }]);
            }
            if now.bom {
                slots.push(vec![Undo::Bom { add: false }]);
            }
        }
    }
    slots
}

/// Applies `undos` (in slot order) to the current body; the rebuilt bytes, BOM included.
fn rebuild(bom: bool, body: &str, undos: &[Undo], s: Option<&TextProfile>) -> Option<Vec<u8>> {
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

/// Every choice of one variant per slot in `chosen` (indices into `slots`).
fn variant_combos(slots: &[Vec<Undo>], chosen: &[usize]) -> Vec<Vec<Undo>> {
    let mut combos = vec![Vec::new()];
    for &i in chosen {
        combos = combos
            .into_iter()
            .flat_map(|prefix| {
                slots[i].iter().map(move |&u| {
                    let mut c = prefix.clone();
                    c.push(u);
                    c
                })
            })
            .collect();
    }
    combos
}

/// The undos that rebuilt the sealed bytes, and those bytes.
type Rebuilt = (Vec<Undo>, Vec<u8>);

/// Searches for the undos that rebuild the sealed digest: the full set of slots first (the
/// usual case: every difference the profiles show is a cause), then smaller subsets; a match
/// is then shrunk to the fewest undos that still rebuild it. `Err(n)` when the budget of `n`
/// rebuilds ran out first.
fn search(
    sealed_digest: &Digest,
    bom: bool,
    body: &str,
    slots: &[Vec<Undo>],
    s: Option<&TextProfile>,
) -> Result<Option<Rebuilt>, usize> {
    let n = slots.len();
    let mut subsets: Vec<u32> = (1u32..(1 << n)).collect();
    subsets.sort_by_key(|m| std::cmp::Reverse(m.count_ones()));
    let budget = (SEARCH_BYTES / body.len().max(1)).clamp(8, MAX_ATTEMPTS);
    let mut attempts = 0;
    for mask in subsets {
        let chosen: Vec<usize> = (0..n).filter(|i| mask & (1 << i) != 0).collect();
        for combo in variant_combos(slots, &chosen) {
            attempts += 1;
            if attempts > budget {
                return Err(budget);
            }
            let Some(bytes) = rebuild(bom, body, &combo, s) else {
                continue;
            };
            if Digest::of(&bytes) == *sealed_digest {
                return Ok(Some(shrink(sealed_digest, bom, body, combo, bytes, s)));
            }
        }
    }
    Ok(None)
}

fn shrink(
    sealed_digest: &Digest,
    bom: bool,
    body: &str,
    mut undos: Vec<Undo>,
    mut bytes: Vec<u8>,
    s: Option<&TextProfile>,
) -> (Vec<Undo>, Vec<u8>) {
    let mut i = 0;
    while i < undos.len() && undos.len() > 1 {
        let mut fewer = undos.clone();
        fewer.remove(i);
        match rebuild(bom, body, &fewer, s) {
            Some(b) if Digest::of(&b) == *sealed_digest => {
                undos = fewer;
                bytes = b;
            }
            _ => i += 1,
        }
    }
    (undos, bytes)
}

/// Diagnoses a sealed file whose bytes no longer match; see [`examine`].
pub fn diagnose(sealed_digest: &Digest, sealed: Option<&Profile>, current: &[u8]) -> Diagnosis {
    examine(sealed_digest, sealed, current).diagnosis
}

/// Diagnoses a sealed file whose bytes no longer match, and rebuilds the sealed bytes when
/// the diagnosis is proven.
///
/// `sealed_digest` is the manifest's digest; `sealed` the seal record's profile, if any;
/// `current` the file's bytes now. The causes tried are those the difference between the
/// sealed and current profiles points to (without a sealed profile: those the current text
/// makes plausible); at most [`MAX_ATTEMPTS`] rebuilds are hashed.
pub fn examine(sealed_digest: &Digest, sealed: Option<&Profile>, current: &[u8]) -> Finding {
    if current.len() as u64 > DIAGNOSE_LIMIT {
        return too_large(current.len() as u64).into();
    }
    let sealed_text = match sealed {
        Some(Profile::Binary) => {
            let summary = "binary file: its bytes changed".into();
            return Diagnosis::new(Proof::ContentChanged, vec![], summary).into();
        }
        Some(Profile::Text(t)) => Some(t.as_ref()),
        None => None,
    };
    let now_profile = Profile::of(current);
    let (Some(text), Profile::Text(now)) = (std::str::from_utf8(current).ok(), &now_profile) else {
        let (proof, summary) = if sealed_text.is_some() {
            (
                Proof::ContentChanged,
                "content changed: sealed as UTF-8 text, now binary (not valid UTF-8 or holds NUL)",
            )
        } else {
            (Proof::NotTried, "not diagnosed: the file is not UTF-8 text")
        };
        return Diagnosis::new(proof, vec![], summary.into()).into();
    };
    let (bom, body) = match text.strip_prefix('\u{FEFF}') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let slots = candidate_slots(sealed_text, now, body);

    let searched = search(sealed_digest, bom, body, &slots, sealed_text);
    if let Ok(Some((undos, bytes))) = searched {
        let mut causes: Vec<Cause> = undos.iter().map(|u| u.cause(sealed_text, now)).collect();
        causes.dedup_by(|a, b| a.code == b.code);
        let names: Vec<String> = causes.iter().map(|c| c.code.to_string()).collect();
        let summary = format!(
            "undoing {} on the current bytes gives back the sealed SHA-256 exactly",
            names.join(" + ")
        );
        return Finding {
            diagnosis: Diagnosis::new(Proof::Proven, causes, summary),
            rebuilt: Some(bytes),
        };
    }

    let cut = match searched {
        Err(n) => {
            format!("; the search for an exact rebuild stopped at its budget of {n} rebuilds")
        }
        Ok(_) => String::new(),
    };
    let Some(s) = sealed_text else {
        let summary = format!(
            "no seal profile for this file (sealed by another tool?) and no simple undo rebuilds it{cut}"
        );
        return Diagnosis::new(Proof::NotTried, vec![], summary).into();
    };
    // Best effort: every applicable undo's first variant. Mojibake must be undone before a
    // normalized digest can match; the rest the normalized form absorbs anyway.
    let (mut best_bom, mut best) = (bom, None::<String>);
    let mut applied = Vec::new();
    for slot in &slots {
        let u = slot[0];
        if let Some((next, b)) = u.transform(best.as_deref().unwrap_or(body), best_bom, sealed_text)
        {
            best_bom = b;
            if next.is_some() {
                best = next;
            }
            applied.push(u);
        }
    }
    let best = best.as_deref().unwrap_or(body);
    let unmojibaked = applied
        .iter()
        .find(|u| matches!(u, Undo::Mojibake { .. }))
        .copied();
    let json_value = crate::json::parse(best);
    let json_equal = s.json_sha256.is_some()
        && json_value.as_ref().map(crate::json::canonical_digest) == s.json_sha256;
    let norm_equal = Digest::of(profile::normalize(best).as_bytes()) == s.norm_sha256;
    if norm_equal || json_equal {
        let mut causes = observed_causes(s, now);
        if let Some(u) = unmojibaked {
            causes.insert(0, u.cause(sealed_text, now));
        }
        if json_equal && !norm_equal {
            causes.push(Cause {
                code: RejectCode::DriftJsonReformat,
                detail: "JSON re-serialized: the canonical JSON digest sealed at build time matches (same value)"
                    .into(),
            });
        }
        causes.sort_by_key(|c| c.code);
        causes.dedup_by(|a, b| a.code == b.code);
        let summary = if causes.is_empty() {
            "same text up to whitespace; the exact sealed bytes cannot be rebuilt"
        } else if json_equal && !norm_equal {
            "same JSON value (canonical digest matches); the exact sealed bytes cannot be rebuilt"
        } else {
            "same text up to these cosmetic causes (normalized digest matches); the exact sealed bytes cannot be rebuilt"
        };
        return Diagnosis::new(Proof::Consistent, causes, format!("{summary}{cut}")).into();
    }
    Diagnosis::new(Proof::ContentChanged, vec![], content_summary(s, now)).into()
}

/// A diagnosis that was not attempted, saying why.
pub fn not_tried(why: String) -> Diagnosis {
    Diagnosis::new(Proof::NotTried, vec![], why)
}

/// The diagnosis of a file above [`DIAGNOSE_LIMIT`]: not tried, and saying why.
pub fn too_large(len: u64) -> Diagnosis {
    Diagnosis::new(
        Proof::NotTried,
        vec![],
        format!("not diagnosed: {len} bytes is above the {DIAGNOSE_LIMIT}-byte diagnosis limit"),
    )
}

/// Causes visible in the profile differences, for a consistent diagnosis.
fn observed_causes(s: &TextProfile, now: &TextProfile) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut add = |code, detail: String| causes.push(Cause { code, detail });
    if s.bom != now.bom {
        add(
            RejectCode::DriftBom,
            if now.bom {
                "UTF-8 BOM added".into()
            } else {
                "UTF-8 BOM removed".into()
            },
        );
    }
    if s.eol != now.eol && now.eol != LineEnds::None {
        add(
            RejectCode::DriftCrlf,
            format!("line ends {} -> {}", eol_name(s.eol), eol_name(now.eol)),
        );
    }
    if s.final_newline != now.final_newline {
        add(
            RejectCode::DriftFinalNewline,
            if now.final_newline {
                "final newline added".into()
            } else {
                "final newline removed".into()
            },
        );
    }
    if now.trailing_ws_lines < s.trailing_ws_lines {
        add(
            RejectCode::DriftTrailingWhitespace,
            format!(
                "trailing whitespace stripped: {} lines had some, {} now",
                s.trailing_ws_lines, now.trailing_ws_lines
            ),
        );
    }
    if now.tabs < s.tabs {
        add(
            RejectCode::DriftTabs,
            format!(
                "tabs expanded to spaces: {} sealed, {} now",
                s.tabs, now.tabs
            ),
        );
    }
    if s.nfc != now.nfc {
        add(
            RejectCode::DriftUnicodeNormalization,
            format!(
                "Unicode normalization {}",
                if now.nfc { "NFD -> NFC" } else { "NFC -> NFD" }
            ),
        );
    }
    if now.typographic < s.typographic {
        add(
            RejectCode::DriftUnicode,
            format!(
                "typographic characters folded to ASCII: {} sealed (em-dash, curly quotes, ellipsis, ...), {} now",
                s.typographic, now.typographic
            ),
        );
    } else if now.typographic > s.typographic {
        add(
            RejectCode::DriftUnicode,
            format!(
                "ASCII turned typographic (smart punctuation): {} typographic characters sealed, {} now",
                s.typographic, now.typographic
            ),
        );
    }
    if now.u_escapes > s.u_escapes {
        add(
            RejectCode::DriftJsonAsciiEscape,
            format!(
                "JSON re-encoded with ensure_ascii: {} \\uXXXX escapes sealed, {} now",
                s.u_escapes, now.u_escapes
            ),
        );
    }
    causes
}

/// Says plainly how the content moved, from the profile counts.
fn content_summary(s: &TextProfile, now: &TextProfile) -> String {
    let mut out =
        "content changed: the normalized text differs, so this is not cosmetic drift".to_string();
    let mut moved = Vec::new();
    if s.lines != now.lines {
        let d = now.lines as i64 - s.lines as i64;
        moved.push(format!("lines {} -> {} ({d:+})", s.lines, now.lines));
    }
    if s.non_ascii != now.non_ascii {
        moved.push(format!(
            "non-ASCII characters {} -> {}",
            s.non_ascii, now.non_ascii
        ));
    }
    if s.json != now.json {
        moved.push(if s.json {
            "no longer parses as JSON".into()
        } else {
            "now parses as JSON".into()
        });
    } else if s.json && s.json_sha256.is_some() && s.json_sha256 != now.json_sha256 {
        moved.push("the JSON value changed".into());
    }
    if !moved.is_empty() {
        let _ = write!(out, " ({})", moved.join("; "));
    }
    out
}

/// How two file names are the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameDrift {
    /// Equal after Unicode NFC normalization (a macOS or KB round trip turned NFC into NFD).
    Normalization,
    /// Equal after normalization and lowercasing (a case-insensitive file system or tool).
    Case,
}

impl NameDrift {
    /// Words for reports.
    pub fn label(self) -> &'static str {
        match self {
            NameDrift::Normalization => "Unicode normalization (NFC/NFD)",
            NameDrift::Case => "letter case",
        }
    }
}

/// A name as a case-insensitive, normalization-insensitive file system sees it: NFC, then
/// lowercase. Two names with one fold are one file on macOS (APFS) or Windows (NTFS).
pub fn fold_name(name: &str) -> String {
    name.nfc().collect::<String>().to_lowercase()
}

/// Pairs each missing sealed path with the one unsealed path equal to it up to normalization
/// (preferred) or case. Ambiguous pairings are left unpaired.
pub fn pair_renamed<'p>(
    missing: &[&'p str],
    extra: &[&'p str],
) -> BTreeMap<&'p str, (&'p str, NameDrift)> {
    let nfc = |s: &str| s.nfc().collect::<String>();
    let mut out = BTreeMap::new();
    let mut taken = BTreeSet::new();
    for how in [NameDrift::Normalization, NameDrift::Case] {
        let key = |s: &str| match how {
            NameDrift::Normalization => nfc(s),
            NameDrift::Case => fold_name(s),
        };
        for m in missing {
            if out.contains_key(m) {
                continue;
            }
            let k = key(m);
            let hits: Vec<&str> = extra
                .iter()
                .copied()
                .filter(|e| !taken.contains(e) && key(e) == k)
                .collect();
            if let [one] = hits[..] {
                out.insert(*m, (one, how));
                taken.insert(one);
            }
        }
    }
    out
}

impl Cause {
    /// The cause for a file found under a drifted name.
    pub fn path(sealed: &str, found: &str, how: NameDrift) -> Cause {
        Cause {
            code: RejectCode::DriftPathNormalization,
            detail: format!("file name {sealed:?} became {found:?} ({})", how.label()),
        }
    }
}

impl Diagnosis {
    /// The diagnosis of a file whose bytes are intact but whose name drifted: proven, since
    /// the bytes under the new name hash to the sealed digest.
    pub fn path_only(sealed: &str, found: &str, how: NameDrift) -> Diagnosis {
        Diagnosis::new(
            Proof::Proven,
            vec![Cause::path(sealed, found, how)],
            "only the name drifted: the bytes found under the new name hash to the sealed digest"
                .into(),
        )
    }
}

/// Bytes with a BOM added, for making drift in tests and the self-test.
pub fn add_bom(bytes: &[u8]) -> Vec<u8> {
    [BOM, bytes].concat()
}

/// Drift made the way real tools make it, for the self-test and tests. Each function is the
/// forward transformation whose undo [`examine`] looks for.
pub mod make {
    use unicode_normalization::UnicodeNormalization;

    /// Reads UTF-8 bytes as Windows-1252 (what a legacy editor or a mis-declared web form does)
    /// and returns the text that is then saved as UTF-8: one round of mojibake.
    pub fn mojibake_cp1252(text: &str) -> String {
        encoding_rs::WINDOWS_1252
            .decode_without_bom_handling(text.as_bytes())
            .0
            .into_owned()
    }

    /// Python `unicodedata.normalize('NFD', text)`.
    pub fn nfd(text: &str) -> String {
        text.nfd().collect()
    }

    /// `git` with `core.autocrlf=true` on checkout: LF to CRLF.
    pub fn crlf(text: &str) -> String {
        text.replace("\r\n", "\n").replace('\n', "\r\n")
    }

    /// An editor's "strip trailing whitespace on save".
    pub fn strip_trailing(text: &str) -> String {
        text.split('\n')
            .map(|l| match l.strip_suffix('\r') {
                Some(c) => format!("{}\r", c.trim_end_matches([' ', '\t'])),
                None => l.trim_end_matches([' ', '\t']).to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// GNU `expand --tabs=WIDTH`: every tab to spaces up to the next tab stop.
    pub fn expand(text: &str, width: usize) -> String {
        let mut out = String::with_capacity(text.len());
        let mut col = 0;
        for c in text.chars() {
            match c {
                '\t' => {
                    let n = width - col % width;
                    out.extend(std::iter::repeat_n(' ', n));
                    col += n;
                }
                '\n' => {
                    out.push(c);
                    col = 0;
                }
                _ => {
                    out.push(c);
                    col += 1;
                }
            }
        }
        out
    }

    /// Removes one final newline, as editors set not to end files with one do.
    pub fn drop_final_newline(text: &str) -> String {
        text.strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(text)
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str =
        "Plan — R2 “gate”\nTiếng Việt: không chạm production…\n\tindented line  \nend\n";
    const JSON: &str = "{\n  \"note\": \"em — dash, Việt\",\n  \"n\": 1\n}\n";

    fn sealed(text: &str) -> (Digest, Profile) {
        (Digest::of(text.as_bytes()), Profile::of(text.as_bytes()))
    }

    fn diag(original: &str, now: &[u8]) -> Diagnosis {
        let (d, p) = sealed(original);
        let f = examine(&d, Some(&p), now);
        if f.diagnosis.proof == Proof::Proven {
            assert_eq!(
                f.rebuilt.as_deref(),
                Some(original.as_bytes()),
                "rebuilt bytes differ"
            );
        }
        f.diagnosis
    }

    fn proven(original: &str, now: &[u8], mut want: Vec<RejectCode>) {
        let d = diag(original, now);
        let mut got = d.codes();
        got.sort();
        want.sort();
        assert_eq!((d.proof, got), (Proof::Proven, want), "{}", d.render(""));
    }

    #[test]
    fn bom_added_and_removed_are_proven() {
        proven(DOC, &add_bom(DOC.as_bytes()), vec![RejectCode::DriftBom]);
        let with_bom = format!("\u{FEFF}{DOC}");
        proven(&with_bom, DOC.as_bytes(), vec![RejectCode::DriftBom]);
    }

    #[test]
    fn line_ends_are_proven_every_way() {
        proven(DOC, make::crlf(DOC).as_bytes(), vec![RejectCode::DriftCrlf]);
        proven(
            &make::crlf(DOC),
            DOC.as_bytes(),
            vec![RejectCode::DriftCrlf],
        );
        proven(
            DOC,
            DOC.replace('\n', "\r").as_bytes(),
            vec![RejectCode::DriftCrlf],
        );
    }

    #[test]
    fn final_newline_is_proven_both_ways() {
        proven(
            DOC,
            make::drop_final_newline(DOC).as_bytes(),
            vec![RejectCode::DriftFinalNewline],
        );
        let bare = make::drop_final_newline(DOC);
        proven(&bare, DOC.as_bytes(), vec![RejectCode::DriftFinalNewline]);
    }

    #[test]
    fn trailing_whitespace_strip_is_proven() {
        proven(
            DOC,
            make::strip_trailing(DOC).as_bytes(),
            vec![RejectCode::DriftTrailingWhitespace],
        );
    }

    #[test]
    fn tab_expansion_is_proven() {
        proven(
            DOC,
            make::expand(DOC, 8).as_bytes(),
            vec![RejectCode::DriftTabs],
        );
        let code = "fn main() {\n\tlet x = 1;\n\t\tnested();\n}\n";
        proven(
            code,
            make::expand(code, 4).as_bytes(),
            vec![RejectCode::DriftTabs],
        );
    }

    #[test]
    fn nfd_is_proven_as_normalization() {
        proven(
            DOC,
            make::nfd(DOC).as_bytes(),
            vec![RejectCode::DriftUnicodeNormalization],
        );
    }

    #[test]
    fn typographic_fold_is_proven_with_the_map() {
        proven(
            DOC,
            profile::fold_typographic(DOC).as_bytes(),
            vec![RejectCode::DriftUnicode],
        );
        proven(
            DOC,
            DOC.replace('—', "--").as_bytes(),
            vec![RejectCode::DriftUnicode],
        );
        // Only some folded (sed on em-dashes alone).
        proven(
            DOC,
            DOC.replace('—', "-").as_bytes(),
            vec![RejectCode::DriftUnicode],
        );
    }

    #[test]
    fn typographic_fold_without_a_map_is_consistent() {
        let (d, p) = sealed(DOC);
        let Profile::Text(mut t) = p else { panic!() };
        t.typo_map = None;
        let d = diagnose(
            &d,
            Some(&Profile::Text(t)),
            DOC.replace('—', "-").as_bytes(),
        );
        assert_eq!(
            (d.proof, d.codes()),
            (Proof::Consistent, vec![RejectCode::DriftUnicode])
        );
    }

    #[test]
    fn ensure_ascii_is_proven() {
        proven(
            JSON,
            profile::escape_non_ascii(JSON).as_bytes(),
            vec![RejectCode::DriftJsonAsciiEscape],
        );
    }

    #[test]
    fn mojibake_is_proven_once_and_twice() {
        proven(
            DOC,
            make::mojibake_cp1252(DOC).as_bytes(),
            vec![RejectCode::DriftMojibake],
        );
        let twice = make::mojibake_cp1252(&make::mojibake_cp1252(DOC));
        let d = diag(DOC, twice.as_bytes());
        assert_eq!(
            (d.proof, d.codes()),
            (Proof::Proven, vec![RejectCode::DriftMojibake])
        );
        assert!(d.causes[0].detail.contains("2 times"), "{}", d.render(""));
    }

    #[test]
    fn json_reformat_is_proven_when_the_style_is_known() {
        let value = crate::json::parse(JSON).unwrap();
        let style = crate::json::Style {
            indent: crate::json::Indent::Spaces(4),
            space_after_comma: false,
            space_after_colon: true,
            sorted_keys: false,
            ensure_ascii: true,
            final_newline: false,
        };
        let reformatted = crate::json::render(&value, &style);
        proven(
            JSON,
            reformatted.as_bytes(),
            vec![RejectCode::DriftJsonReformat],
        );
        // Sorting keys loses the original order, which the seal does not keep: same value,
        // but only consistent.
        let sorted = crate::json::render(
            &value,
            &crate::json::Style {
                sorted_keys: true,
                ..style
            },
        );
        let d = diag(JSON, sorted.as_bytes());
        assert_eq!(d.proof, Proof::Consistent, "{}", d.render(""));
        assert!(d.codes().contains(&RejectCode::DriftJsonReformat));
    }

    #[test]
    fn a_hostile_style_in_the_seal_record_is_never_rendered() {
        let (digest, profile) = sealed(JSON);
        let Profile::Text(mut t) = profile else {
            panic!()
        };
        let mut style = t.json_style.expect("python indent=2 style detected");
        style.indent = crate::json::Indent::Spaces(255);
        t.json_style = Some(style);
        let compact = crate::json::render(
            &crate::json::parse(JSON).unwrap(),
            &crate::json::Style {
                indent: crate::json::Indent::None,
                ..style
            },
        );
        let d = diagnose(&digest, Some(&Profile::Text(t)), compact.as_bytes());
        assert_ne!(d.proof, Proof::Proven, "{}", d.render(""));
    }

    #[test]
    fn json_reformat_of_an_unknown_style_is_consistent() {
        let original = "{ \"n\" : 1 ,\n \"note\" : \"Việt\" }\n";
        let now = "{\"note\": \"Vi\\u1ec7t\", \"n\": 1}";
        let d = diag(original, now.as_bytes());
        assert_eq!(d.proof, Proof::Consistent, "{}", d.render(""));
        assert!(
            d.codes().contains(&RejectCode::DriftJsonReformat),
            "{}",
            d.render("")
        );
    }

    #[test]
    fn three_causes_at_once_are_proven() {
        let now = add_bom(make::crlf(&profile::fold_typographic(DOC)).as_bytes());
        proven(
            DOC,
            &now,
            vec![
                RejectCode::DriftBom,
                RejectCode::DriftCrlf,
                RejectCode::DriftUnicode,
            ],
        );
        let now = make::drop_final_newline(&make::crlf(&make::nfd(DOC)));
        proven(
            DOC,
            now.as_bytes(),
            vec![
                RejectCode::DriftCrlf,
                RejectCode::DriftFinalNewline,
                RejectCode::DriftUnicodeNormalization,
            ],
        );
        let json_now = add_bom(make::crlf(&profile::escape_non_ascii(JSON)).as_bytes());
        proven(
            JSON,
            &json_now,
            vec![
                RejectCode::DriftBom,
                RejectCode::DriftCrlf,
                RejectCode::DriftJsonAsciiEscape,
            ],
        );
    }

    #[test]
    fn content_edit_is_never_cosmetic() {
        let d = diag(JSON, JSON.replace("\"n\": 1", "\"n\": 2").as_bytes());
        assert_eq!(d.proof, Proof::ContentChanged);
        assert!(d.causes.is_empty());
        assert!(d.summary.contains("JSON value changed"), "{}", d.summary);
        let deleted: String = DOC.lines().skip(1).map(|l| format!("{l}\n")).collect();
        let d = diag(DOC, deleted.as_bytes());
        assert_eq!(d.proof, Proof::ContentChanged);
        assert!(d.summary.contains("lines 4 -> 3"), "{}", d.summary);
        // A content edit hidden under cosmetic drift is still a content change.
        let d = diag(
            DOC,
            &add_bom(make::crlf(&DOC.replace("R2", "R3")).as_bytes()),
        );
        assert_eq!(d.proof, Proof::ContentChanged);
        let d = diag(
            DOC,
            profile::fold_typographic(&DOC.replace("gate", "gale")).as_bytes(),
        );
        assert_eq!(d.proof, Proof::ContentChanged);
    }

    #[test]
    fn without_seal_profile_simple_undos_still_prove() {
        let digest = Digest::of(DOC.as_bytes());
        let now = add_bom(make::crlf(DOC).as_bytes());
        let f = examine(&digest, None, &now);
        assert_eq!(f.diagnosis.proof, Proof::Proven);
        assert_eq!(f.rebuilt.as_deref(), Some(DOC.as_bytes()));
        assert_eq!(diagnose(&digest, None, b"other").proof, Proof::NotTried);
    }

    #[test]
    fn binary_and_oversized_are_not_cosmetic() {
        let d = diagnose(
            &Digest::of(b"\xff\x00"),
            Some(&Profile::Binary),
            b"\xff\x01",
        );
        assert_eq!(d.proof, Proof::ContentChanged);
        assert_eq!(diag(DOC, b"\xff\xfe").proof, Proof::ContentChanged);
        assert_eq!(too_large(DIAGNOSE_LIMIT + 1).proof, Proof::NotTried);
    }

    #[test]
    fn unexpand_inverts_expand_for_indentation() {
        let text = "\tone\n\t\ttwo  three\n  \tfour\n";
        assert_eq!(
            unexpand(&make::expand(text, 8), 8, true),
            text.replace("  \t", "\t")
        );
    }
}
