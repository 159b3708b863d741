//! Helpers the integration tests share: where the repository is, running a command that must
//! succeed, resealing a manifest as an attacker would, and hand-built tar headers (raw
//! bytes, no checks: hostile names are the point). Each test crate uses some of them.
#![allow(dead_code)]

use packet::digest::Digest;
use packet::manifest::{Entry, MANIFEST_NAME, Manifest, TREE_NAME, render_tree_file};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (fixtures live under `selftest/`, `packets/`, `tests/data/`).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Copies the tree at `from` to `to` (created), regular files and directories only.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Runs `cmd`, asserts that it succeeded (showing its output if not), returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What an attacker who can write the packet does after editing it: every digest in the
/// manifest recomputed and the tree file rewritten, so only content checks can catch what is
/// left.
pub fn reseal_manifest(dir: &Path) {
    let (old, rejects) = Manifest::parse(&fs::read(dir.join(MANIFEST_NAME)).unwrap());
    assert!(rejects.is_empty(), "{rejects:?}");
    let entries = old
        .entries
        .iter()
        .map(|e| Entry {
            path: e.path.clone(),
            // Streamed: a sparse file at a seal-file limit is 256 MiB, and a test process
            // that big makes every child it forks report that much peak memory.
            digest: packet::digest::read_with(&dir.join(&e.path), 0, |_, _| ())
                .unwrap()
                .digest,
        })
        .collect();
    let bytes = Manifest::from_entries(entries).render();
    fs::write(dir.join(MANIFEST_NAME), &bytes).unwrap();
    fs::write(dir.join(TREE_NAME), render_tree_file(&Digest::of(&bytes))).unwrap();
}

/// A ustar header with raw name bytes.
pub fn raw_header(name: &[u8], kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_mtime(0);
    h.set_cksum();
    h
}

/// Appends a regular-file entry with a raw name.
pub fn add(b: &mut tar::Builder<Vec<u8>>, name: &[u8], data: &[u8]) {
    let h = raw_header(name, tar::EntryType::Regular, data.len() as u64);
    b.append(&h, data).unwrap();
}

/// One PAX record: `<len> <key>=<value>\n`, the length counting itself.
pub fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut n = body.len() + 1;
    while format!("{n}{body}").len() != n {
        n += 1;
    }
    format!("{n}{body}").into_bytes()
}
