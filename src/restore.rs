//! Restore: rebuilds a sealed packet from a copy that drifted in transit. Every file whose
//! drift is proven is written as its original bytes (rebuilt, and checked against the seal),
//! byte-exact files are copied unchanged, and every other file is refused with the reason.
//! Nothing is ever written into the copy.

use crate::manifest::{self, MANIFEST_NAME, TREE_NAME};
use crate::reject::RejectCode;
use crate::report::{Reject, Verdict, mask_pass, shown};
use crate::verify::{self, FileState, VerifyOptions};
use serde::Serialize;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// How one file was written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Written {
    /// The sealed path.
    pub path: String,
    /// `byte-exact` (copied unchanged), `renamed` (copied from a drifted name), `rebuilt`
    /// (original bytes rebuilt from proven drift) or `from-seal` (the original's seal record).
    pub how: String,
    /// For rebuilt files, the drift causes undone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<RejectCode>,
}

/// What a restore did (`packet restore --json` prints it; schema `packet.restore-report/1`).
#[derive(Clone, Debug, Serialize)]
pub struct RestoreReport {
    /// Always `packet.restore-report/1`.
    pub schema: String,
    /// The drifted copy.
    pub copy: String,
    /// The restored packet directory.
    pub out: String,
    /// PASS when every sealed file was written and the restored packet verifies, pinned to
    /// the seal's tree hash.
    pub verdict: Verdict,
    /// The tree hash of the restored packet (the original's), when the seal was authentic.
    pub tree_hash: Option<String>,
    /// The files written.
    pub written: Vec<Written>,
    /// `RESTORE_REFUSED` for each file not written, and whatever verifying the result found.
    pub rejects: Vec<Reject>,
    /// Remarks.
    pub notes: Vec<String>,
}

impl RestoreReport {
    /// True on PASS.
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }

    /// One line per file, one per reject, then the verdict line.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for w in &self.written {
            let causes: Vec<String> = w.causes.iter().map(|c| c.to_string()).collect();
            let extra = if causes.is_empty() {
                String::new()
            } else {
                format!(" (undid {})", causes.join(" + "))
            };
            out.push_str(&format!("wrote  {}: {}{extra}\n", shown(&w.path), w.how));
        }
        for r in &self.rejects {
            out.push_str(&r.render());
            out.push('\n');
        }
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        let tree = self.tree_hash.as_deref().unwrap_or("unknown");
        match self.verdict {
            Verdict::Pass => out.push_str(&format!(
                "PASS restore {} -> {}: {} files written; the restored packet verifies, pinned to tree {tree}\n",
                self.copy,
                self.out,
                self.written.len()
            )),
            Verdict::Fail => out.push_str(&format!(
                "FAIL restore {} -> {}: {}; {} files written\n",
                self.copy,
                self.out,
                crate::report::plural(self.rejects.len(), "reject"),
                self.written.len()
            )),
        }
        if self.passed() {
            out
        } else {
            mask_pass(&out, false)
        }
    }

    /// One JSON document (masked like the text when failing).
    pub fn to_json(&self) -> String {
        crate::report::json_document(self, self.passed())
    }
}

fn refuse(path: &str, why: String) -> Reject {
    Reject::new(RejectCode::RestoreRefused, why).at_path(path.to_string())
}

