//! Line-oriented reading shared by the BEIR and TREC readers.

use crate::{Error, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};

/// The non-blank lines of a text file with their 1-based line numbers.
/// A UTF-8 byte-order mark on the first line is dropped; `\r\n` endings are
/// handled by [`BufRead::lines`].
pub(crate) struct NumberedLines {
    path: PathBuf,
    lines: Lines<BufReader<File>>,
    line: usize,
    failed: bool,
}

impl NumberedLines {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        Ok(NumberedLines {
            path: path.to_owned(),
            lines: BufReader::new(file).lines(),
            line: 0,
            failed: false,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Iterator for NumberedLines {
    type Item = Result<(usize, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            let next = self.lines.next()?;
            self.line += 1;
            match next {
                Ok(mut text) => {
                    if self.line == 1 && text.starts_with('\u{feff}') {
                        text.drain(..'\u{feff}'.len_utf8());
                    }
                    if text.trim().is_empty() {
                        continue;
                    }
                    return Some(Ok((self.line, text)));
                }
                Err(e) => {
                    // An I/O error (or invalid UTF-8) ends the iteration: the
                    // rest of the file cannot be trusted to be aligned.
                    self.failed = true;
                    let err = if e.kind() == std::io::ErrorKind::InvalidData {
                        Error::malformed(&self.path, self.line, e.to_string())
                    } else {
                        Error::io(&self.path, e)
                    };
                    return Some(Err(err));
                }
            }
        }
    }
}
