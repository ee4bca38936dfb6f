//! Reading documents to index: a folder of `.txt` / `.md` files, or a JSONL
//! corpus in BEIR form (`_id`, `title`, `text`, optional `metadata`).

use crate::{Error, Result};
use sift_core::Document;
use std::path::{Path, PathBuf};

/// A file that was not indexed, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// The documents found at a path, read lazily.
pub struct Source {
    documents: Box<dyn Iterator<Item = Result<Document>> + Send>,
    skipped: std::sync::Arc<std::sync::Mutex<Vec<Skipped>>>,
}

impl Source {
    /// Open a folder (searched recursively for `.txt` and `.md` files, in
    /// path order) or a `.jsonl` corpus file.
    pub fn open(path: &Path) -> Result<Source> {
        let skipped = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        if path.is_dir() {
            let files = text_files(path)?;
            let root = path.to_owned();
            let sink = skipped.clone();
            let documents =
                files
                    .into_iter()
                    .filter_map(move |file| match read_text_file(&root, &file) {
                        Ok(doc) => Some(Ok(doc)),
                        Err(reason) => {
                            // The caller reports it (see `skipped`); a
                            // warning here would say it twice.
                            tracing::debug!(path = %file.display(), "skipped: {reason}");
                            sink.lock()
                                .expect("not poisoned")
                                .push(Skipped { path: file, reason });
                            None
                        }
                    });
            return Ok(Source {
                documents: Box::new(documents),
                skipped,
            });
        }
        if path.is_file()
            && path
                .extension()
                .is_some_and(|e| e == "jsonl" || e == "json")
        {
            let documents =
                sift_metrics::corpus_iter(path.to_path_buf())?.map(|d| d.map_err(Error::from));
            return Ok(Source {
                documents: Box::new(documents),
                skipped,
            });
        }
        if !path.exists() {
            return Err(Error::io(
                path,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        Err(Error::UnsupportedSource(path.to_owned()))
    }

    /// Files skipped so far (non-UTF-8, empty).
    pub fn skipped(&self) -> Vec<Skipped> {
        self.skipped.lock().expect("not poisoned").clone()
    }
}

impl Iterator for Source {
    type Item = Result<Document>;
    fn next(&mut self) -> Option<Self::Item> {
        self.documents.next()
    }
}

fn text_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(root).to_owned();
            Error::io(
                path,
                e.into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("walk error")),
            )
        })?;
        let is_text = entry
            .path()
            .extension()
            .is_some_and(|e| e == "txt" || e == "md");
        if entry.file_type().is_file() && is_text {
            files.push(entry.into_path());
        }
    }
    Ok(files)
}

/// A text file as a document. Its id is its path under the root (with `/`),
/// its title the first line when that line is a Markdown heading, or a
/// short line followed by a blank one; an `Updated: YYYY-MM-DD` line right
/// after the title becomes the `date` metadata.
fn read_text_file(root: &Path, file: &Path) -> std::result::Result<Document, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 (invalid byte at {})",
            e.utf8_error().valid_up_to()
        )
    })?;
    if text.trim().is_empty() {
        return Err("empty file".into());
    }
    let relative = file.strip_prefix(root).unwrap_or(file);
    let id = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");
    let mut doc = parse_text(&text);
    doc.id = id.clone();
    if doc.title.is_empty() {
        doc.title = file
            .file_stem()
            .map(|s| s.to_string_lossy().replace(['-', '_'], " "))
            .unwrap_or_default();
    }
    doc.metadata.insert("source".into(), id.into());
    Ok(doc)
}