/// Restores `copy` into the new directory `out`, taking the seal from `opts` (the copy's own,
/// or its original with `against`).
///
/// `out` must not exist and may not lie inside `copy`. Files are assembled in a temporary
/// directory beside `out`, with the seal files as sealed; the result is verified, pinned to
/// the full tree hash, and renamed to `out`. When the seal itself cannot be authenticated
/// nothing is written. Errors only on I/O failure (nothing is left behind then).
pub fn restore(copy: &Path, out: &Path, opts: &VerifyOptions) -> io::Result<RestoreReport> {
    let mut report = RestoreReport {
        schema: "packet.restore-report/1".into(),
        copy: copy.display().to_string(),
        out: out.display().to_string(),
        verdict: Verdict::Fail,
        tree_hash: None,
        written: Vec::new(),
        rejects: Vec::new(),
        notes: Vec::new(),
    };
    let out_label = out.display().to_string();
    if fs::symlink_metadata(out).is_ok() {
        report.rejects.push(refuse(
            &out_label,
            "already exists; restore never overwrites".into(),
        ));
        return Ok(report);
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if let (Ok(c), Ok(p)) = (fs::canonicalize(copy), fs::canonicalize(&parent))
        && p.starts_with(&c)
    {
        report.rejects.push(refuse(
            &out_label,
            "lies inside the copy; restore never writes into the copy".into(),
        ));
        return Ok(report);
    }

    let checked = verify::check(copy, opts, true);
    let Some(seal) = checked.seal else {
        report.rejects.push(refuse(
            MANIFEST_NAME,
            "the seal cannot be authenticated: the manifest does not hash to its tree hash (or the pin), even after undoing proven drift; nothing written".into(),
        ));
        report.rejects.extend(checked.report.rejects);
        return Ok(report);
    };
    report.tree_hash = Some(seal.tree.to_hex());

    let staging = tempfile::Builder::new()
        .prefix(&crate::staging::temp_prefix(
            crate::staging::TEMP_PREFIXES[2],
        ))
        .tempdir_in(&parent)?;
    let root = staging.path();
    let reasons = |path: &str| -> String {
        checked
            .report
            .rejects
            .iter()
            .find(|r| r.path.as_deref() == Some(path))
            .map(|r| match &r.diagnosis {
                Some(d) => format!("{} ({})", r.code, d.summary),
                None => format!("{}: {}", r.code, r.message),
            })
            .unwrap_or_else(|| "not proven".into())
    };
    for f in &checked.files {
        let dest = root.join(&f.path);
        let written = |how: &str, causes: Vec<RejectCode>| Written {
            path: f.path.clone(),
            how: how.into(),
            causes,
        };
        match (&f.state, &f.found) {
            (FileState::Intact, Some(src)) | (FileState::Renamed, Some(src)) => {
                copy_file(src, &dest)?;
                let how = if f.state == FileState::Intact {
                    "byte-exact"
                } else {
                    "renamed"
                };
                report.written.push(written(how, vec![]));
            }
            (
                FileState::Drifted {
                    rebuilt: Some(bytes),
                },
                _,
            ) => {
                write_file(&dest, bytes)?;
                let causes = checked
                    .report
                    .rejects
                    .iter()
                    .find(|r| r.path.as_deref() == Some(f.path.as_str()))
                    .and_then(|r| r.diagnosis.as_ref())
                    .map(|d| d.codes())
                    .unwrap_or_default();
                report.written.push(written("rebuilt", causes));
            }
            (FileState::FromSeal(bytes), _) => {
                write_file(&dest, bytes)?;
                report.written.push(written("from-seal", vec![]));
            }
            (FileState::Missing, _) => report
                .rejects
                .push(refuse(&f.path, "not in the copy under any name".into())),
            _ => report.rejects.push(refuse(
                &f.path,
                format!("its original bytes cannot be rebuilt: {}", reasons(&f.path)),
            )),
        }
    }
    write_file(&root.join(MANIFEST_NAME), &seal.manifest)?;
    write_file(
        &root.join(TREE_NAME),
        &manifest::render_tree_file(&seal.tree),
    )?;
    let unsealed = checked
        .report
        .rejects
        .iter()
        .filter(|r| r.code == RejectCode::FileUnsealed)
        .count();
    if unsealed > 0 {
        report.notes.push(format!(
            "{unsealed} unsealed files in the copy were not restored"
        ));
    }

    // The gate: the restored packet must verify against the full tree hash.
    let pin = seal
        .tree
        .to_hex()
        .parse()
        .expect("a full digest is a valid pin");
    let final_check = verify::verify(
        root,
        &VerifyOptions {
            expect_tree: Some(pin),
            ..VerifyOptions::default()
        },
    );
    let refused = report.rejects.len();
    if refused == 0 && !final_check.passed() {
        // Not expected: every file was proven. Report what verify found and write nothing.
        report.rejects.extend(final_check.rejects);
        report
            .notes
            .push("the restored packet did not verify; nothing written".into());
        report.written.clear();
        return Ok(report);
    }
    if refused > 0 {
        report.notes.push(format!(
            "{} could not be proven and were not written: {} will not verify until they are supplied",
            crate::report::plural(refused, "file"),
            report.out
        ));
    }
    crate::staging::sync_tree(staging.path())?;
    let kept = staging.keep();
    let moved = crate::staging::set_dir_mode(&kept)
        .and_then(|()| crate::staging::rename_noreplace(&kept, out));
    if let Err(e) = moved {
        let _ = fs::remove_dir_all(&kept);
        return Err(e);
    }
    crate::staging::sync_dir(&parent)?;
    if refused == 0 {
        report.verdict = Verdict::Pass;
    }
    Ok(report)
}

fn ensure_parent(dest: &Path) -> io::Result<()> {
    match dest.parent() {
        Some(p) => fs::create_dir_all(p),
        None => Ok(()),
    }
}

fn write_file(dest: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    ensure_parent(dest)?;
    let mut file = fs::File::create_new(dest)?;
    file.write_all(bytes)?;
    crate::staging::sync_file(&file, dest)
}

fn copy_file(src: &Path, dest: &Path) -> io::Result<()> {
    ensure_parent(dest)?;
    let mut input = fs::File::open(src)?;
    let mut file = fs::File::create_new(dest)?;
    io::copy(&mut input, &mut file)?;
    // As `cp -p` would for the mode: a restored RERUN.sh stays executable.
    file.set_permissions(input.metadata()?.permissions())?;
    crate::staging::sync_file(&file, dest)
}

impl crate::report::Outcome for RestoreReport {
    fn passed(&self) -> bool {
        RestoreReport::passed(self)
    }
    fn render_text(&self) -> String {
        RestoreReport::render_text(self)
    }
    fn to_json(&self) -> String {
        RestoreReport::to_json(self)
    }
}
