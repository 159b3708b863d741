//! The drift corpus (tests/data/drift): every document of `original/` after a trip through the
//! real tool that causes each drift (see `cases.tsv` and `make_corpus.sh`). Each case must be
//! diagnosed with the recorded causes and proof level by `packet verify --against`, every
//! proven case must be restored byte for byte by `packet restore`, and no content edit may
//! ever be called cosmetic.

use assert_cmd::Command;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

fn packet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_packet"))
}

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/drift")
}

struct Case {
    name: String,
    file: String,
    found_as: String,
    proof: String,
    causes: Vec<String>,
}

fn cases() -> Vec<Case> {
    let tsv = fs::read_to_string(corpus().join("cases.tsv")).unwrap();
    tsv.lines()
        .skip(1)
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            let mut causes: Vec<String> = cols[4]
                .split('+')
                .filter(|c| *c != "-")
                .map(String::from)
                .collect();
            causes.sort();
            Case {
                name: cols[0].into(),
                file: cols[1].into(),
                found_as: if cols[2] == "-" {
                    cols[1].into()
                } else {
                    cols[2].into()
                },
                proof: cols[3].into(),
                causes,
            }
        })
        .collect()
}

/// The original's payload with the case's drifted file in place of the original one: what
/// comes back from a knowledge base (no seal files).
fn copy_with(case: &Case, dest: &Path) {
    fs::create_dir_all(dest).unwrap();
    for e in fs::read_dir(corpus().join("original")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if ["HASH_MANIFEST.txt", "packet_tree.sha256", "SEAL.json"].contains(&name.as_str())
            || name == case.file
        {
            continue;
        }
        fs::copy(e.path(), dest.join(&name)).unwrap();
    }
    fs::copy(
        corpus().join("cases").join(&case.name).join(&case.found_as),
        dest.join(&case.found_as),
    )
    .unwrap();
}

