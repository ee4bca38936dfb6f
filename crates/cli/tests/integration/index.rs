//! Indexing: folders and JSONL, bad files, re-indexing, deletion.

use crate::util::{counts, doc_ids, text, words, Sift};

/// A small nested folder of `.md` and `.txt` files.
pub fn write_small_corpus(sift: &Sift) {
    sift.write(
        "corpus/accounts/close-your-account.md",
        "# Close your account\n\nUpdated: 2025-03-01\n\n\
         When you close your account, your notes, notebooks and attachments are \
         deleted within 30 days. Backups are kept for 90 days and then erased.\n\n\
         ## Before you close\n\n\
         Before closing, export everything you want to keep: café menus, naïve \
         drafts and 🚲 bike-ride logs alike — the export keeps every character.\n\n\
         Closing cannot be undone once the 30 days have passed.\n",
    );
    sift.write(
        "corpus/accounts/export-notes.md",
        "# Export your notes\n\n\
         You can export every note as Markdown or PDF from Settings, Export. \
         Exports include attachments and are ready within a few minutes.\n",
    );
    sift.write(
        "corpus/billing/refunds.txt",
        "Refunds\n\n\
         Annual plans are refunded in full within 14 days of purchase. Monthly \
         plans are not refunded, but you keep access until the end of the month.\n",
    );
    sift.write(
        "corpus/deep/er/nested/lighthouse.txt",
        "The lighthouse keeper climbs one hundred and twelve steps every evening \
         to light the lamp, and writes the weather in a leather logbook.\n",
    );
}

pub const SMALL_CORPUS_DOCS: [&str; 4] = [
    "accounts/close-your-account.md",
    "accounts/export-notes.md",
    "billing/refunds.txt",
    "deep/er/nested/lighthouse.txt",
];

/// Small chunks, so documents of a few sentences have several.
pub const SMALL_CHUNKS: [&str; 4] = ["--chunk-tokens", "24", "--chunk-overlap", "6"];

pub fn index_small_corpus(sift: &Sift) {
    write_small_corpus(sift);
    let mut args = vec!["index", "corpus"];
    args.extend_from_slice(&SMALL_CHUNKS);
    let run = sift.ok(&args);
    assert!(
        run.stdout.contains("indexed 4 documents (4 new or changed"),
        "{}",
        run.stdout
    );
}

#[test]
fn folder_of_md_and_txt_is_indexed_recursively() {
    let sift = Sift::new();
    index_small_corpus(&sift);
    sift.write("corpus/ignored.pdf", "the lighthouse keeper");
    let (documents, chunks) = counts(&sift.stats(&[]));
    assert_eq!(documents, 4);
    assert!(
        chunks > 4,
        "small chunks make several per document: {chunks}"
    );

    // Each document, nested or not, is found by its own words, under its
    // path relative to the folder.
    for (query, doc) in [
        ("lighthouse keeper logbook", "deep/er/nested/lighthouse.txt"),
        ("refund annual plan", "billing/refunds.txt"),
        ("export notes as PDF", "accounts/export-notes.md"),
        (
            "backups erased after closing",
            "accounts/close-your-account.md",
        ),
    ] {
        let hits = sift.hits(query, &["--k", "1", "--depth", "10"]);
        assert_eq!(doc_ids(&hits), [doc], "query {query:?}");
    }
    // The title of a Markdown file is indexed and kept with its chunks; so
    // is the `Updated:` date, as metadata.
    let hits = sift.hits("close your account", &["--k", "3", "--depth", "10"]);
    let hit = hits
        .iter()
        .find(|h| h["chunk"]["doc_id"] == "accounts/close-your-account.md")
        .expect("found");
    assert_eq!(hit["chunk"]["title"], "Close your account");
    assert_eq!(hit["chunk"]["metadata"]["date"], "2025-03-01");
    assert!(!text(hit).contains("Updated"), "{}", text(hit));
    // A .txt file's short first line followed by a blank line is its title.
    let hits = sift.hits("refunds", &["--k", "1", "--depth", "10"]);
    assert_eq!(hits[0]["chunk"]["title"], "Refunds");
}

