//! The seal's two text files and the path rules they share.
//!
//! `HASH_MANIFEST.txt` is GNU coreutils' `sha256sum` output format: one line per sealed file,
//! `<64 lowercase hex><space><space><path>\n`, sorted by the bytes of the path. `packet` never
//! writes the backslash-escaped form coreutils uses for names holding `\` or a newline: such
//! names are refused at build time, so every manifest it writes passes
//! `sha256sum -c --strict HASH_MANIFEST.txt` run inside the packet.
//!
//! `packet_tree.sha256` is `<SHA-256 of the exact bytes of HASH_MANIFEST.txt>  HASH_MANIFEST.txt\n`,
//! so `sha256sum -c packet_tree.sha256` passes too. Its digest is the packet's tree hash.

use crate::digest::Digest;
use crate::reject::Reject;
use crate::reject::RejectCode;

/// File name of the manifest at the packet root.
pub const MANIFEST_NAME: &str = "HASH_MANIFEST.txt";
/// File name of the tree-hash file at the packet root.
pub const TREE_NAME: &str = "packet_tree.sha256";

/// Largest `HASH_MANIFEST.txt` read, in bytes (256 MiB: about 3,200,000 files at the
/// length of line a path of 15 characters gives). A larger one is refused unread
/// (`MANIFEST_MALFORMED`), so memory stays bounded whatever the input; `build` refuses to
/// write one (`BUILD_REFUSED`), so it never seals a packet that cannot be verified.
pub const MANIFEST_LIMIT: u64 = 256 * 1024 * 1024;

/// Largest `packet_tree.sha256` read, in bytes; the file is one 84-byte line.
pub const TREE_FILE_LIMIT: u64 = 4096;

/// Malformed manifest lines listed one by one; past this many, one more reject says how many
/// were left out (a manifest of a million junk lines is one problem, not a million).
pub const MALFORMED_LINES_LISTED: usize = 100;

/// Longest part of a line quoted in a reject message, in characters.
const QUOTED_MAX: usize = 120;

/// `text` quoted for a message, cut to [`QUOTED_MAX`] characters.
fn quoted(text: &str) -> String {
    match text.char_indices().nth(QUOTED_MAX) {
        Some((i, _)) => format!("{:?}… ({} bytes)", &text[..i], text.len()),
        None => format!("{text:?}"),
    }
}

/// Keeps a malformed line's reject while fewer than [`MALFORMED_LINES_LISTED`] are kept;
/// counts it otherwise.
fn line_reject(rejects: &mut Vec<Reject>, listed: &mut usize, left_out: &mut usize, r: Reject) {
    if *listed < MALFORMED_LINES_LISTED {
        *listed += 1;
        rejects.push(r);
    } else {
        *left_out += 1;
    }
}

/// One manifest line: a sealed file's path and SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the packet root, `/`-separated, checked by [`check_path`].
    pub path: String,
    /// SHA-256 of the file's bytes.
    pub digest: Digest,
}

/// The parsed `HASH_MANIFEST.txt`: entries sorted by the bytes of their paths, no duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Sealed files, sorted by path bytes.
    pub entries: Vec<Entry>,
}

impl Manifest {
    /// Builds a manifest from entries in any order. Sorting by the path's bytes makes the
    /// manifest, and so the tree hash, independent of directory listing order.
    pub fn from_entries(mut entries: Vec<Entry>) -> Manifest {
        entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        Manifest { entries }
    }

