//! TREC run files: `qid Q0 docid rank score tag`, one retrieved document a
//! line.
//!
//! trec_eval ignores the rank column and orders each query's documents by
//! score (descending), breaking ties by document id descending; see
//! [`trec_order`]. It holds scores as C `float`s, so scores equal once
//! rounded to `f32` tie. Scores are written with full `f64` precision, so a
//! run read back orders exactly as the one written, in trec_eval and here.

use crate::lines::NumberedLines;
use crate::{Error, Result};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// A retrieval run: query id → (document id, score) in rank order.
pub type Run = BTreeMap<String, Vec<(String, f64)>>;

/// trec_eval's score comparison: it stores scores as C `float`, so two
/// scores that round to the same `f32` are a tie (`1.0` and `1.0 + 1e-9`
/// are). Made a total order: NaN sorts below every number; `-0.0 == 0.0`.
pub(crate) fn cmp_score(a: f64, b: f64) -> Ordering {
    let (a, b) = (a as f32, b as f32);
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.partial_cmp(&b).expect("not NaN"),
    }
}

/// trec_eval's ranking rule: score descending, compared after rounding to
/// `f32` as trec_eval does, then document id descending (byte-wise, like
/// `strcmp`).
pub fn trec_cmp(a: &(String, f64), b: &(String, f64)) -> Ordering {
    cmp_score(b.1, a.1).then_with(|| b.0.cmp(&a.0))
}

/// Sort one query's documents the way trec_eval will rank them. Writing a
/// run in this order makes its rank column agree with what is evaluated.
pub fn trec_order(docs: &mut [(String, f64)]) {
    docs.sort_by(trec_cmp);
}

fn check_token(what: &str, s: &str) -> Result<()> {
    if s.is_empty() || s.chars().any(char::is_whitespace) {
        return Err(Error::InvalidRun(format!(
            "{what} {s:?} is empty or contains whitespace"
        )));
    }
    Ok(())
}

/// Write `run` in TREC format to `writer`: for each query (in id order), its
/// documents in the given order with ranks from 1. Ids and the tag must be
/// non-empty and free of whitespace; scores must not be NaN.
pub fn write_run_to(mut writer: impl Write, run: &Run, tag: &str) -> Result<()> {
    check_token("run tag", tag)?;
    let io = |e| Error::io("<run output>", e);
    for (qid, docs) in run {
        check_token("query id", qid)?;
        for (rank, (docid, score)) in docs.iter().enumerate() {
            check_token("document id", docid)?;
            if score.is_nan() {
                return Err(Error::InvalidRun(format!(
                    "score of {docid:?} for query {qid:?} is NaN"
                )));
            }
            // `{}` prints the shortest string that parses back to the same
            // f64, so ties stay ties and near-ties stay ordered.
            writeln!(writer, "{qid} Q0 {docid} {} {score} {tag}", rank + 1).map_err(io)?;
        }
    }
    writer.flush().map_err(io)
}

/// Write `run` to a TREC run file at `path` (see [`write_run_to`]).
pub fn write_run(path: impl AsRef<Path>, run: &Run, tag: &str) -> Result<()> {
    let path = path.as_ref();
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    write_run_to(BufWriter::new(file), run, tag).map_err(|e| match e {
        Error::Io { source, .. } => Error::io(path, source),
        other => other,
    })
}

