//! The JSON Schemas in `docs/schema/` against real documents: every report the binary prints
//! with `--json` (passing and failing), every document it writes (seal record, snapshot,
//! rollback evidence) and the ones this repository carries, validated with the `jsonschema`
//! crate (draft 2020-12). Each schema closes its objects, so a member added in code and not
//! in the schema fails here, and the schemas cannot drift from the code.

mod common;

use assert_cmd::Command;
use common::{copy_dir, repo};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

const BASE: &str = "https://packet.invalid/schema/";

/// Every schema file by name, parsed.
fn schemas() -> BTreeMap<String, Value> {
    fs::read_dir(repo().join("docs/schema"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".schema.json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let doc: Value = serde_json::from_slice(&fs::read(&p).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, doc)
        })
        .collect()
}

/// Validators for every schema, each knowing the others (for `$ref`s between files).
struct Schemas {
    validators: BTreeMap<String, jsonschema::Validator>,
    used: BTreeSet<String>,
}

impl Schemas {
    fn new() -> Schemas {
        let all = schemas();
        let mut registry = jsonschema::Registry::new();
        for (name, doc) in &all {
            registry = registry.add(format!("{BASE}{name}"), doc.clone()).unwrap();
        }
        let registry = registry.prepare().expect("the schemas' $refs resolve");
        let mut validators = BTreeMap::new();
        for (name, schema) in &all {
            assert_eq!(
                schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
                "{name}"
            );
            assert_eq!(schema["$id"], format!("{BASE}{name}"), "{name}");
            let v = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .with_registry(&registry)
                .build(schema)
                .unwrap_or_else(|e| panic!("{name} does not compile: {e}"));
            validators.insert(name.clone(), v);
        }
        Schemas {
            validators,
            used: BTreeSet::new(),
        }
    }

    /// Asserts `doc` is valid against `name`, and that the same document with one member
    /// more is not (the schema is closed).
    fn valid(&mut self, name: &str, doc: &Value, what: &str) {
        let v = &self.validators[name];
        let errors: Vec<String> = v
            .iter_errors(doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what} is not a valid {name}:\n{}\n{}",
            errors.join("\n"),
            serde_json::to_string_pretty(doc).unwrap()
        );
        let mut more = doc.clone();
        more.as_object_mut()
            .unwrap()
            .insert("not_in_the_schema".into(), Value::Bool(true));
        assert!(
            !v.is_valid(&more),
            "{name} accepts a member it does not define"
        );
        self.used.insert(name.to_string());
    }
}

fn packet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_packet"))
}

