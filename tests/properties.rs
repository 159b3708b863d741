//! Property tests of the seal's invariants: any packet built then verified passes; any
//! single-byte change, insertion or deletion in any sealed file is rejected, and the reject
//! names that file.

use packet::RejectCode;
use packet::seal::{SealOptions, seal_dir};
use packet::verify::{VerifyOptions, verify};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// Small trees: up to 6 files in up to two directory levels, names from a mixed alphabet
/// (including non-ASCII and spaces), contents random bytes or random text.
fn tree() -> impl Strategy<Value = BTreeMap<String, Vec<u8>>> {
    let name = "[a-zA-Z0-9 ._é—-]{1,12}".prop_filter("not a dot name", |n| {
        n != "." && n != ".." && !n.ends_with(' ')
    });
    let path = prop::collection::vec(name, 1..=3).prop_map(|parts| parts.join("/"));
    let content = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        "[ -~\n\t—“”é]{0,200}".prop_map(String::into_bytes),
    ];
    prop::collection::btree_map(path, content, 1..6).prop_filter(
        "no file is also a directory",
        |m| {
            m.keys()
                .all(|k| !m.keys().any(|other| other.starts_with(&format!("{k}/"))))
        },
    )
}

fn write_tree(dir: &Path, files: &BTreeMap<String, Vec<u8>>) {
    for (rel, bytes) in files {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }
}

#[derive(Debug, Clone)]
enum Edit {
    Flip { at: usize, xor: u8 },
    Insert { at: usize, byte: u8 },
    Delete { at: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, xor)| Edit::Flip { at, xor }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Insert { at, byte }),
        any::<usize>().prop_map(|at| Edit::Delete { at }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn built_then_verified_passes(files in tree()) {
        let tmp = tempfile::tempdir().unwrap();
        write_tree(tmp.path(), &files);
        let sealed = seal_dir(tmp.path(), SealOptions::default()).unwrap();
        prop_assert_eq!(sealed.files, files.len() + 1);
        let report = verify(tmp.path(), &VerifyOptions::default());
        prop_assert!(report.passed(), "{}", report.render_text());
        let pinned = verify(tmp.path(), &VerifyOptions { expect_tree: Some(sealed.tree_hash.to_hex().parse().unwrap()), ..VerifyOptions::default() });
        prop_assert!(pinned.passed());
    }

    #[test]
    fn any_single_byte_edit_is_rejected(files in tree(), pick in any::<usize>(), e in edit()) {
        let tmp = tempfile::tempdir().unwrap();
        write_tree(tmp.path(), &files);
        seal_dir(tmp.path(), SealOptions::default()).unwrap();
        // Any sealed file, including the seal record itself.
        let mut targets: Vec<String> = files.keys().cloned().collect();
        targets.push("SEAL.json".into());
        let target = &targets[pick % targets.len()];
        let path = tmp.path().join(target);
        let mut bytes = fs::read(&path).unwrap();
        match e {
            Edit::Flip { at, xor } => {
                if bytes.is_empty() { bytes.push(xor) } else { let i = at % bytes.len(); bytes[i] ^= xor }
            }
            Edit::Insert { at, byte } => { let i = at % (bytes.len() + 1); bytes.insert(i, byte) }
            Edit::Delete { at } => {
                if bytes.is_empty() { bytes.push(0) } else { let i = at % bytes.len(); bytes.remove(i); }
            }
        }
        fs::write(&path, &bytes).unwrap();
        let report = verify(tmp.path(), &VerifyOptions::default());
        prop_assert!(!report.passed());
        prop_assert!(!report.render_text().contains("PASS"));
        let named = report.rejects.iter().any(|r| {
            r.path.as_deref() == Some(target.as_str())
                && matches!(r.code, RejectCode::Sha256Mismatch | RejectCode::ByteLengthMismatch)
        });
        prop_assert!(named, "{}", report.render_text());
    }
}
