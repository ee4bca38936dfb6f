//! The page at `/` in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`; `just browser-setup` installs them): the server runs
//! in process on a free loopback port over part of the demo help centre,
//! with an API key and a throwaway cross-encoder; the test types the seed's
//! question and checks what the page shows against what the API answers.
//!
//! The throwaway cross-encoder (tests/common) scores deterministically and
//! meaninglessly, which is what is wanted here: it reorders stage 1, so the
//! movement marks have something to show, and the test checks each mark
//! against the two API answers rather than against a reranker's taste.

mod common;
#[path = "support/webdriver.rs"]
mod webdriver;

use common::{Setup, TestServer};
use serde_json::{json, Value};
use sift_core::Document;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use webdriver::Browser;

const KEY: &str = "page-test-key";
const SEED: &str = "what happens to my data if I close my account";
const WAIT: Duration = Duration::from_secs(120);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Two sections of the demo help centre (13 articles): enough for the
/// seed's question to have competitors, small enough to index in seconds.
fn helpcentre() -> Vec<Document> {
    let source = sift_engine::ingest::Source::open(&repo().join("data/helpcentre")).unwrap();
    let docs: Vec<Document> = source
        .map(Result::unwrap)
        .filter(|d| d.id.starts_with("accounts/") || d.id.starts_with("data-retention/"))
        .collect();
    assert!(docs.len() >= 10, "the demo corpus is in data/helpcentre");
    docs
}

fn fixture_eval_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eval")
}

/// The API's own answer to a search, for comparison with the page.
fn search(server: &TestServer, body: &Value) -> Value {
    let r = server.call("POST", "/search", Some(&body.to_string()), Some(KEY));
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

fn ids(body: &Value) -> Vec<String> {
    body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["chunk_id"].as_str().unwrap().to_string())
        .collect()
}

/// The hits a list of the page shows, with what each says.
const READ_LIST: &str = r#"
    const q = (li, sel) => { const e = li.querySelector(sel); return e ? e.textContent : null; };
    return [...document.querySelectorAll(arguments[0] + ' > li.hit')].map(li => ({
        chunk: li.dataset.chunkId, doc: li.dataset.docId, rank: Number(li.dataset.rank),
        stage1: li.dataset.stage1Rank ?? null, moved: li.dataset.moved ?? null,
        move_class: li.querySelector('.move') ? li.querySelector('.move').className : null,
        text: q(li, '.text'), offsets: q(li, '.offsets'), title: q(li, '.hit-title'),
        bm25: q(li, '.prov-bm25'), dense: q(li, '.prov-dense'), fused: q(li, '.prov-fused'),
        rerank: q(li, '.prov-rerank'), rescore: q(li, '.prov-rescore'),
    }));
"#;

fn list(browser: &Browser, which: &str) -> Vec<Value> {
    browser
        .exec(READ_LIST, json!([which]))
        .as_array()
        .unwrap()
        .clone()
}

fn search_seq(browser: &Browser) -> u64 {
    browser
        .exec(
            "return Number(document.body.dataset.searchSeq || 0);",
            json!([]),
        )
        .as_u64()
        .unwrap()
}

/// Wait until the page has finished a search started after `before`.
fn wait_search(browser: &Browser, before: u64, what: &str) {
    browser.wait_for(
        what,
        &format!("return Number(document.body.dataset.searchSeq || 0) > {before} && !document.body.dataset.busy;"),
        WAIT,
    );
}

fn error_text(browser: &Browser) -> Option<String> {
    browser
        .exec(
            "const e = document.querySelector('#error'); return e.hidden ? null : e.textContent;",
            json!([]),
        )
        .as_str()
        .map(str::to_string)
}

fn stat(browser: &Browser, name: &str) -> u64 {
    let v = browser.exec(
        "const td = document.querySelector(`#stats tr[data-stat='${arguments[0]}'] td`); return td ? td.textContent : null;",
        json!([name]),
    );
    v.as_str()
        .unwrap_or_else(|| panic!("the stats table has no {name}"))
        .parse()
        .unwrap()
}

/// The number in a provenance cell such as "rerank +1.234" or "BM25 #2 · 13.60".
fn last_number(cell: &str) -> f64 {
    cell.rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{cell:?}: {e}"))
}

