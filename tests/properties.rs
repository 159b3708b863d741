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

mod archives {
    use super::{tree, write_tree};
    use packet::RejectCode;
    use packet::archive::check_archive;
    use packet::archive::{Compression, Limits};
    use packet::drift::fold_name;
    use packet::pack::{PackOptions, pack};
    use packet::seal::{SealOptions, seal_dir};
    use packet::unpack::{UnpackOptions, unpack};
    use packet::verify::{VerifyOptions, verify};
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::fs;

    fn opts(compression: Compression) -> PackOptions {
        PackOptions {
            verify: VerifyOptions::default(),
            mtime: 0,
            compression,
        }
    }

    /// True when two paths (or their parent directories) are one name on a case- or
    /// normalization-insensitive file system.
    fn folds_collide(paths: &[&String]) -> bool {
        let mut names = BTreeSet::new();
        for p in paths {
            for (i, _) in p.match_indices('/') {
                names.insert(p[..i].to_string());
            }
            names.insert(p.to_string());
        }
        let folded: BTreeSet<String> = names.iter().map(|n| fold_name(n)).collect();
        folded.len() != names.len()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        /// Any packet packs (or is refused only for names that collide by case), and the archive
        /// verifies with the directory's tree hash and unpacks to the same bytes.
        #[test]
        fn pack_verify_unpack_round_trips(files in tree(), gzip in any::<bool>()) {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("p");
            write_tree(&dir, &files);
            let sealed = seal_dir(&dir, SealOptions::default()).unwrap();
            let archive = tmp.path().join(if gzip { "p.tar.gz" } else { "p.tar" });
            let compression = if gzip { Compression::Gzip } else { Compression::None };
            let packed = pack(&dir, &archive, &opts(compression)).unwrap();
            let keys: Vec<&String> = files.keys().collect();
            if folds_collide(&keys) {
                prop_assert!(!packed.passed());
                prop_assert!(packed.rejects.iter().all(|r| r.code == RejectCode::PackRefused));
                prop_assert!(!archive.exists());
                return Ok(());
            }
            prop_assert!(packed.passed(), "{}", packed.render_text());
            let report = check_archive(&archive, &VerifyOptions::default(), &Limits::default(), None).unwrap();
            prop_assert!(report.passed(), "{}", report.render_text());
            prop_assert_eq!(report.tree_hash.unwrap().computed, Some(sealed.tree_hash.to_hex()));
            let out = tmp.path().join("out");
            let unpacked = unpack(&archive, &out, &UnpackOptions::default()).unwrap();
            prop_assert!(unpacked.passed(), "{}", unpacked.render_text());
            for (rel, bytes) in &files {
                prop_assert_eq!(&fs::read(out.join(rel)).unwrap(), bytes);
            }
            prop_assert!(verify(&out, &VerifyOptions::default()).passed());
        }

        /// Any single byte of any file's data changed inside a packed archive is rejected, and
        /// unpack then writes nothing.
        #[test]
        fn any_byte_flipped_in_an_entry_is_rejected(files in tree(), pick in any::<usize>(), xor in 1..=255u8) {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("p");
            write_tree(&dir, &files);
            seal_dir(&dir, SealOptions::default()).unwrap();
            let archive = tmp.path().join("p.tar");
            let keys: Vec<&String> = files.keys().collect();
            prop_assume!(!folds_collide(&keys));
            prop_assert!(pack(&dir, &archive, &opts(Compression::None)).unwrap().passed());
            let mut bytes = fs::read(&archive).unwrap();
            // Every data byte of every regular file in the archive.
            let mut data = Vec::new();
            let mut ar = tar::Archive::new(&bytes[..]);
            for e in ar.entries().unwrap() {
                let e = e.unwrap();
                if e.header().entry_type() == tar::EntryType::Regular {
                    let start = e.raw_file_position() as usize;
                    data.extend(start..start + e.size() as usize);
                }
            }
            prop_assume!(!data.is_empty());
            let at = data[pick % data.len()];
            bytes[at] ^= xor;
            fs::write(&archive, &bytes).unwrap();
            let report = check_archive(&archive, &VerifyOptions::default(), &Limits::default(), None).unwrap();
            prop_assert!(!report.passed());
            prop_assert!(!report.render_text().contains("PASS"));
            let out = tmp.path().join("out");
            prop_assert!(!unpack(&archive, &out, &UnpackOptions::default()).unwrap().passed());
            prop_assert!(!out.exists());
        }
    }
}

