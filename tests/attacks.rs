//! Regression tests for the attack run of issue 10: each case is a fail-open, a crash or an
//! unbounded read that `packet` once had, tried on a fresh copy of a real packet sealed from
//! the reference documents. Every case must end in its named reject, exit 1, no `PASS` token
//! in stdout, stderr or `--json`, and nothing written anywhere in its temporary directory.

mod common;

use assert_cmd::Command;
use common::reseal_manifest;
use packet::manifest::{MANIFEST_NAME, Manifest, TREE_NAME};
use packet::report::has_pass_token;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

fn packet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_packet"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A packet sealed from the reference documents and the selftest evidence, in a temp dir.
fn sealed() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pkt");
    packet()
        .arg("build")
        .arg(&out)
        .arg(repo().join("selftest/reference"))
        .arg(repo().join("selftest/rollback-evidence.json"))
        .assert()
        .success();
    (tmp, out)
}

/// Every file below `root` with its length, mode and modification time: what "nothing was
/// written" is checked against.
fn tree(root: &Path) -> BTreeMap<PathBuf, (u64, u32, i128)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let m = fs::symlink_metadata(&path).unwrap();
            if m.is_dir() {
                stack.push(path.clone());
            }
            let mtime = m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128;
            out.insert(path, (m.len(), m.mode(), mtime));
        }
    }
    out
}

/// Runs `packet ARGS` as text and as `--json` and asserts it fails closed with `code`: exit 1,
/// the code among the rejects, no PASS token anywhere, the JSON verdict FAIL, and nothing
/// created or changed below `root`. Returns the text output.
fn fails_closed(root: &Path, args: &[OsString], code: &str) -> String {
    let before = tree(root);
    let text = packet().args(args).output().unwrap();
    let json = packet().args(args).arg("--json").output().unwrap();
    let stdout = String::from_utf8_lossy(&text.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&text.stderr).into_owned();
    assert_eq!(text.status.code(), Some(1), "{args:?}\n{stdout}{stderr}");
    assert_eq!(json.status.code(), Some(1), "{args:?} --json");
    for out in [&text.stdout, &text.stderr, &json.stdout, &json.stderr] {
        let out = String::from_utf8_lossy(out);
        assert!(!has_pass_token(&out), "a failing run printed PASS:\n{out}");
    }
    assert!(
        stdout.contains(&format!("REJECT {code}")),
        "no {code} in:\n{stdout}"
    );
    let report: Value = serde_json::from_slice(&json.stdout).expect("--json prints JSON");
    assert_eq!(report["verdict"], "FAIL", "{report:#}");
    let codes: Vec<&str> = report["rejects"]
        .as_array()
        .expect("rejects")
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&code), "{codes:?} lacks {code}");
    assert_eq!(
        tree(root),
        before,
        "{args:?} wrote below {}",
        root.display()
    );
    stdout
}

fn args(parts: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    parts.iter().map(|p| p.as_ref().to_os_string()).collect()
}

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const SCHEMA: &str = "packet.rollback-evidence/1";

/// check-rollback on `text` written to a file in a fresh temp dir.
fn check_rollback_fails(text: &str, code: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("evidence.json");
    fs::write(&file, text).unwrap();
    fails_closed(tmp.path(), &args(&[&"check-rollback", &file]), code)
}

// 1. Duplicate members in rollback evidence, whichever value comes last.

#[test]
fn rollback_duplicate_apply_hash_first_equal_to_before_is_rejected() {
    let text = format!(
        r#"{{"schema":"{SCHEMA}","entries":[{{"id":"RB-1","before_hash":"{A}","after_apply_hash":"{A}","after_apply_hash":"{B}","after_rollback_hash":"{A}"}}]}}"#
    );
    let out = check_rollback_fails(&text, "ROLLBACK_EVIDENCE_MALFORMED");
    assert!(
        out.contains("duplicate member `entries[0].after_apply_hash`"),
        "{out}"
    );
}

