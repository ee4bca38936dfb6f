//! Fuzzing every HTTP route a stranger can reach, in process: the router
//! of `sift serve` ([`sift_server::app`]) is called with
//! `tower::ServiceExt::oneshot`, thousands of requests without a socket.
//!
//! Bodies start from a valid request of the route and are then mutated
//! structure-aware (wrong types, missing and unknown fields, huge and
//! negative numbers, NaN-ish literals, out-of-range knobs, deep nesting,
//! huge strings within the body limit) and byte-wise (truncation, flipped
//! bytes, invalid UTF-8, trailing garbage, random bytes). Every answer must
//! be:
//! * never a panic and never a 5xx, except a documented 503 (no reranker
//!   or language model loaded, overloaded, timed out);
//! * for every 4xx and 503, `{"error": {"code", "message"}}` JSON whose
//!   message names the problem: a syntax error says JSON, line and column;
//!   a well-formed body that breaks a rule names the field (one of those
//!   the case mutated); an over-limit body says limit.
//!
//! Case counts are fixed per target so the file runs in about a minute on
//! 2 cores in a debug build; `SIFT_FUZZ_SCALE=N` runs N times as many
//! (`just fuzz`). Each target prints `fuzz: TARGET: CASES cases, CRASHES
//! crashes, ...`.

mod common;

use axum::body::Body;
use axum::http::{Method, Request};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};
use sift_core::{Config, ModelSource};
use sift_engine::Engine;
use sift_server::ServerOptions;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Instant;
use tower::ServiceExt;

/// Small limits, so huge strings and batches reach them quickly.
const MAX_BODY: usize = 64 << 10;
const MAX_BATCH: usize = 8;

/// The 503s the API documents: no reranker, no language model, overloaded,
/// timed out.
const DOCUMENTED_503: [&str; 5] = [
    "reranker_unavailable",
    "llm_unavailable",
    "overloaded",
    "timeout",
    "unavailable",
];

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| sift_server::runtime().unwrap())
}

/// The router over the test corpus: no cross-encoder unless `reranker`,
/// and a GGUF path that does not exist, so the LLM routes answer 503 at
/// once instead of generating.
fn app(reranker: bool) -> axum::Router {
    static PLAIN: OnceLock<axum::Router> = OnceLock::new();
    static RERANKING: OnceLock<(axum::Router, tempfile::TempDir)> = OnceLock::new();
    let build = |reranker_dir: Option<&std::path::Path>| {
        let index = tempfile::tempdir().unwrap().keep();
        let mut config = Config::default();
        config.models.bi_encoder = ModelSource::local(common::minilm_dir());
        config.models.cross_encoder = match reranker_dir {
            Some(dir) => ModelSource::local(dir),
            None => ModelSource::default(),
        };
        config.models.cross_encoder_fallback = None;
        config.rerank.max_length = 64;
        config.rerank.llm.gguf = "/nonexistent/sift-fuzz.gguf".into();
        std::env::set_var("HF_HUB_OFFLINE", "1");
        let engine = Engine::builder(&index)
            .config(config)
            .create_if_missing(true)
            .open()
            .unwrap();
        engine.index(&common::corpus(), |_| {}).unwrap();
        let options = ServerOptions {
            max_body_bytes: MAX_BODY,
            max_batch: MAX_BATCH,
            eval_dir: Some(eval_dir()),
            ..ServerOptions::default()
        };
        sift_server::app(engine.into(), options)
    };
    if reranker {
        RERANKING
            .get_or_init(|| {
                let dir = tempfile::tempdir().unwrap();
                common::throwaway_cross_encoder(dir.path());
                (build(Some(dir.path())), dir)
            })
            .0
            .clone()
    } else {
        PLAIN.get_or_init(|| build(None)).clone()
    }
}

fn eval_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eval")
}

/// One answer, read whole.
struct Answer {
    status: u16,
    head: bool,
    content_type: String,
    body: Vec<u8>,
}

fn call(app: axum::Router, method: Method, uri: &str, body: Vec<u8>) -> Answer {
    let head = method == Method::HEAD;
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("a valid request");
    runtime().block_on(async move {
        let response = app.oneshot(request).await.expect("infallible");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("the body is read")
            .to_vec();
        Answer {
            status,
            head,
            content_type,
            body,
        }
    })
}

