//! CLI tests: the real `packet` binary on real files in temporary directories, with drift made
//! by the real tools that make it (Python's json, vim, git with core.autocrlf, sed, sha256sum).

use assert_cmd::Command;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process;

fn packet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_packet"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The reference documents (exact copies live in selftest/reference).
fn reference() -> PathBuf {
    repo().join("selftest/reference")
}

/// A sealed packet of the reference documents plus the JSON fixtures, in a temp dir.
fn sealed() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pkt");
    packet()
        .arg("build")
        .arg(&out)
        .arg(reference())
        .arg(repo().join("selftest/evidence.json"))
        .arg(repo().join("selftest/rollback-evidence.json"))
        .assert()
        .success();
    (tmp, out)
}

fn run_ok(cmd: &mut process::Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn python(script: &str, args: &[&Path]) {
    run_ok(
        process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(args),
    );
}

/// Runs verify and returns (exit code, stdout, JSON report).
fn verify(dir: &Path, extra: &[&str]) -> (i32, String, Value) {
    let text = packet()
        .arg("verify")
        .arg(dir)
        .args(extra)
        .output()
        .unwrap();
    let json = packet()
        .arg("verify")
        .arg(dir)
        .args(extra)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(text.status.code(), json.status.code());
    let report: Value = serde_json::from_slice(&json.stdout).expect("verify --json prints JSON");
    (
        text.status.code().unwrap(),
        String::from_utf8(text.stdout).unwrap(),
        report,
    )
}

/// Asserts a failing verify whose rejects include `code` at `path` with the drift `cause`
/// (if any) at the `proof` level (if any).
fn assert_rejected(
    dir: &Path,
    code: &str,
    path: &str,
    cause: Option<&str>,
    proof: Option<&str>,
) -> Value {
    let (status, text, report) = verify(dir, &[]);
    assert_eq!(status, 1, "{text}");
    assert!(
        !text.contains("PASS"),
        "a failing run printed PASS:\n{text}"
    );
    assert!(text.contains(&format!("REJECT {code} {path}")), "{text}");
    assert_eq!(report["verdict"], "FAIL");
    let reject = report["rejects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == code && r["path"] == path)
        .unwrap_or_else(|| panic!("no {code} at {path} in {report:#}"))
        .clone();
    if let Some(cause) = cause {
        let causes: Vec<&str> = reject["diagnosis"]["causes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["code"].as_str().unwrap())
            .collect();
        assert!(
            causes.contains(&cause),
            "{causes:?} lacks {cause}: {reject:#}"
        );
    }
    if let Some(proof) = proof {
        assert_eq!(reject["diagnosis"]["proof"], proof, "{reject:#}");
    }
    reject
}

/// The reference documents are read-only (0444) and build keeps modes; make one editable the
/// way a user would before opening it in an editor.
fn writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
}

/// Opens `path` in vim (no vimrc), applies `:set <settings>` and writes it: a real editor
/// making the drift.
fn vim_write(path: &Path, settings: &str) {
    writable(path);
    run_ok(
        process::Command::new("vim")
            .args(["-u", "NONE", "-i", "NONE", "-n", "-es", "-c"])
            .arg(format!("set {settings}"))
            .args(["-c", "wq"])
            .arg(path),
    );
}

const DOC: &str = "reference/001_d6b50f88b93da72f.txt";

#[test]
fn build_output_passes_sha256sum_check_strict() {
    let (_tmp, out) = sealed();
    for file in ["HASH_MANIFEST.txt", "packet_tree.sha256"] {
        let check = process::Command::new("sha256sum")
            .args(["-c", "--strict", file])
            .current_dir(&out)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stdout)
        );
    }
    let manifest = fs::read_to_string(out.join("HASH_MANIFEST.txt")).unwrap();
    assert_eq!(
        manifest.lines().count(),
        8,
        "5 documents, 2 JSON files, SEAL.json"
    );
    let tree = fs::read_to_string(out.join("packet_tree.sha256")).unwrap();
    let (status, text, report) = verify(&out, &[]);
    assert_eq!(status, 0, "{text}");
    assert!(text.starts_with("PASS "), "{text}");
    assert!(text.contains("internal consistency only"), "{text}");
    assert_eq!(report["tree_hash"]["computed"], tree[..64]);
    assert_eq!(report["counts"]["sealed_files"], 8);
    assert_eq!(report["counts"]["rollback_entries"], 2);
}

#[test]
fn build_is_deterministic_across_order_and_mtimes() {
    let (_a, first) = sealed();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("reference");
    fs::create_dir(&src).unwrap();
    // Copy in reverse order so directory listing order differs.
    let mut names: Vec<_> = fs::read_dir(reference())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    names.reverse();
    for n in names {
        fs::write(src.join(&n), fs::read(reference().join(&n)).unwrap()).unwrap();
    }
    let out = tmp.path().join("again");
    packet()
        .arg("build")
        .arg(&out)
        .arg(repo().join("selftest/rollback-evidence.json"))
        .arg(&src)
        .arg(repo().join("selftest/evidence.json"))
        .assert()
        .success();
    assert_eq!(
        fs::read(first.join("packet_tree.sha256")).unwrap(),
        fs::read(out.join("packet_tree.sha256")).unwrap()
    );
}

