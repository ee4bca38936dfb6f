//! Load test of a sift server on loopback: many concurrent clients mixing
//! searches with document writes, each write checked for visibility.
//!
//! ```text
//! just loadtest                      # builds, serves a copy of the demo index, drives it
//! cargo run --release -p sift-server --example loadtest -- \
//!     --sift target/release/sift --index target/demo-index --clients 32 --seconds 30
//! cargo run --release -p sift-server --example loadtest -- --url http://127.0.0.1:8080
//! ```
//!
//! With `--sift` it serves a *copy* of `--index` (the original is not
//! written to) with `sift serve --port 0`, and stops it with SIGTERM at the
//! end, which must exit cleanly. With `--url` it drives a server already
//! running (loopback addresses only) and deletes its own documents after.
//!
//! Every client owns a few document ids (`loadtest/c{client}-{slot}`) and
//! cycles through them, so writes are first adds and then replacements.
//! Each write carries a fresh marker word; once `POST /documents` has
//! answered, the client searches for the marker and the new text must be
//! among the hits (otherwise: a lost update), and the marker of the version
//! it replaced must no longer be (otherwise: a stale read). Any non-200
//! answer, transport error, lost update or stale read makes the run fail.

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Drive a sift server on loopback with concurrent searches and writes")]
struct Args {
    /// A running server (loopback only), e.g. http://127.0.0.1:8080.
    #[arg(long, conflicts_with = "sift")]
    url: Option<String>,
    /// The sift binary: serve a copy of --index with it.
    #[arg(long, requires = "index")]
    sift: Option<PathBuf>,
    /// Index to copy and serve (with --sift).
    #[arg(long)]
    index: Option<PathBuf>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Stop issuing requests after this many seconds.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Stop after this many operations in all (a write and its check count as one).
    #[arg(long, default_value_t = 200_000)]
    max_ops: usize,
    /// Share of operations that are writes.
    #[arg(long, default_value_t = 0.10)]
    write_ratio: f64,
    /// Document ids each client cycles through.
    #[arg(long, default_value_t = 3)]
    slots: usize,
    /// Bearer token, if the server wants one.
    #[arg(long, env = "SIFT_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// File of queries, one JSON object with a `text` field per line.
    #[arg(long, default_value = "data/helpcentre-eval/queries.jsonl")]
    queries: PathBuf,
}

/// Latencies of one kind of request.
#[derive(Default)]
struct Series {
    ok: Vec<Duration>,
}

#[derive(Default)]
struct Tally {
    search: Series,
    write: Series,
    verify: Series,
    errors: Vec<String>,
    error_count: usize,
    lost_updates: usize,
    stale_reads: usize,
}

impl Tally {
    fn error(&mut self, what: String) {
        self.error_count += 1;
        if self.errors.len() < 10 {
            self.errors.push(what);
        }
    }
}

struct Client {
    agent: ureq::Agent,
    base: String,
    api_key: Option<String>,
}

impl Client {
    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let mut req = self.agent.request(method, &format!("{}{path}", self.base));
        if let Some(key) = &self.api_key {
            req = req.set("Authorization", &format!("Bearer {key}"));
        }
        let result = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match result {
            Ok(r) => r
                .into_json::<Value>()
                .map_err(|e| format!("{method} {path}: unreadable answer: {e}")),
            Err(ureq::Error::Status(code, r)) => Err(format!(
                "{method} {path}: {code} {}",
                r.into_string().unwrap_or_default()
            )),
            Err(e) => Err(format!("{method} {path}: {e}")),
        }
    }
}

/// xorshift64*: a deterministic per-client stream, no dependency needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A word no document has: letters only, so every tokenizer keeps it whole.
fn marker(client: usize, seq: usize) -> String {
    let mut n = (client as u64) << 32 | seq as u64;
    let mut s = String::from("zq");
    for _ in 0..10 {
        s.push((b'a' + (n % 26) as u8) as char);
        n /= 26;
    }
    s
}

fn has_marker(hits: &Value, doc_id: &str, marker: &str) -> bool {
    hits["hits"].as_array().is_some_and(|hits| {
        hits.iter().any(|h| {
            h["doc_id"] == doc_id && h["text"].as_str().is_some_and(|t| t.contains(marker))
        })
    })
}

