//! The CI gate as users run it: the pre-commit hook's entry command, read from
//! `.pre-commit-hooks.yaml`, on this repository's own `packets.pins` and on temporary
//! repositories whose packets are intact, drifted, resealed, missing or packed.

mod common;

use assert_cmd::Command;
use common::{copy_dir, repo};
use serde_json::Value;
use std::fs;
use std::path::Path;

/// The hook's `entry` and `args`, as pre-commit runs them, without the leading `packet`.
fn hook_words() -> Vec<String> {
    let hooks = fs::read_to_string(repo().join(".pre-commit-hooks.yaml")).unwrap();
    let field = |name: &str| {
        hooks
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name} in .pre-commit-hooks.yaml"))
            .trim()
            .to_string()
    };
    let entry = field("entry");
    // The args are a flow sequence of quoted strings: JSON, so read as JSON.
    let args: Vec<String> = serde_json::from_str(&field("args")).unwrap();
    let mut words = entry.split_whitespace().map(String::from);
    assert_eq!(words.next().as_deref(), Some("packet"), "{entry}");
    words.chain(args).collect()
}

/// The hook's command, with `packet` the binary under test.
fn hook_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_packet"));
    cmd.args(hook_words());
    cmd
}

/// Runs the hook in `dir`: (exit code, stdout).
fn run_hook(dir: &Path) -> (i32, String) {
    let out = hook_command().current_dir(dir).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

fn tree_of(packet: &Path) -> String {
    fs::read_to_string(packet.join("packet_tree.sha256")).unwrap()[..64].to_string()
}

/// A repository holding copies of this repository's two packets and a pins file for them.
fn pinned_repo() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let mut pins = String::from("# published tree hashes\n");
    for name in ["reference-docs", "sqlite-rollback-rehearsal"] {
        let to = tmp.path().join("packets").join(name);
        copy_dir(&repo().join("packets").join(name), &to);
        pins.push_str(&format!("{}  packets/{name}\n", tree_of(&to)));
    }
    fs::write(tmp.path().join("packets.pins"), pins).unwrap();
    tmp
}

#[test]
fn the_hook_passes_on_this_repositorys_packets_pinned_to_their_published_hashes() {
    let (code, out) = run_hook(&repo());
    assert_eq!(code, 0, "{out}");
    assert!(
        out.ends_with(
            "PASS pins packets.pins: 2 packets, each pinned to its published tree hash\n"
        ),
        "{out}"
    );
    assert_eq!(out.matches("pin matched (64 of 64").count(), 2, "{out}");
}

#[test]
fn the_hook_fails_with_the_reject_lines_on_a_drifted_packet_and_prints_no_pass() {
    let tmp = pinned_repo();
    let (code, out) = run_hook(tmp.path());
    assert_eq!(code, 0, "{out}");
    // A knowledge base added a BOM to one document of one packet.
    let doc = tmp
        .path()
        .join("packets/reference-docs/reference/000_f85dc3b6917de17c.txt");
    let bytes = fs::read(&doc).unwrap();
    fs::write(&doc, [b"\xEF\xBB\xBF".as_slice(), &bytes].concat()).unwrap();
    let (code, out) = run_hook(tmp.path());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("REJECT BYTE_LENGTH_MISMATCH reference/000_f85dc3b6917de17c.txt"),
        "{out}"
    );
    assert!(out.contains("DRIFT_BOM"), "{out}");
    assert!(
        out.ends_with("FAIL pins packets.pins: 1 of 2 packets rejected\n"),
        "{out}"
    );
    // The intact packet's verdict line is there, but a failing run holds no PASS token.
    assert!(!out.contains("PASS"), "{out}");
    assert!(
        out.contains("P\\x41SS packets/sqlite-rollback-rehearsal"),
        "{out}"
    );
}

#[test]
fn a_resealed_or_missing_packet_fails_its_pin() {
    let tmp = pinned_repo();
    let packet = tmp.path().join("packets/reference-docs");
    // An edit sealed again is internally consistent: only the published pin catches it.
    fs::write(
        packet.join("reference/added.txt"),
        "not in the reviewed packet\n",
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_packet"))
        .args(["build", "--reseal"])
        .arg(&packet)
        .assert()
        .success();
    let (code, out) = run_hook(tmp.path());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("REJECT PIN_MISMATCH packet_tree.sha256"),
        "{out}"
    );
    fs::remove_dir_all(tmp.path().join("packets/sqlite-rollback-rehearsal")).unwrap();
    let (code, out) = run_hook(tmp.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("REJECT MANIFEST_MISSING"), "{out}");
    assert!(
        out.ends_with("FAIL pins packets.pins: 2 of 2 packets rejected\n"),
        "{out}"
    );
}

#[test]
fn archives_are_pinned_too_and_the_json_report_names_every_packet() {
    let tmp = pinned_repo();
    let packet = tmp.path().join("packets/reference-docs");
    Command::new(env!("CARGO_BIN_EXE_packet"))
        .arg("pack")
        .arg(&packet)
        .arg("-o")
        .arg(tmp.path().join("reference-docs.tar.gz"))
        .assert()
        .success();
    let pins = format!(
        "{}  reference-docs.tar.gz\n{}…{}\tpackets/reference-docs\n",
        tree_of(&packet),
        &tree_of(&packet)[..8],
        &tree_of(&packet)[58..]
    );
    fs::write(tmp.path().join("release.pins"), pins).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_packet"))
        .args(["verify", "--pins", "release.pins", "--json"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["schema"], "packet.pins-report/1");
    assert_eq!(doc["verdict"], "PASS");
    let packets: Vec<&str> = doc["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["packet"].as_str().unwrap())
        .collect();
    assert_eq!(packets, ["reference-docs.tar.gz", "packets/reference-docs"]);
    assert_eq!(doc["packets"][1]["report"]["scope"], "pinned");
}

#[test]
fn a_malformed_or_empty_pins_file_fails_closed() {
    let tmp = pinned_repo();
    for (pins, why) in [
        ("# nothing pinned yet\n", "names no packet"),
        ("72b24b8a  \n", "path after the tree hash"),
        ("zzzz  packets/reference-docs\n", "packets.pins:1"),
    ] {
        fs::write(tmp.path().join("packets.pins"), pins).unwrap();
        let (code, out) = run_hook(tmp.path());
        assert_eq!(code, 1, "{pins:?}: {out}");
        assert!(out.contains("REJECT PINS_MALFORMED"), "{pins:?}: {out}");
        assert!(out.contains(why), "{pins:?}: {out}");
    }
    fs::remove_file(tmp.path().join("packets.pins")).unwrap();
    let (code, out) = run_hook(tmp.path());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("REJECT PINS_MALFORMED packets.pins: cannot read"),
        "{out}"
    );
}

#[test]
fn the_readme_ci_job_runs_the_hooks_command() {
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let job = readme
        .lines()
        .find_map(|l| l.trim().strip_prefix("- run: packet verify"))
        .expect("the README's CI job runs packet verify");
    let hook = hook_words();
    assert_eq!(
        format!("verify{job}")
            .split_whitespace()
            .collect::<Vec<_>>(),
        hook,
        "the README's CI job and the pre-commit hook run different commands"
    );
}