    /// The exact bytes of `HASH_MANIFEST.txt`.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 100);
        for e in &self.entries {
            render_line(&mut out, &e.digest, &e.path);
        }
        out
    }

    /// True when the manifest lists `path`.
    pub fn contains(&self, path: &str) -> bool {
        self.entries
            .binary_search_by(|e| e.path.as_bytes().cmp(path.as_bytes()))
            .is_ok()
    }

    /// The entry for `path`, if the manifest lists it.
    pub fn entry(&self, path: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.path.as_bytes().cmp(path.as_bytes()))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// The tree hash: SHA-256 of the rendered manifest.
    pub fn tree_hash(&self) -> Digest {
        Digest::of(&self.render())
    }

    /// Parses manifest bytes strictly. Every problem is reported (as `MANIFEST_MALFORMED`
    /// rejects naming the line), not just the first; lines that parse are still returned so
    /// the files they name can be checked.
    pub fn parse(bytes: &[u8]) -> (Manifest, Vec<Reject>) {
        let mut rejects = Vec::new();
        let mut entries: Vec<Entry> = Vec::new();
        let malformed = |line: usize, msg: String| {
            Reject::new(RejectCode::ManifestMalformed, msg)
                .at_path(format!("{MANIFEST_NAME}:{line}"))
        };
        if bytes.is_empty() {
            rejects.push(
                Reject::new(
                    RejectCode::ManifestMalformed,
                    "the manifest lists no file".into(),
                )
                .at_path(MANIFEST_NAME.into()),
            );
            return (Manifest::default(), rejects);
        }
        if !bytes.ends_with(b"\n") {
            rejects.push(
                Reject::new(
                    RejectCode::ManifestMalformed,
                    "the last line has no final newline (truncated or edited manifest)".into(),
                )
                .at_path(MANIFEST_NAME.into()),
            );
        }
        // A manifest that went through a BOM or CRLF conversion is reported once as such, and
        // its lines are still read so the files they seal can be checked and diagnosed.
        let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let body = match body.strip_prefix(crate::profile::BOM) {
            Some(rest) => {
                rejects.push(
                    Reject::new(
                        RejectCode::ManifestMalformed,
                        "starts with a UTF-8 BOM: the manifest itself went through an editor or tool that adds one"
                            .into(),
                    )
                    .at_path(MANIFEST_NAME.into()),
                );
                rest
            }
            None => body,
        };
        let lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
        let crlf = lines.iter().filter(|l| l.ends_with(b"\r")).count();
        if crlf > 0 {
            rejects.push(
                Reject::new(
                    RejectCode::ManifestMalformed,
                    format!(
                        "{crlf} of {} lines end in CRLF: the manifest itself went through a line-end conversion",
                        lines.len()
                    ),
                )
                .at_path(MANIFEST_NAME.into()),
            );
        }
        let (mut listed, mut left_out) = (0usize, 0usize);
        for (i, raw) in lines.into_iter().enumerate() {
            let n = i + 1;
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            // The one form packet writes is taken at once; only other lines are examined
            // for what is wrong with them.
            let entry = match standard_line(raw).map_or_else(|| nonstandard_line(raw), Ok) {
                Ok(entry) => entry,
                Err(why) => {
                    line_reject(&mut rejects, &mut listed, &mut left_out, malformed(n, why));
                    continue;
                }
            };
            if let Some(prev) = entries.last() {
                match prev.path.as_bytes().cmp(entry.path.as_bytes()) {
                    std::cmp::Ordering::Equal => {
                        line_reject(
                            &mut rejects,
                            &mut listed,
                            &mut left_out,
                            malformed(n, format!("duplicate path {}", quoted(&entry.path))),
                        );
                        continue;
                    }
                    std::cmp::Ordering::Greater => {
                        line_reject(
                            &mut rejects,
                            &mut listed,
                            &mut left_out,
                            malformed(
                                n,
                                format!(
                                    "{} is out of order (lines must be sorted by path bytes)",
                                    quoted(&entry.path)
                                ),
                            ),
                        );
                    }
                    std::cmp::Ordering::Less => {}
                }
            }
            entries.push(entry);
        }
        if left_out > 0 {
            rejects.push(
                Reject::new(
                    RejectCode::ManifestMalformed,
                    format!(
                        "{left_out} more malformed lines not listed (the first {MALFORMED_LINES_LISTED} are)"
                    ),
                )
                .at_path(MANIFEST_NAME.into()),
            );
        }
        // Out-of-order lines were kept for checking; keep the in-memory form sorted.
        entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        entries.dedup_by(|a, b| a.path == b.path);
        (Manifest { entries }, rejects)
    }
}

