//! The LLM rerankers from the CLI, with the real Gemma 3 270M GGUF
//! (`just fetch-llm`): pointwise and listwise in process, pointwise over
//! HTTP against `sift serve`'s own chat route on loopback, and clear errors
//! for a missing model or a dead endpoint. Depths are kept to a handful of
//! candidates so CI stays fast on 2 cores.

use crate::util::{committed_reranker, doc_id, gguf_path, with_demo_pages, Sift};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::Child;

const QUERY: &str = "how do I set up two-factor authentication";

/// A sandbox indexing four demo documents, two of them a dated pair.
fn sandbox() -> Sift {
    with_demo_pages(&[
        "security/set-up-two-factor-authentication.md",
        "security/set-up-two-factor-authentication-2021.md",
        "security/recover-account-lost-2fa-device.md",
        "accounts/reset-your-password.md",
    ])
}

fn llm_args(extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["--depth", "4", "--k", "4", "--llm-gguf"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(gguf_path().display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn search(sift: &Sift, extra: &[&str]) -> Value {
    let args = llm_args(extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sift.search_json(QUERY, &args)
}

fn rerank_scores(response: &Value) -> Vec<f64> {
    response["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            h["scores"]["rerank"]
                .as_f64()
                .expect("every hit is reranked")
        })
        .collect()
}

/// (doc id, chunk ordinal) -> rerank score.
fn scores_by_chunk(response: &Value) -> Vec<(String, u64, f64)> {
    let mut v: Vec<(String, u64, f64)> = response["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                doc_id(h).to_string(),
                h["chunk"]["ordinal"].as_u64().unwrap(),
                h["scores"]["rerank"].as_f64().unwrap(),
            )
        })
        .collect();
    v.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    v
}

#[test]
fn pointwise_and_listwise_rerank_from_the_cli() {
    let sift = sandbox();
    let llm = search(&sift, &["--reranker", "llm"]);
    assert!(
        llm["reranked_by"]
            .as_str()
            .unwrap()
            .starts_with("llm pointwise"),
        "{}",
        llm["reranked_by"]
    );
    let scores = rerank_scores(&llm);
    assert_eq!(scores.len(), 4);
    assert!(
        scores.iter().all(|s| (0.0..=1.0).contains(s)),
        "P(yes): {scores:?}"
    );
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "sorted: {scores:?}"
    );
    assert!(
        doc_id(&llm["hits"][0]).contains("two-factor"),
        "a 2FA page first: {}",
        doc_id(&llm["hits"][0])
    );
    // Greedy and deterministic: the same answer twice.
    assert_eq!(
        scores_by_chunk(&llm),
        scores_by_chunk(&search(&sift, &["--reranker", "llm"]))
    );

    // The instruction reaches the model (the scores move); whether it moves
    // them the way asked is another matter (README: not with a 270M base model).
    let instructed = search(
        &sift,
        &[
            "--reranker",
            "llm",
            "--instruction",
            "prefer recent documents",
        ],
    );
    assert_ne!(scores_by_chunk(&instructed), scores_by_chunk(&llm));

    let listwise = search(&sift, &["--reranker", "listwise"]);
    assert!(
        listwise["reranked_by"]
            .as_str()
            .unwrap()
            .starts_with("listwise"),
        "{}",
        listwise["reranked_by"]
    );
    let scores = rerank_scores(&listwise);
    let expected = [1.0, 0.5, 1.0 / 3.0, 0.25];
    assert!(
        scores
            .iter()
            .zip(expected)
            .all(|(s, e)| (s - e).abs() < 1e-6),
        "1/rank of a full permutation: {scores:?}"
    );
}

/// A child process killed when dropped, so a failing test leaves no server.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sift serve` on a free port, with the GGUF model and the committed
/// cross-encoder; returns the child and its base URL.
fn serve(sift: &Sift) -> (KillOnDrop, String) {
    let gguf = gguf_path();
    let mut child = sift
        // Generous timeouts: on a loaded 2-core machine one prompt of the
        // 270M model can take longer than the defaults allow.
        .command(&[
            "serve",
            "--port",
            "0",
            "--inference-threads",
            "2",
            "--timeout-secs",
            "600",
        ])
        .env("SIFT_LLM_GGUF", &gguf)
        .env("SIFT_RERANKER_PATH", committed_reranker())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("sift serve exited before listening")
            .unwrap();
        if let Some(rest) = line.split(" on http://").nth(1) {
            break format!("http://{}", rest.split_whitespace().next().unwrap());
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (KillOnDrop(child), url)
}

#[test]
fn http_backend_against_sift_serve_matches_in_process() {
    let sift = sandbox();
    let (server, url) = serve(&sift);
    let local = search(&sift, &["--reranker", "llm"]);
    let api = format!("{url}/v1");
    let remote = search(
        &sift,
        &[
            "--reranker",
            "llm",
            "--llm-backend",
            "http",
            "--llm-url",
            &api,
            "--llm-timeout-secs",
            "600",
        ],
    );
    drop(server);
    assert!(
        remote["reranked_by"]
            .as_str()
            .unwrap()
            .contains("/v1/chat/completions"),
        "{}",
        remote["reranked_by"]
    );
    // Same model, same prompt: the logprobs over HTTP give the same P(yes)
    // (up to the rare yes/no spelling outside the top 20 alternatives).
    let (a, b) = (scores_by_chunk(&local), scores_by_chunk(&remote));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((&x.0, x.1), (&y.0, y.1));
        assert!((x.2 - y.2).abs() < 0.02, "{x:?} vs {y:?}");
    }
}

