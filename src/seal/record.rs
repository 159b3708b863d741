//! The seal record, `SEAL.json` (schema `packet.seal/1`): for every sealed file its length and
//! text profile, written one file per line, and read back strictly for verification.

use crate::manifest::{MANIFEST_NAME, TREE_NAME};
use crate::profile::Profile;
use serde::{Deserialize, Serialize};

/// File name of the seal record at the packet root. It is itself a sealed payload file, so the
/// tree hash covers it.
pub const SEAL_RECORD_NAME: &str = "SEAL.json";
/// Largest `SEAL.json` read, in bytes (256 MiB: about 800,000 text files with their
/// profiles, or 3,500,000 binary ones). A larger one is refused unread (`SEAL_INCONSISTENT`),
/// and `build` refuses to write one (`BUILD_REFUSED`).
pub const SEAL_RECORD_LIMIT: u64 = 256 * 1024 * 1024;
/// Schema name of the seal record.
pub const SEAL_SCHEMA: &str = "packet.seal/1";
/// The names `packet` writes at a packet root; sources may not use them.
pub const RESERVED_NAMES: [&str; 3] = [MANIFEST_NAME, TREE_NAME, SEAL_RECORD_NAME];

/// What the seal record holds for one sealed file (every payload file but the record itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Path relative to the packet root, as in the manifest.
    pub path: String,
    /// Length in bytes.
    pub bytes: u64,
    /// Text profile; absent for files above [`crate::profile::PROFILE_LIMIT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
}

/// The seal record: `{"schema": "packet.seal/1", "files": [FileRecord, ...]}`, files sorted
/// by path bytes. Reading refuses members it does not know: a later format that records
/// more takes a new schema name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealRecord {
    /// Always [`SEAL_SCHEMA`].
    pub schema: String,
    /// One record per sealed file except `SEAL.json` itself.
    pub files: Vec<FileRecord>,
}

impl SealRecord {
    /// The exact bytes written: a header, one compact JSON object per line (so diffs of a
    /// packet's record stay readable), and a final newline. Deterministic.
    pub fn render(&self) -> Vec<u8> {
        let mut out = record_head(&self.schema);
        out.reserve(self.files.len() * 96);
        for (i, f) in self.files.iter().enumerate() {
            out.extend_from_slice(record_separator(i));
            out.extend_from_slice(&render_record_line(&f.path, f.bytes, f.profile.as_ref()));
        }
        out.extend_from_slice(RECORD_TAIL);
        out
    }
}

/// The bytes a seal record of `schema` (always [`SEAL_SCHEMA`] when sealing) starts with, up
/// to its first file record.
pub fn record_head(schema: &str) -> Vec<u8> {
    format!(
        "{{\"schema\":{},\"files\":[",
        serde_json::to_string(schema).expect("string")
    )
    .into_bytes()
}

/// What goes before the `i`-th (0-based) file record of `SEAL.json`.
pub fn record_separator(i: usize) -> &'static [u8] {
    if i == 0 { b"\n" } else { b",\n" }
}

/// The bytes `SEAL.json` ends with, after its last file record (or its head, with none).
pub const RECORD_TAIL: &[u8] = b"\n]}\n";

/// One file's record as `SEAL.json` holds it: one compact JSON object, no line end. The same
/// bytes as a [`FileRecord`] serializes to, without owning its path.
pub fn render_record_line(path: &str, bytes: u64, profile: Option<&Profile>) -> Vec<u8> {
    // serde_json escapes only `"`, `\` and the control characters in a string (RFC 8259 §7,
    // its ESCAPE table): a path with none of them is written as it is, so the line is built
    // here without a serializer call per member, which on 100,000 small files was ~1% of a
    // seal. Any other path takes serde_json itself; the two are proven alike by a property test.
    if !path.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        let mut line = Vec::with_capacity(path.len() + 72);
        line.extend_from_slice(br#"{"path":""#);
        line.extend_from_slice(path.as_bytes());
        line.extend_from_slice(br#"","bytes":"#);
        line.extend_from_slice(itoa::Buffer::new().format(bytes).as_bytes());
        if let Some(profile) = profile {
            line.extend_from_slice(br#","profile":"#);
            serde_json::to_writer(&mut line, profile).expect("a profile serializes");
        }
        line.push(b'}');
        return line;
    }
    by_serde(path, bytes, profile)
}

/// [`render_record_line`] by serde_json, member by member.
fn by_serde(path: &str, bytes: u64, profile: Option<&Profile>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Line<'a> {
        path: &'a str,
        bytes: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        profile: Option<&'a Profile>,
    }
    serde_json::to_vec(&Line {
        path,
        bytes,
        profile,
    })
    .expect("a record serializes")
}

/// A seal record read for verification: every file's path and length, with its profile kept
/// as raw JSON and parsed only for a file that needs diagnosis (parsing 100,000 profiles up
/// front would cost more than hashing the files). Files are sorted by path for lookup.
#[derive(Debug)]
pub struct Records {
    files: Vec<LazyFile>,
}

/// One file of a [`Records`]. A member other than these three is refused: the record is our
/// own format, and a member no reader checks is a place to hide anything.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LazyFile {
    /// Path relative to the packet root.
    pub path: String,
    /// Sealed length in bytes.
    pub bytes: u64,
    #[serde(default)]
    profile: Option<Box<serde_json::value::RawValue>>,
}