#[test]
fn rollback_duplicate_apply_hash_last_equal_to_before_is_rejected() {
    let text = format!(
        r#"{{"schema":"{SCHEMA}","entries":[{{"id":"RB-1","before_hash":"{A}","after_apply_hash":"{B}","after_apply_hash":"{A}","after_rollback_hash":"{A}"}}]}}"#
    );
    check_rollback_fails(&text, "ROLLBACK_EVIDENCE_MALFORMED");
}

#[test]
fn rollback_duplicate_apply_hash_spelled_with_a_u_escape_is_rejected() {
    let text = format!(
        r#"{{"schema":"{SCHEMA}","entries":[{{"id":"RB-1","before_hash":"{A}","after_apply_hash":"{A}","\u0061fter_apply_hash":"{B}","after_rollback_hash":"{A}"}}]}}"#
    );
    check_rollback_fails(&text, "ROLLBACK_EVIDENCE_MALFORMED");
}

#[test]
fn rollback_two_entries_arrays_are_rejected() {
    let text = format!(
        r#"{{"schema":"{SCHEMA}","entries":[{{"id":"RB-1","before_hash":"{A}","after_apply_hash":"{A}","after_rollback_hash":"{A}"}}],"entries":[{{"id":"RB-1","before_hash":"{A}","after_apply_hash":"{B}","after_rollback_hash":"{A}"}}]}}"#
    );
    let out = check_rollback_fails(&text, "ROLLBACK_EVIDENCE_MALFORMED");
    assert!(out.contains("duplicate member `entries`"), "{out}");
}

#[test]
fn rollback_duplicate_member_sealed_inside_a_packet_is_rejected_by_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("rollback-evidence.json");
    fs::write(
        &src,
        format!(
            r#"{{"schema":"{SCHEMA}","entries":[{{"id":"RB-1","before_hash":"{A}","after_apply_hash":"{A}","after_apply_hash":"{B}","after_rollback_hash":"{A}"}}]}}"#
        ),
    )
    .unwrap();
    let pkt = tmp.path().join("pkt");
    packet().arg("build").arg(&pkt).arg(&src).assert().success();
    fails_closed(
        tmp.path(),
        &args(&[&"verify", &pkt]),
        "ROLLBACK_EVIDENCE_MALFORMED",
    );
}

// 2. Evidence too large to parse whole, with its schema past the first 64 KiB.

fn padded_evidence() -> Vec<u8> {
    let doc = json!({
        "note": "x".repeat(70 * 1024),
        "schema": SCHEMA,
        "entries": [{"id": "RB-1", "before_hash": A, "after_apply_hash": A, "after_rollback_hash": A}],
        "padding": " ".repeat(16 * 1024 * 1024 + 1),
    });
    serde_json::to_vec(&doc).unwrap()
}

#[test]
fn padded_rollback_evidence_with_a_late_schema_is_rejected_by_verify() {
    let (tmp, pkt) = sealed();
    fs::write(pkt.join("rollback-evidence.json"), padded_evidence()).unwrap();
    reseal_manifest(&pkt);
    let out = fails_closed(
        tmp.path(),
        &args(&[&"verify", &pkt]),
        "ROLLBACK_EVIDENCE_MALFORMED",
    );
    assert!(out.contains("looks like rollback evidence but is"), "{out}");
}

#[test]
fn padded_rollback_evidence_with_a_late_schema_is_rejected_in_an_archive() {
    let (tmp, pkt) = sealed();
    fs::write(pkt.join("rollback-evidence.json"), padded_evidence()).unwrap();
    reseal_manifest(&pkt);
    // pack refuses a packet that does not verify; the attacker writes the archive by hand,
    // seal first as pack would.
    let archive = tmp.path().join("pkt.tar");
    let mut names: Vec<String> = vec![MANIFEST_NAME.into(), TREE_NAME.into()];
    let (manifest, _) = Manifest::parse(&fs::read(pkt.join(MANIFEST_NAME)).unwrap());
    names.extend(manifest.entries.iter().map(|e| e.path.clone()));
    let mut b = tar::Builder::new(fs::File::create(&archive).unwrap());
    for name in &names {
        let bytes = fs::read(pkt.join(name)).unwrap();
        let h = packet::archive::ustar_header(name, false, bytes.len() as u64, 0).unwrap();
        b.append(&h, &bytes[..]).unwrap();
    }
    b.into_inner().unwrap();
    fails_closed(
        tmp.path(),
        &args(&[&"verify", &archive]),
        "ROLLBACK_EVIDENCE_MALFORMED",
    );
}

