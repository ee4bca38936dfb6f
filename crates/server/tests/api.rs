//! Every endpoint of the real server, over HTTP on a loopback port.

mod common;

use base64::Engine as _;
use common::{Setup, TestServer};
use serde_json::{json, Value};
use std::sync::OnceLock;
use std::time::Duration;

/// Server without a reranker; shared by the tests that do not need their
/// own (each uses its own document ids where it writes).
fn plain() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        TestServer::start(Setup {
            max_body_bytes: Some(16 << 10),
            max_batch: Some(50),
            ..Setup::default()
        })
    })
}

const KEY: &str = "test-key-123";

/// Server with the throwaway cross-encoder and an API key.
fn reranking() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        TestServer::start(Setup {
            reranker: true,
            api_key: Some(KEY),
            ..Setup::default()
        })
    })
}

fn hits(body: &Value) -> &Vec<Value> {
    body["hits"].as_array().expect("hits is an array")
}

fn doc_ids(body: &Value) -> Vec<String> {
    hits(body)
        .iter()
        .map(|h| h["doc_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn search_returns_hits_with_citations_scores_and_timings() {
    let s = plain();
    let r = s.post(
        "/search",
        &json!({"query": "what happens to my data if I close my account", "depth": 10, "k": 3}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    let found = hits(&body);
    assert_eq!(found.len(), 3);
    let top = &found[0];
    assert_eq!(top["doc_id"], "faq/close-account.md");
    assert_eq!(top["rank"], 1);
    assert_eq!(top["title"], "Closing your account");
    assert_eq!(top["ordinal"], 0);
    assert_eq!(top["metadata"]["source"], "faq");
    assert_eq!(top["chunk_id"].as_str().unwrap().len(), 16);
    let text = top["text"].as_str().unwrap();
    assert!(text.contains("30 days"), "{text}");
    // The offsets cite the chunk within the document's text.
    let doc = common::corpus()
        .into_iter()
        .find(|d| d.id == "faq/close-account.md")
        .unwrap();
    let (start, end) = (
        top["char_start"].as_u64().unwrap() as usize,
        top["char_end"].as_u64().unwrap() as usize,
    );
    let cited: String = doc.text.chars().skip(start).take(end - start).collect();
    assert_eq!(cited, text);
    // Provenance: both retrievers and fusion saw it; no reranker ran.
    let scores = &top["scores"];
    assert_eq!(scores["bm25"]["rank"], 1);
    assert!(scores["bm25"]["score"].as_f64().unwrap() > 0.0);
    assert!(scores["dense"]["rank"].as_u64().unwrap() >= 1);
    let sim = scores["dense"]["similarity"].as_f64().unwrap();
    assert!((-1.0..=1.0).contains(&sim));
    let fused = scores["fused"].as_f64().unwrap();
    assert!(fused > 0.0);
    assert!(scores["rerank"].is_null());
    assert!((top["score"].as_f64().unwrap() - fused).abs() < 1e-6);
    for stage in [
        "tokenize", "bm25", "embed", "hnsw", "fuse", "fetch", "rerank", "total", "queue",
    ] {
        assert!(body["timings"][stage].as_f64().is_some(), "timing {stage}");
    }
    assert!(body["reranked_by"].is_null());
    let notice = body["notice"]
        .as_str()
        .expect("a notice without a reranker");
    assert!(notice.contains("not reranked"), "{notice}");

    // Not asking for a rerank is not a notice.
    let r = s.post(
        "/search",
        &json!({"query": "refund an annual plan", "rerank": false}),
    );
    let body = r.json();
    assert!(body["notice"].is_null());
    assert_eq!(hits(&body).len(), 5, "the configured default k");
    assert_eq!(doc_ids(&body)[0], "billing/refunds.md");
}

#[test]
fn search_filter_keeps_only_matching_metadata() {
    let s = plain();
    let r = s.post(
        "/search",
        &json!({"query": "close my account and delete my notes", "depth": 5, "k": 5, "filter": {"source": "faq"}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert!(!hits(&body).is_empty());
    for hit in hits(&body) {
        assert_eq!(hit["metadata"]["source"], "faq", "{hit}");
    }
    // The pool is widened, so a filter can still fill depth and k.
    let r = s.post(
        "/search",
        &json!({"query": "refund", "depth": 2, "k": 2, "filter": {"source": "faq"}}),
    );
    assert_eq!(hits(&r.json()).len(), 2);
    // A value of another type is not equal; a key no chunk has matches nothing.
    let r = s.post(
        "/search",
        &json!({"query": "refund", "filter": {"source": ["faq"]}}),
    );
    assert!(hits(&r.json()).is_empty());
    let r = s.post(
        "/search",
        &json!({"query": "refund", "filter": {"lang": "en"}}),
    );
    assert!(hits(&r.json()).is_empty());
}

/// Rescoring rules in the request: a boost lifts the matching document,
/// each hit shows every rule's factor, and a bad rule is a 422 naming it.
#[test]
fn search_rescore_rules_reorder_and_show_their_factors() {
    let s = plain();
    let query = "close my account and delete my notes";
    let plain_order = doc_ids(
        &s.post("/search", &json!({"query": query, "depth": 5, "k": 5}))
            .json(),
    );
    assert_ne!(plain_order[0], "blog/offline.md", "{plain_order:?}");
    let r = s.post(
        "/search",
        &json!({"query": query, "depth": 5, "k": 5, "rescore": {"rules": [
            {"kind": "boost", "field": "source", "equals": "blog", "factor": 10.0}
        ]}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!(doc_ids(&body)[0], "blog/offline.md", "{body}");
    for hit in hits(&body) {
        let rescore = &hit["scores"]["rescore"];
        let factor = rescore["factors"][0]["factor"].as_f64().unwrap();
        let expected = if hit["metadata"]["source"] == "blog" {
            10.0
        } else {
            1.0
        };
        assert_eq!(factor, expected, "{hit}");
        assert_eq!(rescore["factors"][0]["rule"], "source = blog ×10");
        assert_eq!(hit["score"], rescore["score"], "{hit}");
    }
    assert!(body["timings"]["rescore"].is_number());
    // Without rules there is no rescore in the hits.
    let r = s.post("/search", &json!({"query": query, "depth": 5, "k": 5}));
    assert!(hits(&r.json())[0]["scores"]["rescore"].is_null());

    let send = |body: &str| s.call("POST", "/search", Some(body), None);
    let m = send(r#"{"query": "x", "rescore": {"rules": [{"kind": "decay", "field": "date", "scale": "soon"}]}}"#)
        .assert_error(422, "invalid_request");
    assert!(
        m.contains("rescore.rules[0] (decay)") && m.contains("not a duration"),
        "{m}"
    );
    let m = send(r#"{"query": "x", "rescore": {"rules": [{"kind": "boost", "field": "source", "equals": "faq"}]}}"#)
        .assert_error(422, "invalid_request");
    assert!(m.contains("factor"), "{m}");
}

#[test]
fn documents_are_added_replaced_and_deleted_while_serving() {
    let s = plain();
    let id = "notes/zebra.md";
    let search_marker = |marker: &str| -> Vec<Value> {
        let r = s.post("/search", &json!({"query": marker, "depth": 10, "k": 10}));
        assert_eq!(r.status, 200, "{}", r.text);
        hits(&r.json())
            .iter()
            .filter(|h| h["doc_id"] == id)
            .cloned()
            .collect()
    };

    let r = s.post(
        "/documents",
        &json!({"documents": [{"id": id, "title": "Zebras", "text": "The quagga zebra marker xylophonist.", "metadata": {"source": "test"}}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let report = r.json();
    assert_eq!(report["documents_written"], 1);
    assert_eq!(report["chunks_written"], 1);
    let found = search_marker("xylophonist");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["scores"]["bm25"]["rank"], 1);
    assert_eq!(found[0]["metadata"]["source"], "test");

    // The same document again changes nothing.
    let r = s.post(
        "/documents",
        &json!({"documents": [{"id": id, "title": "Zebras", "text": "The quagga zebra marker xylophonist.", "metadata": {"source": "test"}}]}),
    );
    assert_eq!(r.json()["documents_unchanged"], 1);

    // Replace: the new text is found, the old one is gone.
    let r = s.post(
        "/documents",
        &json!({"documents": [{"id": id, "title": "Zebras", "text": "Now about the okapi saxophonist."}]}),
    );
    assert_eq!(r.json()["documents_written"], 1);
    let found = search_marker("saxophonist");
    assert_eq!(found.len(), 1);
    assert!(found[0]["text"].as_str().unwrap().contains("saxophonist"));
    let stale = search_marker("xylophonist");
    assert!(
        stale
            .iter()
            .all(|h| !h["text"].as_str().unwrap().contains("xylophonist")),
        "{stale:?}"
    );

    // Delete (an id with a slash, sent as is and percent-encoded).
    let r = s.delete(&format!("/documents/{id}"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json(), json!({"id": id, "deleted": true}));
    assert!(search_marker("saxophonist").is_empty());
    s.delete("/documents/notes%2Fzebra.md")
        .assert_error(404, "document_not_found");
}

/// One document of a batch that cannot be indexed is answered with a 422
/// naming it; the others of the batch are committed and found, in any
/// script.
#[test]
fn a_bad_document_is_named_and_the_rest_of_its_batch_kept() {
    let s = TestServer::start(Setup {
        max_document_bytes: Some(2_000),
        documents: Some(Vec::new()),
        ..Setup::default()
    });
    let r = s.post(
        "/documents",
        &json!({"documents": [
            {"id": "ko", "text": "대한민국의 나라이름은 한국어로 대한민국이다. 수도는 서울이다."},
            {"id": "too-long", "text": "word ".repeat(1_000)},
            {"id": "zh", "text": "2008年汶川大地震是四川省发生的地震。"},
            {"id": "ar", "text": "اللُّغَةُ العَرَبِيَّة لغة سامية 👨\u{200D}👩\u{200D}👧 مع رموز تعبيرية"},
        ]}),
    );
    assert_eq!(r.status, 422, "{}", r.text);
    let body = r.json();
    assert_eq!(body["error"]["code"], "documents_failed", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"too-long\"") && message.contains("max_document_bytes"),
        "{message}"
    );
    assert_eq!(body["failed"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["failed"][0]["id"], "too-long");
    assert_eq!(body["documents_written"], 3, "{body}");

    for (query, id) in [("나라이름은", "ko"), ("地震", "zh"), ("العَرَبِيَّة", "ar")]
    {
        let r = s.post("/search", &json!({"query": query, "depth": 10, "k": 3}));
        assert_eq!(r.status, 200, "{}", r.text);
        let ids = doc_ids(&r.json());
        assert_eq!(
            ids.first().map(String::as_str),
            Some(id),
            "{query}: {ids:?}"
        );
    }
    // The failed one was not half written.
    s.delete("/documents/too-long")
        .assert_error(404, "document_not_found");
}

#[test]
fn errors_are_json_with_fitting_statuses() {
    let s = plain();
    let send = |path: &str, body: &str| s.call("POST", path, Some(body), None);

    // Malformed JSON, trailing garbage, no body: 400.
    send("/search", "{\"query\": ").assert_error(400, "invalid_json");
    send("/search", "{\"query\": \"x\"} x").assert_error(400, "invalid_json");
    s.call("POST", "/search", None, None)
        .assert_error(400, "invalid_json");
    // Unknown fields: 422, and the field is named (nested ones with their path).
    let m = send("/search", r#"{"query": "x", "detph": 5}"#).assert_error(422, "invalid_request");
    assert!(m.contains("detph"), "{m}");
    let m = send("/documents", r#"{"documents": [{"id": "a", "txt": "b"}]}"#)
        .assert_error(422, "invalid_request");
    assert!(m.contains("documents[0]") && m.contains("txt"), "{m}");
    // Wrong types and missing fields: 422.
    send("/search", r#"{"query": 5}"#).assert_error(422, "invalid_request");
    send("/search", r#"{"k": 5}"#).assert_error(422, "invalid_request");
    send("/search", r#"{"query": "x", "depth": -1}"#).assert_error(422, "invalid_request");
    // Query bounds.
    send("/search", r#"{"query": "   "}"#).assert_error(422, "invalid_query");
    let long = json!({"query": "a".repeat(sift_core::MAX_QUERY_CHARS + 1)}).to_string();
    let m = send("/search", &long).assert_error(422, "invalid_query");
    assert!(m.contains("2048"), "{m}");
    // Depth and k bounds.
    send("/search", r#"{"query": "x", "depth": 0}"#).assert_error(422, "invalid_request");
    send("/search", r#"{"query": "x", "depth": 1001}"#).assert_error(422, "invalid_request");
    send("/search", r#"{"query": "x", "k": 0}"#).assert_error(422, "invalid_request");
    // (Without k, a depth under the default k just caps the hits.)
    assert_eq!(
        send("/search", r#"{"query": "refunds", "depth": 2}"#).json()["hits"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let m = send("/search", r#"{"query": "x", "depth": 3, "k": 4}"#)
        .assert_error(422, "invalid_request");
    assert!(m.contains("k must be"), "{m}");
    // Body size: this server takes 16 KiB. (Sent by hand with `Expect:
    // 100-continue`: the server answers before the body is sent, whereas a
    // client pushing the body after an early 413 may hit a closed socket.)
    let (status, body) = raw_post(s, "/search", 20 << 10);
    assert_eq!(status, 413, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
    // Batch sizes: this server takes 50 texts per call.
    let texts: Vec<String> = (0..51).map(|i| format!("t{i}")).collect();
    send(
        "/rerank",
        &json!({"query": "q", "texts": texts}).to_string(),
    )
    .assert_error(413, "payload_too_large");
    send("/v1/embeddings", &json!({"input": texts}).to_string())
        .assert_error(413, "payload_too_large");
    send("/rerank", r#"{"query": "q", "texts": []}"#).assert_error(422, "invalid_request");
    send("/rerank", r#"{"query": "q", "texts": ["a"], "top_n": 1}"#)
        .assert_error(422, "invalid_request");
    send("/documents", r#"{"documents": []}"#).assert_error(422, "invalid_request");
    send("/documents", r#"{"documents": [{"id": " ", "text": "x"}]}"#)
        .assert_error(422, "invalid_request");
    // Routes and methods.
    let m = s.get("/nope").assert_error(404, "not_found");
    assert!(m.contains("openapi"), "{m}");
    let r = s.get("/search");
    r.assert_error(405, "method_not_allowed");
    assert_eq!(r.allow.as_deref(), Some("POST"));
    s.delete("/documents/never-indexed")
        .assert_error(404, "document_not_found");
}

/// POST a body of `len` bytes announced with `Expect: 100-continue`, over a
/// plain socket; sends the body only if the server asks for it.
fn raw_post(s: &TestServer, path: &str, len: usize) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(s.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {len}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        s.addr
    )
    .unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&response);
        if text.starts_with("HTTP/1.1 100") && text.contains("\r\n\r\n") {
            // Asked for the body after all: send it.
            response.clear();
            let _ = stream.write_all(&vec![b' '; len]);
        }
    }
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text[9..12].parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn llm_routes_without_a_model_answer_clearly() {
    // The plain server's rerank.llm.gguf is the default relative path,
    // which does not exist under crates/server: no model to load.
    let s = plain();
    let chat = |body: Value| s.post("/v1/chat/completions", &body);
    let m = chat(json!({"messages": [{"role": "user", "content": "hi"}]}))
        .assert_error(503, "llm_unavailable");
    assert!(m.contains("just fetch-llm"), "{m}");
    // Checked before any model work.
    for bad in [
        json!({"messages": []}),
        json!({"messages": [{"role": "user", "content": "hi"}], "stream": true}),
        json!({"messages": [{"role": "user", "content": "hi"}], "n": 2}),
        json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}),
        json!({"messages": [{"role": "user", "content": "hi"}], "top_logprobs": 21}),
        json!({"messages": [{"role": "user", "content": "hi"}], "frobnicate": 1}),
    ] {
        chat(bad).assert_error(422, "invalid_request");
    }
    for kind in ["llm", "listwise"] {
        let m = s
            .post(
                "/search",
                &json!({"query": "close my account", "reranker": kind}),
            )
            .assert_error(503, "reranker_unavailable");
        assert!(
            m.contains(&format!("the {kind} reranker is unavailable")),
            "{m}"
        );
    }
    let m = s
        .post(
            "/search",
            &json!({"query": "close my account", "reranker": "bm25"}),
        )
        .assert_error(422, "invalid_request");
    assert!(m.contains("reranker"), "{m}");
    // Without stage 2 the LLM is never asked, and an instruction is accepted.
    let r = s.post(
        "/search",
        &json!({"query": "close my account", "reranker": "llm", "rerank": false, "instruction": "prefer recent documents"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn rerank_without_a_reranker_is_503_and_says_how_to_load_one() {
    let s = plain();
    for body in [
        json!({"query": "q", "texts": ["a", "b"]}),
        json!({"query": "q", "documents": ["a", "b"]}),
    ] {
        let m = s
            .post("/rerank", &body)
            .assert_error(503, "reranker_unavailable");
        assert!(m.contains("no reranker is loaded"), "{m}");
        assert!(m.contains("--reranker-path"), "{m}");
    }
}

#[test]
fn embeddings_are_openai_shaped() {
    let s = plain();
    let r = s.post(
        "/v1/embeddings",
        &json!({"input": ["close my account", "export notes"], "model": "all-MiniLM-L6-v2"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!(body["object"], "list");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let floats: Vec<Vec<f32>> = data
        .iter()
        .enumerate()
        .map(|(i, d)| {
            assert_eq!(d["object"], "embedding");
            assert_eq!(d["index"], i);
            d["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    assert_eq!(floats[0].len(), 384);
    let norm: f32 = floats[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4);
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() >= 4);
    assert_eq!(
        body["usage"]["total_tokens"],
        body["usage"]["prompt_tokens"]
    );
    assert!(body["model"].as_str().unwrap().contains("all-MiniLM-L6-v2"));

    // One string; base64 (what OpenAI's Python client asks for) is the same vector.
    let r = s.post(
        "/v1/embeddings",
        &json!({"input": "close my account", "encoding_format": "base64"}),
    );
    let body = r.json();
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(decoded.len(), 384);
    for (a, b) in decoded.iter().zip(&floats[0]) {
        assert!((a - b).abs() < 1e-5);
    }

    s.post("/v1/embeddings", &json!({"input": [1, 2, 3]}))
        .assert_error(422, "invalid_request");
    s.post("/v1/embeddings", &json!({"input": []}))
        .assert_error(422, "invalid_request");
    s.post("/v1/embeddings", &json!({"input": "x", "dimensions": 256}))
        .assert_error(422, "invalid_request");
    s.post(
        "/v1/embeddings",
        &json!({"input": "x", "encoding_format": "int8"}),
    )
    .assert_error(422, "invalid_request");
}

#[test]
fn health_metrics_and_openapi() {
    let s = plain();
    let r = s.get("/health");
    assert_eq!(r.status, 200);
    let health = r.json();
    assert_eq!(health["status"], "ok");
    assert!(health["documents"].as_u64().unwrap() >= 5);
    assert!(health["reranker"].is_null());
    assert!(health["reranker_unavailable"].as_str().is_some());

    s.post("/search", &json!({"query": "export to pdf"}));
    s.get("/no-such-route");
    let r = s.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.content_type.starts_with("text/plain"),
        "{}",
        r.content_type
    );
    let m = &r.text;
    for needle in [
        r#"sift_http_requests_total{method="POST",route="/search",status="200"}"#,
        r#"sift_http_requests_total{method="GET",route="unmatched",status="404"}"#,
        r#"sift_search_stage_duration_seconds_bucket{stage="embed""#,
        r#"sift_search_stage_duration_seconds_count{stage="total"}"#,
        r#"sift_http_request_duration_seconds_count{route="/search"}"#,
        "sift_index_documents ",
        "sift_index_chunks ",
        "sift_index_lexical_bytes ",
        "sift_inference_queue_seconds_count ",
    ] {
        assert!(m.contains(needle), "metrics lack {needle}:\n{m}");
    }
    let searches = m
        .lines()
        .find(|l| {
            l.starts_with(r#"sift_http_requests_total{method="POST",route="/search",status="200"}"#)
        })
        .unwrap();
    let count: f64 = searches.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 1.0);

    let r = s.get("/openapi.json");
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/search", "post"),
        ("/rerank", "post"),
        ("/v1/embeddings", "post"),
        ("/v1/chat/completions", "post"),
        ("/documents", "post"),
        ("/documents/{id}", "delete"),
        ("/health", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
        ("/stats", "get"),
        ("/eval/runs", "get"),
        ("/eval/file", "get"),
    ] {
        assert!(
            paths[path][method].is_object(),
            "openapi lacks {method} {path}"
        );
    }
    // Every referenced schema is defined.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let text = doc.to_string();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "undefined schema {name}");
    }
    assert!(schemas["SearchRequest"]["properties"]["filter"].is_object());
}

#[test]
fn rerank_answers_in_the_shape_it_was_asked_in() {
    let s = reranking();
    let call = |body: Value| s.call("POST", "/rerank", Some(&body.to_string()), Some(KEY));
    let texts = [
        "Closed accounts keep notes for 30 days.",
        "Refunds for annual plans.",
        "The desktop app works offline.",
    ];

    // text-embeddings-inference.
    let r = call(
        json!({"query": "what happens when I close my account", "texts": texts, "return_text": true}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let ranks = r.json();
    let ranks = ranks.as_array().expect("TEI answers an array");
    assert_eq!(ranks.len(), 3);
    let mut seen: Vec<u64> = ranks.iter().map(|r| r["index"].as_u64().unwrap()).collect();
    let scores: Vec<f64> = ranks.iter().map(|r| r["score"].as_f64().unwrap()).collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "best first: {scores:?}"
    );
    assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
    for r in ranks {
        assert_eq!(r["text"], texts[r["index"].as_u64().unwrap() as usize]);
    }
    seen.sort();
    assert_eq!(seen, vec![0, 1, 2]);
    // raw_scores gives the logits behind those probabilities; no text unless asked.
    let raw = call(json!({"query": "what happens when I close my account", "texts": texts, "raw_scores": true, "truncate": true}))
        .json();
    for (p, l) in ranks.iter().zip(raw.as_array().unwrap()) {
        assert_eq!(p["index"], l["index"]);
        assert!(l.get("text").is_none());
        let logit = l["score"].as_f64().unwrap();
        let prob = 1.0 / (1.0 + (-logit).exp());
        assert!((prob - p["score"].as_f64().unwrap()).abs() < 1e-5);
    }

    // Cohere, with documents as strings and as objects.
    let r = call(
        json!({"model": "rerank-v3.5", "query": "what happens when I close my account", "documents": texts, "top_n": 2}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert!(body["id"].as_str().is_some());
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for (result, tei) in results.iter().zip(ranks) {
        assert_eq!(result["index"], tei["index"], "same order as TEI's");
        assert!(
            (result["relevance_score"].as_f64().unwrap() - tei["score"].as_f64().unwrap()).abs()
                < 1e-6
        );
        assert!(result.get("document").is_none());
    }
    let objects: Vec<Value> = texts.iter().map(|t| json!({"text": t})).collect();
    let body =
        call(json!({"query": "close account", "documents": objects, "return_documents": true}))
            .json();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for r in results {
        assert_eq!(
            r["document"]["text"],
            texts[r["index"].as_u64().unwrap() as usize]
        );
    }
    call(json!({"query": "q", "documents": ["a"], "return_text": true}))
        .assert_error(422, "invalid_request");

    // /search is reranked too, with the logit as the score.
    let r = s.call(
        "POST",
        "/search",
        Some(&json!({"query": "close my account", "depth": 5, "k": 2}).to_string()),
        Some(KEY),
    );
    let body = r.json();
    assert!(body["reranked_by"]
        .as_str()
        .unwrap()
        .contains("cross-encoder"));
    assert!(body["notice"].is_null());
    let top = &hits(&body)[0];
    assert_eq!(top["score"], top["scores"]["rerank"]);
    assert!(top["scores"]["fused"].as_f64().is_some());
    assert!(body["timings"]["rerank"].as_f64().unwrap() > 0.0);
}

#[test]
fn an_api_key_guards_every_route_but_health() {
    let s = reranking();
    let search = json!({"query": "refunds"}).to_string();
    let r = s.call("POST", "/search", Some(&search), None);
    r.assert_error(401, "unauthorized");
    assert_eq!(r.www_authenticate.as_deref(), Some("Bearer"));
    s.call("POST", "/search", Some(&search), Some("wrong"))
        .assert_error(401, "unauthorized");
    assert_eq!(
        s.call("POST", "/search", Some(&search), Some(KEY)).status,
        200
    );
    for path in ["/metrics", "/openapi.json"] {
        s.call("GET", path, None, None)
            .assert_error(401, "unauthorized");
        assert_eq!(s.call("GET", path, None, Some(KEY)).status, 200);
    }
    s.call("DELETE", "/documents/faq/export.md", None, None)
        .assert_error(401, "unauthorized");
    assert_eq!(s.call("GET", "/health", None, None).status, 200);
    // The page's own files hold no data: they open without the key (a
    // browser cannot send one when it opens a page); what they fetch cannot.
    for path in ["/", "/ui/app.js", "/ui/style.css"] {
        assert_eq!(s.call("GET", path, None, None).status, 200, "{path}");
    }
    for path in ["/stats", "/eval/runs", "/eval/file?run=x&file=report.json"] {
        s.call("GET", path, None, None)
            .assert_error(401, "unauthorized");
    }
    // Only GET: the exemption is for reading the page, nothing else.
    s.call("POST", "/", Some("{}"), None)
        .assert_error(401, "unauthorized");
}

#[test]
fn the_page_is_served_from_the_binary_and_fetches_nothing_from_elsewhere() {
    let s = plain();
    let r = s.get("/");
    assert_eq!(r.status, 200);
    assert!(
        r.content_type.starts_with("text/html"),
        "{}",
        r.content_type
    );
    assert!(r.text.contains(r#"<script src="/ui/app.js"></script>"#));
    assert!(r.text.contains(r#"href="/ui/style.css""#));
    let js = s.get("/ui/app.js");
    assert!(
        js.content_type.starts_with("text/javascript"),
        "{}",
        js.content_type
    );
    assert!(js.text.contains("\"/search\""));
    let css = s.get("/ui/style.css");
    assert!(
        css.content_type.starts_with("text/css"),
        "{}",
        css.content_type
    );
    // Same origin only: no URL of another host in any of the three files.
    for (path, text) in [
        ("/", &r.text),
        ("/ui/app.js", &js.text),
        ("/ui/style.css", &css.text),
    ] {
        for scheme in ["http://", "https://", "//cdn", "@import"] {
            assert!(!text.contains(scheme), "{path} refers to {scheme}…");
        }
    }
    // Other paths under /ui/ are not files of the page.
    s.get("/ui/other.js").assert_error(404, "not_found");
}

#[test]
fn stats_give_the_index_models_and_defaults() {
    let s = plain();
    let r = s.get("/stats");
    assert_eq!(r.status, 200, "{}", r.text);
    let stats = r.json();
    let health = s.get("/health").json();
    assert_eq!(stats["documents"], health["documents"]);
    assert!(stats["chunks"].as_u64().unwrap() >= stats["documents"].as_u64().unwrap());
    assert!(stats["vector_points"].as_u64().unwrap() >= stats["chunks"].as_u64().unwrap());
    assert!(stats["lexical_bytes"].as_u64().unwrap() > 0);
    assert_eq!(stats["embedding_dim"], 384);
    assert!(stats["bi_encoder"]
        .as_str()
        .unwrap()
        .contains("all-MiniLM-L6-v2"));
    assert!(stats["reranker"].is_null());
    assert!(stats["reranker_unavailable"].is_string());
    let d = &stats["defaults"];
    assert_eq!(d["depth"], 50);
    assert_eq!(d["k"], 5);
    assert_eq!(d["reranker"], "cross-encoder");
    assert_eq!(stats["eval_dir"], false);
    let r = s.get("/eval/runs");
    let message = r.assert_error(404, "eval_dir_not_set");
    assert!(message.contains("--eval-dir"), "{message}");
}

/// An eval folder with a real `sift eval` run (the committed fixture), a
/// run without a sweep, a broken one, an empty folder, and a symbolic link
/// to a run outside the folder, next to a file that must never be served.
fn eval_folder() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let eval = tmp.path().join("eval");
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eval/helpcentre");
    let run = eval.join("helpcentre");
    std::fs::create_dir_all(&run).unwrap();
    for entry in std::fs::read_dir(&fixture).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), run.join(entry.file_name())).unwrap();
    }
    // (The fixture leaves the PNG out; a few bytes that are not UTF-8
    // check that a binary file comes back as it is.)
    std::fs::write(run.join("sweep.png"), b"\x89PNG\r\n\x1a\n\x00\xff\xfe").unwrap();
    std::fs::create_dir_all(eval.join("nosweep")).unwrap();
    std::fs::write(
        eval.join("nosweep/report.json"),
        r#"{"dataset": "tiny", "split": "test", "queries": 3, "depth": 10, "k": 5}"#,
    )
    .unwrap();
    std::fs::create_dir_all(eval.join("broken")).unwrap();
    std::fs::write(eval.join("broken/report.json"), "{not json").unwrap();
    std::fs::create_dir_all(eval.join("empty")).unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("report.json"), r#"{"dataset": "secret"}"#).unwrap();
    std::fs::write(tmp.path().join("report.json"), r#"{"dataset": "parent"}"#).unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&outside, eval.join("escape")).unwrap();
        std::os::unix::fs::symlink(outside.join("report.json"), eval.join("nosweep/report.md"))
            .unwrap();
    }
    (tmp, eval)
}

#[test]
fn eval_runs_are_listed_and_served_from_the_eval_folder_only() {
    let (_tmp, eval) = eval_folder();
    let s = TestServer::start(Setup {
        eval_dir: Some(eval.clone()),
        ..Setup::default()
    });
    assert_eq!(s.get("/stats").json()["eval_dir"], true);
    let r = s.get("/eval/runs");
    assert_eq!(r.status, 200, "{}", r.text);
    let listing = r.json();
    let runs = listing["runs"].as_array().unwrap();
    let names: Vec<&str> = runs.iter().map(|r| r["name"].as_str().unwrap()).collect();
    // Not `empty` (no report), not `escape` (resolves outside the folder).
    assert_eq!(names, ["broken", "helpcentre", "nosweep"]);
    let fixture: Value =
        serde_json::from_slice(&std::fs::read(eval.join("helpcentre/report.json")).unwrap())
            .unwrap();
    let run = &runs[1];
    assert_eq!(run["dataset"], fixture["dataset"]);
    assert_eq!(run["queries"], fixture["queries"]);
    assert_eq!(run["depth"], fixture["depth"]);
    assert_eq!(
        run["recommended_depth"],
        fixture["sweeps"]["depth"]["flattening"]["depth"]
    );
    assert!(run["recommended_depth"].as_u64().is_some());
    let files: Vec<&str> = run["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for f in ["report.json", "report.md", "sweep.svg", "sweep.png"] {
        assert!(files.contains(&f), "{files:?}");
    }
    assert!(runs[0]["error"]
        .as_str()
        .unwrap()
        .contains("report.json cannot be read"));
    assert!(runs[0]["dataset"].is_null());
    assert!(runs[2]["recommended_depth"].is_null());

    // The files, with their types and bytes.
    let r = s.get("/eval/file?run=helpcentre&file=report.json");
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.content_type.starts_with("application/json"));
    assert_eq!(r.json(), fixture);
    let r = s.get("/eval/file?run=helpcentre&file=sweep.svg");
    assert_eq!(r.content_type, "image/svg+xml");
    assert!(
        r.text.contains("<svg"),
        "{}",
        &r.text[..100.min(r.text.len())]
    );
    let png = ureq::get(&format!(
        "{}/eval/file?run=helpcentre&file=sweep.png",
        s.base
    ))
    .call()
    .unwrap();
    assert_eq!(png.header("content-type"), Some("image/png"));
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut png.into_reader(), &mut bytes).unwrap();
    assert_eq!(
        bytes,
        std::fs::read(eval.join("helpcentre/sweep.png")).unwrap()
    );
    s.get("/eval/file?run=nosweep&file=sweep.svg")
        .assert_error(404, "eval_file_not_found");

    // Nothing outside the folder: not by `..`, absolute paths, encoded
    // separators, nested names, nor symbolic links out of it.
    for run in [
        "..",
        "../eval/helpcentre",
        "/",
        "/etc",
        "%2E%2E",
        "..%2Foutside",
        "helpcentre%2F..",
        "helpcentre/..",
        "./helpcentre",
        "escape",
        "empty",
        "",
    ] {
        let r = s.get(&format!("/eval/file?run={run}&file=report.json"));
        r.assert_error(404, "eval_run_not_found");
        assert!(
            !r.text.contains("secret") && !r.text.contains("parent"),
            "{run}: {}",
            r.text
        );
    }
    for file in [
        "../report.json",
        "..%2F..%2Freport.json",
        "%2Fetc%2Fpasswd",
        "/etc/passwd",
        "report.json/..",
        "hybrid.trec",
        "REPORT.JSON",
        "",
    ] {
        let r = s.get(&format!("/eval/file?run=helpcentre&file={file}"));
        let message = r.assert_error(422, "invalid_request");
        assert!(message.contains("file must be one of"), "{file}: {message}");
    }
    // A file inside a listed run that links out of the folder.
    let r = s.get("/eval/file?run=nosweep&file=report.md");
    r.assert_error(404, "eval_file_not_found");
    assert!(!r.text.contains("secret"));
    // Missing or extra parameters are errors in words too.
    let message = s
        .get("/eval/file?run=helpcentre")
        .assert_error(422, "invalid_request");
    assert!(message.contains("file"), "{message}");
    let message = s
        .get("/eval/file?run=helpcentre&file=report.json&path=/etc")
        .assert_error(422, "invalid_request");
    assert!(message.contains("path"), "{message}");
}

#[test]
fn shutdown_lets_an_in_flight_write_finish_and_commit() {
    let mut s = TestServer::start(Setup::default());
    let documents: Vec<Value> = (0..30)
        .map(|i| {
            json!({"id": format!("bulk/{i}"), "text": format!("bulk document {i} about the aardvark migration season. ").repeat(8)})
        })
        .collect();
    let base = s.base.clone();
    let writer = std::thread::spawn(move || {
        ureq::post(&format!("{base}/documents"))
            .timeout(Duration::from_secs(300))
            .send_json(json!({"documents": documents}))
            .map_err(Box::new)
    });
    // Wait until the write is running on the inference pool.
    let started = std::time::Instant::now();
    loop {
        let metrics = s.get("/metrics").text;
        // (Should the write be over already, the test still checks the rest.)
        if metrics.contains("sift_inference_running 1") || writer.is_finished() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the write never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    s.stop();
    let response = writer
        .join()
        .unwrap()
        .expect("the in-flight write is answered");
    assert_eq!(response.status(), 200);
    let report: Value = response.into_json().unwrap();
    assert_eq!(report["documents_written"], 30);
    // Stopped: no new connections.
    assert!(std::net::TcpStream::connect_timeout(&s.addr, Duration::from_millis(500)).is_err());
    // Committed: the index holds every document.
    assert_eq!(s.engine.stats().unwrap().documents, 5 + 30);
}