impl LazyFile {
    /// The record of `path`, `bytes` long, with `profile` as the raw JSON it was read as.
    pub(crate) fn new(
        path: String,
        bytes: u64,
        profile: Option<Box<serde_json::value::RawValue>>,
    ) -> LazyFile {
        LazyFile {
            path,
            bytes,
            profile,
        }
    }

    /// The sealed profile, parsed now; `None` when absent or unreadable (diagnosis then
    /// proceeds as for a packet without profiles).
    pub fn profile(&self) -> Option<Profile> {
        serde_json::from_str(self.profile.as_ref()?.get()).ok()
    }
}

impl Records {
    /// Parses a seal record's paths and lengths; an error names what is wrong: not JSON, a
    /// member the format does not define (at the top or in a file's record), a member given
    /// twice, nesting deeper than [`crate::strict::MAX_DEPTH`], an unknown schema, or one
    /// path recorded twice.
    pub fn parse(bytes: &[u8]) -> Result<Records, String> {
        crate::strict::check_text(bytes)?;
        // Skipped values (a profile is kept raw) are not depth-checked by the parser.
        let depth = crate::strict::max_depth(bytes);
        if depth > crate::strict::MAX_DEPTH {
            return Err(format!(
                "nested {depth} levels deep, above the limit of {}",
                crate::strict::MAX_DEPTH
            ));
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Lazy {
            schema: String,
            files: Vec<LazyFile>,
        }
        let lazy: Lazy =
            serde_json::from_slice(bytes).map_err(|e| format!("not a seal record: {e}"))?;
        if lazy.schema != SEAL_SCHEMA {
            return Err(format!(
                "unknown seal schema {:?} (this packet knows {SEAL_SCHEMA:?})",
                lazy.schema
            ));
        }
        let mut files = lazy.files;
        files.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        // One path, one record: with two, which length counts would depend on the reader.
        if let Some(pair) = files.windows(2).find(|w| w[0].path == w[1].path) {
            return Err(format!(
                "{:?} is recorded twice ({} and {} bytes): one path, one record",
                pair[0].path, pair[0].bytes, pair[1].bytes
            ));
        }
        Ok(Records { files })
    }

    /// The record of `path`.
    pub fn get(&self, path: &str) -> Option<&LazyFile> {
        let i = self
            .files
            .binary_search_by(|f| f.path.as_bytes().cmp(path.as_bytes()))
            .ok()?;
        Some(&self.files[i])
    }

    /// The record of each of `paths` (`None` where there is none), in their order, found in
    /// one merge when `paths` are sorted as a manifest's are ([`crate::manifest::positions`]).
    pub fn aligned(&self, paths: &[&str]) -> Vec<Option<&LazyFile>> {
        let recorded: Vec<&str> = self.paths().collect();
        crate::manifest::positions(paths, &recorded)
            .into_iter()
            .map(|i| i.map(|i| &self.files[i]))
            .collect()
    }

    /// Every recorded path, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(|f| f.path.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_renders_one_file_per_line_and_parses_back() {
        let record = SealRecord {
            schema: SEAL_SCHEMA.into(),
            files: vec![
                FileRecord {
                    path: "a.txt".into(),
                    bytes: 3,
                    profile: Some(Profile::of("a—\n".as_bytes())),
                },
                FileRecord {
                    path: "b.bin".into(),
                    bytes: 2,
                    profile: Some(Profile::Binary),
                },
            ],
        };
        let bytes = record.render();
        // The borrowed line the streamed seal writes is the owned record's serialization.
        let no_profile = FileRecord {
            path: "big.bin".into(),
            bytes: 1 << 40,
            profile: None,
        };
        for f in record.files.iter().chain([&no_profile]) {
            let line = render_record_line(&f.path, f.bytes, f.profile.as_ref());
            assert_eq!(line, serde_json::to_vec(f).unwrap());
        }
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(
            text.contains(r#"{"path":"b.bin","bytes":2,"profile":{"encoding":"binary"}}"#),
            "{text}"
        );
        let back: SealRecord = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, record);
        let lazy = Records::parse(&bytes).unwrap();
        assert_eq!(lazy.get("b.bin").map(|f| f.bytes), Some(2));
        assert_eq!(
            lazy.get("a.txt").and_then(|f| f.profile()),
            record.files[0].profile
        );
        assert!(Records::parse(br#"{"schema":"packet.seal/9","files":[]}"#).is_err());
    }

    proptest::proptest! {
        /// The line built by hand is the owned record's serde_json serialization, byte for
        /// byte, whatever the path (quotes, backslashes, control and non-ASCII characters,
        /// which take serde_json's path) and the profile (text, binary or none).
        #[test]
        fn a_record_line_is_the_records_serialization(
            path in "(?s)[a-z/é\"\\\\\\x00-\\x1f\\x7f—.]{1,24}",
            bytes in proptest::num::u64::ANY,
            content in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            text in "(?s)[a-z\r\n\t é—\u{feff}\\\\]{0,40}",
            which in 0u8..3,
        ) {
            let profile = match which {
                0 => None,
                1 => Some(Profile::of(&content)),
                _ => Some(Profile::of(text.as_bytes())),
            };
            let owned = FileRecord { path: path.clone(), bytes, profile: profile.clone() };
            proptest::prop_assert_eq!(
                render_record_line(&path, bytes, profile.as_ref()),
                serde_json::to_vec(&owned).unwrap()
            );
        }
    }
}