/// `word` appears in `message` as a whole word (field names are matched
/// so: `n` must not be found inside `once`).
fn names(message: &str, word: &str) -> bool {
    let (m, w) = (message.to_lowercase(), word.to_lowercase());
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    m.match_indices(&w).any(|(i, _)| {
        !is_word(m[..i].chars().next_back()) && !is_word(m[i + w.len()..].chars().next())
    })
}

/// The error code and message of an error answer, or why it is not one.
fn error_of(answer: &Answer) -> Result<(String, String), String> {
    if !answer.content_type.starts_with("application/json") {
        return Err(format!(
            "{} with content type {:?}: {}",
            answer.status,
            answer.content_type,
            String::from_utf8_lossy(&answer.body)
        ));
    }
    let body: Value = serde_json::from_slice(&answer.body)
        .map_err(|e| format!("{}: body is not JSON ({e})", answer.status))?;
    let code = body["error"]["code"].as_str().unwrap_or_default();
    let message = body["error"]["message"].as_str().unwrap_or_default();
    if code.is_empty() || message.trim().is_empty() {
        return Err(format!("{}: not the error shape: {body}", answer.status));
    }
    Ok((code.to_string(), message.to_string()))
}

/// What a case may be answered with: the fields it broke (one of which a
/// 422 must name), and whether its bytes were damaged (then a 422 may name
/// any field of the route, since a damaged name is a new field).
struct Expect {
    fields: Vec<String>,
    route_fields: &'static [&'static str],
    damaged: bool,
}

/// The rules every answer obeys; `Err` says which was broken.
fn check(answer: &Answer, expect: &Expect) -> Result<(), String> {
    let status = answer.status;
    if (200..300).contains(&status) {
        return Ok(());
    }
    if answer.head {
        // No body to a HEAD, by HTTP's rules; the status is all there is.
        return (status < 500)
            .then_some(())
            .ok_or_else(|| format!("HEAD answered {status}"));
    }
    let (code, message) = error_of(answer)?;
    match status {
        503 if DOCUMENTED_503.contains(&code.as_str()) => Ok(()),
        500..=599 => Err(format!("{status} {code}: {message}")),
        400 if code == "invalid_json" => {
            if names(&message, "JSON") && names(&message, "line") && names(&message, "column") {
                Ok(())
            } else {
                Err(format!(
                    "a syntax error that does not say JSON, line and column: {message}"
                ))
            }
        }
        413 => names(&message, "limit")
            .then_some(())
            .ok_or_else(|| format!("413 without the limit: {message}")),
        _ => {
            let named = expect.fields.iter().any(|f| names(&message, f))
                || (expect.damaged
                    && (expect.route_fields.iter().any(|f| names(&message, f))
                        || names(&message, "field")
                        || message.contains("expected")));
            if named {
                Ok(())
            } else {
                Err(format!(
                    "{status} {code} names none of {:?}{}: {message}",
                    expect.fields,
                    if expect.damaged {
                        " (nor any field of the route)"
                    } else {
                        ""
                    }
                ))
            }
        }
    }
}

/// Counts of one target, printed when it ends.
#[derive(Default)]
struct Counts {
    cases: AtomicUsize,
    crashes: AtomicUsize,
    ok: AtomicUsize,
    errors: AtomicUsize,
    by_status: std::sync::Mutex<BTreeMap<u16, usize>>,
}

fn scale() -> u32 {
    std::env::var("SIFT_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// Run `cases` cases of `strategy` through `case` (which returns an answer
/// and what it may be), count them, print the tally, fail on the first
/// broken rule (proptest shrinks it first).
fn fuzz<S: Strategy>(
    target: &str,
    cases: u32,
    strategy: S,
    case: impl Fn(&S::Value) -> (Answer, Expect),
) where
    S::Value: std::fmt::Debug,
{
    let counts = Counts::default();
    let config = ProptestConfig {
        cases: cases * scale(),
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    };
    let started = Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |input| {
        counts.cases.fetch_add(1, Ordering::Relaxed);
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| case(&input)));
        let (answer, expect) = match outcome {
            Ok(x) => x,
            Err(_) => {
                counts.crashes.fetch_add(1, Ordering::Relaxed);
                return Err(TestCaseError::fail("panicked"));
            }
        };
        *counts
            .by_status
            .lock()
            .unwrap()
            .entry(answer.status)
            .or_default() += 1;
        if answer.status < 300 {
            counts.ok.fetch_add(1, Ordering::Relaxed);
        } else {
            counts.errors.fetch_add(1, Ordering::Relaxed);
        }
        check(&answer, &expect).map_err(TestCaseError::fail)
    });
    println!(
        "fuzz: http {target}: {} cases, {} crashes, {} answered 2xx, {} errors with a message naming the problem, statuses {:?}, {:.1?}",
        counts.cases.load(Ordering::Relaxed),
        counts.crashes.load(Ordering::Relaxed),
        counts.ok.load(Ordering::Relaxed),
        counts.errors.load(Ordering::Relaxed),
        counts.by_status.lock().unwrap(),
        started.elapsed(),
    );
    if let Err(e) = result {
        panic!("{target}: {e}");
    }
}

