//! kill -9 under writes: `sift serve` is killed with SIGKILL while several
//! clients post documents, then restarted; every write it acknowledged must
//! be there, whole, and nothing may be half written.
//!
//! Each round starts the real binary on a free loopback port over the same
//! index, lets the writers run until a random moment after the round's first
//! acknowledgement, kills the server, restarts it (timed: the HNSW graph is
//! repaired from the stored vectors on open) and checks every document ever
//! written through the new server:
//!
//! * a document whose last write was acknowledged holds exactly that
//!   version, or one sent after it (lost otherwise);
//! * a document holds the chunks of one version only, exactly those the
//!   chunker makes of it (same chunk ids, texts and offsets), never a mix
//!   or a subset (partial otherwise);
//! * a write that was not acknowledged is there whole or not at all;
//! * every present document is found by the dense retriever too (its
//!   vectors reached the graph, or were repaired into it).
//!
//! Every chunk carries its document's token and its version's marker in the
//! title (BM25 indexes the title with every chunk), so a search for the
//! document token returns all of its chunks, whatever version they are of.
//!
//! The test's size comes from the environment, so `just crash-test` runs
//! the same test bigger: `SIFT_CRASH_ROUNDS` (3), `SIFT_CRASH_WRITERS` (3),
//! `SIFT_CRASH_SLOTS` (document ids per writer, 4), `SIFT_CRASH_SEED`.

use crate::util::{model_dir, Sift, WORDS};
use serde_json::{json, Value};
use sift_core::{ChunkingConfig, Document, ModelSource};
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Small chunks, so a document of a few short sections is several chunks
/// and a long section is cut into overlapping windows.
const CHUNK_TOKENS: usize = 24;
const CHUNK_OVERLAP: usize = 4;
/// When the kill comes, after the round's first acknowledged write: long
/// enough for a few writes (each one embeds, commits and saves the graph).
const KILL_AFTER_MS: std::ops::Range<u64> = 300..2500;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
        })
        .unwrap_or(default)
}

/// xorshift64*: a reproducible stream from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A word no other document has: letters only, so both tokenizers keep it
/// whole (BM25) or cut it the same way every time (the bi-encoder).
fn token(prefix: &str, mut n: u64) -> String {
    let mut s = String::from(prefix);
    for _ in 0..8 {
        s.push((b'a' + (n % 26) as u8) as char);
        n /= 26;
    }
    s
}

/// One version of a document, as sent.
#[derive(Clone, Debug)]
struct Version {
    seq: u64,
    title: String,
    text: String,
}

/// What is known of one document id.
#[derive(Debug, Default)]
struct DocState {
    versions: Vec<Version>,
    /// Index into `versions` of what the index must hold: the last
    /// acknowledged write, or what the last check found. `None`: absent.
    baseline: Option<usize>,
    /// Versions sent after the baseline (acknowledged ones move it).
    pending: Vec<usize>,
}

#[derive(Default)]
struct Tally {
    /// Requests answered 200.
    acknowledged: usize,
    /// Documents in them.
    acknowledged_documents: usize,
    /// Documents in requests cut by the kill.
    unacknowledged: usize,
    http_errors: Vec<String>,
}

