//! The search for a proven diagnosis: from the sealed and current profiles, which undos to
//! try, in which combinations (the full set first, then shrunk to the fewest causes that
//! still rebuild the sealed bytes), within a bounded budget; and, when nothing rebuilds them,
//! whether the text is still consistent with the seal or its content changed.

use super::undo::{Legacy, Undo, eol_name, rebuild, unmojibake};
use crate::digest::Digest;
use crate::profile::{self, LineEnds, Profile, TextProfile};
use crate::reject::{Cause, Diagnosis, Proof, RejectCode};
use std::fmt::Write as _;

/// Files larger than this, in bytes, are not diagnosed; the report says so.
pub const DIAGNOSE_LIMIT: u64 = profile::PROFILE_LIMIT;

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
/// makes plausible); at most `MAX_ATTEMPTS` (256) rebuilds are hashed.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::undo::unexpand;
    use crate::drift::{add_bom, make};

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
