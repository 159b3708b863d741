//! CLI tests of one-file packets: `packet pack`, `packet verify FILE.tar[.gz]` and `packet
//! unpack`, on real packets in temporary directories. Hostile archives are built here, one per
//! attack, with the tar crate's Builder and raw headers; GNU tar lists and extracts what pack
//! writes.

mod common;

use assert_cmd::Command;
use common::{add, pax_record, raw_header};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process;

fn packet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_packet"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A sealed packet of the reference documents (em-dashes, Vietnamese) and the JSON fixtures.
fn sealed(tmp: &Path) -> PathBuf {
    let out = tmp.join("pkt");
    packet()
        .arg("build")
        .arg(&out)
        .arg(repo().join("selftest/reference"))
        .arg(repo().join("selftest/evidence.json"))
        .arg(repo().join("selftest/rollback-evidence.json"))
        .arg(repo().join("selftest/tiếng-việt.txt"))
        .assert()
        .success();
    out
}

fn pack(dir: &Path, out: &Path) -> String {
    let o = packet()
        .arg("pack")
        .arg(dir)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(o.status.success(), "pack failed: {text}");
    text
}

/// (exit code, text output, JSON report) of `packet verify PATH EXTRA...`.
fn verify(path: &Path, extra: &[&str]) -> (i32, String, Value) {
    let text = packet()
        .arg("verify")
        .arg(path)
        .args(extra)
        .output()
        .unwrap();
    let json = packet()
        .arg("verify")
        .arg(path)
        .args(extra)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(text.status.code(), json.status.code());
    (
        text.status.code().unwrap(),
        String::from_utf8(text.stdout).unwrap(),
        serde_json::from_slice(&json.stdout).expect("verify --json prints JSON"),
    )
}

fn codes(report: &Value) -> Vec<String> {
    report["rejects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_string())
        .collect()
}

fn tree(report: &Value) -> String {
    report["tree_hash"]["computed"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Every name in `dir`, recursively, relative to it.
fn listing(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.insert(p.strip_prefix(dir).unwrap().display().to_string());
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            }
        }
    }
    out
}

fn run_ok(cmd: &mut process::Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

// ---- Building archives by hand -------------------------------------------------------------

/// An archive builder already holding every file of `dir` (seal first, as pack orders them),
/// so each hostile archive is valid but for its one attack.
fn packet_builder(dir: &Path) -> tar::Builder<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut names: Vec<String> = listing(dir)
        .into_iter()
        .filter(|n| dir.join(n).is_file())
        .collect();
    let first = ["HASH_MANIFEST.txt", "packet_tree.sha256", "SEAL.json"];
    names.sort_by_key(|n| (first.iter().position(|f| f == n).unwrap_or(3), n.clone()));
    for n in names {
        add(&mut b, n.as_bytes(), &fs::read(dir.join(&n)).unwrap());
    }
    b
}

fn finish(b: tar::Builder<Vec<u8>>, path: &Path) -> PathBuf {
    fs::write(path, b.into_inner().unwrap()).unwrap();
    path.to_path_buf()
}

/// Asserts that verify and unpack both refuse `archive` with `code` (exit 1, no PASS token),
/// and that unpack left nothing at all beside the archive.
fn assert_refused(archive: &Path, code: &str, extra: &[&str]) {
    let (rc, text, report) = verify(archive, extra);
    assert_eq!(rc, 1, "{text}");
    assert!(
        codes(&report).contains(&code.to_string()),
        "wanted {code}: {text}"
    );
    assert!(!text.contains("PASS"), "{text}");
    assert_eq!(report["verdict"], "FAIL");

    let parent = archive.parent().unwrap();
    let before = listing(parent);
    let out = parent.join("out");
    let o = packet()
        .arg("unpack")
        .arg(archive)
        .arg(&out)
        .args(extra)
        .output()
        .unwrap();
    let utext = String::from_utf8(o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(1), "{utext}");
    assert!(utext.contains(code), "{utext}");
    assert!(!utext.contains("PASS"), "{utext}");
    assert!(utext.contains("nothing written"), "{utext}");
    assert!(!out.exists());
    assert_eq!(listing(parent), before, "unpack left something behind");
}