// 3 and 4. A seal record that is not one reading of one record per file.

fn edit_seal_record(pkt: &Path, f: impl FnOnce(&str) -> String) {
    let path = pkt.join("SEAL.json");
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, f(&text)).unwrap();
    reseal_manifest(pkt);
}

#[test]
fn seal_record_with_one_path_twice_is_inconsistent() {
    let (tmp, pkt) = sealed();
    edit_seal_record(&pkt, |t| {
        let line = t
            .lines()
            .find(|l| l.contains("\"path\":\"rollback-evidence.json\""))
            .unwrap()
            .trim_end_matches(',')
            .to_string();
        let twice = line.replacen("\"bytes\":", "\"bytes\":1", 1);
        t.replacen(&line, &format!("{line},\n{twice}"), 1)
    });
    let out = fails_closed(tmp.path(), &args(&[&"verify", &pkt]), "SEAL_INCONSISTENT");
    assert!(out.contains("is recorded twice"), "{out}");
}

#[test]
fn seal_record_nested_100000_deep_is_inconsistent() {
    let (tmp, pkt) = sealed();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    edit_seal_record(&pkt, |t| {
        t.replacen(
            "{\"path\":\"rollback-evidence.json\",",
            &format!("{{\"path\":\"rollback-evidence.json\",\"x\":{deep},"),
            1,
        )
    });
    let out = fails_closed(tmp.path(), &args(&[&"verify", &pkt]), "SEAL_INCONSISTENT");
    assert!(
        out.contains("100003 levels deep, above the limit of 64"),
        "{out}"
    );
}

#[test]
fn seal_record_with_an_unknown_member_is_inconsistent() {
    let (tmp, pkt) = sealed();
    edit_seal_record(&pkt, |t| {
        t.replacen(
            "{\"path\":\"rollback-evidence.json\",",
            "{\"path\":\"rollback-evidence.json\",\"checked\":false,",
            1,
        )
    });
    let out = fails_closed(tmp.path(), &args(&[&"verify", &pkt]), "SEAL_INCONSISTENT");
    assert!(out.contains("unknown field `checked`"), "{out}");
}

// 5. A file truncated by another process while it is hashed.

#[test]
fn file_truncated_while_verified_is_a_reject_with_a_report_not_sigbus() {
    let tmp = tempfile::tempdir().unwrap();
    let pkt = tmp.path().join("pkt");
    fs::create_dir(&pkt).unwrap();
    let big = pkt.join("dump.bin");
    // Sparse: 2 GiB of zeros cost no disk, and hash at full speed.
    fs::File::create(&big).unwrap().set_len(2 << 30).unwrap();
    packet().arg("build").arg(&pkt).assert().success();
    let mut seen = BTreeMap::new();
    for delay_ms in [150u64, 300, 600] {
        fs::File::create(&big).unwrap().set_len(2 << 30).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_packet"))
            .args(["verify", "--jobs", "1"])
            .arg(&pkt)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        fs::OpenOptions::new()
            .write(true)
            .open(&big)
            .unwrap()
            .set_len(0)
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        // Exit 1 with a report: a signal (SIGBUS) would leave no code.
        assert_eq!(out.status.code(), Some(1), "{stdout}{:?}", out.status);
        assert!(stdout.contains("FAIL "), "no report printed:\n{stdout}");
        assert!(!has_pass_token(&stdout), "{stdout}");
        let code = ["FILE_CHANGED_WHILE_READ", "BYTE_LENGTH_MISMATCH"]
            .into_iter()
            .find(|c| stdout.contains(&format!("REJECT {c} dump.bin")))
            .unwrap_or_else(|| panic!("neither reject for dump.bin:\n{stdout}"));
        *seen.entry(code).or_insert(0) += 1;
    }
    eprintln!("truncation outcomes: {seen:?}");
}

