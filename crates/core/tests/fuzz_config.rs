//! Fuzzing the TOML config reader ([`Config::from_toml_file`]): the
//! default config as `sift config` prints it, mutated key by key (values of
//! the wrong type, numbers out of range, NaN and infinities, keys removed,
//! unknown keys) and byte by byte (cut short, a byte changed, a line
//! repeated, a garbage line). The reader must return `Ok`, a parse error
//! that names the line and, for a mutated key, the key; or a validation
//! error that names the setting. Never a panic.
//!
//! `SIFT_FUZZ_SCALE=N` runs N times as many cases (`just fuzz`). The
//! target prints `fuzz: TOML config: CASES cases, CRASHES crashes, ...`.

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use sift_core::{Config, Error};
use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::time::Instant;
use toml::Value;

fn scale() -> u32 {
    std::env::var("SIFT_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// Every leaf key of the default config, as paths (`["hnsw", "m"]`).
fn leaf_keys() -> Vec<Vec<String>> {
    fn walk(table: &toml::Table, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        for (key, value) in table {
            prefix.push(key.clone());
            match value {
                Value::Table(t) => walk(t, prefix, out),
                _ => out.push(prefix.clone()),
            }
            prefix.pop();
        }
    }
    let table: toml::Table = toml::from_str(&Config::default().to_toml()).unwrap();
    let mut out = Vec::new();
    walk(&table, &mut Vec::new(), &mut out);
    // Keys the default leaves out (`None`), which a file may set.
    for key in [
        "search.instruction",
        "search.stage1_weight",
        "search.retriever_depth",
        "models.bi_encoder.path",
        "models.cross_encoder.path",
    ] {
        let path: Vec<String> = key.split('.').map(String::from).collect();
        if !out.contains(&path) {
            out.push(path);
        }
    }
    out
}

#[derive(Clone, Debug)]
enum Mutation {
    Set(usize, Value),
    Remove(usize),
    /// An unknown key in the table of this key.
    Unknown(usize, String),
}

#[derive(Clone, Debug)]
enum Damage {
    None,
    /// Keep this share (per mille) of the bytes.
    Truncate(u16),
    Flip(u16, u8),
    /// Repeat the line at this share of the file (a duplicate key).
    RepeatLine(u16),
    GarbageLine(u16, String),
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::Integer),
        prop_oneof![
            Just(0i64),
            Just(-1),
            Just(1),
            Just(2),
            Just(i64::MAX),
            Just(i64::MIN)
        ]
        .prop_map(Value::Integer),
        prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.5),
            Just(1e300)
        ]
        .prop_map(Value::Float),
        any::<f64>().prop_map(Value::Float),
        any::<bool>().prop_map(Value::Boolean),
        any::<String>().prop_map(Value::String),
        Just(Value::String("NaN".into())),
        Just(Value::Array(vec![Value::Integer(1)])),
        Just(Value::Table(toml::Table::new())),
    ]
}

fn case() -> impl Strategy<Value = (Vec<Mutation>, Damage)> {
    let keys = leaf_keys().len();
    let mutation = prop_oneof![
        4 => (0..keys, value()).prop_map(|(k, v)| Mutation::Set(k, v)),
        1 => (0..keys).prop_map(Mutation::Remove),
        1 => (0..keys, "zz_[a-z]{1,8}").prop_map(|(k, n)| Mutation::Unknown(k, n)),
    ];
    let damage = prop_oneof![
        6 => Just(Damage::None),
        1 => (0u16..1000).prop_map(Damage::Truncate),
        1 => (0u16..1000, any::<u8>()).prop_map(|(a, b)| Damage::Flip(a, b)),
        1 => (0u16..1000).prop_map(Damage::RepeatLine),
        1 => (0u16..1000, "[\\PC]{1,30}").prop_map(|(a, s)| Damage::GarbageLine(a, s)),
    ];
    (prop::collection::vec(mutation, 0..3), damage)
}

fn table_at<'a>(root: &'a mut toml::Table, path: &[String]) -> &'a mut toml::Table {
    let mut table = root;
    for key in path {
        table = table
            .entry(key.clone())
            .or_insert_with(|| Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("a table on the path");
    }
    table
}

/// `word` appears in `message` as a whole word.
fn names(message: &str, word: &str) -> bool {
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    message.match_indices(word).any(|(i, _)| {
        !is_word(message[..i].chars().next_back())
            && !is_word(message[i + word.len()..].chars().next())
    })
}