// ---------------------------------------------------------------- values

/// Text of 1 to `max` characters that is not all whitespace.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z ]{0,40}[a-z]".prop_map(String::from),
        2 => any::<String>().prop_filter("not blank", |s| !s.trim().is_empty()),
        1 => "[\\PC]{1,200}".prop_filter("not blank", |s| !s.trim().is_empty()),
    ]
    .prop_map(move |s: String| s.chars().take(max).collect::<String>())
    .prop_filter("not blank", |s| !s.trim().is_empty())
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<String>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        Just(Value::Null),
    ]
}

/// A free-form JSON object (metadata, filter).
fn object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-z_]{1,8}", scalar(), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// A value that no typed field accepts where it is put: of another JSON
/// type, a number out of any range, a NaN-ish literal, deeply nested.
/// Strings starting with `@raw:` are written into the body verbatim.
fn wrong_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("NaN")),
        Just(json!("Infinity")),
        Just(json!("@raw:NaN")),
        Just(json!("@raw:-Infinity")),
        Just(json!("@raw:1e400")),
        Just(json!("@raw:18446744073709551616")),
        Just(json!("@raw:-9223372036854775809")),
        Just(json!(-1)),
        Just(json!(1.5)),
        Just(json!(1e300)),
        Just(json!(true)),
        Just(json!([])),
        Just(json!({})),
        Just(json!([1, "two", null])),
        (1usize..300).prop_map(|depth| {
            let mut v = json!(1);
            for _ in 0..depth {
                v = json!([v]);
            }
            v
        }),
        any::<String>().prop_map(Value::from),
    ]
}

/// A change to a body, naming the field it is about.
#[derive(Clone, Debug)]
enum Mutation {
    /// Set `field` to `value` (of the wrong type, or out of range).
    Set(String, Value),
    Remove(String),
    /// An unknown field.
    Add(String, Value),
}

fn mutations(
    fields: &'static [&'static str],
    out_of_range: impl Strategy<Value = (String, Value)> + 'static,
) -> impl Strategy<Value = Vec<Mutation>> {
    let field = prop::sample::select(fields).prop_map(String::from);
    let one = prop_oneof![
        3 => (field.clone(), wrong_value()).prop_map(|(f, v)| Mutation::Set(f, v)),
        3 => out_of_range.prop_map(|(f, v)| Mutation::Set(f, v)),
        1 => field.prop_map(Mutation::Remove),
        1 => ("zz_[a-z]{1,8}", scalar()).prop_map(|(f, v)| Mutation::Add(f, v)),
        1 => (prop::sample::select(fields), 1usize..(MAX_BODY + 4096))
            .prop_map(|(f, n)| Mutation::Set(f.to_string(), Value::String("x".repeat(n)))),
    ];
    prop::collection::vec(one, 0..3)
}

/// Damage to the serialised body.
#[derive(Clone, Debug)]
enum Damage {
    None,
    /// Keep this share (per mille) of the bytes.
    Truncate(u16),
    /// Put `byte` at this share of the body.
    Flip(u16, u8),
    /// Insert bytes that are not UTF-8 at this share of the body.
    InvalidUtf8(u16),
    Append(String),
    /// Replace the body.
    Random(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        12 => Just(Damage::None),
        2 => (0u16..1000).prop_map(Damage::Truncate),
        2 => (0u16..1000, any::<u8>()).prop_map(|(at, b)| Damage::Flip(at, b)),
        2 => (0u16..1000).prop_map(Damage::InvalidUtf8),
        1 => "[\\PC]{1,10}".prop_map(Damage::Append),
        1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(Damage::Random),
    ]
}

