//! Crash safety: `packet build`, `build --reseal` (with and without new files), `pack`, `unpack`
//! and `restore` killed with SIGKILL at random moments of their run, and at every named step
//! of a write (the `PACKET_TEST_CRASH_AT` hook). After every kill the target must be as it
//! was or complete and verifying (never half-written), nothing may have landed inside a
//! packet, and the next run must remove what the killed one left beside it.

mod common;

use common::run_ok as ok;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn packet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_packet"));
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

/// The tree hash a `build` or `pack` printed.
fn tree_of(stdout: &str) -> String {
    let at = stdout.find("tree ").expect("a tree hash") + 5;
    stdout[at..at + 64].to_string()
}

fn verifies(path: &Path, tree: &str) -> bool {
    packet()
        .args(["verify", "--quiet", "--expect-tree", tree])
        .arg(path)
        .status()
        .unwrap()
        .success()
}

/// `.packet-*` temporaries directly in `dir`.
fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|it| {
            it.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".packet-"))
                .collect()
        })
        .unwrap_or_default()
}

/// Evidence to seal: enough small files (and a few larger ones) that a run takes long enough
/// to be killed in the middle of each of its phases.
fn evidence(root: &Path) -> PathBuf {
    let src = root.join("evidence");
    for d in 0..8 {
        let dir = src.join(format!("logs-{d}"));
        fs::create_dir_all(&dir).unwrap();
        for i in 0..150 {
            let line = format!(
                "run {d}.{i}: step ok — Việt, checksum {}\n",
                i * 7919 % 65521
            );
            fs::write(dir.join(format!("{i:03}.log")), line.repeat(20)).unwrap();
        }
    }
    for i in 0..3 {
        let bytes: Vec<u8> = (0..(3 << 20)).map(|j: u32| (j * 31 + i) as u8).collect();
        fs::write(src.join(format!("dump-{i}.bin")), bytes).unwrap();
    }
    src
}

/// A deterministic xorshift, so a failing kill moment can be replayed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Runs `cmd` and kills it with SIGKILL after `after`, unless it ended first. Returns true when
/// the kill landed (the process was still running).
fn kill_after(mut cmd: Command, after: Duration) -> bool {
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    while start.elapsed() < after {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let landed = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    landed
}

fn timed(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    ok(cmd);
    start.elapsed()
}

/// What the kill loop saw, per command.
#[derive(Default, Debug)]
struct Tally {
    iterations: usize,
    killed_mid_run: usize,
    as_before: usize,
    complete: usize,
    leftovers_swept: usize,
}

/// One command under the kill loop: `setup` makes a fresh case in a directory and returns
/// the command; `judge` says whether the state after the kill is "before" (false) or
/// "complete" (true), panicking on anything else; `finish` runs the command again to the
/// end where that is possible; `beside` is where the temporaries go.
struct Scenario<'a> {
    name: &'a str,
    iterations: usize,
    setup: &'a dyn Fn(&Path) -> Command,
    judge: &'a dyn Fn(&Path) -> bool,
    finish: &'a dyn Fn(&Path),
    beside: &'a dyn Fn(&Path) -> PathBuf,
}

fn kill_loop(s: &Scenario, seed: u64) -> Tally {
    let mut tally = Tally::default();
    let mut rng = Rng(seed);
    // How long a whole run takes here, to spread the kills uniformly over it.
    let probe = tempfile::tempdir().unwrap();
    let full = timed(&mut (s.setup)(probe.path()));
    let span = (full.as_micros() as u64 * 11 / 10).max(1000);
    for i in 0..s.iterations {
        let case = tempfile::tempdir().unwrap();
        let cmd = (s.setup)(case.path());
        let at = Duration::from_micros(rng.below(span));
        tally.iterations += 1;
        if kill_after(cmd, at) {
            tally.killed_mid_run += 1;
        }
        let complete = (s.judge)(case.path());
        if complete {
            tally.complete += 1;
        } else {
            tally.as_before += 1;
        }
        let beside = (s.beside)(case.path());
        let left = leftovers(&beside);
        (s.finish)(case.path());
        assert!(
            leftovers(&beside).is_empty(),
            "{} iteration {i} (kill at {at:?}): {:?} left after the next run",
            s.name,
            leftovers(&beside)
        );
        if !left.is_empty() {
            tally.leftovers_swept += 1;
        }
    }
    tally
}