// ---- Pack ----------------------------------------------------------------------------------

#[test]
fn pack_is_byte_reproducible_across_copies_mtimes_and_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sealed(tmp.path());
    // A second copy of the packet elsewhere, with other mtimes and permissions.
    let copy = tmp.path().join("elsewhere/copy");
    fs::create_dir_all(&copy).unwrap();
    for n in listing(&dir) {
        let (src, dst) = (dir.join(&n), copy.join(&n));
        if src.is_dir() {
            fs::create_dir_all(&dst).unwrap();
        } else {
            fs::copy(&src, &dst).unwrap();
            let f = fs::File::options().write(true).open(&dst).unwrap();
            f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_234_567))
                .unwrap();
        }
    }
    run_ok(
        process::Command::new("chmod")
            .args(["-R", "go-rwx"])
            .arg(&copy),
    );
    for ext in ["tar", "tar.gz"] {
        let a = tmp.path().join(format!("a.{ext}"));
        let b = tmp.path().join(format!("b.{ext}"));
        let text = pack(&dir, &a);
        pack(&copy, &b);
        let (a_bytes, b_bytes) = (fs::read(&a).unwrap(), fs::read(&b).unwrap());
        assert_eq!(a_bytes, b_bytes, "{ext}: two packs of one packet differ");
        // The printed archive digest is the file's.
        let digest = run_ok(process::Command::new("sha256sum").arg(&a));
        assert!(text.contains(&digest[..64]), "{text}");
    }
    // gzip: magic, no FNAME flag, mtime 0, OS 255.
    let gz = fs::read(tmp.path().join("a.tar.gz")).unwrap();
    assert_eq!(&gz[..4], &[0x1f, 0x8b, 8, 0]);
    assert_eq!(&gz[4..8], &[0, 0, 0, 0]);
    assert_eq!(gz[9], 255);
}

#[test]
fn gnu_tar_lists_and_extracts_packed_archives() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sealed(tmp.path());
    let a = tmp.path().join("p.tar");
    let z = tmp.path().join("p.tgz");
    pack(&dir, &a);
    pack(&dir, &z);
    let listed = run_ok(process::Command::new("tar").arg("-tvf").arg(&a));
    let lines: Vec<&str> = listed.lines().collect();
    // Seal first, then sorted paths; every entry owned by 0/0 at the epoch.
    assert!(lines[0].ends_with(" HASH_MANIFEST.txt"), "{listed}");
    assert!(lines[1].ends_with(" packet_tree.sha256"), "{listed}");
    assert!(lines[2].ends_with(" SEAL.json"), "{listed}");
    for l in &lines {
        assert!(l.contains(" 0/0 "), "{l}");
        assert!(l.contains("1970-01-01 00:00"), "{l}");
        assert!(
            l.starts_with("-rw-r--r--") || l.starts_with("drwxr-xr-x"),
            "{l}"
        );
    }
    assert!(listed.contains("drwxr-xr-x 0/0               0 1970-01-01 00:00 reference/"));
    assert!(listed.contains(" tiếng-việt.txt"), "{listed}");
    let (_, _, original) = verify(&dir, &[]);
    for (archive, flag) in [(&a, "-xf"), (&z, "-xzf")] {
        let into = tmp.path().join(format!("gnu-{flag}"));
        fs::create_dir(&into).unwrap();
        run_ok(
            process::Command::new("tar")
                .arg(flag)
                .arg(archive)
                .arg("-C")
                .arg(&into),
        );
        let (rc, text, report) = verify(&into, &[]);
        assert_eq!(rc, 0, "{text}");
        assert_eq!(tree(&report), tree(&original));
    }
}