/// What is wrong with a manifest line (without its newline) that is not a
/// [`standard_line`], or its entry when it is one after all.
fn nonstandard_line(raw: &[u8]) -> Result<Entry, String> {
    let Ok(line) = std::str::from_utf8(raw) else {
        return Err("line is not valid UTF-8".into());
    };
    if line.starts_with('\\') {
        return Err(
            "backslash-escaped name (coreutils form for names holding \\ or a newline); \
                    packet refuses such names"
                .into(),
        );
    }
    let standard_form = line
        .get(..64)
        .and_then(Digest::from_hex)
        .filter(|_| line.len() > 66 && line.get(64..66) == Some("  "));
    if let Some(why) = standard_form
        .is_none()
        .then(|| foreign_form(line))
        .flatten()
    {
        return Err(why.into());
    }
    let (Some(hex), Some(sep), Some(path)) = (line.get(..64), line.get(64..66), line.get(66..))
    else {
        return Err(format!("expected `<64 hex>  <path>`, got {}", quoted(line)));
    };
    let Some(digest) = standard_form.or_else(|| Digest::from_hex(hex)) else {
        return Err(format!(
            "digest {} is not 64 lowercase hex digits",
            quoted(hex)
        ));
    };
    if sep == " *" {
        return Err("`*` binary-mode marker (sha256sum -b form); packet writes two spaces".into());
    }
    if sep != "  " {
        return Err("digest and path must be separated by two spaces".into());
    }
    if let Err(why) = check_path(path) {
        return Err(format!("unsafe path {}: {why}", quoted(path)));
    }
    if path == MANIFEST_NAME || path == TREE_NAME {
        return Err(format!("the manifest may not list the seal file {path}"));
    }
    Ok(Entry {
        path: path.to_string(),
        digest,
    })
}

/// Appends the manifest line of `path` sealed with `digest`: `<64 lowercase hex>  <path>\n`,
/// the one form packet writes (GNU `sha256sum` text mode).
pub fn render_line(out: &mut Vec<u8>, digest: &Digest, path: &str) {
    let mut hex = [0u8; 64];
    hex::encode_to_slice(digest.0, &mut hex).expect("64 hex digits for 32 bytes");
    out.extend_from_slice(&hex);
    out.extend_from_slice(b"  ");
    out.extend_from_slice(path.as_bytes());
    out.push(b'\n');
}

/// A manifest line (without its newline) in the one form packet writes, which
/// [`Manifest::parse`] takes without a reject: 64 lowercase hex digits, two spaces, a safe NFC
/// path ([`check_path`]) that is not a seal file's name. `None` for any other line; the
/// parse then says what is wrong with it.
pub fn standard_line(line: &[u8]) -> Option<Entry> {
    let line = std::str::from_utf8(line).ok()?;
    if line.len() <= 66 || line.get(64..66) != Some("  ") {
        return None;
    }
    let digest = Digest::from_hex(line.get(..64)?)?;
    let path = &line[66..];
    check_path(path).ok()?;
    (path != MANIFEST_NAME && path != TREE_NAME).then(|| Entry {
        path: path.to_string(),
        digest,
    })
}

/// Names the line forms that `sha256sum -c` (or a BSD `shasum`) reads and packet refuses:
/// a blank line, a `#` comment, and the BSD tagged form `SHA256 (path) = hex`. Each would let
/// two manifests with one meaning have two tree hashes.
fn foreign_form(line: &str) -> Option<&'static str> {
    if line.trim().is_empty() {
        return Some("blank line (a manifest has one line per file and nothing else)");
    }
    if line.starts_with('#') {
        return Some("`#` comment line (a manifest holds only digests and paths)");
    }
    let tagged = line.split_once(" (").is_some_and(|(tag, rest)| {
        tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') && rest.contains(") = ")
    });
    if tagged {
        return Some("BSD tagged line `ALGO (path) = digest`; packet writes `<64 hex>  <path>`");
    }
    None
}

/// For each of `needles`, whether `hay` holds it (paths compared as bytes, the manifest's
/// order); see [`positions`].
pub fn listed_in(needles: &[&str], hay: &[&str]) -> Vec<bool> {
    positions(needles, hay)
        .iter()
        .map(Option::is_some)
        .collect()
}

/// For each of `needles`, the index in `hay` (sorted by bytes) of the same path, if any.
/// Sorted needles (the usual case: manifests, records and walks are all sorted) are merged
/// in one pass of `needles.len() + hay.len()` comparisons, others binary-searched each, so
/// the answer never depends on their order. `hay` out of order is sorted first.
pub fn positions(needles: &[&str], hay: &[&str]) -> Vec<Option<usize>> {
    let by_bytes = |a: &&str, b: &&str| a.as_bytes().cmp(b.as_bytes());
    if !hay.is_sorted_by(|a, b| by_bytes(a, b).is_le()) {
        let mut order: Vec<usize> = (0..hay.len()).collect();
        order.sort_by(|&a, &b| by_bytes(&hay[a], &hay[b]));
        let sorted: Vec<&str> = order.iter().map(|&i| hay[i]).collect();
        return positions(needles, &sorted)
            .into_iter()
            .map(|p| p.map(|i| order[i]))
            .collect();
    }
    if !needles.is_sorted_by(|a, b| by_bytes(a, b).is_le()) {
        return needles
            .iter()
            .map(|n| hay.binary_search_by(|h| by_bytes(h, n)).ok())
            .collect();
    }
    let mut at = 0;
    needles
        .iter()
        .map(|n| {
            while at < hay.len() && by_bytes(&hay[at], n).is_lt() {
                at += 1;
            }
            (at < hay.len() && hay[at] == *n).then_some(at)
        })
        .collect()
}