#[test]
fn pins_full_and_abbreviated() {
    let (_tmp, out) = sealed();
    let tree = fs::read_to_string(out.join("packet_tree.sha256")).unwrap()[..64].to_string();
    let cases = [
        (tree.clone(), 64),
        (format!("{}…{}", &tree[..8], &tree[58..]), 14),
        (format!("{}...{}", &tree[..8], &tree[58..]), 14),
    ];
    for (pin, digits) in cases {
        let (status, text, report) = verify(&out, &["--expect-tree", &pin]);
        assert_eq!(status, 0, "{pin}: {text}");
        assert!(
            text.contains(&format!("pin matched ({digits} of 64 hex digits checked)")),
            "{text}"
        );
        assert_eq!(report["scope"], "pinned");
        assert_eq!(report["tree_hash"]["pin_hex_digits_checked"], digits);
    }
    let wrong = format!("{}…{}", &tree[..8], "000000");
    let (status, text, _) = verify(&out, &["--expect-tree", &wrong]);
    assert_eq!(status, 1);
    assert!(text.contains("REJECT PIN_MISMATCH"), "{text}");
    assert!(!text.contains("PASS"));
}

#[test]
fn usage_errors_exit_2() {
    let (_tmp, out) = sealed();
    packet()
        .args(["verify"])
        .arg(&out)
        .args(["--expect-tree", "abc"])
        .assert()
        .code(2);
    packet()
        .args(["verify"])
        .arg(&out)
        .args(["--expect-tree", "zz12345678"])
        .assert()
        .code(2);
    packet().assert().code(2);
    packet().arg("frobnicate").assert().code(2);
    packet().arg("check-rollback").assert().code(2);
}

#[test]
fn drift_json_ensure_ascii_by_python_is_proven() {
    let (_tmp, out) = sealed();
    python(
        "import json,sys; p=sys.argv[1]; d=json.load(open(p,encoding='utf-8')); \
         open(p,'w',encoding='utf-8').write(json.dumps(d, ensure_ascii=True, indent=2)+'\\n')",
        &[&out.join("evidence.json")],
    );
    assert!(
        fs::read_to_string(out.join("evidence.json"))
            .unwrap()
            .contains("\\u2014")
    );
    let r = assert_rejected(
        &out,
        "BYTE_LENGTH_MISMATCH",
        "evidence.json",
        Some("DRIFT_JSON_ASCII_ESCAPE"),
        Some("proven"),
    );
    assert_eq!(r["diagnosis"]["causes"].as_array().unwrap().len(), 1);
}

#[test]
fn drift_bom_written_by_vim_is_proven() {
    let (_tmp, out) = sealed();
    vim_write(&out.join(DOC), "bomb nofixeol");
    assert!(
        fs::read(out.join(DOC))
            .unwrap()
            .starts_with(b"\xEF\xBB\xBF")
    );
    assert_rejected(
        &out,
        "BYTE_LENGTH_MISMATCH",
        DOC,
        Some("DRIFT_BOM"),
        Some("proven"),
    );
}

#[test]
fn drift_bom_written_by_python_utf8_sig_is_proven() {
    let (_tmp, out) = sealed();
    python(
        "import sys; p=sys.argv[1]; t=open(p,encoding='utf-8').read(); open(p,'w',encoding='utf-8-sig',newline='').write(t)",
        &[&out.join("evidence.json")],
    );
    assert_rejected(
        &out,
        "BYTE_LENGTH_MISMATCH",
        "evidence.json",
        Some("DRIFT_BOM"),
        Some("proven"),
    );
}