mod drift_combinations {
    use packet::digest::Digest;
    use packet::drift::{self, Proof, make};
    use packet::profile::{self, Profile};
    use proptest::prelude::*;

    /// One cosmetic drift, as the real tools make it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    enum Cause {
        // In the order a document meets them on a trip (the reverse of the undo order).
        DropFinalNewline,
        Fold,
        ExpandTabs(usize),
        StripTrailing,
        Nfd,
        Crlf,
        Mojibake,
        Bom,
    }

    fn apply(text: &str, c: Cause) -> String {
        match c {
            Cause::DropFinalNewline => make::drop_final_newline(text),
            Cause::Fold => profile::fold_typographic(text),
            Cause::ExpandTabs(w) => make::expand(text, w),
            Cause::StripTrailing => make::strip_trailing(text),
            Cause::Nfd => make::nfd(text),
            Cause::Crlf => make::crlf(text),
            Cause::Mojibake => make::mojibake_cp1252(text),
            Cause::Bom => format!("\u{FEFF}{text}"),
        }
    }

    fn cause() -> impl Strategy<Value = Cause> {
        prop_oneof![
            Just(Cause::DropFinalNewline),
            Just(Cause::Fold),
            Just(Cause::ExpandTabs(4)),
            Just(Cause::ExpandTabs(8)),
            Just(Cause::StripTrailing),
            Just(Cause::Nfd),
            Just(Cause::Crlf),
            Just(Cause::Mojibake),
            Just(Cause::Bom),
        ]
    }

    /// Lines of words (ASCII, typographic, Vietnamese), some indented with tabs, some with
    /// trailing blanks, with or without a final newline.
    fn text() -> impl Strategy<Value = String> {
        let word = prop_oneof![
            "[a-zA-Z0-9]{1,8}",
            Just("—".to_string()),
            Just("“quoted”".to_string()),
            Just("wait…".to_string()),
            Just("Tiếng".to_string()),
            Just("Việt".to_string()),
            Just("chạm".to_string()),
            Just("->".to_string()),
            Just("a - b".to_string()),
        ];
        let line = (
            0..3usize,
            prop::collection::vec(word, 1..6),
            prop_oneof![Just(""), Just(" "), Just("\t"), Just("  ")],
        )
            .prop_map(|(tabs, words, trail)| {
                format!("{}{}{trail}", "\t".repeat(tabs), words.join(" "))
            });
        (prop::collection::vec(line, 1..10), any::<bool>()).prop_map(|(lines, final_nl)| {
            let mut t = lines.join("\n");
            if final_nl {
                t.push('\n');
            }
            t
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn up_to_three_causes_are_proven_and_undone(original in text(), mut causes in prop::collection::vec(cause(), 1..=3)) {
            causes.sort();
            causes.dedup_by(|a, b| std::mem::discriminant(a) == std::mem::discriminant(b));
            let drifted = causes.iter().fold(original.clone(), |t, c| apply(&t, *c));
            prop_assume!(drifted != original);
            let sealed = Digest::of(original.as_bytes());
            let profile = Profile::of(original.as_bytes());
            let finding = drift::examine(&sealed, Some(&profile), drifted.as_bytes());
            prop_assert_eq!(finding.diagnosis.proof, Proof::Proven, "{:?}\n{}", causes, finding.diagnosis.render(""));
            prop_assert_eq!(finding.rebuilt.as_deref(), Some(original.as_bytes()));
        }
    }
}