/// Apply the mutations to `body` and serialise it with the damage; returns
/// the bytes, the fields the mutations touched, and whether bytes were damaged.
fn render(
    mut body: Value,
    mutations: &[Mutation],
    damage: &Damage,
) -> (Vec<u8>, Vec<String>, bool) {
    let mut fields = Vec::new();
    let map = body.as_object_mut().expect("bodies are objects");
    for m in mutations {
        match m {
            Mutation::Set(f, v) => {
                map.insert(f.clone(), v.clone());
                fields.push(f.clone());
            }
            Mutation::Remove(f) => {
                map.remove(f);
                fields.push(f.clone());
            }
            Mutation::Add(f, v) => {
                map.insert(f.clone(), v.clone());
                fields.push(f.clone());
            }
        }
    }
    let mut text = body.to_string();
    // Verbatim literals JSON values cannot hold.
    while let Some(at) = text.find("\"@raw:") {
        let end = at + 1 + text[at + 1..].find('"').expect("closing quote");
        let literal = text[at + 6..end].to_string();
        text.replace_range(at..=end, &literal);
    }
    let mut bytes = text.into_bytes();
    let at = |share: u16, len: usize| (share as usize * len) / 1000;
    let damaged = !matches!(damage, Damage::None);
    match damage {
        Damage::None => {}
        Damage::Truncate(keep) => bytes.truncate(at(*keep, bytes.len())),
        Damage::Flip(share, byte) => {
            if !bytes.is_empty() {
                let i = at(*share, bytes.len()).min(bytes.len() - 1);
                bytes[i] = *byte;
            }
        }
        Damage::InvalidUtf8(share) => {
            let i = at(*share, bytes.len());
            bytes.splice(i..i, [0xff, 0xc3, 0x28]);
        }
        Damage::Append(s) => bytes.extend_from_slice(s.as_bytes()),
        Damage::Random(b) => bytes = b.clone(),
    }
    (bytes, fields, damaged)
}

/// A valid body from optional fields: `None`s are left out.
fn body(fields: Vec<(&str, Option<Value>)>) -> Value {
    Value::Object(
        fields
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect::<Map<_, _>>(),
    )
}

fn post_case(
    app: axum::Router,
    path: &str,
    route_fields: &'static [&'static str],
    valid: Value,
    mutations: &[Mutation],
    damage: &Damage,
) -> (Answer, Expect) {
    let (bytes, fields, damaged) = render(valid, mutations, damage);
    let answer = call(app, Method::POST, path, bytes);
    (
        answer,
        Expect {
            fields,
            route_fields,
            damaged,
        },
    )
}

// ---------------------------------------------------------------- targets

const SEARCH_FIELDS: &[&str] = &[
    "query",
    "depth",
    "k",
    "rerank",
    "reranker",
    "instruction",
    "rrf_k",
    "retriever_depth",
    "stage1_weight",
    "filter",
];

fn valid_search() -> impl Strategy<Value = Value> {
    let knobs = prop::option::of(1usize..=1000).prop_flat_map(|depth| {
        let k_max = depth.unwrap_or(50);
        (Just(depth), prop::option::of(1..=k_max))
    });
    (
        text(200),
        knobs,
        prop::option::of(any::<bool>()),
        prop::option::of(prop::sample::select(
            &["cross-encoder", "llm", "listwise"][..],
        )),
        prop::option::of(text(500)),
        prop::option::of(0f32..1000.0),
        prop::option::of(1usize..=1000),
        prop::option::of(0f32..=1.0),
        prop::option::of(object()),
    )
        .prop_map(
            |(query, (depth, k), rerank, reranker, instruction, rrf_k, rd, w, filter)| {
                body(vec![
                    ("query", Some(json!(query))),
                    ("depth", depth.map(Value::from)),
                    ("k", k.map(Value::from)),
                    ("rerank", rerank.map(Value::from)),
                    ("reranker", reranker.map(Value::from)),
                    ("instruction", instruction.map(Value::from)),
                    ("rrf_k", rrf_k.map(Value::from)),
                    ("retriever_depth", rd.map(Value::from)),
                    ("stage1_weight", w.map(Value::from)),
                    ("filter", filter),
                ])
            },
        )
}