#[test]
fn drift_crlf_from_a_windows_checkout_is_proven() {
    // Commit the packet to git, then clone it the way a Windows checkout does.
    let (tmp, out) = sealed();
    let git = |dir: &Path, args: &[&str]| {
        run_ok(
            process::Command::new("git")
                .args([
                    "-c",
                    "user.name=t",
                    "-c",
                    "user.email=t@t",
                    "-c",
                    "init.defaultBranch=main",
                ])
                .args(args)
                .current_dir(dir),
        )
    };
    git(&out, &["init", "-q"]);
    git(&out, &["add", "-A"]);
    git(&out, &["commit", "-qm", "packet"]);
    let clone = tmp.path().join("windows-checkout");
    git(
        tmp.path(),
        &[
            "-c",
            "core.autocrlf=true",
            "clone",
            "-q",
            out.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    fs::remove_dir_all(clone.join(".git")).unwrap();
    assert!(
        fs::read(clone.join(DOC))
            .unwrap()
            .windows(2)
            .any(|w| w == b"\r\n")
    );
    // The seal files went through the conversion too: each is reported once as such, the
    // tree-hash mismatch is proven to be that conversion, the seal record is rebuilt, and
    // every text file's drift is proven CRLF.
    let (status, text, _) = verify(&clone, &[]);
    assert_eq!(status, 1);
    assert!(
        text.contains("REJECT MANIFEST_MALFORMED HASH_MANIFEST.txt: 8 of 8 lines end in CRLF"),
        "{text}"
    );
    assert!(
        text.contains("REJECT TREE_HASH_MALFORMED packet_tree.sha256: ends in CRLF"),
        "{text}"
    );
    assert!(
        text.contains("note: SEAL.json drifted, but its sealed bytes were rebuilt exactly"),
        "{text}"
    );
    let tree = assert_rejected(
        &clone,
        "TREE_HASH_MISMATCH",
        "packet_tree.sha256",
        Some("DRIFT_CRLF"),
        Some("proven"),
    );
    assert!(
        tree["message"].as_str().unwrap().contains("records"),
        "{tree:#}"
    );
    assert_rejected(
        &clone,
        "BYTE_LENGTH_MISMATCH",
        DOC,
        Some("DRIFT_CRLF"),
        Some("proven"),
    );
    assert_rejected(
        &clone,
        "BYTE_LENGTH_MISMATCH",
        "evidence.json",
        Some("DRIFT_CRLF"),
        Some("proven"),
    );
    assert_rejected(
        &clone,
        "SHA256_MISMATCH",
        "SEAL.json",
        Some("DRIFT_CRLF"),
        Some("proven"),
    );
    assert!(
        !text.contains("FILE_UNSEALED") && !text.contains("FILE_MISSING"),
        "{text}"
    );
}

#[test]
fn drift_em_dash_folded_by_sed_is_proven() {
    let (_tmp, out) = sealed();
    run_ok(
        process::Command::new("sed")
            .args(["-i", "s/—/-/g"])
            .arg(out.join(DOC)),
    );
    let r = assert_rejected(
        &out,
        "BYTE_LENGTH_MISMATCH",
        DOC,
        Some("DRIFT_UNICODE"),
        Some("proven"),
    );
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("sealed 10402 bytes"),
        "{r:#}"
    );
}

#[test]
fn drift_nfd_by_python_unicodedata_is_proven() {
    let (_tmp, out) = sealed();
    python(
        "import sys,unicodedata; p=sys.argv[1]; t=open(p,encoding='utf-8',newline='').read(); \
         open(p,'w',encoding='utf-8',newline='').write(unicodedata.normalize('NFD', t))",
        &[&out.join(DOC)],
    );
    assert_rejected(
        &out,
        "BYTE_LENGTH_MISMATCH",
        DOC,
        Some("DRIFT_UNICODE_NORMALIZATION"),
        Some("proven"),
    );
}

#[test]
fn drift_bom_and_crlf_in_one_trip_is_proven_as_both() {
    let (_tmp, out) = sealed();
    vim_write(&out.join(DOC), "bomb ff=dos nofixeol");
    let r = assert_rejected(
        &out,
        "BYTE_LENGTH_MISMATCH",
        DOC,
        Some("DRIFT_BOM"),
        Some("proven"),
    );
    let causes: Vec<&str> = r["diagnosis"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert_eq!(causes, ["DRIFT_CRLF", "DRIFT_BOM"]);
}

#[test]
fn content_edit_is_reported_as_content_change() {
    let (_tmp, out) = sealed();
    run_ok(
        process::Command::new("sed")
            .args(["-i", "s/4182,/4183,/"])
            .arg(out.join("evidence.json")),
    );
    let r = assert_rejected(
        &out,
        "SHA256_MISMATCH",
        "evidence.json",
        None,
        Some("content-changed"),
    );
    assert!(r["diagnosis"]["causes"].as_array().unwrap().is_empty());
}

#[test]
fn missing_unsealed_and_symlinked_files() {
    let (_tmp, out) = sealed();
    fs::remove_file(out.join("reference/004_6716453379d1069e.txt")).unwrap();
    fs::write(out.join("late.txt"), "added after sealing\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", out.join("reference/link")).unwrap();
    let (status, text, report) = verify(&out, &[]);
    assert_eq!(status, 1);
    for line in [
        "REJECT FILE_MISSING reference/004_6716453379d1069e.txt",
        "REJECT FILE_UNSEALED late.txt",
        "REJECT PATH_REJECTED reference/link",
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
    assert_eq!(report["counts"]["rejects"], 3, "{report:#}");
}

#[test]
fn a_symlinked_directory_is_not_followed() {
    // A manifest entry under a directory replaced by a symlink must not be read through it.
    let (tmp, out) = sealed();
    let elsewhere = tmp.path().join("elsewhere");
    fs::rename(out.join("reference"), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join("reference")).unwrap();
    let (status, text, _) = verify(&out, &[]);
    assert_eq!(status, 1);
    assert!(text.contains("REJECT PATH_REJECTED reference:"), "{text}");
    assert!(!text.contains("PASS"));
}

#[test]
fn tree_hash_and_manifest_tampering() {
    let (_tmp, out) = sealed();
    // Hide an edit by rewriting the manifest line with sha256sum: the tree hash catches it.
    run_ok(
        process::Command::new("sed")
            .args(["-i", "s/4182,/4183,/"])
            .arg(out.join("evidence.json")),
    );
    let line = process::Command::new("sha256sum")
        .arg("evidence.json")
        .current_dir(&out)
        .output()
        .unwrap();
    let new_line = String::from_utf8(line.stdout).unwrap();
    let manifest = fs::read_to_string(out.join("HASH_MANIFEST.txt")).unwrap();
    let forged: String = manifest
        .lines()
        .map(|l| {
            if l.ends_with("  evidence.json") {
                new_line.clone()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    fs::write(out.join("HASH_MANIFEST.txt"), forged).unwrap();
    let (status, text, _) = verify(&out, &[]);
    assert_eq!(status, 1);
    assert!(
        text.contains("REJECT TREE_HASH_MISMATCH packet_tree.sha256"),
        "{text}"
    );
    // The seal record still knows the length, so the edit is named too.
    assert!(!text.contains("PASS"));
    // No tree file at all.
    fs::remove_file(out.join("packet_tree.sha256")).unwrap();
    let (_, text, _) = verify(&out, &[]);
    assert!(text.contains("REJECT TREE_HASH_MISSING"), "{text}");
    fs::write(out.join("packet_tree.sha256"), "not a digest\n").unwrap();
    let (_, text, _) = verify(&out, &[]);
    assert!(text.contains("REJECT TREE_HASH_MALFORMED"), "{text}");
}

#[test]
fn manifest_missing_and_malformed() {
    let (_tmp, out) = sealed();
    let manifest = fs::read_to_string(out.join("HASH_MANIFEST.txt")).unwrap();
    let mut lines: Vec<&str> = manifest.lines().collect();
    lines.swap(0, 1);
    fs::write(out.join("HASH_MANIFEST.txt"), lines.join("\n") + "\n").unwrap();
    let (status, text, _) = verify(&out, &[]);
    assert_eq!(status, 1);
    assert!(
        text.contains("REJECT MANIFEST_MALFORMED HASH_MANIFEST.txt:2"),
        "{text}"
    );
    assert!(text.contains("out of order"), "{text}");
    fs::remove_file(out.join("HASH_MANIFEST.txt")).unwrap();
    let (status, text, _) = verify(&out, &["--expect-tree", "0123456789abcdef"]);
    assert_eq!(status, 1);
    assert!(
        text.contains("REJECT MANIFEST_MISSING HASH_MANIFEST.txt"),
        "{text}"
    );
    assert!(text.contains("REJECT PIN_MISMATCH"), "{text}");
    let (status, text, _) = verify(&out.join("no-such-packet"), &[]);
    assert_eq!(status, 1);
    assert!(text.contains("REJECT MANIFEST_MISSING"), "{text}");
}

#[test]
fn seal_record_disagreeing_with_manifest_is_inconsistent() {
    // Re-seal by hand with sha256sum after dropping a file from SEAL.json: the manifest and
    // tree hash agree, but the seal record no longer covers every sealed file.
    let (_tmp, out) = sealed();
    let record = fs::read_to_string(out.join("SEAL.json")).unwrap();
    let kept: Vec<&str> = record
        .lines()
        .filter(|l| !l.contains("\"path\":\"evidence.json\""))
        .collect();
    fs::write(out.join("SEAL.json"), kept.join("\n") + "\n").unwrap();
    let manifest = process::Command::new("sh")
        .args(["-c", "find . -type f ! -name HASH_MANIFEST.txt ! -name packet_tree.sha256 | sed 's|^./||' | LC_ALL=C sort | xargs sha256sum"])
        .current_dir(&out)
        .output()
        .unwrap();
    fs::write(out.join("HASH_MANIFEST.txt"), &manifest.stdout).unwrap();
    let tree = process::Command::new("sha256sum")
        .arg("HASH_MANIFEST.txt")
        .current_dir(&out)
        .output()
        .unwrap();
    fs::write(out.join("packet_tree.sha256"), &tree.stdout).unwrap();
    let (status, text, _) = verify(&out, &[]);
    assert_eq!(status, 1, "{text}");
    assert!(
        text.contains(
            "REJECT SEAL_INCONSISTENT evidence.json: in the manifest but not in SEAL.json"
        ),
        "{text}"
    );
}

#[test]
fn packet_sealed_by_sha256sum_alone_verifies_with_a_note() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("legacy");
    fs::create_dir(&dir).unwrap();
    fs::copy(
        reference().join("000_f85dc3b6917de17c.txt"),
        dir.join("plan.txt"),
    )
    .unwrap();
    fs::copy(
        repo().join("selftest/evidence.json"),
        dir.join("evidence.json"),
    )
    .unwrap();
    let manifest = process::Command::new("sha256sum")
        .args(["evidence.json", "plan.txt"])
        .current_dir(&dir)
        .output()
        .unwrap();
    fs::write(dir.join("HASH_MANIFEST.txt"), &manifest.stdout).unwrap();
    let tree = process::Command::new("sha256sum")
        .arg("HASH_MANIFEST.txt")
        .current_dir(&dir)
        .output()
        .unwrap();
    fs::write(dir.join("packet_tree.sha256"), &tree.stdout).unwrap();
    let (status, text, _) = verify(&dir, &[]);
    assert_eq!(status, 0, "{text}");
    assert!(text.contains("note: no SEAL.json"), "{text}");
    // Drift is still proven where a simple undo rebuilds the sealed digest.
    let crlf = fs::read_to_string(dir.join("plan.txt"))
        .unwrap()
        .replace('\n', "\r\n");
    fs::write(dir.join("plan.txt"), crlf).unwrap();
    assert_rejected(
        &dir,
        "SHA256_MISMATCH",
        "plan.txt",
        Some("DRIFT_CRLF"),
        Some("proven"),
    );
}

#[test]
fn reseal_writes_nothing_when_unchanged_and_a_new_seal_when_a_file_changed() {
    let (_tmp, out) = sealed();
    let seal = |name: &str| fs::read(out.join(name)).unwrap();
    let (record, manifest) = (seal("SEAL.json"), seal("HASH_MANIFEST.txt"));
    let reseal = || -> Value {
        let run = packet()
            .args(["build", "--json", "--reseal"])
            .arg(&out)
            .assert()
            .success();
        serde_json::from_slice(&run.get_output().stdout).unwrap()
    };
    let doc = reseal();
    assert_eq!(doc["unchanged"], true, "{doc}");
    assert_eq!(
        (seal("SEAL.json"), seal("HASH_MANIFEST.txt")),
        (record, manifest.clone())
    );
    // An edited payload file: the reseal is a new seal, and it verifies.
    let first = out.join("evidence.json");
    let mut bytes = fs::read(&first).unwrap();
    bytes.push(b'\n');
    fs::write(&first, bytes).unwrap();
    let doc = reseal();
    assert_eq!(doc["unchanged"], false, "{doc}");
    assert_ne!(seal("HASH_MANIFEST.txt"), manifest);
    packet()
        .arg("verify")
        .arg(&out)
        .arg("--expect-tree")
        .arg(doc["tree_hash"].as_str().unwrap())
        .assert()
        .success();
}

#[test]
fn build_refusals_write_nothing() {
    let (tmp, out) = sealed();
    // Already sealed.
    packet()
        .arg("build")
        .arg(&out)
        .assert()
        .code(1)
        .stdout(predicates::str::contains("REJECT BUILD_REFUSED"));
    // Reseal is explicit and gives the same tree.
    let before = fs::read(out.join("packet_tree.sha256")).unwrap();
    packet()
        .arg("build")
        .arg(&out)
        .arg("--reseal")
        .assert()
        .success();
    assert_eq!(fs::read(out.join("packet_tree.sha256")).unwrap(), before);
    // A symlink among the sources, and a missing source: nothing is created.
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a.txt"), "a").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", src.join("link")).unwrap();
    let fresh = tmp.path().join("fresh");
    let assert = packet()
        .arg("build")
        .arg(&fresh)
        .arg(&src)
        .arg(tmp.path().join("absent"))
        .assert()
        .code(1);
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert!(stdout.contains("REJECT PATH_REJECTED src/link"), "{stdout}");
    assert!(stdout.contains("REJECT FILE_MISSING"), "{stdout}");
    assert!(
        !stdout.contains("PASS") && !stdout.contains("SEALED"),
        "{stdout}"
    );
    assert!(!fresh.exists());
    let leftovers: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".packet"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Overwrite refused: the existing file keeps its bytes.
    let existing = tmp.path().join("existing");
    fs::create_dir(&existing).unwrap();
    fs::write(existing.join("a.txt"), "mine").unwrap();
    packet()
        .arg("build")
        .arg(&existing)
        .arg(src.join("a.txt"))
        .assert()
        .code(1);
    assert_eq!(fs::read(existing.join("a.txt")).unwrap(), b"mine");
    assert_eq!(fs::read_dir(&existing).unwrap().count(), 1);
    // A reserved seal name as a source.
    packet()
        .arg("build")
        .arg(tmp.path().join("x"))
        .arg(out.join("SEAL.json"))
        .assert()
        .code(1)
        .stdout(predicates::str::contains("REJECT PATH_REJECTED"));
}

#[test]
fn build_into_existing_directory_keeps_what_is_there() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("results.json"), "{\"ok\": true}\n").unwrap();
    packet()
        .arg("build")
        .arg(&out)
        .arg(reference())
        .assert()
        .success();
    let manifest = fs::read_to_string(out.join("HASH_MANIFEST.txt")).unwrap();
    assert!(
        manifest.contains("  results.json\n") && manifest.contains("  reference/000_"),
        "{manifest}"
    );
}

#[test]
fn check_rollback_on_real_and_falsified_evidence() {
    let evidence = repo().join("packets/sqlite-rollback-rehearsal/evidence");
    let mut files: Vec<_> = fs::read_dir(&evidence)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 4);
    let assert = packet()
        .arg("check-rollback")
        .args(&files)
        .assert()
        .success();
    let out = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert!(out.starts_with("PASS "), "{out}");
    assert!(out.contains("4 rollback entries"), "{out}");

    // The four real entries in one document (INSERT, UPDATE, DELETE, DDL), three falsified.
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.json");
    let real = |id: &str| evidence.join(format!("RB-SQLITE-{id}-1.json"));
    python(
        "import json,sys; ds=[json.load(open(f,encoding='utf-8')) for f in sys.argv[1:5]]; \
         d={'schema': ds[0]['schema'], 'entries': [x['entries'][0] for x in ds]}; \
         d['entries'][0]['after_apply_hash']=d['entries'][0]['before_hash']; \
         d['entries'][2]['after_rollback_hash']=d['entries'][2]['after_apply_hash']; \
         d['entries'][3]['id']=d['entries'][1]['id']; \
         open(sys.argv[5],'w',encoding='utf-8').write(json.dumps(d, ensure_ascii=False, indent=2))",
        &[
            &real("INSERT"),
            &real("UPDATE"),
            &real("DELETE"),
            &real("DDL"),
            &bad,
        ],
    );
    let output = packet().arg("check-rollback").arg(&bad).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(!text.contains("PASS"), "{text}");
    for token in [
        "REJECT ROLLBACK_APPLY_DID_NOT_MUTATE:RB-SQLITE-INSERT-1.sql",
        "REJECT ROLLBACK_NOT_RESTORED:RB-SQLITE-DELETE-1.sql",
        "REJECT ROLLBACK_DUPLICATE_ID:RB-SQLITE-UPDATE-1.sql",
    ] {
        assert!(text.contains(token), "{token} not in\n{text}");
    }
    let empty = tmp.path().join("empty.json");
    fs::write(
        &empty,
        r#"{"schema": "packet.rollback-evidence/1", "entries": []}"#,
    )
    .unwrap();
    packet()
        .arg("check-rollback")
        .arg(&empty)
        .assert()
        .code(1)
        .stdout(predicates::str::contains("REJECT ROLLBACK_NO_ENTRIES"));
    let json = packet()
        .arg("check-rollback")
        .arg(&bad)
        .arg("--json")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["verdict"], "FAIL");
    assert_eq!(report["rejects"][0]["entry"], "RB-SQLITE-INSERT-1.sql");
}