#[test]
fn every_case_is_diagnosed_as_recorded_and_proven_ones_restore_exactly() {
    let original = corpus().join("original");
    let tree = fs::read_to_string(original.join("packet_tree.sha256")).unwrap()[..64].to_string();
    let all = cases();
    assert!(all.len() >= 20, "corpus has {} cases", all.len());
    let mut failures = Vec::new();
    for case in &all {
        let tmp = tempfile::tempdir().unwrap();
        let copy = tmp.path().join("copy");
        copy_with(case, &copy);
        let out = packet()
            .arg("verify")
            .arg(&copy)
            .arg("--against")
            .arg(&original)
            .arg("--json")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}: a drifted copy must not pass",
            case.name
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let line = report["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["path"] == case.file.as_str())
            .cloned();
        let Some(line) = line else {
            failures.push(format!("{}: no line for {}", case.name, case.file));
            continue;
        };
        let mut causes: Vec<String> = line["causes"]
            .as_array()
            .map(|a| a.iter().map(|c| c.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        causes.sort();
        if line["proof"] != case.proof.as_str() || causes != case.causes {
            failures.push(format!(
                "{}: expected {} {:?}, got {} {:?}",
                case.name, case.proof, case.causes, line["proof"], causes
            ));
        }
        // Only the drifted document is reported; every other one is byte-exact.
        let others: Vec<&Value> = report["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["path"] != case.file.as_str() && l["status"] != "byte-exact")
            .collect();
        if !others.is_empty() {
            failures.push(format!(
                "{}: other files not byte-exact: {others:?}",
                case.name
            ));
        }
        if case.proof == "proven" {
            let restored = tmp.path().join("restored");
            let r = restore(&copy, &restored, &original);
            if r.status.code() != Some(0) {
                failures.push(format!(
                    "{}: restore failed: {}",
                    case.name,
                    String::from_utf8_lossy(&r.stdout)
                ));
                continue;
            }
            let v = packet()
                .arg("verify")
                .arg(&restored)
                .arg("--expect-tree")
                .arg(&tree)
                .output()
                .unwrap();
            if v.status.code() != Some(0) {
                failures.push(format!(
                    "{}: restored packet does not verify: {}",
                    case.name,
                    String::from_utf8_lossy(&v.stdout)
                ));
            }
            let original_bytes = fs::read(original.join(&case.file)).unwrap();
            if fs::read(restored.join(&case.file)).ok() != Some(original_bytes) {
                failures.push(format!("{}: restored bytes differ", case.name));
            }
        } else {
            // Unproven cases are refused, with the reason, and never written.
            let restored = tmp.path().join("restored");
            let r = restore(&copy, &restored, &original);
            let text = String::from_utf8_lossy(&r.stdout);
            if r.status.code() != Some(1)
                || !text.contains(&format!("REJECT RESTORE_REFUSED {}", case.file))
            {
                failures.push(format!("{}: restore did not refuse: {text}", case.name));
            }
            if restored.join(&case.file).exists() {
                failures.push(format!("{}: an unproven file was written", case.name));
            }
        }
        // The copy itself is never touched.
        let copy_again = tmp.path().join("copy-again");
        copy_with(case, &copy_again);
        if !dirs_equal(&copy, &copy_again) {
            failures.push(format!("{}: restore wrote into the copy", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn restore(copy: &Path, out: &Path, original: &Path) -> std::process::Output {
    packet()
        .arg("restore")
        .arg(copy)
        .arg("--out")
        .arg(out)
        .arg("--against")
        .arg(original)
        .output()
        .unwrap()
}

fn dirs_equal(a: &Path, b: &Path) -> bool {
    let list = |d: &Path| {
        let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(d)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    list(a) == list(b)
}

#[test]
fn content_edits_are_never_cosmetic() {
    let content: Vec<Case> = cases()
        .into_iter()
        .filter(|c| c.name.starts_with("content-"))
        .collect();
    assert!(content.len() >= 3);
    for case in content {
        assert_eq!(case.proof, "content-changed", "{}", case.name);
        assert!(case.causes.is_empty(), "{}", case.name);
    }
}

#[test]
fn against_a_manifest_file_and_a_tree_digest() {
    let original = corpus().join("original");
    let tree = fs::read_to_string(original.join("packet_tree.sha256")).unwrap()[..64].to_string();
    let case = cases()
        .into_iter()
        .find(|c| c.name == "bom-crlf-vim")
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("copy");
    copy_with(&case, &copy);
    // The manifest kept apart: the copy's own SEAL.json is absent, so lengths are unknown,
    // but undoing BOM and CRLF still rebuilds the sealed digest.
    let apart = tmp.path().join("kept-apart");
    fs::create_dir(&apart).unwrap();
    fs::copy(
        original.join("HASH_MANIFEST.txt"),
        apart.join("HASH_MANIFEST.txt"),
    )
    .unwrap();
    let out = packet()
        .arg("verify")
        .arg(&copy)
        .arg("--against")
        .arg(apart.join("HASH_MANIFEST.txt"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text.contains("REJECT SHA256_MISMATCH plan.txt"), "{text}");
    assert!(text.contains("diagnosis (proven)"), "{text}");
    // A tree digest: the copy must carry the seal files, and they must hash to it.
    for f in ["HASH_MANIFEST.txt", "packet_tree.sha256", "SEAL.json"] {
        fs::copy(original.join(f), copy.join(f)).unwrap();
    }
    let abbreviated = format!("{}…{}", &tree[..8], &tree[56..]);
    let out = packet()
        .arg("verify")
        .arg(&copy)
        .arg("--against")
        .arg(&abbreviated)
        .arg("--json")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["scope"], "pinned");
    let plan = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["path"] == "plan.txt")
        .unwrap();
    assert_eq!(plan["proof"], "proven");
    let wrong = format!("{}…{}", &tree[..8], "00000000");
    packet()
        .arg("verify")
        .arg(&copy)
        .arg("--against")
        .arg(&wrong)
        .assert()
        .code(1)
        .stdout(predicates::str::contains("REJECT PIN_MISMATCH"));
    packet()
        .arg("verify")
        .arg(&copy)
        .arg("--against")
        .arg("no-such-thing")
        .assert()
        .code(2);
}