/// A `sift serve` child and the log lines it printed.
struct Server {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

fn start_server(sift: &Sift) -> (Server, Duration) {
    let started = Instant::now();
    let mut cmd = sift.command(&[
        "serve",
        "--create",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--chunk-tokens",
        &CHUNK_TOKENS.to_string(),
        "--chunk-overlap",
        &CHUNK_OVERLAP.to_string(),
    ]);
    // The repair on open logs at info.
    cmd.env("SIFT_LOG", "warn,sift_engine=info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("sift serve starts");
    let mut lines = std::io::BufReader::new(child.stderr.take().expect("piped")).lines();
    let log = Arc::new(Mutex::new(Vec::new()));
    let base = loop {
        let line = match lines.next() {
            Some(Ok(line)) => line,
            _ => panic!(
                "sift serve exited before listening ({:?}); it said:\n{}",
                child.wait(),
                log.lock().unwrap().join("\n")
            ),
        };
        let url = line.find("http://").map(|at| {
            line[at..]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect::<String>()
        });
        log.lock().unwrap().push(line);
        if let Some(url) = url {
            break url;
        }
    };
    let restart = started.elapsed();
    // Keep draining the log so the server never blocks on a full pipe.
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    (Server { child, base, log }, restart)
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(120))
        .build()
}

/// POST a JSON body; `Ok(None)` when the server could not be reached or
/// the connection broke (it was killed), `Err` for any answer but 200.
fn post(agent: &ureq::Agent, url: &str, body: &Value) -> Result<Option<Value>, String> {
    match agent.post(url).send_json(body) {
        Ok(r) => r
            .into_json()
            .map(Some)
            .map_err(|e| format!("POST {url}: unreadable answer: {e}")),
        Err(ureq::Error::Status(code, r)) => Err(format!(
            "POST {url}: {code} {}",
            r.into_string().unwrap_or_default()
        )),
        Err(ureq::Error::Transport(_)) => Ok(None),
    }
}

/// A new version of `doc_id`: its token and the version's marker in the
/// title, one to four `##` sections, some long enough to be cut in windows.
fn make_version(rng: &mut Rng, doc_token: &str, seq: u64) -> Version {
    let marker = token("zqv", seq);
    let mut text = String::new();
    for section in 0..1 + rng.below(4) {
        let words = 4 + rng.below(40) as usize;
        let offset = rng.below(WORDS.len() as u64) as usize;
        text += &format!(
            "## Part {section}\n\n{marker} {}.\n\n",
            crate::util::words(offset, words)
        );
    }
    Version {
        seq,
        title: format!("Crash note {doc_token} {marker}"),
        text,
    }
}

/// One writer: cycles over its document ids, one or two documents a
/// request, until the server goes away or `stop` is set.
#[allow(clippy::too_many_arguments)]
fn run_writer(
    writer: usize,
    slots: usize,
    base: &str,
    rng: &mut Rng,
    seq: &AtomicUsize,
    docs: &Mutex<BTreeMap<String, DocState>>,
    stop: &AtomicBool,
    tally: &Mutex<Tally>,
) {
    let agent = agent();
    let url = format!("{base}/documents");
    while !stop.load(Ordering::SeqCst) {
        let count = if rng.below(4) == 0 { 2 } else { 1 };
        let first = rng.below(slots as u64) as usize;
        let mut sent = Vec::new();
        let mut body = Vec::new();
        for k in 0..count.min(slots) {
            let slot = (first + k) % slots;
            let doc_id = format!("crash/w{writer}-s{slot}.md");
            let doc_token = token("zqd", (writer * 1000 + slot) as u64);
            let version = make_version(rng, &doc_token, seq.fetch_add(1, Ordering::SeqCst) as u64);
            body.push(json!({"id": doc_id, "title": version.title, "text": version.text}));
            let mut docs = docs.lock().unwrap();
            let state = docs.entry(doc_id.clone()).or_default();
            state.versions.push(version);
            let index = state.versions.len() - 1;
            state.pending.push(index);
            sent.push((doc_id, index));
        }
        match post(&agent, &url, &json!({ "documents": body })) {
            Ok(Some(_)) => {
                let mut docs = docs.lock().unwrap();
                for (doc_id, index) in &sent {
                    let state = docs.get_mut(doc_id).expect("recorded");
                    state.baseline = Some(*index);
                    state.pending.clear();
                }
                let mut tally = tally.lock().unwrap();
                tally.acknowledged += 1;
                tally.acknowledged_documents += sent.len();
            }
            Ok(None) => {
                // Killed (or about to be): what was in flight may or may
                // not have been committed.
                tally.lock().unwrap().unacknowledged += sent.len();
                return;
            }
            Err(e) => {
                tally.lock().unwrap().http_errors.push(e);
                return;
            }
        }
    }
}

/// What a restarted server holds of one document.
#[derive(Debug, PartialEq)]
enum Found {
    Absent,
    /// Whole: exactly the chunks of `versions[.0]`.
    Whole(usize),
    /// Mixed versions, missing or extra chunks, or text that is not what
    /// was sent.
    Partial(String),
}

/// The chunks of a version as the engine cuts them: (id, ordinal, text,
/// start, end).
type ChunkKey = (String, u64, String, u64, u64);

fn expected_chunks(
    chunker: &sift_engine::Chunker,
    doc_id: &str,
    v: &Version,
) -> BTreeSet<ChunkKey> {
    let doc = Document::new(doc_id, v.title.clone(), v.text.clone());
    chunker
        .chunk(&doc)
        .unwrap()
        .into_iter()
        .map(|c| {
            (
                c.id.to_string(),
                c.ordinal as u64,
                c.text,
                c.char_start as u64,
                c.char_end as u64,
            )
        })
        .collect()
}

fn search(agent: &ureq::Agent, base: &str, query: &str, retriever_depth: usize) -> Vec<Value> {
    let body = json!({"query": query, "depth": 1000, "k": 1000, "retriever_depth": retriever_depth, "rerank": false});
    let answer = post(agent, &format!("{base}/search"), &body)
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("the restarted server answers");
    answer["hits"].as_array().expect("hits").clone()
}

fn observe(
    agent: &ureq::Agent,
    base: &str,
    chunker: &sift_engine::Chunker,
    doc_id: &str,
    state: &DocState,
) -> Found {
    let doc_token = state.versions[0]
        .title
        .split(' ')
        .nth(2)
        .expect("title has the token")
        .to_string();
    let hits: Vec<Value> = search(agent, base, &doc_token, 50)
        .into_iter()
        .filter(|h| h["doc_id"] == doc_id)
        .collect();
    if hits.is_empty() {
        return Found::Absent;
    }
    let titles: BTreeSet<&str> = hits.iter().filter_map(|h| h["title"].as_str()).collect();
    if titles.len() != 1 {
        return Found::Partial(format!("chunks of {} versions: {titles:?}", titles.len()));
    }
    let title = *titles.first().expect("one");
    let Some(index) = state.versions.iter().position(|v| v.title == title) else {
        return Found::Partial(format!("a version never sent: {title:?}"));
    };
    let actual: BTreeSet<ChunkKey> = hits
        .iter()
        .map(|h| {
            (
                h["chunk_id"].as_str().unwrap_or_default().to_string(),
                h["ordinal"].as_u64().unwrap_or(u64::MAX),
                h["text"].as_str().unwrap_or_default().to_string(),
                h["char_start"].as_u64().unwrap_or(u64::MAX),
                h["char_end"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect();
    let expected = expected_chunks(chunker, doc_id, &state.versions[index]);
    if actual != expected {
        return Found::Partial(format!(
            "version {}: {} chunks found, {} expected; missing {:?}, unexpected {:?}",
            state.versions[index].seq,
            actual.len(),
            expected.len(),
            expected.difference(&actual).collect::<Vec<_>>(),
            actual.difference(&expected).collect::<Vec<_>>()
        ));
    }
    Found::Whole(index)
}

/// Whether the dense retriever finds the document's first chunk when asked
/// its own text: its vector is in the (possibly repaired) graph.
fn found_densely(agent: &ureq::Agent, base: &str, doc_id: &str, v: &Version) -> bool {
    let first_line = v
        .text
        .lines()
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .expect("a body line");
    let query = format!("{} {first_line}", v.title);
    // Every live chunk (the index holds fewer than 1000): the question is
    // whether the vector is in the graph, not how it ranks among the
    // look-alike test documents.
    search(agent, base, &query, 1000)
        .iter()
        .any(|h| h["doc_id"] == doc_id && h["ordinal"] == 0 && !h["scores"]["dense"].is_null())
}

#[derive(Default)]
struct Checked {
    acknowledged: usize,
    found: usize,
    lost: usize,
    partial: usize,
    /// Documents whose unacknowledged write was committed (whole).
    unacknowledged_applied: usize,
    /// Documents whose unacknowledged write left no trace.
    unacknowledged_not_applied: usize,
    dense_missing: usize,
}

/// Check every document through the restarted server, and make what was
/// found the new baseline.
fn check_all(
    base: &str,
    chunker: &sift_engine::Chunker,
    docs: &Mutex<BTreeMap<String, DocState>>,
    problems: &mut Vec<String>,
) -> Checked {
    let agent = agent();
    let mut checked = Checked::default();
    let mut docs = docs.lock().unwrap();
    for (doc_id, state) in docs.iter_mut() {
        let found = observe(&agent, base, chunker, doc_id, state);
        let allowed_new = |i: usize| state.pending.contains(&i);
        match (&found, state.baseline) {
            (Found::Partial(why), _) => {
                checked.partial += 1;
                problems.push(format!("{doc_id}: partial: {why}"));
            }
            (Found::Whole(i), Some(b)) if *i == b || allowed_new(*i) => {
                checked.acknowledged += 1;
                checked.found += 1;
            }
            (Found::Whole(i), None) if allowed_new(*i) => {}
            (Found::Absent, None) => {}
            (found, Some(b)) => {
                checked.acknowledged += 1;
                checked.lost += 1;
                problems.push(format!(
                    "{doc_id}: lost: version {} was acknowledged, found {found:?}",
                    state.versions[b].seq
                ));
            }
            (found, None) => {
                checked.partial += 1;
                problems.push(format!("{doc_id}: never acknowledged, yet found {found:?}"));
            }
        }
        // The write in flight at the kill, if any: committed whole, or not at all.
        if !state.pending.is_empty() && !matches!(found, Found::Partial(_)) {
            if matches!(found, Found::Whole(i) if allowed_new(i)) {
                checked.unacknowledged_applied += 1;
            } else {
                checked.unacknowledged_not_applied += 1;
            }
        }
        if let Found::Whole(i) = found {
            if !found_densely(&agent, base, doc_id, &state.versions[i]) {
                checked.dense_missing += 1;
                problems.push(format!(
                    "{doc_id}: version {} not found by the dense retriever",
                    state.versions[i].seq
                ));
            }
            state.baseline = Some(i);
        } else if found == Found::Absent {
            state.baseline = None;
        }
        state.pending.clear();
    }
    checked
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

#[test]
fn kill_9_during_document_writes_loses_no_acknowledged_write_and_leaves_none_half_written() {
    let rounds = env_or("SIFT_CRASH_ROUNDS", 3);
    let writers = env_or("SIFT_CRASH_WRITERS", 3) as usize;
    let slots = env_or("SIFT_CRASH_SLOTS", 4) as usize;
    let seed = env_or("SIFT_CRASH_SEED", 0x5eed_cafe);
    assert!(rounds >= 1 && writers >= 1 && slots >= 1);
    eprintln!("kill -9 test: {rounds} rounds, {writers} writers x {slots} documents, seed {seed}");

    let files = sift_bert::ModelFiles::resolve(
        &ModelSource::local(model_dir()),
        sift_bert::ModelRole::BiEncoder,
    )
    .unwrap();
    let encoder = sift_bert::BiEncoder::load(&files, 256, 8).unwrap();
    let chunking = ChunkingConfig {
        max_tokens: CHUNK_TOKENS,
        overlap_tokens: CHUNK_OVERLAP,
    };
    let chunker = sift_engine::Chunker::new(encoder.tokenizer(), &chunking);

    let sift = Sift::new();
    let docs = Arc::new(Mutex::new(BTreeMap::<String, DocState>::new()));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let seq = Arc::new(AtomicUsize::new(1));
    let mut rng = Rng(seed | 1);
    let mut writer_rngs: Vec<Rng> = (0..writers).map(|_| Rng(rng.next() | 1)).collect();
    let mut totals = Checked::default();
    let mut problems = Vec::new();
    let mut restarts = Vec::new();
    let mut repairs = 0;
    let (mut server, first_start) = start_server(&sift);
    eprintln!("first start: {first_start:.2?}");

    for round in 1..=rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let acked_before = tally.lock().unwrap().acknowledged;
        let handles: Vec<_> = writer_rngs
            .drain(..)
            .enumerate()
            .map(|(w, mut wrng)| {
                let (base, seq, docs, stop, tally) = (
                    server.base.clone(),
                    seq.clone(),
                    docs.clone(),
                    stop.clone(),
                    tally.clone(),
                );
                std::thread::spawn(move || {
                    run_writer(w, slots, &base, &mut wrng, &seq, &docs, &stop, &tally);
                    wrng
                })
            })
            .collect();
        // Kill at a random moment after the round's first acknowledgement.
        let waited = Instant::now();
        while tally.lock().unwrap().acknowledged == acked_before {
            assert!(
                waited.elapsed() < Duration::from_secs(120),
                "no write acknowledged in 120 s: {:?}; log:\n{}",
                tally.lock().unwrap().http_errors,
                server.log.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(
            KILL_AFTER_MS.start + rng.below(KILL_AFTER_MS.end - KILL_AFTER_MS.start),
        ));
        server.child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
        stop.store(true, Ordering::SeqCst);
        let status = server.child.wait().unwrap();
        assert!(!status.success(), "killed, not exited: {status}");
        writer_rngs = handles
            .into_iter()
            .map(|h| h.join().expect("writer"))
            .collect();
        let errors = std::mem::take(&mut tally.lock().unwrap().http_errors);
        assert!(
            errors.is_empty(),
            "non-200 answers before the kill: {errors:?}"
        );

        let (next, restart) = start_server(&sift);
        server = next;
        restarts.push(restart);
        let checked = check_all(&server.base, &chunker, &docs, &mut problems);
        let repaired = server
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("missing from the vector index"));
        repairs += usize::from(repaired);
        eprintln!(
            "round {round}: killed after {} acknowledged writes in all; restart {restart:.2?}{}; \
             {} acknowledged documents checked, {} found, {} lost, {} partial; \
             unacknowledged writes: {} applied whole, {} not applied",
            tally.lock().unwrap().acknowledged,
            if repaired {
                " (HNSW graph repaired)"
            } else {
                ""
            },
            checked.acknowledged,
            checked.found,
            checked.lost,
            checked.partial,
            checked.unacknowledged_applied,
            checked.unacknowledged_not_applied,
        );
        totals.acknowledged += checked.acknowledged;
        totals.found += checked.found;
        totals.lost += checked.lost;
        totals.partial += checked.partial;
        totals.unacknowledged_applied += checked.unacknowledged_applied;
        totals.unacknowledged_not_applied += checked.unacknowledged_not_applied;
        totals.dense_missing += checked.dense_missing;
    }

    // The last server stops cleanly on SIGTERM.
    let _ = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status();
    let status = server.child.wait().unwrap();

    let t = tally.lock().unwrap();
    println!(
        "kill -9 under writes: {rounds} rounds, {writers} writers; {} writes acknowledged ({} documents), {} sent unacknowledged; \
         after restarts: {} acknowledged documents checked, {} found, {} lost, {} partial, \
         {} not found densely; unacknowledged writes {} applied whole, {} not applied; \
         restart median {:.2?}, max {:.2?}; HNSW graph repaired on {repairs} of {rounds} restarts",
        t.acknowledged,
        t.acknowledged_documents,
        t.unacknowledged,
        totals.acknowledged,
        totals.found,
        totals.lost,
        totals.partial,
        totals.dense_missing,
        totals.unacknowledged_applied,
        totals.unacknowledged_not_applied,
        median(restarts.clone()),
        restarts.iter().max().unwrap(),
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(
        (totals.lost, totals.partial, totals.dense_missing),
        (0, 0, 0)
    );
    assert!(totals.found > 0, "some acknowledged documents were checked");
    assert!(
        status.success(),
        "sift serve exits cleanly on SIGTERM: {status}"
    );
}
