//! Rollback evidence: the `packet.rollback-evidence/1` document and the checks that reject
//! evidence proving nothing (an apply that never mutated, a rollback that did not restore).
//!
//! The document is a JSON object:
//! `{"schema": "packet.rollback-evidence/1", "entries": [{"id": "RB-1", "before_hash": <64 hex>,
//! "after_apply_hash": <64 hex>, "after_rollback_hash": <64 hex>, ...}], ...}`. The members
//! the document and its entries may hold are closed lists ([`DOCUMENT_MEMBERS`],
//! [`ENTRY_MEMBERS`]): a member no check reads is a place to hide anything. Hashes are digests
//! of the state the rollback protects (for a database, a logical state digest), as 64
//! lowercase hex digits, the one form the seal format writes.

use crate::reject::Reject;
use crate::reject::RejectCode;
use serde_json::Value;
use std::collections::BTreeSet;

/// The schema name a rollback-evidence document declares in its top-level `schema` member.
pub const ROLLBACK_SCHEMA: &str = "packet.rollback-evidence/1";

/// True when `bytes` are, or claim to be, a rollback-evidence document; `packet verify`
/// checks every such sealed file. That is a JSON object whose `schema` is [`ROLLBACK_SCHEMA`]
/// however its characters are escaped (`\/` included), or text that starts like a JSON object
/// and names `rollback-evidence` but does not parse: such a file is checked (and rejected as
/// malformed), never skipped.
pub fn claims_schema(bytes: &[u8]) -> bool {
    let body = bytes.strip_prefix(crate::profile::BOM).unwrap_or(bytes);
    let body = body.trim_ascii_start();
    if !body.starts_with(b"{") {
        return false;
    }
    // Only the top-level `schema` is kept (as its raw JSON); every other member is skipped
    // (still checked as JSON) without building a tree, so a large sealed JSON file costs no
    // memory here, and the document is read once.
    #[derive(serde::Deserialize)]
    struct SchemaOnly {
        #[serde(default)]
        schema: Option<Box<serde_json::value::RawValue>>,
    }
    let mut scan = SchemaScan::new();
    scan.feed(body);
    if scan.claims() {
        return true;
    }
    match serde_json::from_slice::<SchemaOnly>(body) {
        Ok(SchemaOnly { schema: None }) => false,
        Ok(SchemaOnly { schema: Some(raw) }) => match serde_json::from_str::<String>(raw.get()) {
            Ok(name) => name == ROLLBACK_SCHEMA,
            // `schema` is there but not a string: evidence only if it names the schema.
            Err(_) => mentions_schema(body),
        },
        Err(_) => mentions_schema(body),
    }
}

/// Decides, as a file streams past in chunks of any size, whether it is or claims to be a
/// rollback-evidence document, without holding it: for files too large to parse whole, so
/// that where the `schema` member stands, and how large the file is, cannot decide whether
/// it is checked.
///
/// It follows the top-level object's members (strings, escapes and nesting, not a full
/// parse) and decodes every top-level `schema` value. The file claims the schema when any
/// such value is [`ROLLBACK_SCHEMA`] however escaped (duplicates included), or when it
/// starts like a JSON object, names `rollback-evidence` anywhere, and is not a well-formed
/// object whose `schema` values are all other strings (a `schema` that is not a string, an
/// unterminated string or unbalanced brackets).
#[derive(Debug, Default)]
pub struct SchemaScan {
    /// 0: no significant byte yet; 1: the first was `{`; 2: it was something else.
    start: u8,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// At depth 1, the next string is a member name.
    name_next: bool,
    /// The member whose name was just read is `schema`.
    schema_member: bool,
    /// A `:` was read at depth 1 and its value not begun.
    value_next: bool,
    /// The string being read is a top-level `schema` name or value; its raw bytes so far.
    capture: Option<Vec<u8>>,
    capturing_name: bool,
    claimed: bool,
    odd_schema: bool,
    unbalanced: bool,
    mentioned: bool,
    /// The last bytes of the previous chunk, so a mention split across chunks is found.
    tail: Vec<u8>,
}

const MENTION: &[u8] = b"rollback-evidence";

impl SchemaScan {
    /// A scanner before the first byte.
    pub fn new() -> SchemaScan {
        SchemaScan {
            name_next: true,
            ..SchemaScan::default()
        }
    }