#[test]
fn beir_jsonl_corpus_is_indexed() {
    let sift = Sift::new();
    sift.write(
        "corpus.jsonl",
        concat!(
            r#"{"_id": "d1", "title": "Kayak hire", "text": "Sea kayaks can be hired by the hour from the harbour office."}"#,
            "\n\n",
            r#"{"_id": "d2", "title": "Bicycle repair", "text": "Bring your bicycle in for a free check of brakes and tyres.", "metadata": {"lang": "en"}}"#,
            "\n",
            r#"{"_id": 3, "title": "", "text": "The bakery opens at seven and sells sourdough bread."}"#,
            "\n",
        ),
    );
    let run = sift.ok(&["index", "corpus.jsonl"]);
    assert!(run.stdout.contains("indexed 3 documents"), "{}", run.stdout);
    assert_eq!(counts(&sift.stats(&[])), (3, 3));
    let hits = sift.hits("hire a kayak at the harbour", &["--k", "1", "--depth", "3"]);
    assert_eq!(doc_ids(&hits), ["d1"]);
    assert_eq!(hits[0]["chunk"]["title"], "Kayak hire");
    assert_eq!(
        text(&hits[0]),
        "Sea kayaks can be hired by the hour from the harbour office."
    );
    let hits = sift.hits("bicycle brakes", &["--k", "1", "--depth", "3"]);
    assert_eq!(doc_ids(&hits), ["d2"]);
    assert_eq!(hits[0]["chunk"]["metadata"]["lang"], "en");
    // A numeric id is a document id like any other.
    let hits = sift.hits("sourdough bread bakery", &["--k", "1", "--depth", "3"]);
    assert_eq!(doc_ids(&hits), ["3"]);
}

#[test]
fn malformed_jsonl_line_is_named_and_the_index_is_unchanged() {
    let sift = Sift::new();
    sift.write(
        "good.jsonl",
        concat!(
            r#"{"_id": "a", "title": "Kayak hire", "text": "Sea kayaks can be hired by the hour."}"#,
            "\n",
            r#"{"_id": "b", "title": "Bakery", "text": "The bakery sells sourdough bread."}"#,
            "\n",
        ),
    );
    sift.ok(&["index", "good.jsonl"]);
    let stats_before = sift.stats(&[]);
    let hits_before = sift.hits("kayak bread", &["--k", "2", "--depth", "2"]);

    // Line 1 is a new document, line 2 replaces "a", line 4 is broken
    // (line 3 is blank).
    sift.write(
        "bad.jsonl",
        concat!(
            r#"{"_id": "c", "title": "Lighthouse", "text": "The lighthouse keeper climbs the steps."}"#,
            "\n",
            r#"{"_id": "a", "title": "Kayak hire", "text": "Kayaks are no longer for hire."}"#,
            "\n\n",
            r#"{"_id": "d", "title": "Broken", "text": "unterminated"#,
            "\n",
            r#"{"_id": "e", "title": "After", "text": "after the broken line"}"#,
            "\n",
        ),
    );
    let stderr = sift.fails(&["index", "bad.jsonl"]);
    assert!(stderr.contains("bad.jsonl:4"), "names the line: {stderr}");

    // Nothing of bad.jsonl went in, not even its good lines.
    assert_eq!(sift.stats(&[]), stats_before);
    assert_eq!(
        sift.hits("kayak bread", &["--k", "2", "--depth", "2"]),
        hits_before
    );
    let hits = sift.hits("lighthouse keeper", &["--k", "2", "--depth", "2"]);
    assert!(!doc_ids(&hits).contains(&"c".to_string()), "{hits:?}");

    // A JSON line without the required fields is named too.
    sift.write("nofield.jsonl", "{\"_id\": \"x\", \"title\": \"t\"}\n");
    let stderr = sift.fails(&["index", "nofield.jsonl"]);
    assert!(stderr.contains("nofield.jsonl:1"), "{stderr}");
    assert_eq!(sift.stats(&[]), stats_before);
}

