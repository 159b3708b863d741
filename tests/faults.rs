//! Disk faults: a write that fails (a full disk) must give a clear error, exit 1, and leave
//! the target as it was: no half-written seal, archive, packet or evidence file, and no
//! temporary beside it. Two ways: an injected `ENOSPC` at a named file through the
//! `PACKET_TEST_FAIL_WRITE` hook (runs everywhere), and a real, small tmpfs filled up
//! (where this machine lets the test mount one: as root with CAP_SYS_ADMIN).

mod common;

use common::{repo, run_ok};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn packet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_packet"))
}

fn tree_of(stdout: &str) -> String {
    let at = stdout.find("tree ").expect("a tree hash") + 5;
    stdout[at..at + 64].to_string()
}

/// Every name under `dir` with its kind, length and bytes: what a failed run must not change.
fn state(dir: &Path) -> BTreeMap<String, (bool, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            let meta = fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                out.insert(rel, (true, Vec::new()));
                stack.push(p);
            } else {
                out.insert(rel, (false, fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out
}

/// Asserts that `out` is a clean failure: exit 1, the disk-full cause named, no PASS token.
fn failed_for_space(out: &Output, what: &str) {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{what}: {stdout}{stderr}");
    // Commands that report rejects name it in their report (stdout), the rest in the error.
    assert!(
        stderr.contains("No space left on device") || stdout.contains("No space left on device"),
        "{what}: the cause is not named: {stdout}{stderr}"
    );
    assert!(
        !stdout.contains("PASS") && !stderr.contains("PASS"),
        "{what}: {stdout}{stderr}"
    );
}

/// A sealed packet of the reference documents in `dir/pkt`, and its tree hash.
fn sealed(dir: &Path) -> (PathBuf, String) {
    let pkt = dir.join("pkt");
    let tree = tree_of(&run_ok(
        packet()
            .arg("build")
            .arg(&pkt)
            .arg(repo().join("selftest/reference")),
    ));
    (pkt, tree)
}

fn verifies(path: &Path, tree: &str) -> bool {
    packet()
        .args(["verify", "--quiet", "--expect-tree", tree])
        .arg(path)
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn an_injected_write_error_leaves_every_target_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    fs::create_dir(&work).unwrap();
    let (pkt, tree) = sealed(&work);
    let archive = work.join("pkt.tar.gz");
    run_ok(packet().arg("pack").arg(&pkt).arg("-o").arg(&archive));
    let ledger = work.join("ledger.db");
    fs::copy(
        repo().join("packets/sqlite-rollback-rehearsal/ledger.db"),
        &ledger,
    )
    .unwrap();
    let change = repo().join("packets/sqlite-rollback-rehearsal/changes/RB-SQLITE-INSERT-1.sql");
    let extra = tmp.path().join("extra.txt");
    fs::write(&extra, "one more log\n").unwrap();
    let db = format!("sqlite:{}", ledger.display());

    type Args = Vec<std::ffi::OsString>;
    let os = |parts: &[&dyn AsRef<std::ffi::OsStr>]| -> Args {
        parts.iter().map(|p| p.as_ref().to_os_string()).collect()
    };
    let cases: Vec<(&str, &str, Args)> = vec![
        (
            "build: the manifest",
            "HASH_MANIFEST.txt",
            os(&[
                &"build",
                &work.join("new"),
                &repo().join("selftest/reference"),
            ]),
        ),
        (
            "build: a copied file",
            "001_d6b50f88b93da72f.txt",
            os(&[
                &"build",
                &work.join("new"),
                &repo().join("selftest/reference"),
            ]),
        ),
        (
            "build --reseal: the tree file",
            "packet_tree.sha256",
            os(&[&"build", &pkt, &extra, &"--reseal"]),
        ),
        (
            "build --reseal: the new file",
            "extra.txt",
            os(&[&"build", &pkt, &extra, &"--reseal"]),
        ),
        (
            "pack: the archive",
            "again.tar.gz",
            os(&[&"pack", &pkt, &"-o", &work.join("again.tar.gz")]),
        ),
        (
            "unpack: a payload file",
            "000_f85dc3b6917de17c.txt",
            os(&[&"unpack", &archive, &work.join("unpacked")]),
        ),
        (
            "restore: a copied file",
            "002_84a12d58117f6bdd.txt",
            os(&[&"restore", &pkt, &"--out", &work.join("restored")]),
        ),
        (
            "restore: the manifest",
            "HASH_MANIFEST.txt",
            os(&[&"restore", &pkt, &"--out", &work.join("restored")]),
        ),
        (
            "snapshot: the document",
            "snap.json",
            os(&[&"snapshot", &db, &"-o", &work.join("snap.json")]),
        ),
        (
            "rehearse: the evidence",
            "evidence.json",
            os(&[
                &"rehearse",
                &db,
                &"--apply",
                &change,
                &"-o",
                &work.join("evidence.json"),
            ]),
        ),
    ];
    for (what, fault, args) in cases {
        let before = state(&work);
        // The same run without the fault succeeds: the fault, not the case, is what fails.
        let out = packet()
            .args(&args)
            .env("PACKET_TEST_FAIL_WRITE", fault)
            .output()
            .unwrap();
        failed_for_space(&out, what);
        assert_eq!(
            state(&work),
            before,
            "{what}: the failed run changed its target"
        );
        assert!(
            verifies(&pkt, &tree),
            "{what}: the packet no longer verifies"
        );
    }
    // Control: without the hook every one of those writes works here.
    run_ok(packet().arg("build").arg(&pkt).arg(&extra).arg("--reseal"));
    run_ok(
        packet()
            .arg("snapshot")
            .arg(&db)
            .arg("-o")
            .arg(work.join("snap.json")),
    );
}

/// A tmpfs of `size` mounted on a new directory, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk up to its last byte with `filler`.
    fn fill(&self) {
        use std::io::Write;
        let mut f = fs::File::create(self.path().join("filler")).unwrap();
        let block = vec![0x5au8; 4096];
        while f.write_all(&block).is_ok() {}
        while f.write_all(&block[..1]).is_ok() {}
        let _ = f.sync_all();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Bytes that no compressor shrinks: a full disk must be reached by the data itself.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn a_full_file_system_gives_a_clear_error_and_no_half_written_result() {
    let Some(disk) = SmallDisk::mount("512k") else {
        eprintln!(
            "note: cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN); \
             the injected-fault test covers full disks on this machine"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("evidence");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a.bin"), noise(400 * 1024, 1)).unwrap();
    fs::write(src.join("b.bin"), noise(400 * 1024, 2)).unwrap();
    let mnt = disk.path();

    // build: the copies do not fit.
    let out = packet()
        .arg("build")
        .arg(mnt.join("pkt"))
        .arg(&src)
        .output()
        .unwrap();
    failed_for_space(&out, "build onto a full disk");
    assert!(state(mnt).is_empty(), "build left {:?}", state(mnt).keys());

    // pack: the archive does not fit.
    let big = tmp.path().join("big");
    let big_tree = tree_of(&run_ok(packet().arg("build").arg(&big).arg(&src)));
    let out = packet()
        .arg("pack")
        .arg(&big)
        .arg("-o")
        .arg(mnt.join("big.tar.gz"))
        .output()
        .unwrap();
    failed_for_space(&out, "pack onto a full disk");
    assert!(state(mnt).is_empty(), "pack left {:?}", state(mnt).keys());

    // unpack: the payload does not fit.
    let archive = tmp.path().join("big.tar");
    run_ok(packet().arg("pack").arg(&big).arg("-o").arg(&archive));
    let out = packet()
        .arg("unpack")
        .arg(&archive)
        .arg(mnt.join("unpacked"))
        .output()
        .unwrap();
    failed_for_space(&out, "unpack onto a full disk");
    assert!(state(mnt).is_empty(), "unpack left {:?}", state(mnt).keys());

    // build --reseal of a packet that lives on the disk, once the disk is full: the packet
    // stays as it was and verifies under its old seal.
    let (pkt, tree) = sealed(mnt);
    disk.fill();
    let before = state(mnt);
    let out = packet()
        .arg("build")
        .arg(&pkt)
        .arg(src.join("a.bin"))
        .arg("--reseal")
        .output()
        .unwrap();
    failed_for_space(&out, "reseal on a full disk");
    assert_eq!(state(mnt), before, "the failed reseal changed the disk");
    assert!(verifies(&pkt, &tree));

    // snapshot: the document does not fit.
    let ledger = tmp.path().join("ledger.db");
    fs::copy(
        repo().join("packets/sqlite-rollback-rehearsal/ledger.db"),
        &ledger,
    )
    .unwrap();
    let out = packet()
        .arg("snapshot")
        .arg(format!("sqlite:{}", ledger.display()))
        .arg("-o")
        .arg(mnt.join("snap.json"))
        .output()
        .unwrap();
    failed_for_space(&out, "snapshot onto a full disk");
    assert_eq!(state(mnt), before, "the failed snapshot changed the disk");

    // Room again: the same runs succeed, so the disk, not the input, was the cause.
    fs::remove_file(mnt.join("filler")).unwrap();
    run_ok(packet().arg("build").arg(&pkt).arg(&ledger).arg("--reseal"));
    assert!(!verifies(&pkt, &tree), "resealed with the new file");
    assert!(verifies(&big, &big_tree));
}