    /// Feeds the next bytes of the file.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.start == 2 || self.claimed {
            return;
        }
        if !self.mentioned {
            let seam_len = MENTION.len() - 1;
            let mut seam = std::mem::take(&mut self.tail);
            seam.extend_from_slice(&chunk[..chunk.len().min(seam_len)]);
            self.mentioned = memchr::memmem::find(&seam, MENTION).is_some()
                || memchr::memmem::find(chunk, MENTION).is_some();
            // The last bytes of everything fed so far.
            self.tail = if chunk.len() >= seam_len {
                chunk[chunk.len() - seam_len..].to_vec()
            } else {
                seam[seam.len().saturating_sub(seam_len)..].to_vec()
            };
        }
        let mut i = 0;
        while i < chunk.len() {
            let b = chunk[i];
            if self.start == 0 {
                i += 1;
                match b {
                    b' ' | b'\t' | b'\n' | b'\r' => continue,
                    // A UTF-8 BOM may precede the text.
                    0xEF | 0xBB | 0xBF if i <= 3 => continue,
                    b'{' => {
                        self.start = 1;
                        self.depth = 1;
                        continue;
                    }
                    _ => {
                        self.start = 2;
                        return;
                    }
                }
            }
            // Broken already: only a mention can still change the answer.
            if self.unbalanced {
                return;
            }
            // Skip, at memchr speed, what cannot change the state: the inside of a string not
            // being captured, and anything but quotes and brackets below the top level.
            if self.in_string && !self.escaped && self.capture.is_none() {
                match memchr::memchr2(b'"', b'\\', &chunk[i..]) {
                    Some(k) => i += k,
                    None => return,
                }
            } else if !self.in_string && self.depth >= 2 {
                match chunk[i..]
                    .iter()
                    .position(|&c| matches!(c, b'"' | b'{' | b'}' | b'[' | b']'))
                {
                    Some(k) => i += k,
                    None => return,
                }
            }
            self.step(chunk[i]);
            i += 1;
            if self.claimed {
                return;
            }
        }
    }

    fn step(&mut self, b: u8) {
        if self.in_string {
            if let Some(c) = self.capture.as_mut()
                && c.len() <= 4096
            {
                c.push(b);
            }
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
                self.end_string();
            }
            return;
        }
        let top = self.depth == 1;
        if self.depth == 0 {
            // Past the end of the top-level object: anything but white space breaks it.
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                self.unbalanced = true;
            }
            return;
        }
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => {}
            b'"' => {
                self.in_string = true;
                if top && self.name_next {
                    self.capture = Some(Vec::new());
                    self.capturing_name = true;
                    self.name_next = false;
                } else if top && self.value_next {
                    self.value_next = false;
                    if self.schema_member {
                        self.capture = Some(Vec::new());
                        self.capturing_name = false;
                    }
                }
            }
            b':' if top => self.value_next = true,
            b',' if top => {
                self.name_next = true;
                self.schema_member = false;
            }
            b'{' | b'[' => {
                self.non_string_value(top);
                self.depth += 1;
            }
            b'}' | b']' => {
                if self.depth == 0 {
                    self.unbalanced = true;
                } else {
                    self.depth -= 1;
                }
            }
            _ => self.non_string_value(top),
        }
    }

    fn non_string_value(&mut self, top: bool) {
        if top && self.value_next {
            self.value_next = false;
            if self.schema_member {
                self.odd_schema = true;
            }
        }
    }

    fn end_string(&mut self) {
        let Some(mut raw) = self.capture.take() else {
            return;
        };
        raw.insert(0, b'"');
        let text = serde_json::from_slice::<String>(&raw).ok();
        if self.capturing_name {
            self.schema_member = text.as_deref() == Some("schema");
        } else if text.as_deref() == Some(ROLLBACK_SCHEMA) {
            self.claimed = true;
        }
    }

    /// True when the bytes fed so far (the whole file) claim the rollback-evidence schema.
    pub fn claims(&self) -> bool {
        self.claimed
            || (self.start == 1
                && self.mentioned
                && (self.odd_schema || self.unbalanced || self.in_string || self.depth != 0))
    }
}

/// True when `head` looks like a JSON object naming `rollback-evidence`.
fn mentions_schema(head: &[u8]) -> bool {
    let head = head
        .strip_prefix(crate::profile::BOM)
        .unwrap_or(head)
        .trim_ascii_start();
    head.starts_with(b"{") && head.windows(17).any(|w| w == b"rollback-evidence")
}