struct Fixture {
    _tmp: tempfile::TempDir,
    src: PathBuf,
    /// A sealed packet of `src`, and its tree.
    sealed: PathBuf,
    tree: String,
    /// The tree after adding `extra.txt` to it.
    tree_plus: String,
    /// `sealed` packed, the archive's bytes.
    archive: PathBuf,
    archive_bytes: Vec<u8>,
    /// A copy of `sealed` with one document turned CRLF: restore rebuilds `sealed` from it.
    drifted: PathBuf,
    extra: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let src = evidence(tmp.path());
    let sealed = tmp.path().join("sealed");
    let tree = tree_of(&ok(packet().arg("build").arg(&sealed).arg(&src)));
    let extra = tmp.path().join("extra.txt");
    fs::write(&extra, "added in a reseal\n").unwrap();
    let plus = tmp.path().join("plus");
    copy_tree(&sealed, &plus);
    let tree_plus = tree_of(&ok(packet()
        .arg("build")
        .arg(&plus)
        .arg(&extra)
        .arg("--reseal")));
    let archive = tmp.path().join("sealed.tar.gz");
    ok(packet().arg("pack").arg(&sealed).arg("-o").arg(&archive));
    let archive_bytes = fs::read(&archive).unwrap();
    let drifted = tmp.path().join("drifted");
    copy_tree(&sealed, &drifted);
    let doc = drifted.join("evidence/logs-0/000.log");
    let text = fs::read_to_string(&doc).unwrap();
    fs::write(&doc, text.replace('\n', "\r\n")).unwrap();
    Fixture {
        _tmp: tmp,
        src,
        sealed,
        tree,
        tree_plus,
        archive,
        archive_bytes,
        drifted,
        extra,
    }
}