/// Runs packet and parses its stdout as one JSON document; `ok` is the expected success.
fn json_of(args: &[&str], cwd: &Path, ok: bool) -> Value {
    let out = packet().args(args).current_dir(cwd).output().unwrap();
    assert_eq!(
        out.status.success(),
        ok,
        "packet {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("packet {args:?}: not one JSON document: {e}"))
}

fn file_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn add_bom(path: &Path) {
    let bytes = fs::read(path).unwrap();
    fs::write(path, [b"\xEF\xBB\xBF".as_slice(), &bytes].concat()).unwrap();
}

#[test]
fn every_document_packet_reads_or_writes_matches_its_schema() {
    let mut s = Schemas::new();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let selftest = repo().join("selftest");
    let arg = |p: &Path| p.to_str().unwrap().to_string();

    // build, and the seal record it writes.
    let pkt = d.join("pkt");
    let (reference, evidence, rollback) = (
        arg(&selftest.join("reference")),
        arg(&selftest.join("evidence.json")),
        arg(&selftest.join("rollback-evidence.json")),
    );
    let built = json_of(
        &[
            "build",
            &arg(&pkt),
            &reference,
            &evidence,
            &rollback,
            "--json",
        ],
        d,
        true,
    );
    s.valid("build-report.schema.json", &built, "build");
    let tree = built["tree_hash"].as_str().unwrap().to_string();
    let refused = json_of(&["build", &arg(&pkt), &reference, "--json"], d, false);
    s.valid("build-report.schema.json", &refused, "a refused build");
    s.valid(
        "seal.schema.json",
        &file_json(&pkt.join("SEAL.json")),
        "SEAL.json",
    );
    for name in ["reference-docs", "sqlite-rollback-rehearsal"] {
        let record = repo().join("packets").join(name).join("SEAL.json");
        s.valid("seal.schema.json", &file_json(&record), name);
    }

    // verify: passing, pinned, against an original, failing; check-rollback.
    let p = arg(&pkt);
    s.valid(
        "verify-report.schema.json",
        &json_of(&["verify", &p, "--json"], d, true),
        "verify",
    );
    s.valid(
        "verify-report.schema.json",
        &json_of(&["verify", &p, "--expect-tree", &tree, "--json"], d, true),
        "verify pinned",
    );
    let copy = d.join("copy");
    copy_dir(&pkt, &copy);
    let copy_of_reference = copy.join("reference");
    let drifted_doc = fs::read_dir(&copy_of_reference)
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    add_bom(&drifted_doc);
    s.valid(
        "verify-report.schema.json",
        &json_of(&["verify", &arg(&copy), "--json"], d, false),
        "verify of a drifted copy",
    );
    s.valid(
        "verify-report.schema.json",
        &json_of(
            &["verify", &arg(&copy), "--against", &p, "--json"],
            d,
            false,
        ),
        "verify --against",
    );
    s.valid(
        "verify-report.schema.json",
        &json_of(&["check-rollback", &rollback, "--json"], d, true),
        "check-rollback",
    );
    let mut falsified = file_json(&selftest.join("rollback-evidence.json"));
    falsified["entries"][0]["after_apply_hash"] = falsified["entries"][0]["before_hash"].clone();
    fs::write(d.join("falsified.json"), falsified.to_string()).unwrap();
    s.valid(
        "verify-report.schema.json",
        &json_of(
            &["check-rollback", &arg(&d.join("falsified.json")), "--json"],
            d,
            false,
        ),
        "check-rollback of falsified evidence",
    );

    // restore, pack, unpack.
    s.valid(
        "restore-report.schema.json",
        &json_of(
            &[
                "restore",
                &arg(&copy),
                "--out",
                &arg(&d.join("restored")),
                "--against",
                &p,
                "--json",
            ],
            d,
            true,
        ),
        "restore",
    );
    let archive = arg(&d.join("pkt.tar.gz"));
    s.valid(
        "pack-report.schema.json",
        &json_of(&["pack", &p, "-o", &archive, "--json"], d, true),
        "pack",
    );
    s.valid(
        "pack-report.schema.json",
        &json_of(
            &[
                "pack",
                &arg(&copy),
                "-o",
                &arg(&d.join("copy.tar")),
                "--json",
            ],
            d,
            false,
        ),
        "a refused pack",
    );
    s.valid(
        "verify-report.schema.json",
        &json_of(
            &["verify", &archive, "--expect-tree", &tree, "--json"],
            d,
            true,
        ),
        "verify of an archive",
    );
    s.valid(
        "unpack-report.schema.json",
        &json_of(
            &["unpack", &archive, &arg(&d.join("unpacked")), "--json"],
            d,
            true,
        ),
        "unpack",
    );
    fs::write(d.join("junk.tar"), vec![b'x'; 1536]).unwrap();
    s.valid(
        "unpack-report.schema.json",
        &json_of(
            &[
                "unpack",
                &arg(&d.join("junk.tar")),
                &arg(&d.join("junk")),
                "--json",
            ],
            d,
            false,
        ),
        "a refused unpack",
    );

    // The CI gate.
    fs::write(
        d.join("good.pins"),
        format!("{tree}  pkt\n{tree}  pkt.tar.gz\n"),
    )
    .unwrap();
    fs::write(d.join("bad.pins"), format!("{tree}  copy\nnot-a-pin\n")).unwrap();
    s.valid(
        "pins-report.schema.json",
        &json_of(&["verify", "--pins", "good.pins", "--json"], d, true),
        "verify --pins",
    );
    s.valid(
        "pins-report.schema.json",
        &json_of(&["verify", "--pins", "bad.pins", "--json"], d, false),
        "a failing verify --pins",
    );

    // Rollback evidence: what this repository carries, and what rehearse writes.
    s.valid(
        "rollback-evidence.schema.json",
        &file_json(&selftest.join("rollback-evidence.json")),
        "selftest/rollback-evidence.json",
    );
    let evidence_dir = repo().join("packets/sqlite-rollback-rehearsal/evidence");
    for e in fs::read_dir(&evidence_dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "json") {
            s.valid(
                "rollback-evidence.schema.json",
                &file_json(&path),
                &path.display().to_string(),
            );
        }
    }

    // Database state: snapshot, snapshot-diff, rehearse.
    let db = d.join("app.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE registry(id INTEGER PRIMARY KEY, name TEXT, weight REAL);
         INSERT INTO registry VALUES (1, 'Nguyễn Văn An', 3.2), (2, 'Trần Thị Bình', 2.95);
         CREATE TABLE log(line TEXT);",
    )
    .unwrap();
    drop(conn);
    let target = format!("sqlite:{}", db.display());
    fs::write(
        d.join("claims.toml"),
        "[[claim]]\nid = \"NT-1\"\ntitle = \"registry untouched\"\ntable = \"registry\"\n",
    )
    .unwrap();
    let snap = |out: &str| {
        json_of(
            &[
                "snapshot",
                &target,
                "--claims",
                "claims.toml",
                "-o",
                out,
                "--json",
            ],
            d,
            true,
        )
    };
    s.valid(
        "snapshot-report.schema.json",
        &snap("before.json"),
        "snapshot",
    );
    s.valid(
        "snapshot.schema.json",
        &file_json(&d.join("before.json")),
        "a snapshot",
    );
    s.valid(
        "snapshot-report.schema.json",
        &json_of(
            &[
                "snapshot",
                "sqlite:/nonexistent/x.db",
                "-o",
                "x.json",
                "--json",
            ],
            d,
            false,
        ),
        "a refused snapshot",
    );
    let same = json_of(
        &["snapshot-diff", "before.json", "before.json", "--json"],
        d,
        true,
    );
    s.valid(
        "snapshot-diff.schema.json",
        &same,
        "snapshot-diff, unchanged",
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute("UPDATE registry SET weight = 3.3 WHERE id = 1", [])
        .unwrap();
    drop(conn);
    snap("after.json");
    s.valid(
        "snapshot-diff.schema.json",
        &json_of(
            &["snapshot-diff", "before.json", "after.json", "--json"],
            d,
            false,
        ),
        "snapshot-diff, changed",
    );
    fs::write(d.join("change.sql"), "INSERT INTO log VALUES ('x');").unwrap();
    let rehearsed = json_of(
        &[
            "rehearse",
            &target,
            "--apply",
            "change.sql",
            "-o",
            "evidence.json",
            "--json",
        ],
        d,
        true,
    );
    s.valid("rehearse-report.schema.json", &rehearsed, "rehearse");
    s.valid(
        "rollback-evidence.schema.json",
        &file_json(&d.join("evidence.json")),
        "rehearse's evidence",
    );
    fs::write(d.join("broken.sql"), "INSERT INTO nowhere VALUES (1);").unwrap();
    s.valid(
        "rehearse-report.schema.json",
        &json_of(
            &[
                "rehearse",
                &target,
                "--apply",
                "broken.sql",
                "-o",
                "broken.json",
                "--json",
            ],
            d,
            false,
        ),
        "a failed rehearsal",
    );

    // The self-test's own report.
    s.valid(
        "selftest-report.schema.json",
        &json_of(&["--selftest", "--json"], d, true),
        "--selftest",
    );

    // Every schema but the shared definitions was held against a real document.
    let all: BTreeSet<String> = s.validators.keys().cloned().collect();
    let unused: Vec<&String> = all
        .difference(&s.used)
        .filter(|n| *n != "common.schema.json")
        .collect();
    assert!(
        unused.is_empty(),
        "schemas no real document was checked against: {unused:?}"
    );
}

#[test]
fn every_document_schema_the_code_names_has_a_schema_file() {
    // The `schema` member of each document, as the code writes it, is its schema's title.
    let titles: BTreeSet<String> = schemas()
        .values()
        .filter_map(|s| s["title"].as_str().map(String::from))
        .collect();
    let mut named = BTreeSet::new();
    let mut stack = vec![repo().join("src")];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = fs::read_to_string(&path).unwrap();
            for (at, _) in text.match_indices("\"packet.") {
                let rest = &text[at + 1..];
                let Some(end) = rest.find('"') else { continue };
                let part = &rest[..end];
                let is_tag = part.ends_with("/1")
                    && part[7..part.len() - 2]
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '-');
                if is_tag {
                    named.insert(part.to_string());
                }
            }
        }
    }
    // packet.state/1 tags the canonical row encoding that is hashed, not a document.
    named.remove("packet.state/1");
    let missing: Vec<&String> = named.difference(&titles).collect();
    assert!(
        missing.is_empty(),
        "documents without a schema: {missing:?}"
    );
    assert!(named.len() >= 13, "{named:?}");
}