#[test]
fn source_date_epoch_sets_every_mtime_and_still_reproduces() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sealed(tmp.path());
    let run = |name: &str| {
        let out = tmp.path().join(name);
        packet()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .arg("pack")
            .arg(&dir)
            .arg("-o")
            .arg(&out)
            .assert()
            .success();
        out
    };
    let (a, b) = (run("a.tar"), run("b.tar"));
    assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
    let listed = run_ok(
        process::Command::new("tar")
            .env("TZ", "UTC")
            .arg("-tvf")
            .arg(&a),
    );
    assert!(
        listed.lines().all(|l| l.contains("2023-11-14 22:13")),
        "{listed}"
    );
    let bad = packet()
        .env("SOURCE_DATE_EPOCH", "yesterday")
        .arg("pack")
        .arg(&dir)
        .arg("-o")
        .arg(tmp.path().join("c.tar"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(!tmp.path().join("c.tar").exists());
}

#[test]
fn pack_refuses_a_packet_that_does_not_verify_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sealed(tmp.path());
    fs::write(dir.join("evidence.json"), b"{}\n").unwrap();
    let out = tmp.path().join("p.tar");
    let o = packet()
        .arg("pack")
        .arg(&dir)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text.contains("REJECT BYTE_LENGTH_MISMATCH evidence.json"),
        "{text}"
    );
    assert!(text.contains("FAIL pack"), "{text}");
    assert!(!text.contains("PASS"), "{text}");
    assert!(!out.exists());
    assert!(
        !listing(tmp.path())
            .iter()
            .any(|n| n.contains(".packet-pack-"))
    );

    // A wrong pin is refused too, and an existing output is never overwritten.
    fs::create_dir(tmp.path().join("b")).unwrap();
    let fresh = sealed(&tmp.path().join("b"));
    let o = packet()
        .args(["pack", "--expect-tree", "0123456789abcdef"])
        .arg(&fresh)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("PIN_MISMATCH"));
    fs::write(&out, b"keep me").unwrap();
    let o = packet()
        .arg("pack")
        .arg(&fresh)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("PACK_REFUSED"));
    assert_eq!(fs::read(&out).unwrap(), b"keep me");
    // Inside the packet: it would become an unsealed file.
    let o = packet()
        .arg("pack")
        .arg(&fresh)
        .arg("-o")
        .arg(fresh.join("self.tar"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(!fresh.join("self.tar").exists());
    // A name that does not say tar or tar.gz is a usage error.
    let o = packet()
        .arg("pack")
        .arg(&fresh)
        .arg("-o")
        .arg(tmp.path().join("p.zip"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

// ---- Verify and unpack: the round trip ----------------------------------------------------

#[test]
fn round_trip_directory_tar_directory_keeps_the_tree_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sealed(tmp.path());
    let (_, _, original) = verify(&dir, &[]);
    let pin = tree(&original);
    for name in ["p.tar", "p.tar.gz"] {
        let archive = tmp.path().join(name);
        pack(&dir, &archive);
        let (rc, text, report) = verify(&archive, &["--expect-tree", &pin]);
        assert_eq!(rc, 0, "{text}");
        assert!(text.starts_with("PASS "), "{text}");
        assert_eq!(tree(&report), pin);
        assert_eq!(report["counts"], original["counts"]);
        assert_eq!(report["scope"], "pinned");

        let out = tmp.path().join(format!("unpacked-{name}"));
        let o = packet()
            .args(["unpack", "--expect-tree", &pin])
            .arg(&archive)
            .arg(&out)
            .output()
            .unwrap();
        let text = String::from_utf8(o.stdout).unwrap();
        assert!(o.status.success(), "{text}");
        assert!(text.contains("UNPACKED"), "{text}");
        let (rc, _, again) = verify(&out, &["--expect-tree", &pin]);
        assert_eq!(rc, 0);
        assert_eq!(tree(&again), pin);
        // Byte for byte the packet that was packed.
        for n in listing(&dir) {
            if dir.join(&n).is_file() {
                assert_eq!(
                    fs::read(dir.join(&n)).unwrap(),
                    fs::read(out.join(&n)).unwrap(),
                    "{n}"
                );
            }
        }
        assert_eq!(listing(&dir), listing(&out));
        // Packing the unpacked packet gives the same archive.
        let again_archive = tmp.path().join(format!("again-{name}"));
        pack(&out, &again_archive);
        assert_eq!(
            fs::read(&archive).unwrap(),
            fs::read(&again_archive).unwrap()
        );
    }
    assert!(!listing(tmp.path()).iter().any(|n| n.contains(".packet-")));
}

#[test]
fn unpack_refuses_an_existing_target_and_a_wrong_pin() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sealed(tmp.path());
    let archive = tmp.path().join("p.tar");
    pack(&dir, &archive);
    let out = tmp.path().join("exists");
    fs::create_dir(&out).unwrap();
    let o = packet()
        .arg("unpack")
        .arg(&archive)
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("UNPACK_REFUSED"));
    assert!(fs::read_dir(&out).unwrap().next().is_none());

    let before = listing(tmp.path());
    let o = packet()
        .args(["unpack", "--expect-tree", "0123456789abcdef"])
        .arg(&archive)
        .arg(tmp.path().join("new"))
        .output()
        .unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text.contains("PIN_MISMATCH") && !text.contains("PASS"),
        "{text}"
    );
    assert_eq!(listing(tmp.path()), before);
}