/// The members a rollback-evidence document may hold at its top level (docs/FORMAT.md).
/// Anything else is refused: a misspelt `entires` must not turn a proof into an empty one.
/// (`state_digest`, a description of how the state was digested, is what the first rehearsal
/// script wrote, in packets sealed before `packet rehearse` existed; they still verify.)
pub const DOCUMENT_MEMBERS: &[&str] = &[
    "schema",
    "subject",
    "tool",
    "target",
    "state_digest",
    "entries",
    "isolation",
    "snapshots",
];

/// The members one rollback entry may hold (docs/FORMAT.md); `packet rehearse` writes the
/// last five, the first rehearsal script wrote `sql` and the `rows_*` counts.
pub const ENTRY_MEMBERS: &[&str] = &[
    "id",
    "operation",
    "sql",
    "rows_before",
    "rows_after_apply",
    "rows_after_rollback",
    "before_hash",
    "after_apply_hash",
    "after_rollback_hash",
    "change",
    "rollback",
    "tables_changed_by_apply",
    "tables_not_restored",
    "counters_moved",
];

/// The outcome of checking one evidence document.
#[derive(Debug, Default)]
pub struct Checked {
    /// Entries examined.
    pub entries: usize,
    /// Every reject, tied to the entry it concerns.
    pub rejects: Vec<Reject>,
}

/// Checks one rollback-evidence document; `label` (a path) is attached to every reject.
///
/// Rejects: `ROLLBACK_EVIDENCE_MALFORMED` (not JSON, not an object, wrong or missing schema,
/// no `entries` array), `ROLLBACK_NO_ENTRIES`, and per entry `ROLLBACK_ENTRY_MALFORMED`,
/// `ROLLBACK_DUPLICATE_ID`, `ROLLBACK_APPLY_DID_NOT_MUTATE`, `ROLLBACK_NOT_RESTORED`.
pub fn check(bytes: &[u8], label: &str) -> Checked {
    let mut out = Checked::default();
    let doc_reject = |code, msg: String| Reject::new(code, msg).at_path(label.to_string());
    let body = bytes;
    // Duplicate members first: serde_json would keep the last of two silently, and a
    // no-mutation entry must not pass by naming its hash twice.
    if let Err(why) = crate::strict::check(body) {
        out.rejects.push(doc_reject(
            RejectCode::RollbackEvidenceMalformed,
            format!("not strict JSON: {why}"),
        ));
        return out;
    }
    let doc: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            out.rejects.push(doc_reject(
                RejectCode::RollbackEvidenceMalformed,
                format!("not JSON: {e}"),
            ));
            return out;
        }
    };
    let Some(obj) = doc.as_object() else {
        out.rejects.push(doc_reject(
            RejectCode::RollbackEvidenceMalformed,
            "the document is not a JSON object".into(),
        ));
        return out;
    };
    match obj.get("schema").and_then(Value::as_str) {
        Some(ROLLBACK_SCHEMA) => {}
        other => {
            out.rejects.push(doc_reject(
                RejectCode::RollbackEvidenceMalformed,
                format!("schema is {other:?}, expected {ROLLBACK_SCHEMA:?}"),
            ));
            return out;
        }
    }
    if let Some(name) = obj.keys().find(|k| !DOCUMENT_MEMBERS.contains(&k.as_str())) {
        out.rejects.push(doc_reject(
            RejectCode::RollbackEvidenceMalformed,
            format!(
                "unknown member `{name}`: the schema defines {}",
                DOCUMENT_MEMBERS.join(", ")
            ),
        ));
        return out;
    }
    let top_problem = obj.iter().find_map(|(k, v)| match k.as_str() {
        "subject" | "tool" | "target" | "state_digest" if !v.is_string() => {
            Some(format!("`{k}` is not a string"))
        }
        "isolation" | "snapshots" if !v.is_object() => Some(format!("`{k}` is not an object")),
        _ => None,
    });
    if let Some(why) = top_problem {
        out.rejects
            .push(doc_reject(RejectCode::RollbackEvidenceMalformed, why));
        return out;
    }
    let Some(entries) = obj.get("entries").and_then(Value::as_array) else {
        out.rejects.push(doc_reject(
            RejectCode::RollbackEvidenceMalformed,
            "no `entries` array".into(),
        ));
        return out;
    };
    if entries.is_empty() {
        out.rejects.push(doc_reject(
            RejectCode::RollbackNoEntries,
            "the evidence has no entries: an empty proof is no proof".into(),
        ));
        return out;
    }
    let mut seen = BTreeSet::new();
    for (index, entry) in entries.iter().enumerate() {
        out.entries += 1;
        check_entry(entry, index, label, &mut seen, &mut out.rejects);
    }
    out
}