// 6. Seal files and manifests that would take unbounded memory.

/// Peak resident memory of the largest child this test process has waited for, in MiB.
fn peak_child_rss_mib() -> u64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct it is given.
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) },
        0
    );
    usage.ru_maxrss as u64 / 1024
}

/// A seal file replaced by a 2 GiB sparse one: refused unread with `code`, in bounded memory.
fn sparse_2gib_seal_file_is_refused(name: &str, code: &str) {
    let (tmp, pkt) = sealed();
    fs::File::create(pkt.join(name))
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let out = fails_closed(tmp.path(), &args(&[&"verify", &pkt]), code);
    assert!(out.contains("refused unread"), "{out}");
    assert!(peak_child_rss_mib() < 256, "{} MiB", peak_child_rss_mib());
}

#[test]
fn sparse_2gib_manifest_is_refused_unread() {
    sparse_2gib_seal_file_is_refused(MANIFEST_NAME, "MANIFEST_MALFORMED");
}

#[test]
fn sparse_2gib_seal_record_is_refused_unread() {
    sparse_2gib_seal_file_is_refused("SEAL.json", "SEAL_INCONSISTENT");
}

#[test]
fn sealed_seal_record_above_its_limit_is_refused() {
    let (tmp, pkt) = sealed();
    // The manifest seals this record: the record is authentic, and still refused unread.
    fs::File::create(pkt.join("SEAL.json"))
        .unwrap()
        .set_len(packet::seal::SEAL_RECORD_LIMIT + 1)
        .unwrap();
    reseal_manifest(&pkt);
    let out = fails_closed(tmp.path(), &args(&[&"verify", &pkt]), "SEAL_INCONSISTENT");
    assert!(out.contains("refused unread"), "{out}");
}

#[test]
fn a_million_junk_manifest_lines_give_a_bounded_report() {
    let (tmp, pkt) = sealed();
    let junk = "not a manifest line at all\n".repeat(1_000_000);
    fs::write(pkt.join(MANIFEST_NAME), junk).unwrap();
    let out = fails_closed(tmp.path(), &args(&[&"verify", &pkt]), "MANIFEST_MALFORMED");
    let lines = out.lines().count();
    assert!(lines < 200, "{lines} lines of output");
    assert!(
        out.contains("999900 more malformed lines not listed"),
        "{out}"
    );
    assert!(peak_child_rss_mib() < 256, "{} MiB", peak_child_rss_mib());
}

// 11. Bidirectional controls in names and ids are printed escaped.

#[test]
fn bidi_override_in_a_file_name_is_escaped_in_the_reject_line() {
    let (tmp, pkt) = sealed();
    fs::write(pkt.join("invoice\u{202E}fdp.exe"), "x").unwrap();
    let out = fails_closed(tmp.path(), &args(&[&"verify", &pkt]), "PATH_REJECTED");
    assert!(!out.contains('\u{202E}'), "raw U+202E printed:\n{out}");
    assert!(out.contains("invoice\\u{202e}fdp.exe"), "{out}");
}

#[test]
fn bidi_controls_in_a_rollback_entry_id_are_escaped() {
    let id = "RB-\u{202A}1\u{2066}\u{2069}\u{202C}";
    let text = json!({
        "schema": SCHEMA,
        "entries": [{"id": id, "before_hash": A, "after_apply_hash": A, "after_rollback_hash": A}],
    })
    .to_string();
    let out = check_rollback_fails(&text, "ROLLBACK_APPLY_DID_NOT_MUTATE");
    for c in ['\u{202A}', '\u{2066}', '\u{2069}', '\u{202C}'] {
        assert!(!out.contains(c), "raw {c:?} printed:\n{out}");
    }
    assert!(
        out.contains("RB-\\u{202a}1\\u{2066}\\u{2069}\\u{202c}"),
        "{out}"
    );
}