#[test]
fn verify_checks_rollback_evidence_inside_a_packet() {
    let tmp = tempfile::tempdir().unwrap();
    let ev = tmp.path().join("rollback-evidence.json");
    python(
        "import json,sys; d=json.load(open(sys.argv[1],encoding='utf-8')); \
         d['entries'][1]['after_apply_hash']=d['entries'][1]['before_hash']; \
         open(sys.argv[2],'w',encoding='utf-8').write(json.dumps(d, ensure_ascii=False, indent=2))",
        &[&repo().join("selftest/rollback-evidence.json"), &ev],
    );
    let out = tmp.path().join("pkt");
    packet().arg("build").arg(&out).arg(&ev).assert().success();
    let (status, text, _) = verify(&out, &[]);
    assert_eq!(status, 1);
    assert!(
        text.contains("REJECT ROLLBACK_APPLY_DID_NOT_MUTATE:RB-FIXTURE-2 rollback-evidence.json"),
        "{text}"
    );
}

#[test]
fn committed_packets_verify_and_are_pinned_by_their_sources() {
    for name in ["reference-docs", "sqlite-rollback-rehearsal"] {
        let dir = repo().join("packets").join(name);
        let tree = fs::read_to_string(dir.join("packet_tree.sha256")).unwrap();
        let (status, text, report) = verify(&dir, &["--expect-tree", &tree[..64]]);
        assert_eq!(status, 0, "{name}: {text}");
        assert_eq!(report["scope"], "pinned");
    }
    // Rebuilding the reference packet from ../shared/reference (or the selftest copies, which
    // are byte-identical) gives the committed tree hash.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("reference");
    fs::create_dir(&src).unwrap();
    for e in fs::read_dir(reference()).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), src.join(e.file_name())).unwrap();
    }
    let out = tmp.path().join("reference-docs");
    packet().arg("build").arg(&out).arg(&src).assert().success();
    assert_eq!(
        fs::read(out.join("packet_tree.sha256")).unwrap(),
        fs::read(repo().join("packets/reference-docs/packet_tree.sha256")).unwrap()
    );
}