/// A text file's title and optional date. The text is kept verbatim (less
/// a byte-order mark), so chunk offsets cite the file itself; the chunker
/// skips the title and date lines as front matter.
pub(crate) fn parse_text(text: &str) -> Document {
    let text = text.trim_start_matches('\u{feff}');
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default().trim();
    let second = lines.next();
    let title = if let Some(heading) = first.strip_prefix("# ") {
        heading.trim().to_string()
    } else if first.chars().count() <= 120 && second.is_some_and(|l| l.trim().is_empty()) {
        first.to_string()
    } else {
        String::new()
    };
    let mut doc = Document::default();
    if let Some(date) = front_matter(text, &title).date {
        doc.metadata.insert("date".into(), date.into());
    }
    doc.text = text.to_string();
    doc.title = title;
    doc
}

/// A document's front matter: a first line repeating its title (`# Title`
/// or `Title`), then an `Updated: YYYY-MM-DD` line under it, blank lines
/// around them included. It is metadata, not text: [`parse_text`] takes the
/// date from it and the chunker starts after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrontMatter<'a> {
    /// Bytes of the text it takes.
    pub len: usize,
    pub date: Option<&'a str>,
}

pub(crate) fn front_matter<'a>(text: &'a str, title: &str) -> FrontMatter<'a> {
    let title = title.trim();
    let mut front = FrontMatter { len: 0, date: None };
    let mut seen_title = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        let is_title =
            !seen_title && !title.is_empty() && trimmed.trim_start_matches('#').trim() == title;
        let date = (seen_title && front.date.is_none())
            .then(|| trimmed.strip_prefix("Updated:").map(str::trim))
            .flatten()
            .filter(|d| is_iso_date(d));
        if !(trimmed.is_empty() || is_title || date.is_some()) {
            break;
        }
        seen_title |= is_title;
        front.date = front.date.or(date);
        front.len += line.len();
    }
    front
}

fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_title_date_and_body() {
        let doc = parse_text("# Close your account\n\nUpdated: 2025-10-01\n\nGo to Settings.\n");
        assert_eq!(doc.title, "Close your account");
        assert_eq!(
            doc.metadata.get("date").and_then(|v| v.as_str()),
            Some("2025-10-01")
        );
        // Verbatim: offsets into it are offsets into the file.
        assert_eq!(
            doc.text,
            "# Close your account\n\nUpdated: 2025-10-01\n\nGo to Settings.\n"
        );
    }

    #[test]
    fn plain_text_title_only_when_followed_by_blank_line() {
        assert_eq!(
            parse_text("Report a bug\n\nWrite to us.").title,
            "Report a bug"
        );
        let doc = parse_text("A first sentence\nthat goes on.");
        assert_eq!(doc.title, "");
        assert_eq!(doc.text, "A first sentence\nthat goes on.");
    }

    #[test]
    fn folders_skip_bad_files_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/good.md"), "# Good\n\nText.").unwrap();
        std::fs::write(dir.path().join("empty.txt"), "  \n").unwrap();
        std::fs::write(dir.path().join("latin1.txt"), b"caf\xe9\n").unwrap();
        std::fs::write(dir.path().join("ignored.pdf"), "x").unwrap();
        let mut source = Source::open(dir.path()).unwrap();
        let docs: Vec<Document> = source.by_ref().collect::<Result<_>>().unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].id, "sub/good.md");
        let skipped: Vec<String> = source
            .skipped()
            .iter()
            .map(|s| s.path.file_name().unwrap().to_string_lossy().into())
            .collect();
        assert_eq!(skipped, vec!["empty.txt", "latin1.txt"]);
        assert!(source.skipped()[1].reason.contains("UTF-8"));
    }

    #[test]
    fn malformed_jsonl_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corpus.jsonl");
        std::fs::write(
            &path,
            "{\"_id\":\"a\",\"title\":\"\",\"text\":\"x\"}\n{\"_id\": oops}\n",
        )
        .unwrap();
        let results: Vec<Result<Document>> = Source::open(&path).unwrap().collect();
        assert!(results[0].is_ok());
        let err = results[1].as_ref().unwrap_err().to_string();
        assert!(err.contains(":2:"), "{err}");
    }
}