/// The exact bytes of `packet_tree.sha256` for a tree hash.
pub fn render_tree_file(tree: &Digest) -> Vec<u8> {
    format!("{tree}  {MANIFEST_NAME}\n").into_bytes()
}

/// A parsed `packet_tree.sha256`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeFile {
    /// The recorded tree hash.
    pub digest: Digest,
    /// Set when the file was readable only after undoing a BOM or CRLF conversion: it is
    /// malformed, but its digest can still be compared.
    pub drift: Option<String>,
}

/// Parses `packet_tree.sha256`: exactly `<64 lowercase hex>  HASH_MANIFEST.txt\n`. A leading
/// BOM or a CRLF line end is undone and reported in [`TreeFile::drift`]; anything else is an
/// error naming what is wrong.
pub fn parse_tree_file(bytes: &[u8]) -> Result<TreeFile, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let mut drift = Vec::new();
    let text = match text.strip_prefix('\u{FEFF}') {
        Some(rest) => {
            drift.push("starts with a UTF-8 BOM");
            rest
        }
        None => text,
    };
    let mut line = text
        .strip_suffix('\n')
        .ok_or_else(|| "missing final newline".to_string())?;
    if let Some(rest) = line.strip_suffix('\r') {
        drift.push("ends in CRLF");
        line = rest;
    }
    let (hex, rest) = line
        .split_at_checked(64)
        .ok_or_else(|| format!("expected `<64 hex>  {MANIFEST_NAME}`, got {line:?}"))?;
    let digest =
        Digest::from_hex(hex).ok_or_else(|| format!("{hex:?} is not 64 lowercase hex digits"))?;
    if rest != format!("  {MANIFEST_NAME}") {
        return Err(format!(
            "expected `<64 hex>  {MANIFEST_NAME}`, got {line:?}"
        ));
    }
    let drift = (!drift.is_empty())
        .then(|| format!("{}: it went through a conversion", drift.join(" and ")));
    Ok(TreeFile { digest, drift })
}

/// Checks that `path` is a safe relative packet path: non-empty, `/`-separated, no leading or
/// trailing `/`, no empty, `.` or `..` component, no backslash and no control character
/// (U+0000..U+001F, U+007F..U+009F: they cannot round-trip through `sha256sum` unescaped), no
/// bidirectional control, no leading `~`, no drive letter (`C:`), no U+FFFD, and in Unicode
/// NFC (UAX #15), so one name has one spelling in bytes. Errors: what was wrong, in words.
pub fn check_path(path: &str) -> Result<(), &'static str> {
    check_safe(path)?;
    // ASCII is NFC: the normalization tables are consulted only for other names.
    if !path.is_ascii() && !unicode_normalization::is_nfc(path) {
        return Err("name is not in Unicode NFC (the same name could be stored as other bytes)");
    }
    Ok(())
}