#[test]
fn the_page_searches_shows_provenance_and_movement_writes_and_reports() {
    let started = Instant::now();
    let server = TestServer::start(Setup {
        reranker: true,
        api_key: Some(KEY),
        documents: Some(helpcentre()),
        eval_dir: Some(fixture_eval_dir()),
        ..Setup::default()
    });
    let browser = Browser::start(1360, 1500);
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("page");

    // Without the key the page opens, and says in words why it can do nothing.
    browser.goto(&format!("{}/", server.base));
    let refused = browser.wait_for(
        "the page to say that the key is missing",
        "const e = document.querySelector('#error'); return !e.hidden && e.textContent;",
        WAIT,
    );
    let refused = refused.as_str().unwrap();
    assert!(refused.contains("401 unauthorized"), "{refused}");
    assert!(refused.contains("Bearer"), "{refused}");

    // With the key (typed, then the field left), it loads the stats.
    browser.type_into("#token", KEY);
    browser.click("#query");
    browser.wait_for(
        "the page to load with the key",
        "return document.body.dataset.ready === 'true';",
        WAIT,
    );
    assert_eq!(error_text(&browser), None);
    let documents = stat(&browser, "documents");
    assert_eq!(documents, helpcentre().len() as u64);

    // The seed's question, reranked by the cross-encoder alone (weight 0).
    browser.type_into("#query", SEED);
    browser.fill("#depth", "10");
    browser.fill("#k", "5");
    browser.click("#reranker option[value='cross-encoder']");
    browser.fill("#stage1-weight", "0");
    let before = search_seq(&browser);
    browser.click("#search-btn");
    wait_search(&browser, before, "the seed question's results");
    assert_eq!(error_text(&browser), None);

    let stage1 = search(
        &server,
        &json!({"query": SEED, "depth": 10, "k": 10, "rerank": false}),
    );
    let fin = search(
        &server,
        &json!({"query": SEED, "depth": 10, "k": 5, "rerank": true, "reranker": "cross-encoder", "stage1_weight": 0.0}),
    );
    assert!(fin["reranked_by"].is_string(), "{fin}");
    let page_stage1 = list(&browser, "#stage1-list");
    let page_final = list(&browser, "#final-list");
    let chunk_ids = |hits: &[Value]| -> Vec<String> {
        hits.iter()
            .map(|h| h["chunk"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        chunk_ids(&page_stage1),
        ids(&stage1),
        "the stage-1 column is stage 1's order"
    );
    assert_eq!(
        chunk_ids(&page_final),
        ids(&fin),
        "the final column is the reranked order"
    );
    assert!(
        page_stage1.iter().any(
            |h| h["doc"] == "data-retention/what-happens-to-your-data-after-account-closure.md"
        ),
        "the article that answers the seed's question is among the candidates: {page_stage1:?}"
    );

    // Each final hit: its text, citation and provenance, and how far it moved.
    let stage1_ids = ids(&stage1);
    let mut moved = 0;
    for (shown, hit) in page_final.iter().zip(fin["hits"].as_array().unwrap()) {
        assert_eq!(shown["text"], hit["text"]);
        assert_eq!(shown["doc"], hit["doc_id"]);
        let offsets = format!("chars {}–{}", hit["char_start"], hit["char_end"]);
        assert!(
            shown["offsets"].as_str().unwrap().starts_with(&offsets),
            "{shown}"
        );
        let scores = &hit["scores"];
        match scores["bm25"]["rank"].as_u64() {
            Some(rank) => assert!(
                shown["bm25"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("#{rank} ")),
                "{shown}"
            ),
            None => assert_eq!(shown["bm25"], "BM25 —"),
        }
        match scores["dense"]["rank"].as_u64() {
            Some(rank) => {
                let cell = shown["dense"].as_str().unwrap();
                assert!(cell.contains(&format!("#{rank} ")), "{shown}");
                let sim = scores["dense"]["similarity"].as_f64().unwrap();
                assert!((last_number(cell) - sim).abs() < 1e-3, "{cell} vs {sim}");
            }
            None => assert_eq!(shown["dense"], "dense —"),
        }
        let fused = scores["fused"].as_f64().unwrap();
        assert!(
            (last_number(shown["fused"].as_str().unwrap()) - fused).abs() < 1e-4,
            "{shown}"
        );
        let logit = scores["rerank"]
            .as_f64()
            .expect("reranked hits carry a logit");
        let cell = shown["rerank"]
            .as_str()
            .expect("the page shows the rerank logit");
        assert!(
            (last_number(cell) - logit).abs() < 2e-3,
            "{cell} vs {logit}"
        );

        let rank = hit["rank"].as_u64().unwrap() as i64;
        let from = stage1_ids
            .iter()
            .position(|id| id == hit["chunk_id"].as_str().unwrap())
            .expect("every final hit is a stage-1 candidate") as i64
            + 1;
        let (mark, class) = match from - rank {
            d if d > 0 => (format!("↑{d}"), "move up"),
            d if d < 0 => (format!("↓{}", -d), "move down"),
            _ => ("=".to_string(), "move same"),
        };
        assert_eq!(shown["moved"], mark.as_str(), "{shown}");
        assert_eq!(shown["move_class"], class, "{shown}");
        assert_eq!(shown["stage1"], from.to_string().as_str());
        if from != rank {
            moved += 1;
        }
    }
    assert!(
        moved > 0,
        "the reranker moved no hit, so no mark was checked: {page_final:?}"
    );

    // The per-stage timings bar, rerank included.
    let segments = browser.exec(
        "return [...document.querySelectorAll('#timings-bar .seg')].map(s => [s.dataset.stage, s.getBoundingClientRect().width]);",
        json!([]),
    );
    let segments = segments.as_array().unwrap();
    assert!(segments.len() >= 4, "{segments:?}");
    assert!(
        segments
            .iter()
            .any(|s| s[0] == "rerank" && s[1].as_f64().unwrap() > 0.0),
        "a visible rerank segment: {segments:?}"
    );
    let total = browser.exec(
        "return document.querySelector('#timings-total').textContent;",
        json!([]),
    );
    assert!(total.as_str().unwrap().starts_with("total "), "{total}");
    browser.screenshot(&out.join("playground.png"));
    browser.screenshot_of("#search-section", &out.join("search.png"));

    // The eval report from --eval-dir: table, recommended depth, plot.
    let report: Value = serde_json::from_slice(
        &std::fs::read(fixture_eval_dir().join("helpcentre/report.json")).unwrap(),
    )
    .unwrap();
    let recommended = report["sweeps"]["depth"]["flattening"]["depth"]
        .as_u64()
        .expect("the fixture has a depth sweep");
    let shown = browser.wait_for(
        "the eval report",
        "const e = document.querySelector('#eval-recommended'); return e && e.textContent;",
        WAIT,
    );
    assert!(
        shown
            .as_str()
            .unwrap()
            .starts_with(&format!("Recommended depth: {recommended} ")),
        "{shown}"
    );
    let rows = browser.exec(
        "return [...document.querySelectorAll('#eval-table tbody tr')].map(r => r.dataset.stage);",
        json!([]),
    );
    let stages: Vec<Value> = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(rows.as_array().unwrap(), &stages);
    browser.wait_for(
        "the depth-sweep plot to load",
        "const i = document.querySelector('#eval-plot'); return i && i.complete && i.naturalWidth > 0;",
        WAIT,
    );
    browser.exec(
        "document.querySelector('#eval-section').scrollIntoView();",
        json!([]),
    );
    browser.screenshot(&out.join("eval.png"));

    // Adding a document changes the results (the page searches again).
    let new_id = "accounts/closing-checklist.md";
    browser.fill("#doc-id", new_id);
    browser.fill("#doc-title", "Closing your account: a checklist");
    browser.fill(
        "#doc-text",
        "What happens to my data if I close my account? Before you close your account, export your data. \
         After you close your account, your data is kept for 30 days and then deleted.",
    );
    let before = search_seq(&browser);
    browser.click("#add-doc");
    wait_search(&browser, before, "the search after adding a document");
    assert_eq!(error_text(&browser), None);
    let said = browser.exec(
        "return document.querySelector('#doc-result').textContent;",
        json!([]),
    );
    assert!(
        said.as_str().unwrap().starts_with("Committed: 1 written"),
        "{said}"
    );
    let docs_of = |which: &str| -> Vec<String> {
        list(&browser, which)
            .iter()
            .map(|h| h["doc"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        docs_of("#stage1-list").contains(&new_id.to_string()),
        "{:?}",
        docs_of("#stage1-list")
    );
    browser.wait_for(
        "the stats to count the new document",
        &format!("const td = document.querySelector(\"#stats tr[data-stat='documents'] td\"); return td && td.textContent === '{}';", documents + 1),
        WAIT,
    );

    // Deleting it takes it out again.
    browser.fill("#delete-id", new_id);
    let before = search_seq(&browser);
    browser.click("#delete-doc");
    wait_search(&browser, before, "the search after deleting the document");
    assert_eq!(error_text(&browser), None);
    assert!(!docs_of("#stage1-list").contains(&new_id.to_string()));
    assert!(!docs_of("#final-list").contains(&new_id.to_string()));
    browser.wait_for(
        "the stats to drop the document",
        &format!("const td = document.querySelector(\"#stats tr[data-stat='documents'] td\"); return td && td.textContent === '{documents}';"),
        WAIT,
    );

    // A JSONL upload (BEIR's `_id`, or `id`), parsed in the page into one
    // POST /documents; a malformed line is named before anything is sent.
    let uploads = tempfile::tempdir().unwrap();
    let jsonl = uploads.path().join("extra.jsonl");
    std::fs::write(
        &jsonl,
        concat!(
            r#"{"_id": "upload/one", "title": "Uploaded one", "text": "An uploaded page about closing an account.", "metadata": {"source": "upload"}}"#,
            "\n\n",
            r#"{"id": "upload/two", "title": "Uploaded two", "text": "Another uploaded page."}"#,
            "\n",
        ),
    )
    .unwrap();
    let before = search_seq(&browser);
    browser.type_into("#doc-file", &jsonl.display().to_string());
    browser.click("#add-doc");
    wait_search(&browser, before, "the search after the upload");
    assert_eq!(error_text(&browser), None);
    let said = browser.exec(
        "return document.querySelector('#doc-result').textContent;",
        json!([]),
    );
    assert!(
        said.as_str().unwrap().starts_with("Committed: 2 written"),
        "{said}"
    );
    assert_eq!(stat(&browser, "documents"), documents + 2);
    for id in ["upload/one", "upload/two"] {
        let r = server.call("DELETE", &format!("/documents/{id}"), None, Some(KEY));
        assert_eq!(
            r.status, 200,
            "the upload indexed {id} under its own id: {}",
            r.text
        );
    }
    let bad = uploads.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"_id\": \"ok\", \"text\": \"fine\"}\n{\"_id\": oops}\n",
    )
    .unwrap();
    browser.type_into("#doc-file", &bad.display().to_string());
    browser.click("#add-doc");
    let said = browser.wait_for(
        "the page to refuse the malformed upload",
        "const e = document.querySelector('#error'); return !e.hidden && e.textContent;",
        WAIT,
    );
    assert!(
        said.as_str()
            .unwrap()
            .contains("line 2 of the file is not JSON"),
        "{said}"
    );
    assert_eq!(
        server
            .call("DELETE", "/documents/ok", None, Some(KEY))
            .status,
        404,
        "nothing of a malformed file is sent"
    );

    // API errors in words: a second delete of the same id, an empty query.
    browser.click("#delete-doc");
    let said = browser.wait_for(
        "the page to say the document is gone",
        "const e = document.querySelector('#error'); return !e.hidden && e.textContent;",
        WAIT,
    );
    let said = said.as_str().unwrap();
    assert!(said.contains("404 document_not_found"), "{said}");
    assert!(said.contains(new_id), "{said}");

    // "prefer recent": the rule reorders the final column as POST /search
    // does, and each hit shows its factor.
    browser.clear("#query");
    browser.type_into("#query", "how do I close my account");
    browser.fill("#depth", "30");
    browser.fill("#k", "3");
    browser.click("#reranker option[value='none']");
    browser.fill("#prefer-recent", "1y");
    let before = search_seq(&browser);
    browser.click("#search-btn");
    wait_search(&browser, before, "the prefer-recent results");
    let expected = search(
        &server,
        &json!({"query": "how do I close my account", "depth": 30, "k": 3, "rerank": false,
                "rescore": {"rules": [{"kind": "decay", "field": "date", "origin": "newest", "scale": "1y", "weight": 0.5}]}}),
    );
    let shown = list(&browser, "#final-list");
    assert_eq!(
        shown
            .iter()
            .map(|h| h["chunk"].as_str().unwrap().to_string())
            .collect::<Vec<_>>(),
        ids(&expected)
    );
    for hit in &shown {
        let cell = hit["rescore"]
            .as_str()
            .unwrap_or_else(|| panic!("no rescore shown: {hit}"));
        assert!(
            cell.starts_with("rescored ") && cell.contains(" × "),
            "{cell}"
        );
    }
    browser.fill("#prefer-recent", "");

    browser.clear("#query");
    let before = search_seq(&browser);
    browser.click("#search-btn");
    wait_search(&browser, before, "the empty query's answer");
    let said = error_text(&browser).expect("the empty query's error is shown");
    assert!(said.contains("422 invalid_query"), "{said}");
    // Not shown, rather than flagged: what counts is what is on the screen.
    let shown = browser.exec(
        "const r = document.querySelector('#results'); return [r.hidden, r.getBoundingClientRect().height];",
        json!([]),
    );
    assert_eq!(shown, json!([true, 0]), "no stale results under the error");
    browser.screenshot(&out.join("error.png"));

    eprintln!(
        "page test: {:.1} s; screenshots (playground, search, eval, error) in {}",
        started.elapsed().as_secs_f64(),
        out.display()
    );
}
