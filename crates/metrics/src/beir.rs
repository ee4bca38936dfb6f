//! Readers for the BEIR dataset layout:
//!
//! ```text
//! DIR/corpus.jsonl         {"_id", "title", "text", "metadata"?} per line
//! DIR/queries.jsonl        {"_id", "text", ...} per line
//! DIR/qrels/SPLIT.tsv      query-id \t corpus-id \t score   (header optional)
//! ```
//!
//! Qrels may also be in TREC format (`qid 0 docid rel`); the format is
//! detected per file. Ids given as JSON numbers are accepted and turned into
//! strings. Blank lines are skipped everywhere; a malformed line is an
//! [`Error::Malformed`] naming the file and its 1-based line number.

use crate::lines::NumberedLines;
use crate::{Error, Result};
use serde::Deserialize;
use sift_core::{Document, Metadata};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Relevance judgements: query id → document id → graded relevance.
/// Grades are kept as given (BEIR uses 0/1/2…, TREC may use negatives);
/// a document is relevant when its grade is at least 1.
pub type Qrels = BTreeMap<String, BTreeMap<String, i32>>;

/// A test query.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Query {
    pub id: String,
    pub text: String,
}

/// A JSON id that may be a string or a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Str(String),
    Int(i64),
    UInt(u64),
}