fn check_entry(
    entry: &Value,
    index: usize,
    label: &str,
    seen: &mut BTreeSet<String>,
    rejects: &mut Vec<Reject>,
) {
    let id = entry
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string);
    let name = id.clone().unwrap_or_else(|| format!("#{index}"));
    let reject = |code, msg: String| {
        Reject::new(code, msg)
            .at_path(label.to_string())
            .at_entry(name.clone())
    };
    let mut problems = Vec::new();
    if !entry.is_object() {
        problems.push("the entry is not a JSON object".to_string());
    } else if id.is_none() {
        problems.push("no non-empty string `id`".to_string());
    }
    if let Some(obj) = entry.as_object() {
        for name in obj.keys().filter(|k| !ENTRY_MEMBERS.contains(&k.as_str())) {
            problems.push(format!(
                "unknown member `{name}` (an entry holds {})",
                ENTRY_MEMBERS.join(", ")
            ));
        }
        for (name, _) in obj
            .iter()
            .filter(|(k, _)| ["operation", "sql", "change", "rollback"].contains(&k.as_str()))
            .filter(|(_, v)| !v.is_string())
        {
            problems.push(format!("`{name}` is not a string"));
        }
        // Counts are whole numbers as written: `1.0` or `1e3` would be a rounded reading.
        for (name, _) in obj
            .iter()
            .filter(|(k, _)| k.starts_with("rows_"))
            .filter(|(_, v)| v.as_u64().is_none())
        {
            problems.push(format!("`{name}` is not a non-negative whole number"));
        }
    }
    let mut hash = |field: &str| -> Option<String> {
        match entry.get(field).and_then(Value::as_str) {
            Some(h) if crate::digest::Digest::from_hex(h).is_some() => Some(h.to_string()),
            Some(h) => {
                problems.push(format!(
                    "`{field}` is {h:?}, not 64 lowercase hex digits (^[0-9a-f]{{64}}$)"
                ));
                None
            }
            None if entry.is_object() => {
                problems.push(format!("`{field}` is missing or not a string"));
                None
            }
            None => None,
        }
    };
    let before = hash("before_hash");
    let apply = hash("after_apply_hash");
    let rollback = hash("after_rollback_hash");
    if !problems.is_empty() {
        rejects.push(reject(
            RejectCode::RollbackEntryMalformed,
            problems.join("; "),
        ));
        return;
    }
    let (Some(id), Some(before), Some(apply), Some(rollback)) = (id, before, apply, rollback)
    else {
        return;
    };
    if !seen.insert(id.clone()) {
        rejects.push(reject(
            RejectCode::RollbackDuplicateId,
            format!("another entry already has id {id:?}: each rollback must be proven once, by its own id"),
        ));
    }
    if apply == before {
        rejects.push(reject(
            RejectCode::RollbackApplyDidNotMutate,
            format!(
                "after_apply_hash equals before_hash ({}...): the apply never mutated anything, so the rollback proves nothing",
                &before[..12]
            ),
        ));
    }
    if rollback != before {
        rejects.push(reject(
            RejectCode::RollbackNotRestored,
            format!(
                "after_rollback_hash {}... differs from before_hash {}...: the rollback did not restore the state",
                &rollback[..12],
                &before[..12]
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

    fn doc(entries: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"schema": ROLLBACK_SCHEMA, "entries": entries})).unwrap()
    }

    fn codes(bytes: &[u8]) -> Vec<String> {
        check(bytes, "e.json")
            .rejects
            .iter()
            .map(|r| r.code_token())
            .collect()
    }

    #[test]
    fn good_evidence_passes() {
        let bytes = doc(json!([
            {"id": "RB-1", "before_hash": A, "after_apply_hash": B, "after_rollback_hash": A},
            {"id": "RB-2", "operation": "UPDATE", "before_hash": A, "after_apply_hash": C, "after_rollback_hash": A},
        ]));
        let checked = check(&bytes, "e.json");
        assert!(checked.rejects.is_empty(), "{:?}", checked.rejects);
        assert_eq!(checked.entries, 2);
        assert!(claims_schema(&bytes));
    }

    #[test]
    fn boms_unknown_members_and_uppercase_hashes_are_malformed() {
        let good = doc(
            json!([{"id": "RB-1", "before_hash": A, "after_apply_hash": B, "after_rollback_hash": A}]),
        );
        let bom = [crate::profile::BOM, &good[..]].concat();
        assert_eq!(codes(&bom), ["ROLLBACK_EVIDENCE_MALFORMED"]);
        assert!(
            claims_schema(&bom),
            "still recognised as evidence, so verify checks it"
        );
        let top = serde_json::to_vec(
            &json!({"schema": ROLLBACK_SCHEMA, "entires": [], "entries": [
            {"id": "RB-1", "before_hash": A, "after_apply_hash": B, "after_rollback_hash": A}]}),
        )
        .unwrap();
        let checked = check(&top, "e.json");
        assert_eq!(checked.rejects.len(), 1);
        assert!(
            checked.rejects[0]
                .message
                .contains("unknown member `entires`"),
            "{:?}",
            checked.rejects
        );
        for entry in [
            json!({"id": "RB-1", "before_hash": A.to_uppercase(), "after_apply_hash": B, "after_rollback_hash": A}),
            json!({"id": "RB-1", "before_hash": A, "after_apply_hash": B, "after_rollback_hash": A, "after_apply": A}),
            json!({"id": "RB-1", "before_hash": A, "after_apply_hash": B, "after_rollback_hash": A, "operation": 7}),
            json!({"id": "RB-1", "before_hash": A, "after_apply_hash": B, "after_rollback_hash": A, "rows_before": 1.0}),
            json!({"id": "RB-1", "before_hash": A, "after_apply_hash": B, "after_rollback_hash": A, "rows_before": -1}),
        ] {
            assert_eq!(
                codes(&doc(json!([entry]))),
                ["ROLLBACK_ENTRY_MALFORMED:RB-1"],
                "{entry}"
            );
        }
    }

    #[test]
    fn apply_equal_to_before_is_rejected() {
        let bytes = doc(
            json!([{"id": "RB-1", "before_hash": A, "after_apply_hash": A, "after_rollback_hash": A}]),
        );
        assert_eq!(codes(&bytes), ["ROLLBACK_APPLY_DID_NOT_MUTATE:RB-1"]);
    }

    #[test]
    fn not_restored_is_rejected() {
        let bytes = doc(
            json!([{"id": "RB-1", "before_hash": A, "after_apply_hash": B, "after_rollback_hash": B}]),
        );
        assert_eq!(codes(&bytes), ["ROLLBACK_NOT_RESTORED:RB-1"]);
    }

    #[test]
    fn both_failures_on_one_entry_are_reported() {
        let bytes = doc(
            json!([{"id": "X", "before_hash": A, "after_apply_hash": A, "after_rollback_hash": C}]),
        );
        assert_eq!(
            codes(&bytes),
            ["ROLLBACK_APPLY_DID_NOT_MUTATE:X", "ROLLBACK_NOT_RESTORED:X"]
        );
    }

    #[test]
    fn duplicate_and_malformed_entries() {
        let bytes = doc(json!([
            {"id": "RB-1", "before_hash": A, "after_apply_hash": B, "after_rollback_hash": A},
            {"id": "RB-1", "before_hash": A, "after_apply_hash": C, "after_rollback_hash": A},
            {"id": "RB-3", "before_hash": "abc", "after_apply_hash": B, "after_rollback_hash": A},
            {"before_hash": A, "after_apply_hash": B, "after_rollback_hash": A},
            "not an object",
        ]));
        assert_eq!(
            codes(&bytes),
            [
                "ROLLBACK_DUPLICATE_ID:RB-1",
                "ROLLBACK_ENTRY_MALFORMED:RB-3",
                "ROLLBACK_ENTRY_MALFORMED:#3",
                "ROLLBACK_ENTRY_MALFORMED:#4"
            ]
        );
    }

    #[test]
    fn empty_and_malformed_documents() {
        assert_eq!(codes(&doc(json!([]))), ["ROLLBACK_NO_ENTRIES"]);
        assert_eq!(codes(b"not json"), ["ROLLBACK_EVIDENCE_MALFORMED"]);
        assert_eq!(codes(b"[]"), ["ROLLBACK_EVIDENCE_MALFORMED"]);
        assert_eq!(
            codes(br#"{"schema": "other", "entries": []}"#),
            ["ROLLBACK_EVIDENCE_MALFORMED"]
        );
        assert_eq!(
            codes(format!(r#"{{"schema": "{ROLLBACK_SCHEMA}", "entries": {{}}}}"#).as_bytes()),
            ["ROLLBACK_EVIDENCE_MALFORMED"]
        );
        assert!(!claims_schema(br#"{"schema": "other"}"#));
        assert!(!claims_schema(b"[\"packet.rollback-evidence/1\"]"));
    }

    #[test]
    fn escaped_or_broken_evidence_is_still_claimed() {
        // PHP's json_encode writes `\/`; the schema is the same string.
        let escaped = format!(
            r#"{{"schema":"packet.rollback-evidence\/1","entries":[{{"id":"RB-1","before_hash":"{A}","after_apply_hash":"{A}","after_rollback_hash":"{B}"}}]}}"#
        );
        assert!(claims_schema(escaped.as_bytes()));
        assert_eq!(
            codes(escaped.as_bytes()),
            [
                "ROLLBACK_APPLY_DID_NOT_MUTATE:RB-1",
                "ROLLBACK_NOT_RESTORED:RB-1"
            ]
        );
        let unicode = r#"{"schema":"\u0070acket.rollback-evidence/1","entries":[]}"#;
        assert!(claims_schema(unicode.as_bytes()));
        let trailing_comma = r#"{"schema":"packet.rollback-evidence/1","entries":[],}"#;
        assert!(claims_schema(trailing_comma.as_bytes()));
        assert_eq!(
            codes(trailing_comma.as_bytes()),
            ["ROLLBACK_EVIDENCE_MALFORMED"]
        );
    }

    /// Feeds `bytes` in chunks of `n` (the scan must not depend on where chunks break).
    fn scanned(bytes: &[u8], n: usize) -> bool {
        let mut scan = SchemaScan::new();
        for chunk in bytes.chunks(n.max(1)) {
            scan.feed(chunk);
        }
        scan.claims()
    }

    #[test]
    fn schema_scan_finds_the_schema_anywhere_in_any_chunking() {
        let late = format!(
            r#"{{"note":"{}","schema":"{ROLLBACK_SCHEMA}","entries":[]}}"#,
            "x".repeat(70_000)
        );
        let escaped =
            r#"{"a":{"schema":"other"},"s\u0063hema":"\u0070acket\u002erollback\u002devidence/1"}"#;
        let second = format!(r#"{{"schema":"other","schema":"{ROLLBACK_SCHEMA}"}}"#);
        let bom = format!("\u{feff} \n{{\"schema\" : \"{ROLLBACK_SCHEMA}\"}}");
        for n in [1, 2, 7, 16, 17, 4096, usize::MAX] {
            assert!(scanned(late.as_bytes(), n), "late, chunks of {n}");
            assert!(scanned(escaped.as_bytes(), n), "escaped, chunks of {n}");
            assert!(scanned(second.as_bytes(), n), "duplicate, chunks of {n}");
            assert!(scanned(bom.as_bytes(), n), "bom, chunks of {n}");
        }
    }

    #[test]
    fn schema_scan_leaves_other_documents_alone() {
        let nested = format!(r#"{{"log":{{"schema":"{ROLLBACK_SCHEMA}"}},"schema":"app/2"}}"#);
        let mention = r#"{"schema":"app/2","text":"see rollback-evidence docs"}"#;
        let array = format!(r#"["{ROLLBACK_SCHEMA}"]"#);
        for n in [1, 5, usize::MAX] {
            assert!(
                !scanned(nested.as_bytes(), n),
                "a nested schema is not the document's"
            );
            assert!(!scanned(mention.as_bytes(), n));
            assert!(!scanned(array.as_bytes(), n));
        }
        // Broken or odd documents that name the schema are claimed: checked, never skipped.
        let odd = r#"{"schema":["packet.rollback-evidence/1"]}"#;
        let cut = r#"{"schema":"x","entries":[{"id":"rollback-evidence"#;
        for n in [1, 3, 16, usize::MAX] {
            assert!(scanned(odd.as_bytes(), n), "odd schema, chunks of {n}");
            assert!(scanned(cut.as_bytes(), n), "cut off, chunks of {n}");
        }
    }

    #[test]
    fn duplicate_members_are_malformed_whichever_comes_last() {
        for (first, last) in [(A, B), (B, A)] {
            let text = format!(
                r#"{{"schema":"{ROLLBACK_SCHEMA}","entries":[{{"id":"RB-1","before_hash":"{A}","after_apply_hash":"{first}","after_apply_hash":"{last}","after_rollback_hash":"{A}"}}]}}"#
            );
            assert_eq!(codes(text.as_bytes()), ["ROLLBACK_EVIDENCE_MALFORMED"]);
        }
    }
}