#[test]
fn selftest_runs_anywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let assert = packet()
        .arg("--selftest")
        .current_dir(tmp.path())
        .assert()
        .success();
    let out = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert!(out.contains("30/30 fail closed"), "{out}");
    assert!(out.ends_with("SELFTEST PASS\n"), "{out}");
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "selftest wrote into the working directory"
    );
    let json = packet().args(["--selftest", "--json"]).output().unwrap();
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["control_accepted"], true);
    assert_eq!(report["probes"].as_array().unwrap().len(), 30);
}

#[test]
fn packets_sealed_before_drift_forensics_still_verify() {
    // Byte-exact copies of the packets as the first version sealed them (SEAL.json without
    // the typographic map, trailing-whitespace map or JSON fields).
    for (name, tree) in [
        (
            "reference-docs",
            "10f6918a2842c359de34324361a9a94510d5532949a96f76aca4fbab7a5daf42",
        ),
        (
            "sqlite-rollback-rehearsal",
            "16eebec18c2f3450d742755f510cfc0ab2126cd49f21431550d9223c17358232",
        ),
    ] {
        let dir = repo().join("tests/data/legacy-seal").join(name);
        let (status, text, _) = verify(&dir, &["--expect-tree", tree]);
        assert_eq!(status, 0, "{name}: {text}");
    }
    // Drift in an old packet is still diagnosed from its older profile.
    let tmp = tempfile::tempdir().unwrap();
    let old = tmp.path().join("old");
    run_ok(
        process::Command::new("cp")
            .arg("-a")
            .arg(repo().join("tests/data/legacy-seal/reference-docs"))
            .arg(&old),
    );
    writable(&old.join(DOC));
    run_ok(
        process::Command::new("sed")
            .args(["-i", "s/—/-/g"])
            .arg(old.join(DOC)),
    );
    assert_rejected(
        &old,
        "BYTE_LENGTH_MISMATCH",
        DOC,
        Some("DRIFT_UNICODE"),
        Some("consistent"),
    );
}