impl Id {
    fn into_string(self) -> String {
        match self {
            Id::Str(s) => s,
            Id::Int(i) => i.to_string(),
            Id::UInt(u) => u.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct RawDocument {
    #[serde(rename = "_id")]
    id: Id,
    #[serde(default)]
    title: Option<String>,
    text: String,
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct RawQuery {
    #[serde(rename = "_id")]
    id: Id,
    text: String,
}

fn parse_json_line<T: for<'de> Deserialize<'de>>(
    path: &Path,
    line: usize,
    text: &str,
) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::malformed(path, line, e.to_string()))
}

/// Stream the documents of a BEIR `corpus.jsonl`, one per non-blank line.
/// Opening the file fails eagerly; each later problem is one `Err` item
/// (after an I/O error the iterator ends).
pub fn corpus_iter(path: impl AsRef<Path>) -> Result<impl Iterator<Item = Result<Document>>> {
    let lines = NumberedLines::open(path.as_ref())?;
    let path = lines.path().to_owned();
    Ok(lines.map(move |item| {
        let (line, text) = item?;
        let raw: RawDocument = parse_json_line(&path, line, &text)?;
        Ok(Document {
            id: raw.id.into_string(),
            title: raw.title.unwrap_or_default(),
            text: raw.text,
            metadata: raw.metadata.unwrap_or_default(),
        })
    }))
}

/// Read a whole BEIR `corpus.jsonl`; stops at the first malformed line.
pub fn read_corpus(path: impl AsRef<Path>) -> Result<Vec<Document>> {
    corpus_iter(path)?.collect()
}

/// Read a BEIR `queries.jsonl`, in file order.
pub fn read_queries(path: impl AsRef<Path>) -> Result<Vec<Query>> {
    let lines = NumberedLines::open(path.as_ref())?;
    let path = lines.path().to_owned();
    lines
        .map(|item| {
            let (line, text) = item?;
            let raw: RawQuery = parse_json_line(&path, line, &text)?;
            Ok(Query {
                id: raw.id.into_string(),
                text: raw.text,
            })
        })
        .collect()
}

/// The two qrels layouts [`read_qrels`] understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QrelsFormat {
    /// BEIR: `query-id \t corpus-id \t score`, optional header line.
    BeirTsv,
    /// TREC: `qid iter docid rel`, whitespace separated; `iter` is ignored.
    Trec,
}

/// Guess the layout from the first non-blank line: three fields is BEIR,
/// four is TREC.
fn detect_format(line: &str) -> Option<QrelsFormat> {
    let n = if line.contains('\t') {
        line.split('\t').count()
    } else {
        line.split_whitespace().count()
    };
    match n {
        3 => Some(QrelsFormat::BeirTsv),
        4 => Some(QrelsFormat::Trec),
        _ => None,
    }
}

/// Parse a relevance grade: an integer, or a float with no fractional part
/// (`1.0`), as some exported qrels have.
fn parse_grade(s: &str) -> Option<i32> {
    if let Ok(g) = s.parse::<i32>() {
        return Some(g);
    }
    let f: f64 = s.parse().ok()?;
    (f.is_finite() && f.fract() == 0.0 && f.abs() <= i32::MAX as f64).then_some(f as i32)
}

/// Read qrels in BEIR TSV or TREC format (detected from the file's first
/// non-blank line). A pair judged twice keeps its last grade.
pub fn read_qrels(path: impl AsRef<Path>) -> Result<Qrels> {
    read_qrels_with_format(path).map(|(qrels, _)| qrels)
}

/// [`read_qrels`], also saying which format the file was in.
pub fn read_qrels_with_format(path: impl AsRef<Path>) -> Result<(Qrels, QrelsFormat)> {
    let path = path.as_ref();
    let mut qrels = Qrels::new();
    let mut format = None;
    for item in NumberedLines::open(path)? {
        let (line, text) = item?;
        let fmt = match format {
            Some(f) => f,
            None => {
                let f = detect_format(&text).ok_or_else(|| {
                    Error::malformed(
                        path,
                        line,
                        "expected `query-id<TAB>corpus-id<TAB>score` (BEIR) \
                         or `qid 0 docid rel` (TREC)",
                    )
                })?;
                format = Some(f);
                // The BEIR header (or any first line whose score is not a number).
                if f == QrelsFormat::BeirTsv {
                    let fields = split_tsv(&text);
                    if fields.len() == 3 && parse_grade(fields[2]).is_none() {
                        continue;
                    }
                }
                f
            }
        };
        let (qid, docid, grade) = match fmt {
            QrelsFormat::BeirTsv => {
                let fields = split_tsv(&text);
                if fields.len() != 3 {
                    return Err(Error::malformed(
                        path,
                        line,
                        format!("expected 3 fields (BEIR qrels), found {}", fields.len()),
                    ));
                }
                (fields[0], fields[1], fields[2])
            }
            QrelsFormat::Trec => {
                let fields: Vec<&str> = text.split_whitespace().collect();
                if fields.len() != 4 {
                    return Err(Error::malformed(
                        path,
                        line,
                        format!("expected 4 fields (TREC qrels), found {}", fields.len()),
                    ));
                }
                (fields[0], fields[2], fields[3])
            }
        };
        if qid.is_empty() || docid.is_empty() {
            return Err(Error::malformed(path, line, "empty query or document id"));
        }
        let grade = parse_grade(grade).ok_or_else(|| {
            Error::malformed(path, line, format!("relevance {grade:?} is not an integer"))
        })?;
        qrels
            .entry(qid.to_owned())
            .or_default()
            .insert(docid.to_owned(), grade);
    }
    Ok((qrels, format.unwrap_or(QrelsFormat::BeirTsv)))
}

/// BEIR fields: tab separated (ids may then hold spaces), or whitespace
/// separated when the line has no tab.
fn split_tsv(line: &str) -> Vec<&str> {
    if line.contains('\t') {
        line.split('\t').map(str::trim).collect()
    } else {
        line.split_whitespace().collect()
    }
}

/// One split of a BEIR dataset.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub dir: PathBuf,
    pub split: String,
    /// `DIR/corpus.jsonl` when it exists (read it with [`corpus_iter`]).
    pub corpus: Option<PathBuf>,
    /// The queries judged in this split, in `queries.jsonl` order.
    pub queries: Vec<Query>,
    pub qrels: Qrels,
}