fn run_client(
    id: usize,
    client: Client,
    queries: Arc<Vec<String>>,
    args: Arc<Args>,
    deadline: Instant,
    ops: Arc<AtomicUsize>,
    tally: Arc<Mutex<Tally>>,
) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((id as u64 + 1) * 0x1000_0001));
    let mut local = Tally::default();
    // The marker each slot's document currently carries.
    let mut current: Vec<Option<String>> = vec![None; args.slots];
    let mut seq = 0usize;
    while Instant::now() < deadline && ops.fetch_add(1, Ordering::Relaxed) < args.max_ops {
        if rng.unit() < args.write_ratio {
            seq += 1;
            let slot = seq % args.slots;
            let doc_id = format!("loadtest/c{id}-{slot}");
            let word = marker(id, seq);
            let doc = json!({"documents": [{
                "id": doc_id,
                "title": format!("Load test note {id}-{slot}"),
                "text": format!("This note was written by load test client {id}, version {seq}. Its marker word is {word}."),
                "metadata": {"source": "loadtest"},
            }]});
            let started = Instant::now();
            if let Err(e) = client.send("POST", "/documents", Some(&doc)) {
                local.error(e);
                continue;
            }
            local.write.ok.push(started.elapsed());
            // The write has been answered: it must be visible now.
            let started = Instant::now();
            let query = json!({"query": word, "depth": 20, "k": 10, "rerank": false});
            match client.send("POST", "/search", Some(&query)) {
                Ok(hits) => {
                    local.verify.ok.push(started.elapsed());
                    if !has_marker(&hits, &doc_id, &word) {
                        local.lost_updates += 1;
                        local.error(format!(
                            "lost update: {doc_id} version {seq} ({word}) not found"
                        ));
                    }
                }
                Err(e) => local.error(e),
            }
            if let Some(old) = current[slot].replace(word) {
                let query = json!({"query": old, "depth": 20, "k": 10, "rerank": false});
                let started = Instant::now();
                match client.send("POST", "/search", Some(&query)) {
                    Ok(hits) => {
                        local.verify.ok.push(started.elapsed());
                        if has_marker(&hits, &doc_id, &old) {
                            local.stale_reads += 1;
                            local.error(format!(
                                "stale read: {doc_id} still has replaced marker {old}"
                            ));
                        }
                    }
                    Err(e) => local.error(e),
                }
            }
        } else {
            let q = &queries[(rng.next() % queries.len() as u64) as usize];
            let started = Instant::now();
            match client.send("POST", "/search", Some(&json!({"query": q, "k": 5}))) {
                Ok(hits) if hits["hits"].as_array().is_some_and(|h| !h.is_empty()) => {
                    local.search.ok.push(started.elapsed())
                }
                Ok(hits) => local.error(format!("search {q:?}: no hits: {hits}")),
                Err(e) => local.error(e),
            }
        }
    }
    let mut t = tally.lock().unwrap();
    t.search.ok.append(&mut local.search.ok);
    t.write.ok.append(&mut local.write.ok);
    t.verify.ok.append(&mut local.verify.ok);
    t.error_count += local.error_count;
    t.lost_updates += local.lost_updates;
    t.stale_reads += local.stale_reads;
    for e in local.errors {
        if t.errors.len() < 10 {
            t.errors.push(e);
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn is_loopback_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or("");
    let host = if rest.starts_with('[') {
        rest.split(']').next().unwrap_or("").trim_start_matches('[')
    } else {
        rest.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Start `sift serve --port 0` on a copy of the index; returns the child and
/// its base URL, read from the line it prints when listening.
fn spawn_server(
    sift: &Path,
    index: &Path,
    args: &Args,
) -> anyhow::Result<(Child, String, tempfile::TempDir)> {
    anyhow::ensure!(
        index.join("sift-index.json").is_file(),
        "no index at {} (run `just demo`)",
        index.display()
    );
    let copy = tempfile::tempdir()?;
    copy_dir(index, copy.path())?;
    let mut cmd = Command::new(sift);
    cmd.arg("serve")
        .args(["--host", "127.0.0.1", "--port", "0", "--index"])
        .arg(copy.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(key) = &args.api_key {
        cmd.env("SIFT_API_KEY", key);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", sift.display()))?;
    let stderr = child.stderr.take().expect("piped");
    let mut lines = std::io::BufReader::new(stderr).lines();
    let base = loop {
        match lines.next() {
            Some(line) => {
                let line = line?;
                eprintln!("[sift] {line}");
                if let Some(at) = line.find("http://") {
                    let url: String = line[at..]
                        .chars()
                        .take_while(|c| !c.is_whitespace())
                        .collect();
                    break url;
                }
            }
            None => bail!("sift serve exited before listening: {:?}", child.wait()?),
        }
    };
    // Keep draining its log so it never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            eprintln!("[sift] {line}");
        }
    });
    Ok((child, base, copy))
}

fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    anyhow::ensure!(
        args.clients >= 1 && args.slots >= 1,
        "need at least one client and slot"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.write_ratio),
        "--write-ratio is a share in 0..=1"
    );
    let queries: Vec<String> = std::fs::read_to_string(&args.queries)
        .with_context(|| format!("reading {}", args.queries.display()))?
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["text"].as_str().map(str::to_string))
        .collect();
    anyhow::ensure!(
        !queries.is_empty(),
        "no queries in {}",
        args.queries.display()
    );
    let queries = Arc::new(queries);

    let (mut child, base, _copy) = match (&args.url, &args.sift) {
        (Some(url), _) => (None, url.trim_end_matches('/').to_string(), None),
        (None, Some(sift)) => {
            let (child, base, copy) =
                spawn_server(sift, args.index.as_deref().expect("required"), &args)?;
            (Some(child), base, Some(copy))
        }
        (None, None) => bail!("give --url of a running server or --sift and --index to start one"),
    };
    anyhow::ensure!(
        is_loopback_url(&base),
        "{base} is not a loopback address; this load test only drives servers on this machine"
    );

    let agent = || {
        ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(120))
            .build()
    };
    let probe = Client {
        agent: agent(),
        base: base.clone(),
        api_key: args.api_key.clone(),
    };
    let health = probe
        .send("GET", "/health", None)
        .map_err(anyhow::Error::msg)?;
    eprintln!(
        "server {base}: {} documents, {} chunks, reranker: {}",
        health["documents"],
        health["chunks"],
        health["reranker"]
            .as_str()
            .unwrap_or("none (stage-1 order)")
    );
    eprintln!(
        "{} clients for up to {}s / {} operations, {:.0}% writes",
        args.clients,
        args.seconds,
        args.max_ops,
        args.write_ratio * 100.0
    );

    let tally = Arc::new(Mutex::new(Tally::default()));
    let ops = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let threads: Vec<_> = (0..args.clients)
        .map(|id| {
            let client = Client {
                agent: agent(),
                base: base.clone(),
                api_key: args.api_key.clone(),
            };
            let (queries, args, ops, tally) =
                (queries.clone(), args.clone(), ops.clone(), tally.clone());
            std::thread::spawn(move || run_client(id, client, queries, args, deadline, ops, tally))
        })
        .collect();
    for t in threads {
        t.join().expect("a client thread panicked");
    }
    let elapsed = started.elapsed();

    // Leave a shared server as it was found.
    if child.is_none() {
        for id in 0..args.clients {
            for slot in 0..args.slots {
                let _ = probe.send("DELETE", &format!("/documents/loadtest/c{id}-{slot}"), None);
            }
        }
    }

    let mut guard = tally.lock().unwrap();
    let t: &mut Tally = &mut guard;
    let secs = elapsed.as_secs_f64();
    let total = t.search.ok.len() + t.write.ok.len() + t.verify.ok.len();
    println!(
        "\n{} clients, {:.1}s: {} requests answered 200 ({:.1}/s), {} errors, {} lost updates, {} stale reads",
        args.clients, secs, total, total as f64 / secs, t.error_count, t.lost_updates, t.stale_reads
    );
    println!(
        "{:<28} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "request", "count", "per s", "p50 ms", "p99 ms", "max ms"
    );
    for (name, series) in [
        ("search", &mut t.search),
        ("write (POST /documents)", &mut t.write),
        ("read-your-write (search)", &mut t.verify),
    ] {
        series.ok.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{:<28} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            name,
            series.ok.len(),
            series.ok.len() as f64 / secs,
            ms(percentile(&series.ok, 50.0)),
            ms(percentile(&series.ok, 99.0)),
            ms(series.ok.last().copied().unwrap_or_default()),
        );
    }
    for e in &t.errors {
        println!("error: {e}");
    }

    let mut failed = t.error_count > 0 || t.lost_updates > 0 || t.stale_reads > 0;
    if let Some(child) = child.as_mut() {
        // Graceful stop: SIGTERM, and the server must exit cleanly.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let status = child.wait()?;
        println!("sift serve stopped on SIGTERM: {status}");
        failed |= !status.success();
    }
    if failed {
        bail!("load test failed");
    }
    Ok(())
}