fn search_out_of_range() -> impl Strategy<Value = (String, Value)> {
    prop_oneof![
        Just(("query".into(), json!(""))),
        Just(("query".into(), json!(" \t\n"))),
        (2049usize..4000).prop_map(|n| ("query".into(), json!("q".repeat(n)))),
        prop_oneof![Just(0usize), 1001usize..100_000].prop_map(|d| ("depth".into(), json!(d))),
        prop_oneof![Just(0usize), 1001usize..100_000].prop_map(|k| ("k".into(), json!(k))),
        prop_oneof![Just(0usize), 1001usize..100_000]
            .prop_map(|d| ("retriever_depth".into(), json!(d))),
        (-1e9f64..-0.001).prop_map(|x| ("rrf_k".into(), json!(x))),
        prop_oneof![-10f64..-0.001, 1.001f64..10.0]
            .prop_map(|w| ("stage1_weight".into(), json!(w))),
        (501usize..2000).prop_map(|n| ("instruction".into(), json!("i".repeat(n)))),
        "[a-z-]{1,20}".prop_map(|r| ("reranker".into(), json!(r))),
    ]
}

#[test]
fn fuzz_search() {
    fuzz(
        "POST /search",
        600,
        (
            valid_search(),
            mutations(SEARCH_FIELDS, search_out_of_range()),
            damage(),
        ),
        |(valid, mutations, damage)| {
            post_case(
                app(false),
                "/search",
                SEARCH_FIELDS,
                valid.clone(),
                mutations,
                damage,
            )
        },
    );
}

const TEI_FIELDS: &[&str] = &[
    "query",
    "texts",
    "raw_scores",
    "return_text",
    "truncate",
    "truncation_direction",
];
const COHERE_FIELDS: &[&str] = &[
    "query",
    "documents",
    "top_n",
    "return_documents",
    "model",
    "max_chunks_per_doc",
    "max_tokens_per_doc",
];
const RERANK_FIELDS: &[&str] = &[
    "query",
    "texts",
    "raw_scores",
    "return_text",
    "truncate",
    "truncation_direction",
    "documents",
    "top_n",
    "return_documents",
    "model",
    "max_chunks_per_doc",
    "max_tokens_per_doc",
];

fn valid_rerank() -> impl Strategy<Value = Value> {
    let texts = || prop::collection::vec(text(300), 1..=MAX_BATCH);
    let tei = (
        text(200),
        texts(),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(q, t, raw, ret)| {
            body(vec![
                ("query", Some(json!(q))),
                ("texts", Some(json!(t))),
                ("raw_scores", raw.map(Value::from)),
                ("return_text", ret.map(Value::from)),
            ])
        });
    let cohere = (
        text(200),
        texts(),
        any::<bool>(),
        prop::option::of(1usize..20),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(q, t, as_objects, top_n, ret)| {
            let docs: Vec<Value> = t
                .into_iter()
                .map(|s| {
                    if as_objects {
                        json!({"text": s})
                    } else {
                        json!(s)
                    }
                })
                .collect();
            body(vec![
                ("query", Some(json!(q))),
                ("documents", Some(Value::Array(docs))),
                ("top_n", top_n.map(Value::from)),
                ("return_documents", ret.map(Value::from)),
            ])
        });
    prop_oneof![tei, cohere]
}

fn rerank_out_of_range() -> impl Strategy<Value = (String, Value)> {
    prop_oneof![
        Just(("query".into(), json!(""))),
        (2049usize..4000).prop_map(|n| ("query".into(), json!("q".repeat(n)))),
        Just(("texts".into(), json!([]))),
        Just(("documents".into(), json!([]))),
        (MAX_BATCH + 1..MAX_BATCH * 4).prop_map(|n| ("texts".into(), json!(vec!["t"; n]))),
        (MAX_BATCH + 1..MAX_BATCH * 4).prop_map(|n| ("documents".into(), json!(vec!["t"; n]))),
        Just(("documents".into(), json!([{"txt": "typo"}]))),
        Just(("documents".into(), json!([1, 2]))),
        Just(("texts".into(), json!([1, 2]))),
        Just(("top_n".into(), json!(0))),
    ]
}

fn rerank_target(name: &str, reranker: bool, cases: u32) {
    fuzz(
        name,
        cases,
        (
            valid_rerank(),
            mutations(RERANK_FIELDS, rerank_out_of_range()),
            damage(),
        ),
        |(valid, mutations, damage)| {
            // TEI and Cohere bodies name different fields.
            let _ = (TEI_FIELDS, COHERE_FIELDS);
            post_case(
                app(reranker),
                "/rerank",
                RERANK_FIELDS,
                valid.clone(),
                mutations,
                damage,
            )
        },
    );
}