#[test]
fn non_utf8_and_empty_files_are_skipped_with_a_warning() {
    let sift = Sift::new();
    sift.write(
        "corpus/good.md",
        "# Lighthouse\n\nThe keeper climbs the steps.\n",
    );
    sift.write(
        "corpus/sub/also-good.txt",
        "Bakery bread is baked at dawn.\n",
    );
    sift.write(
        "corpus/latin1.txt",
        b"Caf\xe9 au lait, cr\xe8me br\xfbl\xe9e\n",
    );
    sift.write("corpus/empty.md", "");
    sift.write("corpus/sub/blank.txt", " \n\n \t\n");
    let run = sift.ok(&["index", "corpus"]);
    for name in ["latin1.txt", "empty.md", "blank.txt"] {
        let warnings: Vec<&str> = run.stderr.lines().filter(|l| l.contains(name)).collect();
        assert!(
            warnings.len() == 1 && warnings[0].starts_with("warning: skipped"),
            "not one warning naming {name}:\n{}",
            run.stderr
        );
    }
    assert!(run.stderr.contains("UTF-8"), "{}", run.stderr);
    assert!(!run.stderr.contains("good."), "{}", run.stderr);
    assert_eq!(counts(&sift.stats(&[])), (2, 2));
    let hits = sift.hits("bread baked at dawn", &["--k", "2", "--depth", "2"]);
    assert_eq!(doc_ids(&hits)[0], "sub/also-good.txt");
}

/// A JSONL line for a document of single-token words.
fn jsonl_doc(id: &str, text: &str) -> String {
    serde_json::json!({"_id": id, "title": "", "text": text}).to_string() + "\n"
}

#[test]
fn reindexing_a_changed_document_replaces_its_chunks() {
    let sift = Sift::new();
    // With 16-token chunks overlapping by 4, 40 one-token words make 3
    // chunks (tokens 0-15, 12-27, 24-39); 10 words make one.
    let long = format!("lighthouse {}", words(0, 39));
    let other = words(5, 10);
    sift.write(
        "v1.jsonl",
        jsonl_doc("long", &long) + &jsonl_doc("other", &other),
    );
    let chunking = ["--chunk-tokens", "16", "--chunk-overlap", "4"];
    let index = |file: &str| {
        let mut args = vec!["index", file];
        args.extend_from_slice(&chunking);
        sift.ok(&args)
    };
    index("v1.jsonl");
    assert_eq!(counts(&sift.stats(&[])), (2, 4));
    let hits = sift.hits("lighthouse", &["--k", "1", "--depth", "4"]);
    assert_eq!(doc_ids(&hits), ["long"]);
    assert!(text(&hits[0]).starts_with("lighthouse"));

    // "long" becomes a one-chunk document about canoes.
    let short = format!("canoe {}", words(0, 9));
    sift.write(
        "v2.jsonl",
        jsonl_doc("long", &short) + &jsonl_doc("other", &other),
    );
    let run = index("v2.jsonl");
    assert!(
        run.stdout
            .contains("(1 new or changed, 1 unchanged, 0 empty) into 1 chunks"),
        "{}",
        run.stdout
    );
    assert_eq!(counts(&sift.stats(&[])), (2, 2));
    // The old text is gone from BM25 and from the stored chunks; the new
    // text is found by both retrievers.
    let hits = sift.hits("lighthouse", &["--k", "2", "--depth", "2"]);
    assert!(
        hits.iter().all(|h| !text(h).contains("lighthouse")),
        "{hits:?}"
    );
    assert!(
        hits.iter().all(|h| h["scores"]["bm25"].is_null()),
        "{hits:?}"
    );
    let hits = sift.hits("canoe", &["--k", "1", "--depth", "2"]);
    assert_eq!(doc_ids(&hits), ["long"]);
    assert_eq!(text(&hits[0]), short);
    assert!(!hits[0]["scores"]["bm25"].is_null());
    assert!(!hits[0]["scores"]["dense"].is_null());
}