impl Dataset {
    /// Open `DIR` for `split`: reads `DIR/queries.jsonl` and
    /// `DIR/qrels/SPLIT.tsv` (or `SPLIT.txt` / `SPLIT.qrels`, either format),
    /// keeping only the queries that have qrels in the split.
    pub fn open(dir: impl AsRef<Path>, split: &str) -> Result<Dataset> {
        let dir = dir.as_ref();
        let qrels_path = ["tsv", "txt", "qrels"]
            .iter()
            .map(|ext| dir.join("qrels").join(format!("{split}.{ext}")))
            .find(|p| p.is_file())
            .ok_or_else(|| Error::MissingFile(dir.join("qrels").join(format!("{split}.tsv"))))?;
        let qrels = read_qrels(&qrels_path)?;
        let queries_path = dir.join("queries.jsonl");
        if !queries_path.is_file() {
            return Err(Error::MissingFile(queries_path));
        }
        let mut queries = read_queries(&queries_path)?;
        queries.retain(|q| qrels.contains_key(&q.id));
        let with_text: std::collections::BTreeSet<&str> =
            queries.iter().map(|q| q.id.as_str()).collect();
        let missing = qrels.len() - with_text.len();
        if missing > 0 {
            tracing::warn!(
                missing,
                qrels = %qrels_path.display(),
                "queries judged in the qrels have no text in queries.jsonl"
            );
        }
        let corpus = Some(dir.join("corpus.jsonl")).filter(|p| p.is_file());
        Ok(Dataset {
            dir: dir.to_owned(),
            split: split.to_owned(),
            corpus,
            queries,
            qrels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(contents: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(contents.as_bytes()).unwrap();
        f
    }

    #[test]
    fn corpus_reads_fields_and_skips_blank_lines() {
        let f = file(concat!(
            "{\"_id\": \"d1\", \"title\": \"T\", \"text\": \"body\", \"metadata\": {\"k\": 1}}\n",
            "\n",
            "{\"_id\": 42, \"text\": \"no title\"}\r\n",
            "   \n",
            "{\"_id\": \"d3\", \"title\": null, \"text\": \"x\", \"metadata\": null}\n",
        ));
        let docs = read_corpus(f.path()).unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].id, "d1");
        assert_eq!(docs[0].title, "T");
        assert_eq!(docs[0].metadata["k"], serde_json::json!(1));
        assert_eq!(docs[1].id, "42");
        assert_eq!(docs[1].title, "");
        assert_eq!(docs[2].title, "");
        assert!(docs[2].metadata.is_empty());
    }

    #[test]
    fn corpus_malformed_line_is_named() {
        let f = file(concat!(
            "{\"_id\": \"d1\", \"text\": \"a\"}\n",
            "\n",
            "{\"_id\": \"d2\", \"text\": \"b\"\n",
        ));
        match read_corpus(f.path()).unwrap_err() {
            Error::Malformed { path, line, .. } => {
                assert_eq!(path, f.path());
                assert_eq!(line, 3);
            }
            other => panic!("unexpected {other:?}"),
        }
        // The streaming reader yields the good document first.
        let mut it = corpus_iter(f.path()).unwrap();
        assert_eq!(it.next().unwrap().unwrap().id, "d1");
        assert!(matches!(
            it.next().unwrap(),
            Err(Error::Malformed { line: 3, .. })
        ));
        let msg = read_corpus(f.path()).unwrap_err().to_string();
        assert!(msg.contains(":3:"), "{msg}");
    }

    #[test]
    fn corpus_missing_text_is_malformed() {
        let f = file("{\"_id\": \"d1\", \"title\": \"only\"}\n");
        assert!(matches!(
            read_corpus(f.path()),
            Err(Error::Malformed { line: 1, .. })
        ));
    }

    #[test]
    fn missing_file_is_io_error() {
        assert!(matches!(
            read_corpus("/nonexistent/corpus.jsonl"),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn queries_keep_file_order() {
        let f = file("{\"_id\": \"b\", \"text\": \"second?\", \"metadata\": {}}\n{\"_id\": \"a\", \"text\": \"first?\"}\n");
        let q = read_queries(f.path()).unwrap();
        assert_eq!(
            q,
            vec![
                Query {
                    id: "b".into(),
                    text: "second?".into()
                },
                Query {
                    id: "a".into(),
                    text: "first?".into()
                },
            ]
        );
    }

    #[test]
    fn qrels_beir_tsv_with_header() {
        let f = file("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t2\n\nq2\td 3\t0\n");
        let (q, fmt) = read_qrels_with_format(f.path()).unwrap();
        assert_eq!(fmt, QrelsFormat::BeirTsv);
        assert_eq!(q["q1"]["d1"], 1);
        assert_eq!(q["q1"]["d2"], 2);
        assert_eq!(q["q2"]["d 3"], 0);
    }

    #[test]
    fn qrels_beir_tsv_without_header() {
        let f = file("q1\td1\t1\nq2\td2\t1.0\n");
        let (q, fmt) = read_qrels_with_format(f.path()).unwrap();
        assert_eq!(fmt, QrelsFormat::BeirTsv);
        assert_eq!(q.len(), 2);
        assert_eq!(q["q2"]["d2"], 1);
    }

    #[test]
    fn qrels_trec_format() {
        let f = file("q1 0 d1 1\nq1 0 d2 -1\nq2\t0\td9\t3\nq3  Q0  d1   0\n");
        let (q, fmt) = read_qrels_with_format(f.path()).unwrap();
        assert_eq!(fmt, QrelsFormat::Trec);
        assert_eq!(q["q1"]["d2"], -1);
        assert_eq!(q["q2"]["d9"], 3);
        assert_eq!(q["q3"]["d1"], 0);
    }

    #[test]
    fn qrels_malformed_lines() {
        // A TREC file with a short line.
        let f = file("q1 0 d1 1\n\nq1 0 d2\n");
        assert!(matches!(
            read_qrels(f.path()),
            Err(Error::Malformed { line: 3, .. })
        ));
        // A header is only allowed on the first line.
        let f = file("q1\td1\t1\nquery-id\tcorpus-id\tscore\n");
        assert!(matches!(
            read_qrels(f.path()),
            Err(Error::Malformed { line: 2, .. })
        ));
        // A TREC file with a non-integer grade.
        let f = file("q1 0 d1 0.5\n");
        assert!(matches!(
            read_qrels(f.path()),
            Err(Error::Malformed { line: 1, .. })
        ));
        // Neither format.
        let f = file("q1 d1\n");
        assert!(matches!(
            read_qrels(f.path()),
            Err(Error::Malformed { line: 1, .. })
        ));
    }

    #[test]
    fn dataset_keeps_judged_queries_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("qrels")).unwrap();
        std::fs::write(
            dir.path().join("queries.jsonl"),
            "{\"_id\": \"1\", \"text\": \"one\"}\n{\"_id\": \"2\", \"text\": \"two\"}\n{\"_id\": \"3\", \"text\": \"three\"}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("qrels/test.tsv"),
            "query-id\tcorpus-id\tscore\n3\td1\t1\n1\td2\t1\n",
        )
        .unwrap();
        let ds = Dataset::open(dir.path(), "test").unwrap();
        assert!(ds.corpus.is_none());
        let ids: Vec<&str> = ds.queries.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(ids, ["1", "3"]);
        assert_eq!(ds.qrels.len(), 2);

        std::fs::write(dir.path().join("corpus.jsonl"), "").unwrap();
        let ds = Dataset::open(dir.path(), "test").unwrap();
        assert_eq!(ds.corpus, Some(dir.path().join("corpus.jsonl")));
        assert!(matches!(
            Dataset::open(dir.path(), "dev"),
            Err(Error::MissingFile(_))
        ));
    }
}