#[test]
fn fuzz_rerank_without_a_reranker() {
    rerank_target("POST /rerank (no reranker: 503)", false, 400);
}

#[test]
fn fuzz_rerank_with_a_reranker() {
    rerank_target("POST /rerank (cross-encoder)", true, 60);
}

const EMBEDDING_FIELDS: &[&str] = &["input", "model", "encoding_format", "dimensions", "user"];

fn valid_embeddings() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            text(300).prop_map(Value::from),
            prop::collection::vec(text(300), 1..=MAX_BATCH).prop_map(|t| json!(t)),
        ],
        prop::option::of(text(40)),
        prop::option::of(prop::sample::select(&["float", "base64"][..])),
        prop::option::of(Just(384usize)),
    )
        .prop_map(|(input, model, format, dims)| {
            body(vec![
                ("input", Some(input)),
                ("model", model.map(Value::from)),
                ("encoding_format", format.map(Value::from)),
                ("dimensions", dims.map(Value::from)),
            ])
        })
}

fn embeddings_out_of_range() -> impl Strategy<Value = (String, Value)> {
    prop_oneof![
        Just(("input".into(), json!([]))),
        Just(("input".into(), json!([[101, 2023, 102]]))),
        (MAX_BATCH + 1..MAX_BATCH * 4).prop_map(|n| ("input".into(), json!(vec!["t"; n]))),
        "[a-z0-9]{1,10}".prop_map(|f| ("encoding_format".into(), json!(f))),
        (0usize..10_000)
            .prop_filter("not the model's", |d| *d != 384)
            .prop_map(|d| ("dimensions".into(), json!(d))),
    ]
}

#[test]
fn fuzz_embeddings() {
    fuzz(
        "POST /v1/embeddings",
        300,
        (
            valid_embeddings(),
            mutations(EMBEDDING_FIELDS, embeddings_out_of_range()),
            damage(),
        ),
        |(valid, mutations, damage)| {
            post_case(
                app(false),
                "/v1/embeddings",
                EMBEDDING_FIELDS,
                valid.clone(),
                mutations,
                damage,
            )
        },
    );
}

const DOCUMENTS_FIELDS: &[&str] = &["documents", "id", "title", "text", "metadata"];

fn valid_document() -> impl Strategy<Value = Value> {
    (
        "fuzz/[a-z0-9/._-]{1,30}",
        prop::option::of(text(80)),
        text(600),
        prop::option::of(object()),
    )
        .prop_map(|(id, title, text, metadata)| {
            body(vec![
                ("id", Some(json!(id))),
                ("title", title.map(Value::from)),
                ("text", Some(json!(text))),
                ("metadata", metadata),
            ])
        })
}

/// `POST /documents` mutates one document of the list as well as the top.
fn documents_case() -> impl Strategy<Value = (Value, Vec<Mutation>, Vec<Mutation>, usize, Damage)> {
    let doc_out_of_range = prop_oneof![
        Just(("id".to_string(), json!(""))),
        Just(("id".to_string(), json!("   "))),
        Just(("metadata".to_string(), json!([1, 2]))),
        Just(("metadata".to_string(), json!("source=faq"))),
    ];
    let top_out_of_range = prop_oneof![
        Just(("documents".to_string(), json!([]))),
        Just(("documents".to_string(), json!({"id": "x", "text": "y"}))),
        (MAX_BATCH + 1..MAX_BATCH * 3).prop_map(|n| {
            let docs: Vec<Value> = (0..n)
                .map(|i| json!({"id": format!("fuzz/many-{i}"), "text": "t"}))
                .collect();
            ("documents".to_string(), Value::Array(docs))
        }),
    ];
    (
        prop::collection::vec(valid_document(), 1..=3),
        mutations(&["documents"], top_out_of_range),
        mutations(&["id", "title", "text", "metadata"], doc_out_of_range),
        any::<usize>(),
        damage(),
    )
        .prop_map(|(docs, top, inner, which, damage)| {
            (json!({ "documents": docs }), top, inner, which, damage)
        })
}