// Regression tests for fail-open and write-safety bugs found in review.

#[test]
fn evidence_with_an_escaped_schema_is_still_validated() {
    // PHP's json_encode writes `\/`: the same schema string, so the same checks apply.
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = ("a".repeat(64), "b".repeat(64));
    let ev = tmp.path().join("rollback-evidence.json");
    fs::write(
        &ev,
        format!(
            r#"{{"schema":"packet.rollback-evidence\/1","entries":[{{"id":"RB-1","before_hash":"{a}","after_apply_hash":"{a}","after_rollback_hash":"{b}"}}]}}"#
        ),
    )
    .unwrap();
    let broken = tmp.path().join("broken.json");
    fs::write(
        &broken,
        r#"{"schema": "packet.rollback-evidence/1", "entries": [],}"#,
    )
    .unwrap();
    let out = tmp.path().join("pkt");
    packet()
        .arg("build")
        .arg(&out)
        .arg(&ev)
        .arg(&broken)
        .assert()
        .success();
    let tree = fs::read_to_string(out.join("packet_tree.sha256")).unwrap();
    let (status, text, _) = verify(&out, &["--expect-tree", &tree[..64]]);
    assert_eq!(status, 1, "{text}");
    assert!(
        text.contains("REJECT ROLLBACK_APPLY_DID_NOT_MUTATE:RB-1 rollback-evidence.json"),
        "{text}"
    );
    assert!(
        text.contains("REJECT ROLLBACK_EVIDENCE_MALFORMED broken.json"),
        "{text}"
    );
}