/// [`check_path`] but for the NFC rule: the names a packet directory may hold while it is
/// verified. A file whose name an editor or file system turned NFD is then still found, and
/// diagnosed as renamed (`FILE_RENAMED` with `DRIFT_PATH_NORMALIZATION`) instead of refused.
pub fn check_safe(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("empty path");
    }
    if path.starts_with('/') {
        return Err("absolute path");
    }
    // Printable ASCII without a backslash holds none of the characters refused below but `~`
    // and `:`: one pass over the bytes spares the character scans for nearly every name (it
    // runs for every file on every walk and manifest line).
    let plain = path
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'\\');
    if !plain && path.contains('\\') {
        return Err("backslash in name");
    }
    if !plain && path.chars().any(char::is_control) {
        return Err("control character in name");
    }
    // Bidirectional overrides and line separators make a name display as another one.
    if !plain && path.chars().any(|c| matches!(c, '\u{200E}' | '\u{200F}' | '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')) {
        return Err("bidirectional control or line separator in name (it would display as another name)");
    }
    if path.starts_with('~') {
        return Err("starts with `~`: a shell would expand it to a home directory");
    }
    // `C:x` and `C:/x` name a drive on Windows: the file would land outside the packet.
    if let [letter, b':', ..] = path.as_bytes()
        && letter.is_ascii_alphabetic()
    {
        return Err("drive-letter path");
    }
    if !plain && path.contains('\u{FFFD}') {
        return Err("U+FFFD replacement character in name (a name already mangled by a decoder)");
    }
    for part in path.split('/') {
        match part {
            "" => return Err("empty path component"),
            "." | ".." => return Err("`.` or `..` component would escape or alias the packet"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ascii_shortcut_refuses_exactly_what_the_character_scans_refuse() {
        // The checks as they were before printable ASCII skipped them.
        fn scanned(path: &str) -> bool {
            path.contains('\\')
                || path.chars().any(char::is_control)
                || path.chars().any(|c| {
                    matches!(c, '\u{200E}' | '\u{200F}' | '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
                })
                || path.contains('\u{FFFD}')
        }
        let mut names: Vec<String> = (0u8..=0x7f).map(|b| format!("d/a{}b", b as char)).collect();
        names.extend(
            ["é", "\u{0085}", "\u{202E}", "\u{FFFD}", "\u{2028}", "日本"].map(|c| format!("x{c}")),
        );
        for name in &names {
            // No other rule refuses these names (no leading `~`, drive or bad component).
            assert_eq!(check_safe(name).is_err(), scanned(name), "{name:?}");
        }
    }

    #[test]
    fn listed_in_agrees_with_a_search_whatever_the_order() {
        let hay = ["a", "b/c", "b0", "d"];
        let needles = ["0", "a", "b", "b/c", "b0", "e"];
        let want = [false, true, false, true, true, false];
        assert_eq!(listed_in(&needles, &hay), want);
        let mut shuffled_hay = hay;
        shuffled_hay.reverse();
        assert_eq!(listed_in(&needles, &shuffled_hay), want);
        let mut shuffled = needles;
        shuffled.reverse();
        let mut back = want;
        back.reverse();
        assert_eq!(listed_in(&shuffled, &hay), back);
        assert_eq!(listed_in(&["x", "x"], &["x"]), [true, true]);
        // Positions are into `hay` as given, sorted or not.
        assert_eq!(
            positions(&["d", "a", "z"], &shuffled_hay),
            [Some(0), Some(3), None]
        );
    }

    fn entry(path: &str, content: &[u8]) -> Entry {
        Entry {
            path: path.into(),
            digest: Digest::of(content),
        }
    }

    #[test]
    fn render_sorts_by_path_bytes_and_round_trips() {
        let m =
            Manifest::from_entries(vec![entry("b", b"2"), entry("B", b"1"), entry("a/z", b"3")]);
        let paths: Vec<_> = m.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["B", "a/z", "b"]);
        let (parsed, rejects) = Manifest::parse(&m.render());
        assert!(rejects.is_empty(), "{rejects:?}");
        assert_eq!(parsed, m);
    }

    #[test]
    fn parse_reports_every_problem() {
        let d = Digest::of(b"x");
        let text = format!(
            "{d}  b\n{d}  a\n{d}  a\n{}  c\n{d} d\n{d}  ../e\n{d}  f\r\n",
            d.to_hex().to_uppercase()
        );
        let (m, rejects) = Manifest::parse(text.as_bytes());
        let msgs: Vec<_> = rejects.iter().map(|r| r.message.as_str()).collect();
        assert_eq!(rejects.len(), 6, "{msgs:?}");
        assert!(msgs[0].contains("1 of 7 lines end in CRLF"), "{msgs:?}");
        assert!(
            rejects
                .iter()
                .all(|r| r.code == RejectCode::ManifestMalformed)
        );
        assert!(msgs.iter().any(|m| m.contains("out of order")));
        assert!(msgs.iter().any(|m| m.contains("duplicate")));
        assert!(msgs.iter().any(|m| m.contains("lowercase hex")));
        assert!(msgs.iter().any(|m| m.contains("two spaces")));
        assert!(msgs.iter().any(|m| m.contains("unsafe path")));
        // b, a and f parse (f once its CR is undone); the rest are malformed.
        assert_eq!(m.entries.len(), 3);
    }

    #[test]
    fn converted_manifest_is_one_reject_and_still_read() {
        let m = Manifest::from_entries(vec![entry("a", b"1"), entry("b", b"2")]);
        let crlf = String::from_utf8(m.render()).unwrap().replace('\n', "\r\n");
        let with_bom = [crate::profile::BOM, crlf.as_bytes()].concat();
        let (parsed, rejects) = Manifest::parse(&with_bom);
        assert_eq!(parsed, m);
        assert_eq!(rejects.len(), 2, "{rejects:?}");
        assert!(rejects[0].message.contains("BOM"));
        assert!(rejects[1].message.contains("2 of 2 lines end in CRLF"));
    }

    #[test]
    fn forms_sha256sum_tolerates_are_named() {
        let d = Digest::of(b"x");
        for (line, says) in [
            (format!("{d} *a"), "binary-mode marker"),
            ("# made by hand".to_string(), "comment"),
            (String::new(), "blank line"),
            ("   ".to_string(), "blank line"),
            (format!("SHA256 (a) = {d}"), "BSD tagged"),
            (format!("\\{d}  a\\nb"), "backslash-escaped"),
            (format!("{d}  ~/a"), "`~`"),
            (format!("{d}  C:/a"), "drive-letter"),
            (format!("{d}  a\u{FFFD}"), "U+FFFD"),
            (format!("{d}  e\u{301}"), "NFC"),
            (format!("{d}  /etc/passwd"), "absolute"),
            (format!("{d}  a/../../b"), "`..`"),
            (format!("{}  a", d.to_hex().to_uppercase()), "lowercase hex"),
        ] {
            let text = format!("{d}  0\n{line}\n");
            let (m, rejects) = Manifest::parse(text.as_bytes());
            assert_eq!(rejects.len(), 1, "{line:?}: {rejects:?}");
            assert_eq!(rejects[0].code, RejectCode::ManifestMalformed);
            assert_eq!(
                rejects[0].path.as_deref(),
                Some("HASH_MANIFEST.txt:2"),
                "{line:?}"
            );
            assert!(
                rejects[0].message.contains(says),
                "{line:?}: {}",
                rejects[0].message
            );
            assert_eq!(m.entries.len(), 1, "only line 1 is read: {line:?}");
        }
    }

    #[test]
    fn empty_and_unterminated_manifests_are_malformed() {
        assert_eq!(Manifest::parse(b"").1.len(), 1);
        let d = Digest::of(b"x");
        let (_, rejects) = Manifest::parse(format!("{d}  a").as_bytes());
        assert_eq!(rejects.len(), 1);
        assert!(rejects[0].message.contains("final newline"));
    }

    #[test]
    fn seal_files_may_not_be_listed() {
        let d = Digest::of(b"x");
        let (_, rejects) = Manifest::parse(format!("{d}  {MANIFEST_NAME}\n").as_bytes());
        assert_eq!(rejects.len(), 1);
    }

    #[test]
    fn tree_file_round_trip_and_strictness() {
        let d = Digest::of(b"m");
        assert_eq!(
            parse_tree_file(&render_tree_file(&d)),
            Ok(TreeFile {
                digest: d,
                drift: None
            })
        );
        let converted =
            parse_tree_file(format!("\u{FEFF}{d}  HASH_MANIFEST.txt\r\n").as_bytes()).unwrap();
        assert_eq!(converted.digest, d);
        assert!(converted.drift.unwrap().contains("BOM and ends in CRLF"));
        assert!(parse_tree_file(format!("{d}  HASH_MANIFEST.txt").as_bytes()).is_err());
        assert!(parse_tree_file(format!("{d} *HASH_MANIFEST.txt\n").as_bytes()).is_err());
        assert!(parse_tree_file(format!("{d}  other\n").as_bytes()).is_err());
        assert!(parse_tree_file(b"short  HASH_MANIFEST.txt\n").is_err());
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for bad in [
            "",
            "/abs",
            "a//b",
            "a/",
            "./a",
            "a/../b",
            "..",
            "a\\b",
            "a\nb",
            "a\rb",
            "tab\there",
            "evil\u{202E}txt.exe",
            "line\u{2028}sep",
            "nul\0byte",
            "~/.ssh/authorized_keys",
            "~root",
            "C:/Windows/evil.dll",
            "c:relative",
            "mangled\u{FFFD}name",
            "cafe\u{301}.txt",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?} accepted");
        }
        for good in [
            "a",
            "a/b.txt",
            "Tiếng Việt — em.txt",
            "with space",
            "*star",
            ".hidden",
            "backup~",
            "a/~b",
            "ab:c",
            "caf\u{e9}.txt",
        ] {
            assert!(check_path(good).is_ok(), "{good:?} refused");
        }
    }
}