#[test]
fn fuzz_documents() {
    fuzz(
        "POST /documents",
        150,
        documents_case(),
        |(valid, top, inner, which, damage)| {
            let mut valid = valid.clone();
            let docs = valid["documents"].as_array_mut().expect("documents");
            let i = which % docs.len();
            let (doc, mut fields, _) = render(docs[i].clone(), inner, &Damage::None);
            // The error's path is `documents[i].field`.
            if !fields.is_empty() {
                fields.push("documents".into());
            }
            docs[i] = serde_json::from_slice(&doc).unwrap_or(Value::Null);
            let (bytes, top_fields, damaged) = render(valid, top, damage);
            fields.extend(top_fields);
            let answer = call(app(false), Method::POST, "/documents", bytes);
            (
                answer,
                Expect {
                    fields,
                    route_fields: DOCUMENTS_FIELDS,
                    damaged,
                },
            )
        },
    );
}

const CHAT_FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "logprobs",
    "top_logprobs",
    "temperature",
    "top_p",
    "seed",
    "user",
    "n",
    "stream",
];

fn valid_chat() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(
            (
                prop::sample::select(&["system", "user", "assistant"][..]),
                text(200),
            ),
            1..4,
        ),
        prop::option::of(1usize..=512),
        prop::option::of(any::<bool>()),
        prop::option::of(0usize..=20),
        prop::option::of(0f32..2.0),
        prop::option::of(Just(1usize)),
        prop::option::of(Just(false)),
    )
        .prop_map(
            |(messages, max_tokens, logprobs, top, temperature, n, stream)| {
                let messages: Vec<Value> = messages
                    .into_iter()
                    .map(|(role, content)| json!({"role": role, "content": content}))
                    .collect();
                body(vec![
                    ("messages", Some(Value::Array(messages))),
                    ("max_tokens", max_tokens.map(Value::from)),
                    ("logprobs", logprobs.map(Value::from)),
                    ("top_logprobs", top.map(Value::from)),
                    ("temperature", temperature.map(Value::from)),
                    ("n", n.map(Value::from)),
                    ("stream", stream.map(Value::from)),
                ])
            },
        )
}

fn chat_out_of_range() -> impl Strategy<Value = (String, Value)> {
    prop_oneof![
        Just(("messages".into(), json!([]))),
        Just(("messages".into(), json!([{"role": "user"}]))),
        Just(("messages".into(), json!(["hello"]))),
        prop_oneof![Just(0usize), 513usize..100_000].prop_map(|n| ("max_tokens".into(), json!(n))),
        prop_oneof![Just(0usize), 513usize..100_000]
            .prop_map(|n| ("max_completion_tokens".into(), json!(n))),
        (21usize..1000).prop_map(|n| ("top_logprobs".into(), json!(n))),
        prop_oneof![Just(0usize), 2usize..100].prop_map(|n| ("n".into(), json!(n))),
        Just(("stream".into(), json!(true))),
    ]
}

#[test]
fn fuzz_chat_completions() {
    fuzz(
        "POST /v1/chat/completions (no GGUF: 503)",
        400,
        (
            valid_chat(),
            mutations(CHAT_FIELDS, chat_out_of_range()),
            damage(),
        ),
        |(valid, mutations, damage)| {
            post_case(
                app(false),
                "/v1/chat/completions",
                CHAT_FIELDS,
                valid.clone(),
                mutations,
                damage,
            )
        },
    );
}

/// Percent-encode every byte that is not unreserved.
fn percent_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn id_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "fuzz/[a-z0-9/._-]{1,30}".prop_map(String::into_bytes),
        any::<String>().prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..64),
        Just(b"..".to_vec()),
        Just(b"../../etc/passwd".to_vec()),
        (1usize..20_000).prop_map(|n| vec![b'x'; n]),
    ]
}

#[test]
fn fuzz_delete_document() {
    fuzz(
        "DELETE /documents/{id}",
        400,
        (id_bytes(), any::<bool>()),
        |(id, encoded)| {
            // Slashes may be sent as they are (the route is a catch-all).
            let path = if *encoded {
                percent_encode(id)
            } else {
                percent_encode(id).replace("%2F", "/")
            };
            let answer = call(
                app(false),
                Method::DELETE,
                &format!("/documents/{path}"),
                Vec::new(),
            );
            let expect = Expect {
                // An empty id is no route at all: "no such endpoint".
                fields: vec![
                    "document".into(),
                    "id".into(),
                    "URL".into(),
                    "path".into(),
                    "endpoint".into(),
                ],
                route_fields: &[],
                damaged: false,
            };
            (answer, expect)
        },
    );
}