#[test]
fn check_rollback_refuses_fifos_and_devices_without_hanging() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("fifo");
    run_ok(process::Command::new("mkfifo").arg(&fifo));
    for target in [fifo.as_path(), Path::new("/dev/zero"), tmp.path()] {
        let out = packet()
            .arg("check-rollback")
            .arg(target)
            .timeout(std::time::Duration::from_secs(10))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{target:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains("REJECT ROLLBACK_EVIDENCE_MALFORMED"),
            "{target:?}: {text}"
        );
    }
}

#[test]
fn reseal_refuses_a_directory_under_a_seal_name_and_keeps_the_old_seal() {
    let (_tmp, out) = sealed();
    let before: Vec<Vec<u8>> = ["SEAL.json", "HASH_MANIFEST.txt"]
        .iter()
        .map(|f| fs::read(out.join(f)).unwrap())
        .collect();
    fs::remove_file(out.join("packet_tree.sha256")).unwrap();
    fs::create_dir(out.join("packet_tree.sha256")).unwrap();
    fs::write(out.join("packet_tree.sha256/z"), "z").unwrap();
    let output = packet()
        .arg("build")
        .arg(&out)
        .arg("--reseal")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("REJECT PATH_REJECTED packet_tree.sha256"),
        "{text}"
    );
    let after: Vec<Vec<u8>> = ["SEAL.json", "HASH_MANIFEST.txt"]
        .iter()
        .map(|f| fs::read(out.join(f)).unwrap())
        .collect();
    assert_eq!(before, after, "the old seal files were changed");
}

#[test]
fn leftover_temporary_files_are_not_sealed() {
    let (_tmp, out) = sealed();
    fs::write(out.join(".packet-seal-AbC123"), "half-written").unwrap();
    packet()
        .arg("build")
        .arg(&out)
        .arg("--reseal")
        .assert()
        .code(1)
        .stdout(predicates::str::contains(
            "REJECT PATH_REJECTED .packet-seal-AbC123",
        ));
}

#[test]
fn build_never_writes_through_a_symlinked_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    let out = tmp.path().join("out");
    fs::create_dir_all(&outside).unwrap();
    fs::create_dir_all(&out).unwrap();
    std::os::unix::fs::symlink(&outside, out.join("sub")).unwrap();
    let src = tmp.path().join("sub");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), "secret").unwrap();
    let output = packet().arg("build").arg(&out).arg(&src).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("REJECT PATH_REJECTED sub"), "{text}");
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "wrote outside the packet"
    );
}

#[test]
fn build_refuses_clashing_sources_and_a_new_packet_inside_its_source() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("s");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("a"), "a").unwrap();
    packet()
        .arg("build")
        .arg(src.join("sub/out"))
        .arg(&src)
        .assert()
        .code(1)
        .stdout(predicates::str::contains("REJECT BUILD_REFUSED"));
    assert!(!src.join("sub/out").exists());
    // A file `d` and a directory `d/` from two sources.
    let (x, y) = (tmp.path().join("x"), tmp.path().join("y"));
    fs::create_dir_all(&x).unwrap();
    fs::create_dir_all(y.join("d")).unwrap();
    fs::write(x.join("d"), "file").unwrap();
    fs::write(y.join("d/f"), "in dir").unwrap();
    packet()
        .arg("build")
        .arg(tmp.path().join("clash"))
        .arg(x.join("d"))
        .arg(y.join("d"))
        .assert()
        .code(1)
        .stdout(predicates::str::contains(
            "REJECT BUILD_REFUSED d: one source is a file and another a directory",
        ));
}

