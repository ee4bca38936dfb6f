//! Fuzzing the file readers a stranger's files reach: BEIR corpus and
//! queries JSONL, qrels (BEIR TSV and TREC) and TREC run files.
//!
//! Each target writes a valid file, then damages it: one line mutated
//! (a character deleted, inserted or replaced, invalid UTF-8, a field
//! dropped, garbage), a line repeated elsewhere, the file cut at a random
//! byte, or random bytes instead of the file. The reader must return `Ok`
//! or an [`Error::Malformed`] that names the file and a line of it (the
//! mutated line, when one line was mutated and it is not the first, whose
//! shape decides the format); never panic. An undamaged file must read
//! back exactly as generated.
//!
//! Case counts are fixed per target (seconds in a debug build);
//! `SIFT_FUZZ_SCALE=N` runs N times as many (`just fuzz`). Each target
//! prints `fuzz: TARGET: CASES cases, CRASHES crashes, ...`.

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::json;
use sift_metrics::{read_corpus, read_qrels, read_queries, read_run, write_run, Error, Qrels, Run};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::Instant;

fn scale() -> u32 {
    std::env::var("SIFT_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// How a valid file is damaged.
#[derive(Clone, Debug)]
enum Damage {
    None,
    /// Line (0-based index into the file's lines) and what is done to it.
    Line(usize, LineEdit),
    /// Line `.0` is written again after line `.1`.
    Repeat(usize, usize),
    /// Keep this share (per mille) of the bytes.
    Truncate(u16),
    Random(Vec<u8>),
}

#[derive(Clone, Debug)]
enum LineEdit {
    /// Delete the character at this share (per mille) of the line.
    Delete(u16),
    Insert(u16, char),
    Replace(String),
    InvalidUtf8(u16),
    /// Drop the whitespace-separated field at this index.
    DropField(usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    let edit = prop_oneof![
        (0u16..1000).prop_map(LineEdit::Delete),
        (0u16..1000, any::<char>()).prop_map(|(at, c)| LineEdit::Insert(at, c)),
        any::<String>().prop_map(LineEdit::Replace),
        (0u16..1000).prop_map(LineEdit::InvalidUtf8),
        (0usize..6).prop_map(LineEdit::DropField),
    ];
    prop_oneof![
        2 => Just(Damage::None),
        8 => (any::<usize>(), edit).prop_map(|(l, e)| Damage::Line(l, e)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Damage::Repeat(a, b)),
        2 => (0u16..1000).prop_map(Damage::Truncate),
        1 => prop::collection::vec(any::<u8>(), 0..400).prop_map(Damage::Random),
    ]
}

/// The bytes of `lines` after `damage`, and the 1-based number of the one
/// line it edited, if it edited one.
fn apply(lines: &[String], damage: &Damage) -> (Vec<u8>, Option<usize>) {
    let mut lines: Vec<Vec<u8>> = lines.iter().map(|l| l.clone().into_bytes()).collect();
    let mut edited = None;
    match damage {
        Damage::None => {}
        Damage::Line(i, edit) => {
            let i = i % lines.len();
            edited = Some(i + 1);
            let line = &mut lines[i];
            let at = |share: u16, len: usize| (share as usize * len) / 1000;
            let text = String::from_utf8(line.clone()).expect("generated lines are UTF-8");
            let chars: Vec<char> = text.chars().collect();
            *line = match edit {
                LineEdit::Delete(share) => {
                    let mut c = chars.clone();
                    if !c.is_empty() {
                        c.remove(at(*share, c.len()).min(c.len() - 1));
                    }
                    c.into_iter().collect::<String>().into_bytes()
                }
                LineEdit::Insert(share, ch) => {
                    let mut c = chars.clone();
                    // A newline would make two lines of one.
                    let ch = if *ch == '\n' || *ch == '\r' {
                        '\u{1}'
                    } else {
                        *ch
                    };
                    c.insert(at(*share, c.len()), ch);
                    c.into_iter().collect::<String>().into_bytes()
                }
                LineEdit::Replace(s) => s.replace(['\n', '\r'], " ").into_bytes(),
                LineEdit::InvalidUtf8(share) => {
                    let mut b = line.clone();
                    let i = at(*share, b.len());
                    b.splice(i..i, [0xff, 0xfe]);
                    b
                }
                LineEdit::DropField(f) => {
                    let sep = if text.contains('\t') { "\t" } else { " " };
                    let mut fields: Vec<&str> = text.split(sep).collect();
                    if fields.len() > 1 {
                        fields.remove(f % fields.len());
                    }
                    fields.join(sep).into_bytes()
                }
            };
        }
        Damage::Repeat(a, b) => {
            let (a, b) = (a % lines.len(), b % lines.len());
            let copy = lines[a].clone();
            lines.insert(b + 1, copy);
        }
        Damage::Truncate(_) | Damage::Random(_) => {}
    }
    let mut bytes = lines.join(&b"\n"[..]);
    bytes.push(b'\n');
    match damage {
        Damage::Truncate(keep) => bytes.truncate(keep.to_owned() as usize * bytes.len() / 1000),
        Damage::Random(b) => bytes = b.clone(),
        _ => {}
    }
    (bytes, edited)
}

/// `Ok`, or an error that names `path` and a line within the file (the
/// edited one when `must_be` is given).
fn check_error<T>(
    result: &Result<T, Error>,
    path: &Path,
    bytes: &[u8],
    must_be: Option<usize>,
) -> Result<(), String> {
    let Err(e) = result else { return Ok(()) };
    let lines = bytes.split(|&b| b == b'\n').count();
    match e {
        Error::Malformed {
            path: p,
            line,
            message,
        } => {
            let shown = e.to_string();
            if p != path || !shown.starts_with(&format!("{}:{line}:", path.display())) {
                return Err(format!("the error does not name the file: {shown}"));
            }
            if *line == 0 || *line > lines {
                return Err(format!("line {line} of a {lines}-line file: {shown}"));
            }
            if let Some(expected) = must_be {
                if *line != expected {
                    return Err(format!(
                        "line {line}, but line {expected} was damaged: {shown}"
                    ));
                }
            }
            if message.trim().is_empty() {
                return Err(format!("no message: {shown}"));
            }
            Ok(())
        }
        other => Err(format!("not a Malformed error naming a line: {other}")),
    }
}

/// Run a target: write the case's file, read it, check; count and print.
fn fuzz<S: Strategy>(
    target: &str,
    cases: u32,
    strategy: S,
    case: impl Fn(&S::Value, &Path) -> Result<bool, String>,
) where
    S::Value: std::fmt::Debug,
{
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input");
    let (run, crashes, oks, errors) = (
        Cell::new(0u32),
        Cell::new(0u32),
        Cell::new(0u32),
        Cell::new(0u32),
    );
    let bump = |c: &Cell<u32>| c.set(c.get() + 1);
    let started = Instant::now();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: cases * scale(),
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&strategy, |input| {
        bump(&run);
        match std::panic::catch_unwind(AssertUnwindSafe(|| case(&input, &path))) {
            Err(_) => {
                bump(&crashes);
                Err(TestCaseError::fail("panicked"))
            }
            Ok(Ok(true)) => {
                bump(&oks);
                Ok(())
            }
            Ok(Ok(false)) => {
                bump(&errors);
                Ok(())
            }
            Ok(Err(why)) => Err(TestCaseError::fail(why)),
        }
    });
    println!(
        "fuzz: {target}: {} cases, {} crashes, {} read, {} refused with an error naming the file and line, {:.1?}",
        run.get(),
        crashes.get(),
        oks.get(),
        errors.get(),
        started.elapsed()
    );
    if let Err(e) = result {
        panic!("{target}: {e}");
    }
}

fn id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,12}"
}