fn copy_tree(from: &Path, to: &Path) {
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(from)
            .arg(to)
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn sigkill_at_random_moments_leaves_old_or_new_never_neither() {
    let f = fixture();
    let mut tallies = BTreeMap::new();

    let out = |case: &Path| case.join("out");
    // A fresh build: OUT absent, or complete and verifying.
    let t = kill_loop(
        &Scenario {
            name: "build",
            iterations: 40,
            setup: &|case| {
                let mut c = packet();
                c.arg("build").arg(out(case)).arg(&f.src);
                c
            },
            judge: &|case| {
                if !out(case).exists() {
                    return false;
                }
                assert!(verifies(&out(case), &f.tree), "half-built packet");
                true
            },
            finish: &|case| {
                let _ = fs::remove_dir_all(out(case));
                ok(packet().arg("build").arg(out(case)).arg(&f.src));
            },
            beside: &|case| case.to_path_buf(),
        },
        1,
    );
    tallies.insert("build", t);

    // Resealing the same payload, and resealing after adding a file: the packet verifies
    // under its old seal or its new one, and holds no temporary.
    for (name, add) in [("build --reseal", false), ("build FILE --reseal", true)] {
        let new_tree = if add { &f.tree_plus } else { &f.tree };
        let t = kill_loop(
            &Scenario {
                name,
                iterations: 40,
                setup: &|case| {
                    if !out(case).exists() {
                        copy_tree(&f.sealed, &out(case));
                    }
                    let mut c = packet();
                    c.arg("build").arg(out(case));
                    if add {
                        c.arg(&f.extra);
                    }
                    c.arg("--reseal");
                    c
                },
                judge: &|case| {
                    let new = verifies(&out(case), new_tree);
                    let old = verifies(&out(case), &f.tree);
                    assert!(
                        old || new,
                        "{name}: neither the old nor the new seal verifies"
                    );
                    assert!(
                        leftovers(&out(case)).is_empty(),
                        "a temporary inside the packet"
                    );
                    // Same payload: old and new are one tree; with a file added, complete is new.
                    if add { new } else { true }
                },
                finish: &|case| {
                    if add && verifies(&out(case), new_tree) {
                        // Already complete: a plain reseal still sweeps.
                        ok(packet().arg("build").arg(out(case)).arg("--reseal"));
                    } else {
                        let mut c = packet();
                        c.arg("build").arg(out(case));
                        if add {
                            c.arg(&f.extra);
                        }
                        ok(c.arg("--reseal"));
                    }
                    assert!(verifies(&out(case), new_tree));
                },
                beside: &|case| case.to_path_buf(),
            },
            if add { 3 } else { 2 },
        );
        tallies.insert(name, t);
    }

    // pack: no archive, or one byte-identical to an uninterrupted pack.
    let tar = |case: &Path| case.join("p.tar.gz");
    let t = kill_loop(
        &Scenario {
            name: "pack",
            iterations: 30,
            setup: &|case| {
                let mut c = packet();
                c.arg("pack").arg(&f.sealed).arg("-o").arg(tar(case));
                c
            },
            judge: &|case| {
                if !tar(case).exists() {
                    return false;
                }
                assert!(
                    fs::read(tar(case)).unwrap() == f.archive_bytes,
                    "a partial archive"
                );
                true
            },
            finish: &|case| {
                let _ = fs::remove_file(tar(case));
                ok(packet().arg("pack").arg(&f.sealed).arg("-o").arg(tar(case)));
            },
            beside: &|case| case.to_path_buf(),
        },
        4,
    );
    tallies.insert("pack", t);

    // unpack: no directory, or a complete one that verifies pinned.
    let t = kill_loop(
        &Scenario {
            name: "unpack",
            iterations: 30,
            setup: &|case| {
                let mut c = packet();
                c.arg("unpack").arg(&f.archive).arg(out(case));
                c
            },
            judge: &|case| {
                if !out(case).exists() {
                    return false;
                }
                assert!(verifies(&out(case), &f.tree), "a partial unpack");
                true
            },
            finish: &|case| {
                let _ = fs::remove_dir_all(out(case));
                ok(packet().arg("unpack").arg(&f.archive).arg(out(case)));
            },
            beside: &|case| case.to_path_buf(),
        },
        5,
    );
    tallies.insert("unpack", t);

    // restore: no directory, or the original packet rebuilt whole.
    let t = kill_loop(
        &Scenario {
            name: "restore",
            iterations: 30,
            setup: &|case| {
                let mut c = packet();
                c.arg("restore").arg(&f.drifted).arg("--out").arg(out(case));
                c
            },
            judge: &|case| {
                if !out(case).exists() {
                    return false;
                }
                assert!(verifies(&out(case), &f.tree), "a partial restore");
                true
            },
            finish: &|case| {
                let _ = fs::remove_dir_all(out(case));
                ok(packet()
                    .arg("restore")
                    .arg(&f.drifted)
                    .arg("--out")
                    .arg(out(case)));
            },
            beside: &|case| case.to_path_buf(),
        },
        6,
    );
    tallies.insert("restore", t);

    let total: usize = tallies.values().map(|t| t.iterations).sum();
    let mid: usize = tallies.values().map(|t| t.killed_mid_run).sum();
    eprintln!("kill loop: {total} iterations, {mid} killed mid-run, 0 half-written states");
    for (name, t) in &tallies {
        eprintln!("  {name}: {t:?}");
    }
    assert!(total >= 200, "{total}");
    // Most kills must land while the command runs, or the loop proves little.
    assert!(
        mid * 2 >= total,
        "only {mid} of {total} kills landed mid-run"
    );
}

/// Every named step of a build or reseal, killed there deterministically.
#[test]
fn sigkill_at_every_step_of_a_reseal_leaves_old_or_new() {
    let f = fixture();
    let points = [
        "build:copied",
        "seal:staged",
        "seal:renamed-1",
        "seal:renamed-2",
        "build:sealed",
        "build:exchanged",
    ];
    let seal_names = ["SEAL.json", "HASH_MANIFEST.txt", "packet_tree.sha256"];
    for point in points {
        // `add`: resealing with a file added; otherwise, sealing an unsealed directory in place.
        for add in [false, true] {
            let case = tempfile::tempdir().unwrap();
            let out = case.path().join("out");
            copy_tree(&f.sealed, &out);
            if !add {
                for name in seal_names {
                    fs::remove_file(out.join(name)).unwrap();
                }
            }
            let mut c = packet();
            c.env("PACKET_TEST_CRASH_AT", point).arg("build").arg(&out);
            if add {
                c.arg(&f.extra).arg("--reseal");
            }
            let status = c.status().unwrap();
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&status),
                Some(9),
                "{point}: the hook did not fire"
            );
            let new_tree = if add { &f.tree_plus } else { &f.tree };
            let new = verifies(&out, new_tree);
            if add {
                assert!(
                    new || verifies(&out, &f.tree),
                    "{point}: neither seal verifies"
                );
            } else if !new {
                // Not sealed yet: then not partly sealed either.
                let present: Vec<_> = seal_names.iter().filter(|n| out.join(n).exists()).collect();
                assert!(present.is_empty(), "{point}: a partial seal {present:?}");
            }
            // Only the exchange makes the new seal visible.
            assert_eq!(new, point == "build:exchanged", "{point} (add {add})");
            assert!(leftovers(&out).is_empty(), "{point}: temporary inside");
            assert!(
                !leftovers(case.path()).is_empty(),
                "{point}: the killed run left its staging directory"
            );
            // The next run removes the leftover and says so.
            let next = packet()
                .arg("build")
                .arg(&out)
                .arg("--reseal")
                .output()
                .unwrap();
            assert!(next.status.success());
            let stderr = String::from_utf8_lossy(&next.stderr);
            assert!(
                stderr.contains("left by an interrupted packet run"),
                "{point}: {stderr}"
            );
            // (A reseal without the added file seals the payload as it stands.)
            let after = if add && !new { &f.tree } else { new_tree };
            assert!(verifies(&out, after), "{point} (add {add})");
            assert!(leftovers(case.path()).is_empty(), "{point}");
        }
    }
    // Resealing what is already sealed exactly so writes nothing: no step to kill, the seal
    // files keep their inodes, and nothing is staged.
    let case = tempfile::tempdir().unwrap();
    let out = case.path().join("out");
    copy_tree(&f.sealed, &out);
    let inodes = |dir: &Path| -> Vec<u64> {
        use std::os::unix::fs::MetadataExt;
        seal_names
            .iter()
            .map(|n| fs::metadata(dir.join(n)).unwrap().ino())
            .collect()
    };
    let before = inodes(&out);
    for point in points {
        let run = packet()
            .env("PACKET_TEST_CRASH_AT", point)
            .arg("build")
            .arg(&out)
            .arg("--reseal")
            .output()
            .unwrap();
        assert!(run.status.success(), "{point}: {run:?}");
        assert!(
            String::from_utf8_lossy(&run.stdout).contains("nothing written"),
            "{point}"
        );
        assert_eq!(inodes(&out), before, "{point}: a seal file was rewritten");
        assert!(leftovers(case.path()).is_empty(), "{point}");
        assert!(verifies(&out, &f.tree));
    }
    // A fresh build killed at each step leaves no packet, only a temporary to sweep.
    for point in [
        "build:copied",
        "seal:staged",
        "seal:renamed-1",
        "build:sealed",
    ] {
        let case = tempfile::tempdir().unwrap();
        let out = case.path().join("out");
        let status = packet()
            .env("PACKET_TEST_CRASH_AT", point)
            .arg("build")
            .arg(&out)
            .arg(&f.src)
            .status()
            .unwrap();
        assert!(!status.success());
        assert!(!out.exists(), "{point}: a packet appeared");
        ok(packet().arg("build").arg(&out).arg(&f.src));
        assert!(verifies(&out, &f.tree));
        assert!(leftovers(case.path()).is_empty(), "{point}");
    }
}