#[test]
fn verify_of_a_drifted_archive_matches_verify_of_its_directory() {
    // The same drift (CRLF by a Windows round trip, an em-dash folded, JSON ensure_ascii'd),
    // once as a directory and once inside an archive: the same rejects and diagnoses.
    let tmp = tempfile::tempdir().unwrap();
    let dir = sealed(tmp.path());
    let crlf = |p: &Path| {
        let t = fs::read_to_string(p).unwrap();
        fs::write(p, t.replace('\n', "\r\n")).unwrap();
    };
    crlf(&dir.join("reference/001_d6b50f88b93da72f.txt"));
    let t = fs::read_to_string(dir.join("reference/002_84a12d58117f6bdd.txt")).unwrap();
    assert!(t.contains('—'));
    fs::write(
        dir.join("reference/002_84a12d58117f6bdd.txt"),
        t.replace('—', "-"),
    )
    .unwrap();
    run_ok(
        process::Command::new("python3")
            .arg("-c")
            .arg("import json,sys; p=sys.argv[1]; d=json.load(open(p,encoding='utf-8')); open(p,'w').write(json.dumps(d, indent=2, ensure_ascii=True)+'\\n')")
            .arg(dir.join("evidence.json")),
    );
    fs::write(dir.join("added-later.txt"), "not sealed\n").unwrap();
    let (rc, _, on_disk) = verify(&dir, &[]);
    assert_eq!(rc, 1);

    // Our order (seal first) and GNU tar's (payload before the seal): both diagnose all.
    let ours = finish(packet_builder(&dir), &tmp.path().join("drifted.tar"));
    let gnu = tmp.path().join("gnu.tar.gz");
    run_ok(
        process::Command::new("tar")
            .args(["--sort=name", "-czf"])
            .arg(&gnu)
            .arg("-C")
            .arg(&dir)
            .arg("."),
    );
    for archive in [ours, gnu] {
        let (rc, text, report) = verify(&archive, &[]);
        assert_eq!(rc, 1, "{text}");
        assert!(!text.contains("PASS"));
        // The same rejects, diagnoses and paths; messages say "in the archive", not "on disk".
        let strip = |r: &Value| {
            let mut r = r.clone();
            for x in r["rejects"].as_array_mut().unwrap() {
                x.as_object_mut().unwrap().remove("message");
            }
            r["rejects"].clone()
        };
        assert_eq!(strip(&report), strip(&on_disk), "{text}");
        assert!(
            text.contains("in the archive but not in the manifest"),
            "{text}"
        );
        assert_eq!(report["counts"], on_disk["counts"]);
        assert_eq!(report["tree_hash"], on_disk["tree_hash"]);
        for cause in ["DRIFT_CRLF", "DRIFT_UNICODE", "DRIFT_JSON_ASCII_ESCAPE"] {
            assert!(text.contains(cause), "{cause}: {text}");
        }
        assert!(text.contains("diagnosis (proven)"), "{text}");
    }
}