fn some_text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z ]{0,60}", any::<String>()]
}

#[test]
fn fuzz_beir_corpus() {
    let docs = prop::collection::vec((id(), some_text(), some_text(), any::<bool>()), 1..12);
    fuzz(
        "BEIR corpus.jsonl",
        1500,
        (docs, damage()),
        |(docs, damage), path| {
            let lines: Vec<String> = docs
                .iter()
                .map(|(id, title, text, meta)| {
                    let mut v = json!({"_id": id, "title": title, "text": text});
                    if *meta {
                        v["metadata"] = json!({"source": "fuzz"});
                    }
                    v.to_string()
                })
                .collect();
            let (bytes, edited) = apply(&lines, damage);
            std::fs::write(path, &bytes).unwrap();
            let result = read_corpus(path);
            if matches!(damage, Damage::None) {
                let read = result.map_err(|e| format!("a valid corpus refused: {e}"))?;
                let ids: Vec<&str> = read.iter().map(|d| d.id.as_str()).collect();
                let sent: Vec<&str> = docs.iter().map(|d| d.0.as_str()).collect();
                return (ids == sent && read.iter().zip(docs).all(|(r, d)| r.text == d.2))
                    .then_some(true)
                    .ok_or_else(|| "read back differently".into());
            }
            check_error(&result, path, &bytes, edited)?;
            Ok(result.is_ok())
        },
    );
}

