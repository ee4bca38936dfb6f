//! One writer per index across processes: an advisory lock (flock on Unix,
//! through `fs4`) on `sift-index.lock` in the index folder.
//!
//! tantivy already refuses a second `IndexWriter`, but only when the second
//! process gets as far as writing, and the HNSW graph in `vectors/` is
//! saved by whoever indexed last: two writers would each save a graph
//! missing the other's chunks. Taking this lock before anything is written
//! turns that into a clear error at once. The kernel drops the lock when
//! the process dies (kill -9 included), so there is never a stale lock to
//! remove by hand; the file's content (the holder's pid and command line)
//! is only there to name the holder in the error.

use crate::{Error, Result};
use fs4::fs_std::FileExt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

/// The lock file's name inside the index folder.
pub(crate) const LOCK_FILE: &str = "sift-index.lock";

/// Held by the process that writes the index, for as long as it may write;
/// dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct WriterLock {
    /// Kept open: the lock lives as long as this open file description.
    _file: File,
}

impl WriterLock {
    /// Take the lock of the index in `dir` (which must exist), or fail at
    /// once with [`Error::IndexBusy`] naming the holder.
    pub(crate) fn acquire(dir: &Path) -> Result<WriterLock> {
        match Self::try_acquire(dir)? {
            Some(lock) => Ok(lock),
            None => Err(Error::IndexBusy {
                dir: dir.to_owned(),
                holder: holder(&dir.join(LOCK_FILE)),
            }),
        }
    }

    /// Take the lock if no other writer holds it (`None` when one does).
    pub(crate) fn try_acquire(dir: &Path) -> Result<Option<WriterLock>> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        // A trait call: std's `File` has inherent lock methods only since
        // Rust 1.89, newer than this workspace's minimum.
        if !FileExt::try_lock_exclusive(&file).map_err(|e| Error::io(&path, e))? {
            return Ok(None);
        }
        // Who holds it, for the next writer's error. Best effort: the lock
        // is what matters, not this text.
        let who = format!("pid {}, {}", std::process::id(), command_line());
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(who.as_bytes()))
            .and_then(|()| file.flush());
        if let Err(e) = written {
            tracing::debug!(path = %path.display(), error = %e, "could not record the lock holder");
        }
        Ok(Some(WriterLock { _file: file }))
    }
}

/// The holder recorded in the lock file, as the error shows it.
fn holder(path: &Path) -> String {
    let mut text = String::new();
    let read = File::open(path).and_then(|mut f| f.read_to_string(&mut text));
    match read {
        Ok(_) if !text.trim().is_empty() => text.trim().to_owned(),
        // It may be between taking the lock and writing its name.
        _ => "pid unknown".to_owned(),
    }
}

/// This process's command line, shortened for an error message.
fn command_line() -> String {
    const MAX_CHARS: usize = 200;
    let line = std::env::args().collect::<Vec<_>>().join(" ");
    if line.chars().count() > MAX_CHARS {
        let cut: String = line.chars().take(MAX_CHARS).collect();
        format!("{cut}…")
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// flock locks belong to the open file description: a second open of
    /// the same file, even in this process, is refused while the first
    /// holds the lock, and gets it once the first is dropped.
    #[test]
    fn a_second_open_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = WriterLock::acquire(dir.path()).unwrap();
        let err = WriterLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("being written by another process"), "{err}");
        assert!(WriterLock::try_acquire(dir.path()).unwrap().is_none());
        drop(first);
        assert!(WriterLock::try_acquire(dir.path()).unwrap().is_some());
    }
}