#[test]
fn a_file_named_pass_cannot_put_a_pass_token_in_a_failing_run() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("PASS"), "x").unwrap();
    let out = tmp.path().join("pkt");
    packet().arg("build").arg(&out).arg(&src).assert().success();
    fs::write(out.join("src/PASS"), "changed").unwrap();
    let (status, text, report) = verify(&out, &[]);
    assert_eq!(status, 1);
    assert!(!packet::report::has_pass_token(&text), "{text}");
    assert!(
        text.contains("REJECT BYTE_LENGTH_MISMATCH src/P\\x41SS"),
        "{text}"
    );
    assert_eq!(
        report["rejects"][0]["path"], "src/PASS",
        "JSON keeps the exact name"
    );
}

#[test]
fn the_seal_is_identical_whatever_the_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("tree");
    for d in 0..7 {
        fs::create_dir_all(src.join(format!("d{d}"))).unwrap();
        for f in 0..40 {
            // Sizes across the read paths: one read, read whole, mapped.
            let size = match (d * 40 + f) % 9 {
                0 => 5 << 20,
                1 => 200 << 10,
                _ => f * 37 + d,
            };
            let body: Vec<u8> = (0..size).map(|i| ((i * 7 + f + d) % 251) as u8).collect();
            fs::write(src.join(format!("d{d}/f{f:02}.bin")), body).unwrap();
        }
    }
    fs::copy(
        reference().join("001_d6b50f88b93da72f.txt"),
        src.join("d0/doc.txt"),
    )
    .unwrap();
    let mut seals = Vec::new();
    // And whether small files are read in batches (io_uring) or one by one.
    for (jobs, ring) in [("1", "on"), ("2", "on"), ("5", "on"), ("2", "off")] {
        let out = tmp.path().join(format!("p{jobs}{ring}"));
        run_ok(process::Command::new("cp").arg("-r").arg(&src).arg(&out));
        packet()
            .args(["build", "--jobs", jobs])
            .env("PACKET_IO_URING", ring)
            .arg(&out)
            .assert()
            .success();
        seals.push(
            ["HASH_MANIFEST.txt", "SEAL.json", "packet_tree.sha256"]
                .map(|f| fs::read(out.join(f)).unwrap()),
        );
        let v = packet()
            .args(["verify", "--quiet", "--jobs", jobs])
            .env("PACKET_IO_URING", ring)
            .arg(&out)
            .output()
            .unwrap();
        let text = String::from_utf8(v.stdout).unwrap();
        assert_eq!(v.status.code(), Some(0), "{text}");
        assert_eq!(
            text.lines().count(),
            1,
            "--quiet prints only the verdict: {text}"
        );
        assert!(text.starts_with("PASS "), "{text}");
    }
    assert!(
        seals.windows(2).all(|w| w[0] == w[1]),
        "the seal differs between thread counts or read paths"
    );
    packet()
        .args(["verify", "--jobs", "0"])
        .arg(tmp.path().join("p1on"))
        .assert()
        .code(2);
}

#[test]
fn global_flags_go_before_or_after_the_command_and_selftest_runs_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("a.txt");
    fs::write(&src, "evidence\n").unwrap();
    for (i, args) in [["-j1", "build"], ["build", "-j1"]].iter().enumerate() {
        let out = tmp.path().join(format!("p{i}"));
        packet().args(args).arg(&out).arg(&src).assert().success();
        assert!(out.join("HASH_MANIFEST.txt").exists());
    }
    let out = packet()
        .args(["--selftest", "verify"])
        .arg(tmp.path().join("p0"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--selftest runs alone"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!packet::report::has_pass_token(&String::from_utf8_lossy(
        &out.stdout
    )));
}

/// The allocator tuning in main.rs sets mimalloc options by number, taken from a C header
/// the Rust bindings do not cover: a renumbering in a mimalloc update would silently set two
/// other options. mimalloc's own verbose start-up report names each option with the value in
/// force, so this pins the numbers to the names and shows the values were set before start-up.
#[test]
fn the_allocator_starts_with_immediate_purge_and_lazy_arena_commit() {
    let out = packet()
        .arg("--version")
        .env("MIMALLOC_VERBOSE", "1")
        .env_remove("MIMALLOC_PURGE_DELAY")
        .env_remove("MIMALLOC_ARENA_EAGER_COMMIT")
        .output()
        .unwrap();
    assert!(out.status.success());
    let report = String::from_utf8_lossy(&out.stderr);
    for line in ["option 'purge_delay': 0", "option 'arena_eager_commit': 0"] {
        assert!(
            report.lines().any(|l| l.trim_end() == line),
            "{line:?} not in mimalloc's report:\n{report}"
        );
    }
}