/// POST `body` as JSON to `url` (`http://host:port/path`) with a plain
/// HTTP/1.1 exchange; the status and the parsed JSON answer.
fn post_json(url: &str, body: &Value) -> (u16, Value) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(300)))
        .unwrap();
    let body = body.to_string();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let (_, json) = response
        .split_once("\r\n\r\n")
        .expect("a header and a body");
    let json = serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {response}"));
    (status, json)
}

/// (doc id, chunk ordinal) -> rerank score of a `/search` answer.
fn api_scores_by_chunk(response: &Value) -> Vec<(String, u64, f64)> {
    let mut v: Vec<(String, u64, f64)> = response["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["doc_id"].as_str().unwrap().to_string(),
                h["ordinal"].as_u64().unwrap(),
                h["scores"]["rerank"]
                    .as_f64()
                    .expect("every hit is reranked"),
            )
        })
        .collect();
    v.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    v
}

#[test]
fn the_search_route_reranks_with_each_reranker() {
    let sift = sandbox();
    let (server, url) = serve(&sift);
    let api = |reranker: &str, instruction: Option<&str>| {
        let mut body =
            serde_json::json!({"query": QUERY, "depth": 4, "k": 4, "reranker": reranker});
        if let Some(i) = instruction {
            body["instruction"] = i.into();
        }
        let (status, answer) = post_json(&format!("{url}/search"), &body);
        assert_eq!(status, 200, "{reranker}: {answer}");
        assert_eq!(answer["hits"].as_array().unwrap().len(), 4, "{answer}");
        answer
    };
    let cross = api("cross-encoder", None);
    let llm = api("llm", None);
    let told = api("llm", Some("prefer recent documents"));
    let listwise = api("listwise", None);
    drop(server);

    let by = |a: &Value| a["reranked_by"].as_str().unwrap().to_string();
    assert!(
        by(&cross).contains("sift-minilm-l6-scifact"),
        "{}",
        by(&cross)
    );
    assert!(by(&llm).starts_with("llm pointwise"), "{}", by(&llm));
    assert!(by(&listwise).starts_with("listwise"), "{}", by(&listwise));
    // Each answer is ordered by its final score: the reranker's own, or
    // for the trained cross-encoder its validated blend with stage 1.
    for answer in [&cross, &llm, &listwise] {
        let scores: Vec<f64> = answer["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["score"].as_f64().unwrap())
            .collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    }
    assert!(
        by(&cross).contains("blended with the stage-1 order"),
        "{}",
        by(&cross)
    );
    for h in cross["hits"].as_array().unwrap() {
        assert_eq!(h["score"], h["scores"]["blended"], "{h}");
        assert!(h["scores"]["rerank"].is_f64(), "the raw logit is kept: {h}");
    }
    // The same model and prompts as the CLI's in-process reranker.
    let cli = search(&sift, &["--reranker", "llm"]);
    let (a, b) = (scores_by_chunk(&cli), api_scores_by_chunk(&llm));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((&x.0, x.1), (&y.0, y.1));
        assert!((x.2 - y.2).abs() < 1e-4, "{x:?} vs {y:?}");
    }
    // The instruction reaches the model over HTTP too.
    assert_ne!(api_scores_by_chunk(&told), api_scores_by_chunk(&llm));
    // Listwise: 1/rank of a full permutation.
    let mut ranks: Vec<f64> = api_scores_by_chunk(&listwise)
        .iter()
        .map(|x| 1.0 / x.2)
        .collect();
    ranks.sort_by(f64::total_cmp);
    assert!(
        ranks
            .iter()
            .zip(1..)
            .all(|(r, i)| (r - i as f64).abs() < 1e-4),
        "{ranks:?}"
    );
}

#[test]
fn a_missing_model_or_dead_endpoint_is_a_clear_error() {
    let sift = sandbox();
    let err = sift.fails(&[
        "search",
        QUERY,
        "--reranker",
        "llm",
        "--llm-gguf",
        "no-such.gguf",
    ]);
    assert!(err.contains("llm reranker is unavailable"), "{err}");
    assert!(err.contains("just fetch-llm"), "{err}");
    let not_gguf = sift.write("fake.gguf", "not a model");
    let err = sift.fails(&[
        "search",
        QUERY,
        "--reranker",
        "listwise",
        "--llm-gguf",
        not_gguf.to_str().unwrap(),
    ]);
    assert!(err.contains("not a readable GGUF file"), "{err}");
    // A closed port: connection refused, retried, then a clear error.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let err = sift.fails(&[
        "search",
        QUERY,
        "--reranker",
        "llm",
        "--llm-backend",
        "http",
        "--llm-url",
        &url,
        "--llm-retries",
        "1",
        "--depth",
        "2",
        "--k",
        "1",
    ]);
    assert!(
        err.contains("LLM endpoint") && err.contains("after 2 tries"),
        "{err}"
    );
}