#[test]
fn fuzz_beir_queries() {
    let queries = prop::collection::vec((id(), some_text()), 1..12);
    fuzz(
        "BEIR queries.jsonl",
        1500,
        (queries, damage()),
        |(queries, damage), path| {
            let lines: Vec<String> = queries
                .iter()
                .map(|(id, text)| json!({"_id": id, "text": text, "metadata": {}}).to_string())
                .collect();
            let (bytes, edited) = apply(&lines, damage);
            std::fs::write(path, &bytes).unwrap();
            let result = read_queries(path);
            if matches!(damage, Damage::None) {
                let read = result.map_err(|e| format!("valid queries refused: {e}"))?;
                let back: Vec<(String, String)> =
                    read.into_iter().map(|q| (q.id, q.text)).collect();
                return (back == *queries)
                    .then_some(true)
                    .ok_or_else(|| "read back differently".into());
            }
            check_error(&result, path, &bytes, edited)?;
            Ok(result.is_ok())
        },
    );
}

#[test]
fn fuzz_qrels() {
    let judgements = prop::collection::btree_map((id(), id()), -1i32..4, 1..15);
    let layout = prop_oneof![Just("beir+header"), Just("beir"), Just("trec")];
    fuzz(
        "qrels (BEIR TSV, TREC)",
        1500,
        (judgements, layout, damage()),
        |(judged, layout, damage), path| {
            let mut lines: Vec<String> = Vec::new();
            if *layout == "beir+header" {
                lines.push("query-id\tcorpus-id\tscore".into());
            }
            for ((q, d), grade) in judged {
                lines.push(match *layout {
                    "trec" => format!("{q} 0 {d} {grade}"),
                    _ => format!("{q}\t{d}\t{grade}"),
                });
            }
            let (bytes, edited) = apply(&lines, damage);
            std::fs::write(path, &bytes).unwrap();
            let result = read_qrels(path);
            if matches!(damage, Damage::None) {
                let read = result.map_err(|e| format!("valid qrels refused: {e}"))?;
                let mut expected = Qrels::new();
                for ((q, d), g) in judged {
                    expected.entry(q.clone()).or_default().insert(d.clone(), *g);
                }
                return (read == expected)
                    .then_some(true)
                    .ok_or_else(|| "read back differently".into());
            }
            // The first line decides the format; a later line is judged alone.
            check_error(&result, path, &bytes, edited.filter(|&l| l > 1))?;
            Ok(result.is_ok())
        },
    );
}

fn valid_run() -> impl Strategy<Value = Run> {
    prop::collection::btree_map(
        id(),
        prop::collection::btree_map(id(), -1e6f64..1e6, 1..8),
        1..5,
    )
    .prop_map(|run| {
        run.into_iter()
            .map(|(q, docs)| (q, docs.into_iter().collect::<Vec<_>>()))
            .collect::<BTreeMap<_, _>>()
    })
}

#[test]
fn fuzz_trec_run() {
    fuzz(
        "TREC run file",
        1500,
        (valid_run(), damage()),
        |(run, damage), path| {
            // The writer's own output, then damaged.
            write_run(path, run, "fuzz").map_err(|e| format!("cannot write a valid run: {e}"))?;
            let written = std::fs::read_to_string(path).unwrap();
            let lines: Vec<String> = written.lines().map(String::from).collect();
            let (bytes, edited) = apply(&lines, damage);
            std::fs::write(path, &bytes).unwrap();
            let result = read_run(path);
            if matches!(damage, Damage::None) {
                let read = result.map_err(|e| format!("a valid run refused: {e}"))?;
                return (read == *run)
                    .then_some(true)
                    .ok_or_else(|| "read back differently".into());
            }
            // A repeated line is refused where the repeat is.
            let must_be = match damage {
                Damage::Repeat(a, b) => {
                    let (a, b) = (a % lines.len(), b % lines.len());
                    Some(if b >= a { b + 2 } else { a + 2 })
                }
                _ => edited,
            };
            check_error(&result, path, &bytes, must_be)?;
            Ok(result.is_ok())
        },
    );
}