#[test]
fn fuzz_toml_config() {
    let keys = leaf_keys();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sift.toml");
    let (cases, crashes, oks, parse_errors, invalid) = (
        Cell::new(0u32),
        Cell::new(0u32),
        Cell::new(0u32),
        Cell::new(0u32),
        Cell::new(0u32),
    );
    let bump = |c: &Cell<u32>| c.set(c.get() + 1);
    let started = Instant::now();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 3000 * scale(),
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&case(), |(mutations, damage)| {
        bump(&cases);
        let mut root: toml::Table = toml::from_str(&Config::default().to_toml()).unwrap();
        // The leaf names a mutation touched: an error must name one.
        let mut touched: Vec<String> = Vec::new();
        for m in &mutations {
            match m {
                Mutation::Set(k, v) => {
                    let (leaf, parent) = keys[*k].split_last().unwrap();
                    table_at(&mut root, parent).insert(leaf.clone(), v.clone());
                    touched.push(leaf.clone());
                }
                Mutation::Remove(k) => {
                    let (leaf, parent) = keys[*k].split_last().unwrap();
                    table_at(&mut root, parent).remove(leaf);
                }
                Mutation::Unknown(k, name) => {
                    let parent = &keys[*k][..keys[*k].len() - 1];
                    table_at(&mut root, parent).insert(name.clone(), Value::Integer(1));
                    touched.push(name.clone());
                }
            }
        }
        let text = toml::to_string(&root).unwrap();
        let mut bytes = text.into_bytes();
        let at = |share: u16, len: usize| share as usize * len / 1000;
        let lines =
            |b: &[u8]| -> Vec<Vec<u8>> { b.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect() };
        match &damage {
            Damage::None => {}
            Damage::Truncate(keep) => bytes.truncate(at(*keep, bytes.len())),
            Damage::Flip(share, byte) => {
                let i = at(*share, bytes.len()).min(bytes.len() - 1);
                bytes[i] = *byte;
            }
            Damage::RepeatLine(share) => {
                let mut l = lines(&bytes);
                let i = at(*share, l.len()).min(l.len() - 1);
                let copy = l[i].clone();
                l.insert(i, copy);
                bytes = l.join(&b'\n');
            }
            Damage::GarbageLine(share, garbage) => {
                let mut l = lines(&bytes);
                let i = at(*share, l.len());
                l.insert(i, garbage.replace('\n', " ").into_bytes());
                bytes = l.join(&b'\n');
            }
        }
        std::fs::write(&path, &bytes).unwrap();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| Config::from_toml_file(&path)));
        let result = match outcome {
            Ok(r) => r,
            Err(_) => {
                bump(&crashes);
                return Err(TestCaseError::fail("panicked"));
            }
        };
        let damaged = !matches!(damage, Damage::None);
        match result {
            Ok(config) => {
                bump(&oks);
                config
                    .validate()
                    .map_err(|e| TestCaseError::fail(format!("accepted but invalid: {e}")))?;
            }
            Err(Error::ConfigParse { path: p, message }) => {
                bump(&parse_errors);
                prop_assert_eq!(&p, &path);
                // Every bad value is located; a bad type or unknown key is
                // named (toml shows the offending line or the key).
                prop_assert!(
                    message.contains("line")
                        || names(&message, "field")
                        || message.contains("missing"),
                    "a parse error without its line: {}",
                    message
                );
                if !damaged {
                    prop_assert!(
                        touched.iter().any(|k| names(&message, k)),
                        "a parse error naming none of {:?}: {}",
                        touched,
                        message
                    );
                }
            }
            Err(Error::InvalidSetting(message)) => {
                bump(&invalid);
                if !damaged {
                    prop_assert!(
                        touched.iter().any(|k| names(&message, k)),
                        "a validation error naming none of {:?}: {}",
                        touched,
                        message
                    );
                }
            }
            Err(other) => return Err(TestCaseError::fail(format!("unexpected error: {other}"))),
        }
        Ok(())
    });
    println!(
        "fuzz: TOML config: {} cases, {} crashes, {} read, {} parse errors naming the line and key, {} invalid settings named, {:.1?}",
        cases.get(),
        crashes.get(),
        oks.get(),
        parse_errors.get(),
        invalid.get(),
        started.elapsed()
    );
    if let Err(e) = result {
        panic!("TOML config: {e}");
    }
}

/// Settings that passed validation yet broke the engine, found by hand
/// while writing the fuzz target: each is refused, naming the key.
#[test]
fn settings_that_break_the_models_are_refused() {
    for (toml, key) in [
        ("[models]\nembed_max_tokens = 0\n", "embed_max_tokens"),
        ("[models]\nembed_max_tokens = 1\n", "embed_max_tokens"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sift.toml");
        std::fs::write(&path, toml).unwrap();
        match Config::from_toml_file(&path) {
            Err(Error::InvalidSetting(message)) => {
                assert!(names(&message, key), "{message}")
            }
            other => panic!("{toml}: {other:?}"),
        }
    }
}

/// Found by fuzzing: a file that is not UTF-8 was an I/O error without a
/// position; it is a parse error naming the line.
#[test]
fn a_config_that_is_not_utf8_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sift.toml");
    std::fs::write(&path, b"[search]\ndepth = \xff20\n").unwrap();
    match Config::from_toml_file(&path) {
        Err(Error::ConfigParse { message, .. }) => {
            assert!(message.contains("line 2, column 9"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}
