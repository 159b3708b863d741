//! Drift made the way real tools make it, for the self-test and tests. Each function is the
//! forward transformation whose undo [`super::examine`] looks for.

use crate::profile::BOM;
/// Bytes with a BOM added, for making drift in tests and the self-test.
pub fn add_bom(bytes: &[u8]) -> Vec<u8> {
    [BOM, bytes].concat()
}

use unicode_normalization::UnicodeNormalization;

/// Reads UTF-8 bytes as Windows-1252 (what a legacy editor or a mis-declared web form does)
/// and returns the text that is then saved as UTF-8: one round of mojibake.
pub fn mojibake_cp1252(text: &str) -> String {
    encoding_rs::WINDOWS_1252
        .decode_without_bom_handling(text.as_bytes())
        .0
        .into_owned()
}

/// Python `unicodedata.normalize('NFD', text)`.
pub fn nfd(text: &str) -> String {
    text.nfd().collect()
}

/// `git` with `core.autocrlf=true` on checkout: LF to CRLF.
pub fn crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// An editor's "strip trailing whitespace on save".
pub fn strip_trailing(text: &str) -> String {
    text.split('\n')
        .map(|l| match l.strip_suffix('\r') {
            Some(c) => format!("{}\r", c.trim_end_matches([' ', '\t'])),
            None => l.trim_end_matches([' ', '\t']).to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// GNU `expand --tabs=WIDTH`: every tab to spaces up to the next tab stop.
pub fn expand(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len());
    let mut col = 0;
    for c in text.chars() {
        match c {
            '\t' => {
                let n = width - col % width;
                out.extend(std::iter::repeat_n(' ', n));
                col += n;
            }
            '\n' => {
                out.push(c);
                col = 0;
            }
            _ => {
                out.push(c);
                col += 1;
            }
        }
    }
    out
}

/// Removes one final newline, as editors set not to end files with one do.
pub fn drop_final_newline(text: &str) -> String {
    text.strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text)
        .to_string()
}