#[test]
fn a_gnu_tar_of_a_packet_verifies_like_the_packet() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sealed(tmp.path());
    let (_, _, original) = verify(&dir, &[]);
    let gnu = tmp.path().join("gnu.tar");
    run_ok(
        process::Command::new("tar")
            .arg("-cf")
            .arg(&gnu)
            .arg("-C")
            .arg(&dir)
            .arg("."),
    );
    let (rc, text, report) = verify(&gnu, &["--expect-tree", &tree(&original)]);
    assert_eq!(rc, 0, "{text}");
    assert_eq!(report["counts"], original["counts"]);
}

// ---- Hostile archives: one per attack ------------------------------------------------------

fn hostile_setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sealed(tmp.path());
    let arena = tmp.path().join("arena");
    fs::create_dir(&arena).unwrap();
    (tmp, dir, arena)
}

#[test]
fn tampered_entry_is_a_digest_mismatch() {
    let (_tmp, dir, arena) = hostile_setup();
    let archive = arena.join("p.tar");
    pack(&dir, &archive);
    let mut bytes = fs::read(&archive).unwrap();
    let at =
        memchr_find(&bytes, "surfaces_untouched".as_bytes()).expect("evidence text in the archive");
    bytes[at] ^= 0x20;
    fs::write(&archive, bytes).unwrap();
    assert_refused(&archive, "SHA256_MISMATCH", &[]);
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn dot_dot_and_absolute_paths_are_refused_and_never_written() {
    let (_tmp, dir, arena) = hostile_setup();
    for (name, path) in [
        ("dotdot", &b"../evil.txt"[..]),
        ("deep", b"reference/../../evil.txt"),
        ("abs", b"/tmp/packet-evil.txt"),
    ] {
        let mut b = packet_builder(&dir);
        add(&mut b, path, b"pwned\n");
        let archive = finish(b, &arena.join(format!("{name}.tar")));
        assert_refused(&archive, "ARCHIVE_PATH_UNSAFE", &[]);
    }
    assert!(!arena.parent().unwrap().join("evil.txt").exists());
    assert!(!Path::new("/tmp/packet-evil.txt").exists());
}

#[test]
fn symlinks_and_hard_links_are_refused() {
    let (_tmp, dir, arena) = hostile_setup();
    for (kind, target) in [
        (tar::EntryType::Symlink, "/etc/passwd"),
        (tar::EntryType::Link, "HASH_MANIFEST.txt"),
    ] {
        let mut b = packet_builder(&dir);
        let mut h = raw_header(b"link.txt", kind, 0);
        h.set_link_name(target).unwrap();
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
        let archive = finish(b, &arena.join(format!("{kind:?}.tar")));
        assert_refused(&archive, "ARCHIVE_LINK", &[]);
    }
}

#[test]
fn devices_and_fifos_are_refused() {
    let (_tmp, dir, arena) = hostile_setup();
    for kind in [
        tar::EntryType::Char,
        tar::EntryType::Block,
        tar::EntryType::Fifo,
    ] {
        let mut b = packet_builder(&dir);
        b.append(&raw_header(b"dev", kind, 0), &[][..]).unwrap();
        let archive = finish(b, &arena.join(format!("{kind:?}.tar")));
        assert_refused(&archive, "ARCHIVE_SPECIAL_ENTRY", &[]);
    }
}

#[test]
fn a_later_entry_shadowing_an_earlier_one_is_refused() {
    let (_tmp, dir, arena) = hostile_setup();
    let mut b = packet_builder(&dir);
    // The same path again with other bytes: GNU tar would extract this one over the sealed one.
    add(&mut b, b"evidence.json", b"{\"forged\": true}\n");
    let archive = finish(b, &arena.join("dup.tar"));
    assert_refused(&archive, "ARCHIVE_DUPLICATE_PATH", &[]);
}

#[test]
fn names_colliding_by_case_or_normalization_are_refused() {
    let (_tmp, dir, arena) = hostile_setup();
    let nfd = "tie\u{302}\u{301}ng-vie\u{323}\u{302}t.txt"; // NFD of the sealed tiếng-việt.txt
    for (name, path) in [
        ("case", "EVIDENCE.json"),
        ("nfd", nfd),
        ("dircase", "REFERENCE/x.txt"),
    ] {
        let mut b = packet_builder(&dir);
        add(&mut b, path.as_bytes(), b"shadow\n");
        let archive = finish(b, &arena.join(format!("{name}.tar")));
        assert_refused(&archive, "ARCHIVE_PATH_COLLISION", &[]);
    }
    // A file where a directory must be.
    let mut b = packet_builder(&dir);
    add(&mut b, b"evidence.json/inner.txt", b"x\n");
    let archive = finish(b, &arena.join("filedir.tar"));
    assert_refused(&archive, "ARCHIVE_PATH_COLLISION", &[]);
}

#[test]
fn gnu_long_names_and_pax_path_rewrites_are_refused() {
    let (_tmp, dir, arena) = hostile_setup();
    // GNU long name: the tar crate writes a `././@LongLink` 'L' entry for a long path.
    let mut b = packet_builder(&dir);
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    let long = format!("{}/x.txt", "d".repeat(120));
    b.append_data(&mut h, &long, &b"x\n"[..]).unwrap();
    let archive = finish(b, &arena.join("gnulong.tar"));
    assert_refused(&archive, "ARCHIVE_PATH_REWRITE", &[]);

    // PAX `path` (renames the next entry), `linkpath` and `size` (readers disagree on sizes).
    for (key, value) in [
        ("path", "../evil.txt"),
        ("linkpath", "/etc/passwd"),
        ("size", "0"),
    ] {
        let mut b = packet_builder(&dir);
        let rec = pax_record(key, value);
        b.append(
            &raw_header(b"PaxHeaders/x", tar::EntryType::XHeader, rec.len() as u64),
            &rec[..],
        )
        .unwrap();
        add(&mut b, b"innocent.txt", b"x\n");
        let archive = finish(b, &arena.join(format!("pax-{key}.tar")));
        assert_refused(&archive, "ARCHIVE_PATH_REWRITE", &[]);
    }
    assert!(!arena.parent().unwrap().join("evil.txt").exists());
}

#[test]
fn a_pax_header_with_only_times_is_accepted() {
    let (_tmp, dir, arena) = hostile_setup();
    let mut b = tar::Builder::new(Vec::new());
    let rec = pax_record("mtime", "1700000000.5");
    b.append(
        &raw_header(b"PaxHeaders/x", tar::EntryType::XHeader, rec.len() as u64),
        &rec[..],
    )
    .unwrap();
    let inner = packet_builder(&dir).into_inner().unwrap();
    let mut bytes = b.into_inner().unwrap();
    // Drop the first builder's end marker, then append the packet's entries.
    bytes.truncate(bytes.len() - 1024);
    bytes.extend_from_slice(&inner);
    let archive = arena.join("pax-mtime.tar");
    fs::write(&archive, bytes).unwrap();
    let (rc, text, _) = verify(&archive, &[]);
    assert_eq!(rc, 0, "{text}");
}

#[test]
fn entry_size_and_count_limits_have_flags() {
    let (_tmp, dir, arena) = hostile_setup();
    let archive = arena.join("p.tar");
    pack(&dir, &archive);
    // The reference documents are up to 10,402 bytes; the packet has 13 entries.
    assert_refused(
        &archive,
        "ARCHIVE_ENTRY_TOO_LARGE",
        &["--max-entry-bytes", "4KiB"],
    );
    assert_refused(
        &archive,
        "ARCHIVE_TOO_MANY_ENTRIES",
        &["--max-entries", "5"],
    );
    let (rc, _, _) = verify(
        &archive,
        &["--max-entry-bytes", "1M", "--max-entries", "100"],
    );
    assert_eq!(rc, 0);
    // A header claiming a huge size is refused from the header, before any data is read.
    let mut b = packet_builder(&dir);
    let h = raw_header(b"huge.bin", tar::EntryType::Regular, 1 << 40);
    b.get_mut().extend_from_slice(h.as_bytes());
    let archive = finish(b, &arena.join("huge.tar"));
    assert_refused(&archive, "ARCHIVE_ENTRY_TOO_LARGE", &[]);
}

#[test]
fn truncated_corrupt_and_padded_archives_are_malformed() {
    let (_tmp, dir, arena) = hostile_setup();
    let archive = arena.join("p.tar");
    pack(&dir, &archive);
    let good = fs::read(&archive).unwrap();

    let cut = arena.join("cut.tar");
    fs::write(&cut, &good[..good.len() / 2 + 100]).unwrap();
    assert_refused(&cut, "ARCHIVE_MALFORMED", &[]);

    let mut bad_sum = good.clone();
    bad_sum[0] ^= 1; // first header's name: its checksum no longer adds up
    let bad = arena.join("cksum.tar");
    fs::write(&bad, bad_sum).unwrap();
    assert_refused(&bad, "ARCHIVE_MALFORMED", &[]);

    // A whole second archive hidden after the end marker (`tar -i` would extract it).
    let mut hidden = good.clone();
    let mut extra = tar::Builder::new(Vec::new());
    add(&mut extra, b"hidden.txt", b"x\n");
    hidden.extend_from_slice(&extra.into_inner().unwrap());
    let tail = arena.join("tail.tar");
    fs::write(&tail, hidden).unwrap();
    assert_refused(&tail, "ARCHIVE_MALFORMED", &[]);

    // A gzip whose trailer CRC is wrong, and an empty file.
    let gz_path = arena.join("p.tar.gz");
    pack(&dir, &gz_path);
    let mut gz = fs::read(&gz_path).unwrap();
    let n = gz.len();
    gz[n - 8] ^= 0xff;
    let crc = arena.join("crc.tar.gz");
    fs::write(&crc, gz).unwrap();
    assert_refused(&crc, "ARCHIVE_MALFORMED", &[]);
    // A ustar magic with a version other readers treat differently (GNU tar would use the
    // prefix field, so `evil/evidence.json` there, `evidence.json` here).
    let mut odd = good.clone();
    odd[345..349].copy_from_slice(b"evil");
    odd[263..265].copy_from_slice(b"xx");
    let sum: u32 = odd[..512]
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u32
            }
        })
        .sum();
    odd[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let odd_path = arena.join("version.tar");
    fs::write(&odd_path, odd).unwrap();
    assert_refused(&odd_path, "ARCHIVE_MALFORMED", &[]);
    // A directory entry carrying data.
    let mut b = packet_builder(&dir);
    let h = raw_header(b"datadir/", tar::EntryType::Directory, 5);
    b.append(&h, &b"12345"[..]).unwrap();
    let archive = finish(b, &arena.join("dirdata.tar"));
    assert_refused(&archive, "ARCHIVE_MALFORMED", &[]);
    let empty = arena.join("empty.tar");
    fs::File::create(&empty).unwrap().flush().unwrap();
    assert_refused(&empty, "ARCHIVE_MALFORMED", &[]);
}

#[test]
fn a_second_gzip_member_is_read_as_gzip_reads_it() {
    // `cat a.tar.gz b.tar.gz` is one stream to gzip -d; entries in the second member count.
    let (_tmp, dir, arena) = hostile_setup();
    let gz_path = arena.join("p.tar.gz");
    pack(&dir, &gz_path);
    let mut bytes = fs::read(&gz_path).unwrap();
    let mut extra = tar::Builder::new(Vec::new());
    add(&mut extra, b"evidence.json", b"{\"forged\": true}\n");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&extra.into_inner().unwrap()).unwrap();
    bytes.extend_from_slice(&enc.finish().unwrap());
    let two = arena.join("two.tar.gz");
    fs::write(&two, bytes).unwrap();
    assert_refused(&two, "ARCHIVE_MALFORMED", &[]);
}
