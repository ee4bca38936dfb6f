//! The online default: the hub cross-encoder, fetched through hf-hub from a
//! local server shaped like the Hugging Face hub (`HF_ENDPOINT`), cached in
//! `HF_HOME`, read from that cache offline, and replaced by the committed
//! general reranker when the hub answers 404 or drops the connection.

use crate::util::{committed_reranker, with_demo_pages, Sift};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

const REPO: &str = "cross-encoder/ms-marco-MiniLM-L-6-v2";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// How the fake hub answers every request.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    /// As the hub does: `Range: bytes=0-0` gets 206 with `Content-Range`,
    /// `ETag` and `X-Repo-Commit`; `Range: bytes=N-` the file from N.
    Serve,
    NotFound,
    /// Accept the connection and close it without a word.
    Drop,
}

/// A hub on 127.0.0.1 serving a small checkpoint as [`REPO`] at `main`.
/// It stops with the test process; `requests` counts what reached it.
struct FakeHub {
    url: String,
    requests: Arc<AtomicUsize>,
}

impl FakeHub {
    fn start(behaviour: Behaviour, checkpoint: PathBuf) -> FakeHub {
        // Read once: every request (a probe and a download per file) is
        // answered from memory.
        let files: Arc<Vec<Vec<u8>>> = Arc::new(
            FILES
                .iter()
                .map(|f| std::fs::read(checkpoint.join(f)).unwrap())
                .collect(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counted.fetch_add(1, Ordering::SeqCst);
                let files = files.clone();
                thread::spawn(move || answer(stream, behaviour, &files));
            }
        });
        FakeHub { url, requests }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// One request: `files` holds [`FILES`]' contents in order.
fn answer(mut stream: TcpStream, behaviour: Behaviour, files: &[Vec<u8>]) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // `Range: bytes=START-[END]`; absent: the whole file.
    let mut range: (usize, Option<usize>) = (0, None);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some(spec) = header.to_ascii_lowercase().strip_prefix("range: bytes=") {
            let (start, end) = spec.trim().split_once('-').unwrap_or((spec.trim(), ""));
            range = (start.parse().unwrap_or(0), end.parse().ok());
        }
    }
    if behaviour == Behaviour::Drop {
        return;
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or_default();
    let prefix = format!("/{REPO}/resolve/main/");
    let served = path
        .strip_prefix(&prefix)
        .and_then(|f| FILES.iter().position(|&known| known == f))
        .filter(|_| behaviour == Behaviour::Serve);
    let Some(index) = served else {
        let body = "Entry not found";
        let _ = write!(
            stream,
            "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nX-Error-Code: EntryNotFound\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return;
    };
    let (file, bytes) = (FILES[index], &files[index]);
    let size = bytes.len();
    let start = range.0.min(size - 1);
    let end = range.1.unwrap_or(size - 1).min(size - 1);
    let body = &bytes[start..=end];
    let _ = write!(
        stream,
        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{end}/{size}\r\nETag: \"{size:x}-{file}\"\r\nX-Repo-Commit: {COMMIT}\r\nConnection: close\r\n\r\n",
        body.len(),
    );
    let _ = stream.write_all(body);
}

/// A scratch folder with two pages of the demo indexed.
fn indexed() -> Sift {
    with_demo_pages(&[
        "accounts/close-your-account.md",
        "billing/plans-and-pricing.md",
    ])
}

/// `sift search --json --reranker-fallback` against `hub` (None: offline),
/// parsed, and its stderr.
fn search(sift: &Sift, hub: Option<&FakeHub>) -> (serde_json::Value, String) {
    let env: Vec<(&str, Option<&str>)> = match hub {
        Some(hub) => vec![("HF_ENDPOINT", Some(&hub.url)), ("HF_HUB_OFFLINE", None)],
        None => vec![("HF_ENDPOINT", None), ("HF_HUB_OFFLINE", Some("1"))],
    };
    let args = [
        "search",
        "how do I close my account",
        "--json",
        "--reranker-fallback",
    ];
    let run = sift.run_env(&args, &env);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let json = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    (json, run.stderr)
}

fn reranked_by(response: &serde_json::Value) -> String {
    response["reranked_by"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The first run downloads the three files into HF_HOME's cache (at the
/// commit the hub named) and reranks with them; a second, with
/// HF_HUB_OFFLINE=1 and the hub gone quiet, reranks from the cache without
/// a request.
#[test]
fn the_hub_cross_encoder_is_downloaded_cached_and_used_offline() {
    let sift = indexed();
    let hub = FakeHub::start(Behaviour::Serve, committed_reranker());
    let (response, stderr) = search(&sift, Some(&hub));
    let by = reranked_by(&response);
    assert!(
        by.starts_with(&format!("cross-encoder hf://{REPO}@main")) && !by.contains("fallback"),
        "{by}\n{stderr}"
    );
    assert!(response["hits"][0]["scores"]["rerank"].is_number());
    assert!(hub.requests() >= FILES.len(), "{} requests", hub.requests());
    let snapshot = sift
        .hf_home()
        .join("hub/models--cross-encoder--ms-marco-MiniLM-L-6-v2/snapshots")
        .join(COMMIT);
    for file in FILES {
        let cached = std::fs::read(snapshot.join(file)).unwrap();
        let served = std::fs::read(committed_reranker().join(file)).unwrap();
        assert!(cached == served, "{file} differs from what was served");
    }

    let before = hub.requests();
    let (offline, stderr) = search(&sift, None);
    assert_eq!(reranked_by(&offline), by, "{stderr}");
    assert_eq!(offline["hits"], response["hits"]);
    assert_eq!(hub.requests(), before, "the offline run asked the hub");
}

/// A hub that answers 404, or drops the connection: the error is said in
/// one clear line and the committed general reranker, asked to stand in,
/// reranks instead.
#[test]
fn a_hub_that_fails_hands_over_to_the_general_reranker() {
    let sift = indexed();
    for behaviour in [Behaviour::NotFound, Behaviour::Drop] {
        let hub = FakeHub::start(behaviour, committed_reranker());
        let (response, stderr) = search(&sift, Some(&hub));
        assert!(hub.requests() > 0);
        let by = reranked_by(&response);
        assert!(
            by.contains("sift-minilm-l6-general")
                && by.contains(&format!("the fallback for hf://{REPO}@main")),
            "{by}"
        );
        assert!(response["hits"][0]["scores"]["rerank"].is_number());
        let said = stderr
            .lines()
            .find(|l| l.contains("cannot be had"))
            .unwrap_or_else(|| panic!("no warning on stderr:\n{stderr}"));
        assert!(
            said.contains(&format!("cannot get {REPO} from the Hugging Face hub")),
            "{said}"
        );
        assert!(
            !sift
                .hf_home()
                .join("hub/models--cross-encoder--ms-marco-MiniLM-L-6-v2/snapshots")
                .exists(),
            "nothing is cached from a failed download"
        );
    }
}