/// The files of the one fixture run.
const FIXTURE_FILES: [&str; 5] = [
    "report.json",
    "report.md",
    "sweep.json",
    "sweep.md",
    "sweep.svg",
];

fn component() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"helpcentre".to_vec()),
        Just(b".".to_vec()),
        Just(b"..".to_vec()),
        Just(b"../helpcentre".to_vec()),
        Just(b"helpcentre/../..".to_vec()),
        Just(b"/etc".to_vec()),
        prop::sample::select(&FIXTURE_FILES[..]).prop_map(|f| f.as_bytes().to_vec()),
        Just(b"sweep.png".to_vec()),
        Just(b"../../../Cargo.toml".to_vec()),
        Just(b"README.md".to_vec()),
        any::<String>().prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..40),
    ]
}

#[test]
fn fuzz_eval_query_strings() {
    fuzz(
        "GET /eval/file and /eval/runs query strings",
        600,
        (
            prop::option::of(component()),
            prop::option::of(component()),
            prop::option::of(("[a-z]{1,6}", component())),
            any::<bool>(),
            0u8..10,
        ),
        |(run, file, extra, raw, which)| {
            let enc = |b: &[u8]| {
                if *raw {
                    // Unencoded where a query string allows it (`/`, `.`,
                    // `..` and friends reach the server as they are).
                    String::from_utf8_lossy(b)
                        .chars()
                        .map(|c| {
                            if c.is_ascii_alphanumeric() || "-._~/!$'()*,;:@".contains(c) {
                                c.to_string()
                            } else {
                                percent_encode(c.to_string().as_bytes())
                            }
                        })
                        .collect()
                } else {
                    percent_encode(b)
                }
            };
            let mut params = Vec::new();
            if let Some(r) = run {
                params.push(format!("run={}", enc(r)));
            }
            if let Some(f) = file {
                params.push(format!("file={}", enc(f)));
            }
            if let Some((k, v)) = extra {
                params.push(format!("{k}={}", enc(v)));
            }
            let route = if *which == 0 {
                "/eval/runs"
            } else {
                "/eval/file"
            };
            let uri = format!("{route}?{}", params.join("&"));
            let answer = call(app(false), Method::GET, &uri, Vec::new());
            // A 200 from /eval/file is only ever a file of the fixture run.
            if route == "/eval/file" && answer.status == 200 {
                let decoded = |p: &Option<Vec<u8>>| {
                    p.as_ref().map(|b| {
                        if *raw {
                            enc(b)
                        } else {
                            String::from_utf8_lossy(b).into_owned()
                        }
                    })
                };
                let (run, file) = (decoded(run), decoded(file));
                assert!(
                    run.as_deref() == Some("helpcentre")
                        && file.as_deref().is_some_and(|f| FIXTURE_FILES.contains(&f)),
                    "200 for {uri}: only the fixture run's files may be served"
                );
            }
            let mut fields = vec!["run".to_string(), "file".to_string()];
            if let Some((k, _)) = extra {
                fields.push(k.clone());
            }
            (
                answer,
                Expect {
                    fields,
                    route_fields: &["run", "file"],
                    damaged: false,
                },
            )
        },
    );
}

/// Any method on any path: 404 and 405 come as JSON errors too.
#[test]
fn fuzz_methods_and_paths() {
    fuzz(
        "any method, any path",
        400,
        (
            prop::sample::select(&["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"][..]),
            prop_oneof![
                prop::sample::select(
                    &[
                        "/search",
                        "/rerank",
                        "/v1/embeddings",
                        "/documents",
                        "/health",
                        "/stats",
                        "/metrics",
                        "/openapi.json",
                        "/eval/runs",
                        "/v1/chat/completions",
                        "/"
                    ][..]
                )
                .prop_map(String::from),
                prop::collection::vec(any::<u8>(), 0..30)
                    .prop_map(|b| format!("/{}", percent_encode(&b))),
            ],
            prop::collection::vec(any::<u8>(), 0..100),
        ),
        |(method, path, body)| {
            let method = Method::from_bytes(method.as_bytes()).expect("a method");
            let answer = call(app(false), method, path, body.clone());
            let expect = Expect {
                fields: vec!["endpoint".into(), "allowed".into()],
                route_fields: &[],
                damaged: true,
            };
            (answer, expect)
        },
    );
}
