//! `packet unpack`: extracts a packet archive safely. Files are written only into a fresh
//! temporary directory beside the target, only for entries that passed every archive check;
//! the result is verified (the archive's stream and then the bytes on disk), and only a packet
//! that verifies is renamed into place. On any reject the temporary directory is removed and
//! nothing else was ever written.

use crate::archive::Limits;
use crate::reject::RejectCode;
use crate::report::{Reject, Report, Verdict, mask_pass, shown};
use crate::staging;
use crate::verify::{self, VerifyOptions};
use serde::Serialize;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Options for [`unpack`].
#[derive(Clone, Debug, Default)]
pub struct UnpackOptions {
    /// How the result is verified (a pin, threads).
    pub verify: VerifyOptions,
    /// Entry size and count limits.
    pub limits: Limits,
}

/// The outcome of [`unpack`] (schema `packet.unpack-report/1`).
#[derive(Clone, Debug, Serialize)]
pub struct UnpackReport {
    /// Always `packet.unpack-report/1`.
    pub schema: String,
    /// The archive.
    pub archive: String,
    /// The directory written (or not).
    pub out: String,
    /// PASS only when the packet verified and was moved into place.
    pub verdict: Verdict,
    /// The verification: of the archive's stream, or of the unpacked bytes when the stream
    /// passed (its subject then is the archive too).
    pub report: Report,
}

impl UnpackReport {
    /// True when `out` now holds the verified packet.
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }

    /// The verification's text, then an `UNPACKED` line, or a `FAIL unpack` line saying
    /// nothing was written (the last line is the verdict, as `--quiet` prints it).
    pub fn render_text(&self) -> String {
        let mut out = self.report.render_text();
        if self.passed() {
            out.push_str(&format!(
                "UNPACKED {} -> {}\n",
                shown(&self.archive),
                shown(&self.out)
            ));
            out
        } else {
            out.push_str(&format!(
                "FAIL unpack {}: {}; nothing written, {} not created\n",
                shown(&self.archive),
                crate::report::plural(self.report.rejects.len(), "reject"),
                shown(&self.out)
            ));
            mask_pass(&out, false)
        }
    }

    /// One JSON document with a final newline.
    pub fn to_json(&self) -> String {
        crate::report::json_document(self, self.passed())
    }
}

/// Unpacks `archive` into the new directory `out`.
///
/// `out` must not exist. Entries are extracted as they stream into a temporary directory
/// beside `out` (a `.packet-unpack-*` sibling): regular files only, mode 0644, created new and
/// never through a link; hostile entries are never written. The archive's stream must verify
/// (with the pin in `opts`, if any), then the extracted directory must verify too, and only
/// then is it renamed to `out` (refusing to replace anything that appeared meanwhile).
/// Errors only on I/O failure of the target file system; nothing is left behind then either.
pub fn unpack(archive: &Path, out: &Path, opts: &UnpackOptions) -> io::Result<UnpackReport> {
    let mut report = UnpackReport {
        schema: "packet.unpack-report/1".into(),
        archive: archive.display().to_string(),
        out: out.display().to_string(),
        verdict: Verdict::Fail,
        report: Report::new(
            archive.display().to_string(),
            Vec::new(),
            Default::default(),
        ),
    };
    let refuse = |why: &str| {
        Report::new(
            archive.display().to_string(),
            vec![
                Reject::new(RejectCode::UnpackRefused, why.into())
                    .at_path(out.display().to_string()),
            ],
            Default::default(),
        )
    };
    if fs::symlink_metadata(out).is_ok() {
        report.report = refuse("already exists; unpack never writes into or over anything");
        return Ok(report);
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        report.report = refuse("its parent directory does not exist");
        return Ok(report);
    }
    let staging = tempfile::Builder::new()
        .prefix(&crate::staging::temp_prefix(
            crate::staging::TEMP_PREFIXES[4],
        ))
        .tempdir_in(&parent)?;
    let streamed =
        crate::archive::check_archive(archive, &opts.verify, &opts.limits, Some(staging.path()))?;
    if !streamed.passed() {
        report.report = streamed;
        return Ok(report);
    }
    // The stream verified; the bytes on disk must too (a file system that changed them, or
    // an archive reader bug, is caught here).
    let mut on_disk = verify::verify(staging.path(), &opts.verify);
    on_disk.subject = archive.display().to_string();
    if !on_disk.passed() {
        report.report = on_disk;
        return Ok(report);
    }
    staging::sync_tree(staging.path())?;
    let kept = staging.keep();
    let moved = staging::set_dir_mode(&kept).and_then(|()| staging::rename_noreplace(&kept, out));
    if let Err(e) = moved {
        let _ = fs::remove_dir_all(&kept);
        if e.kind() == io::ErrorKind::AlreadyExists {
            report.report = refuse("appeared while unpacking; unpack never replaces anything");
            return Ok(report);
        }
        return Err(e);
    }
    staging::sync_dir(&parent)?;
    report.report = on_disk;
    report.verdict = Verdict::Pass;
    Ok(report)
}

impl crate::report::Outcome for UnpackReport {
    fn passed(&self) -> bool {
        UnpackReport::passed(self)
    }
    fn render_text(&self) -> String {
        UnpackReport::render_text(self)
    }
    fn to_json(&self) -> String {
        UnpackReport::to_json(self)
    }
}