/// Read a TREC run file. Lines have 6 whitespace-separated fields (a missing
/// tag is tolerated); the rank column is checked to be an integer but
/// otherwise ignored. Documents keep their file order. A document listed
/// twice for one query, or a score that is not a finite number, is an
/// [`Error::Malformed`].
pub fn read_run(path: impl AsRef<Path>) -> Result<Run> {
    let path = path.as_ref();
    let mut run = Run::new();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    for item in NumberedLines::open(path)? {
        let (line, text) = item?;
        let fields: Vec<&str> = text.split_whitespace().collect();
        if !(5..=6).contains(&fields.len()) {
            return Err(Error::malformed(
                path,
                line,
                format!(
                    "expected `qid Q0 docid rank score tag`, found {} fields",
                    fields.len()
                ),
            ));
        }
        let (qid, docid) = (fields[0], fields[2]);
        if fields[3].parse::<i64>().is_err() {
            return Err(Error::malformed(
                path,
                line,
                format!("rank {:?} is not an integer", fields[3]),
            ));
        }
        let score: f64 = fields[4]
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite())
            .ok_or_else(|| {
                Error::malformed(
                    path,
                    line,
                    format!("score {:?} is not a finite number", fields[4]),
                )
            })?;
        if !seen.insert((qid.to_owned(), docid.to_owned())) {
            return Err(Error::malformed(
                path,
                line,
                format!("document {docid:?} listed twice for query {qid:?}"),
            ));
        }
        run.entry(qid.to_owned())
            .or_default()
            .push((docid.to_owned(), score));
    }
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_of(entries: &[(&str, &[(&str, f64)])]) -> Run {
        entries
            .iter()
            .map(|(q, docs)| {
                (
                    q.to_string(),
                    docs.iter().map(|(d, s)| (d.to_string(), *s)).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn write_then_read_round_trips_exactly() {
        let run = run_of(&[
            (
                "q1",
                &[("d1", 0.1 + 0.2), ("d2", 0.3), ("d3", 1e-300), ("d4", -2.5)],
            ),
            ("q2", &[("x", 1.0 / 3.0), ("y", 123_456_789.123_456_79)]),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.trec");
        write_run(&path, &run, "sift").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let first: Vec<&str> = text.lines().next().unwrap().split(' ').collect();
        assert_eq!(
            first,
            ["q1", "Q0", "d1", "1", "0.30000000000000004", "sift"]
        );
        assert_eq!(read_run(&path).unwrap(), run);
    }

    #[test]
    fn write_rejects_bad_tokens() {
        let run = run_of(&[("q 1", &[("d1", 1.0)])]);
        assert!(matches!(
            write_run_to(Vec::new(), &run, "t"),
            Err(Error::InvalidRun(_))
        ));
        let run = run_of(&[("q1", &[("d1", f64::NAN)])]);
        assert!(write_run_to(Vec::new(), &run, "t").is_err());
        assert!(write_run_to(Vec::new(), &Run::new(), "").is_err());
    }

    #[test]
    fn read_rejects_malformed_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run");
        for (text, line) in [
            ("q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 t\n", 2),
            ("q1 Q0 d1 1 0.5 t\n\nq1 Q0 d2 x 0.4 t\n", 3),
            ("q1 Q0 d1 1 nan t\n", 1),
            ("q1 Q0 d1 1 0.5 t\nq1 Q0 d1 2 0.4 t\n", 2),
        ] {
            std::fs::write(&path, text).unwrap();
            match read_run(&path) {
                Err(Error::Malformed { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        std::fs::write(&path, "q1 Q0 d1 1 0.5\nq2\tQ0\td1\t1\t7\tt\n").unwrap();
        let run = read_run(&path).unwrap();
        assert_eq!(run["q2"], vec![("d1".to_string(), 7.0)]);
    }

    #[test]
    fn trec_order_breaks_ties_by_docid_descending() {
        let mut docs: Vec<(String, f64)> = [
            ("a", 1.0),
            ("c", 2.0),
            ("b", 1.0),
            ("d", f64::NAN),
            ("e", -0.0),
            ("f", 0.0),
            ("g", 1.0 + 1e-9),
            ("h", 1.0 + 1e-6),
            ("i", 1e-50),
        ]
        .iter()
        .map(|(d, s)| (d.to_string(), *s))
        .collect();
        trec_order(&mut docs);
        let ids: Vec<&str> = docs.iter().map(|(d, _)| d.as_str()).collect();
        // g ties with a and b in f32, h does not; i is 0 in f32.
        assert_eq!(ids, ["c", "h", "g", "b", "a", "i", "f", "e", "d"]);
    }
}