#[test]
fn reindexing_unchanged_documents_embeds_nothing() {
    let sift = Sift::new();
    index_small_corpus(&sift);
    let before = sift.stats(&[]);
    let mut args = vec!["index", "corpus"];
    args.extend_from_slice(&SMALL_CHUNKS);
    let run = sift.ok(&args);
    assert!(
        run.stdout
            .contains("indexed 4 documents (0 new or changed, 4 unchanged, 0 empty) into 0 chunks"),
        "{}",
        run.stdout
    );
    assert_eq!(sift.stats(&[]), before);

    // Touching one file's text re-embeds that file only.
    let path = sift.path("corpus/billing/refunds.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("14 days", "21 days")).unwrap();
    let run = sift.ok(&args);
    assert!(
        run.stdout
            .contains("(1 new or changed, 3 unchanged, 0 empty)"),
        "{}",
        run.stdout
    );
    let hits = sift.hits("refund within 21 days", &["--k", "1", "--depth", "5"]);
    assert!(text_contains(&hits[0], "21 days"), "{hits:?}");
}

fn text_contains(hit: &serde_json::Value, needle: &str) -> bool {
    text(hit).contains(needle)
}

#[test]
fn delete_removes_a_document_and_a_second_delete_fails() {
    let sift = Sift::new();
    index_small_corpus(&sift);
    let (documents, chunks) = counts(&sift.stats(&[]));
    let hits = sift.hits("lighthouse keeper", &["--k", "1", "--depth", "5"]);
    assert_eq!(doc_ids(&hits), ["deep/er/nested/lighthouse.txt"]);

    let run = sift.ok(&["delete", "deep/er/nested/lighthouse.txt"]);
    assert!(run.stdout.contains("deleted"), "{}", run.stdout);
    let (documents_after, chunks_after) = counts(&sift.stats(&[]));
    assert_eq!(documents_after, documents - 1);
    assert!(chunks_after < chunks);
    let hits = sift.hits("lighthouse keeper", &["--k", "5", "--depth", "10"]);
    assert!(
        !doc_ids(&hits).contains(&"deep/er/nested/lighthouse.txt".to_string()),
        "{hits:?}"
    );
    assert!(hits.iter().all(|h| !text(h).contains("lighthouse")));

    let stderr = sift.fails(&["delete", "deep/er/nested/lighthouse.txt"]);
    assert!(
        stderr.contains("no document") && stderr.contains("deep/er/nested/lighthouse.txt"),
        "{stderr}"
    );
    assert_eq!(counts(&sift.stats(&[])), (documents_after, chunks_after));

    // Indexing the folder again brings it back (its chunks were in the
    // vector index already; it is searchable densely again).
    let mut args = vec!["index", "corpus"];
    args.extend_from_slice(&SMALL_CHUNKS);
    let run = sift.ok(&args);
    assert!(
        run.stdout.contains("(1 new or changed, 3 unchanged"),
        "{}",
        run.stdout
    );
    assert_eq!(counts(&sift.stats(&[])), (documents, chunks));
    let hits = sift.hits("lighthouse keeper", &["--k", "1", "--depth", "5"]);
    assert_eq!(doc_ids(&hits), ["deep/er/nested/lighthouse.txt"]);
    assert!(!hits[0]["scores"]["dense"].is_null(), "{hits:?}");
    assert!(!hits[0]["scores"]["bm25"].is_null(), "{hits:?}");
}

/// One document that cannot be indexed is reported by id and reason; the
/// rest (Korean, Chinese, Arabic with emoji) are indexed and found, and the
/// run exits non-zero at its end.
#[test]
fn a_bad_document_is_reported_and_the_rest_indexed() {
    let sift = Sift::new();
    sift.write("sift.toml", "[index]\nmax_document_bytes = 2000\n");
    let long = "word ".repeat(1_000);
    let lines = [
        serde_json::json!({"_id": "ko", "text": "대한민국의 나라이름은 한국어로 대한민국이다."}),
        serde_json::json!({"_id": "too-long", "text": long}),
        serde_json::json!({"_id": "zh", "text": "2008年汶川大地震是四川省发生的地震。"}),
        serde_json::json!({"_id": "ar", "text": "اللُّغَةُ العَرَبِيَّة 👍🏽 لغة سامية"}),
    ];
    let jsonl: String = lines.iter().map(|l| format!("{l}\n")).collect();
    sift.write("docs.jsonl", jsonl);
    let stderr = sift.fails(&["index", "docs.jsonl", "--config", "sift.toml"]);
    assert!(
        stderr.contains("not indexed \"too-long\"") && stderr.contains("max_document_bytes"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 of 4 documents could not be indexed"),
        "{stderr}"
    );
    let (documents, _) = counts(&sift.stats(&[]));
    assert_eq!(documents, 3);
    for (query, id) in [("나라이름은", "ko"), ("地震", "zh"), ("العَرَبِيَّة", "ar")]
    {
        let hits = sift.hits(query, &["--depth", "10"]);
        assert_eq!(
            doc_ids(&hits).first().map(String::as_str),
            Some(id),
            "{query}"
        );
    }
}
