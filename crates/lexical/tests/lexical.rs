use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use sift_core::{Chunk, ChunkId, Metadata};
use sift_lexical::{analyze, Error, LexicalIndex};

fn chunk(doc_id: &str, ordinal: u32, title: &str, text: &str) -> Chunk {
    Chunk {
        id: ChunkId::derive(doc_id, ordinal, text),
        doc_id: doc_id.into(),
        ordinal,
        title: title.into(),
        section: Vec::new(),
        text: text.into(),
        char_start: ordinal as usize * 100,
        char_end: ordinal as usize * 100 + text.chars().count(),
        metadata: Metadata::new(),
    }
}

fn vector_of(chunk: &Chunk) -> Vec<f32> {
    vec![chunk.ordinal as f32, chunk.text.len() as f32, -1.5]
}

fn add_all(index: &LexicalIndex, chunks: &[Chunk]) {
    for c in chunks {
        index.add(c, &vector_of(c)).unwrap();
    }
}

fn ids(hits: &[(ChunkId, f32)]) -> Vec<ChunkId> {
    hits.iter().map(|(id, _)| *id).collect()
}

fn new_index() -> (tempfile::TempDir, LexicalIndex) {
    let dir = tempfile::tempdir().unwrap();
    let index = LexicalIndex::open_or_create(dir.path()).unwrap();
    (dir, index)
}

#[test]
fn lexical_index_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<LexicalIndex>();
    assert_send_sync::<Error>();
}

#[test]
fn adds_are_visible_only_after_commit() {
    let (_dir, index) = new_index();
    let c = chunk("d1", 0, "Billing", "Invoices are sent monthly by email.");
    index.add(&c, &vector_of(&c)).unwrap();

    assert!(index.search("invoices", 10).unwrap().is_empty());
    assert_eq!(index.num_chunks(), 0);
    assert_eq!(index.chunks(&[c.id]).unwrap(), vec![None]);
    assert!(index.live_chunk_ids().unwrap().is_empty());
    assert!(index.document_chunk_ids("d1").unwrap().is_empty());

    let first = index.commit().unwrap();
    assert_eq!(ids(&index.search("invoices", 10).unwrap()), vec![c.id]);
    assert_eq!(index.num_chunks(), 1);
    assert_eq!(index.num_documents().unwrap(), 1);
    assert_eq!(index.chunks(&[c.id]).unwrap(), vec![Some(c.clone())]);
    assert_eq!(index.live_chunk_ids().unwrap(), HashSet::from([c.id]));

    // A commit with nothing staged changes nothing and keeps the opstamp.
    assert_eq!(index.commit().unwrap(), first);
    let c2 = chunk("d2", 0, "", "Refunds take five days.");
    index.add(&c2, &vector_of(&c2)).unwrap();
    assert!(index.commit().unwrap() > first);
    assert_eq!(index.num_chunks(), 2);
}

#[test]
fn delete_document_removes_all_of_its_chunks_after_commit() {
    let (_dir, index) = new_index();
    let a: Vec<Chunk> = (0..3)
        .map(|i| chunk("a", i, "Shipping", &format!("parcel delivery part {i}")))
        .collect();
    let b = chunk("b", 0, "Returns", "a parcel can be returned within 30 days");
    add_all(&index, &a);
    add_all(&index, std::slice::from_ref(&b));
    index.commit().unwrap();
    assert_eq!(index.search("parcel", 10).unwrap().len(), 4);
    assert_eq!(index.num_documents().unwrap(), 2);

    index.delete_document("a").unwrap();
    // Staged only.
    assert_eq!(index.document_chunk_ids("a").unwrap().len(), 3);
    index.commit().unwrap();

    assert!(index.document_chunk_ids("a").unwrap().is_empty());
    assert_eq!(index.document_chunk_ids("b").unwrap(), vec![b.id]);
    assert_eq!(ids(&index.search("parcel", 10).unwrap()), vec![b.id]);
    assert_eq!(index.live_chunk_ids().unwrap(), HashSet::from([b.id]));
    assert_eq!(
        index.chunks(&[a[0].id, b.id]).unwrap(),
        vec![None, Some(b.clone())]
    );
    assert_eq!(index.num_chunks(), 1);
    assert_eq!(index.num_documents().unwrap(), 1);
    let mut seen = Vec::new();
    index.for_each_vector(|id, _| seen.push(id)).unwrap();
    assert_eq!(seen, vec![b.id]);

    // Deleting an unknown document is not an error.
    index.delete_document("nope").unwrap();
    index.commit().unwrap();
    assert_eq!(index.num_chunks(), 1);
}

#[test]
fn delete_then_add_in_one_commit_replaces_a_document() {
    let (_dir, index) = new_index();
    let old = chunk("doc", 0, "T", "the old wording about llamas");
    add_all(&index, std::slice::from_ref(&old));
    index.commit().unwrap();

    let new = chunk("doc", 0, "T", "the new wording about alpacas");
    index.delete_document("doc").unwrap();
    add_all(&index, std::slice::from_ref(&new));
    index.commit().unwrap();

    assert_eq!(index.document_chunk_ids("doc").unwrap(), vec![new.id]);
    assert!(index.search("llamas", 10).unwrap().is_empty());
    assert_eq!(ids(&index.search("alpacas", 10).unwrap()), vec![new.id]);
}

#[test]
fn rollback_drops_staged_changes() {
    let (_dir, index) = new_index();
    let kept = chunk("kept", 0, "", "committed before the rollback");
    add_all(&index, std::slice::from_ref(&kept));
    index.commit().unwrap();

    let dropped = chunk("dropped", 0, "", "staged then rolled back");
    add_all(&index, std::slice::from_ref(&dropped));
    index.delete_document("kept").unwrap();
    index.rollback().unwrap();
    index.commit().unwrap();

    assert_eq!(index.live_chunk_ids().unwrap(), HashSet::from([kept.id]));
    assert!(index.search("rolled", 10).unwrap().is_empty());

    // The writer is still usable after a rollback.
    let later = chunk("later", 0, "", "added after the rollback");
    add_all(&index, std::slice::from_ref(&later));
    index.commit().unwrap();
    assert_eq!(
        index.live_chunk_ids().unwrap(),
        HashSet::from([kept.id, later.id])
    );
    // Rolling back with nothing staged (or on a read-only handle) is fine.
    index.rollback().unwrap();
}

#[test]
fn analyzer_stems_folds_and_drops_stop_words_and_long_tokens() {
    assert_eq!(analyze("Closing the ACCOUNTS"), ["close", "account"]);
    assert_eq!(analyze("close an account"), ["close", "account"]);
    assert_eq!(analyze("Café naïve"), ["cafe", "naiv"]);
    assert!(analyze("the and of a to is").is_empty());
    assert!(analyze(&"x".repeat(41)).is_empty());
    assert_eq!(analyze("x".repeat(39).as_str()).len(), 1);
}

#[test]
fn stemming_and_stop_words_in_search() {
    let (_dir, index) = new_index();
    let target = chunk("faq", 0, "", "How do I close an account?");
    let other = chunk("faq", 1, "", "Passwords must have twelve characters.");
    add_all(&index, &[target.clone(), other]);
    index.commit().unwrap();

    assert_eq!(
        ids(&index.search("closing accounts", 10).unwrap()),
        vec![target.id]
    );
    assert_eq!(
        ids(&index.search("CLOSED Account", 10).unwrap()),
        vec![target.id]
    );
    assert!(index.search("the and of an", 10).unwrap().is_empty());
    assert!(index.search("", 10).unwrap().is_empty());
    assert!(index.search("   ?!... ", 10).unwrap().is_empty());
    assert!(index.search("close", 0).unwrap().is_empty());
    assert_eq!(index.search("close", usize::MAX).unwrap().len(), 1);
}

#[test]
fn hostile_queries_never_fail() {
    let (_dir, index) = new_index();
    add_all(
        &index,
        &[chunk(
            "d",
            0,
            "Title: AND (OR) NOT",
            "account \"quoted\" -minus title:field",
        )],
    );
    index.commit().unwrap();
    let queries = [
        "\"unbalanced quote",
        "\"",
        "title:account",
        "body:",
        ":",
        "(account",
        "account)",
        "((()))",
        "account AND",
        "AND OR NOT",
        "-account",
        "+account -",
        "account^2",
        "acc*",
        "account~2",
        "[a TO z]",
        "{}[]<>\\/",
        "Zürich naïve façade",
        "東京 の 天気",
        "Привет мир",
        "مرحبا",
        "🦀🚀 account 👍🏽",
        "\u{0}\u{1f}\u{feff}",
        "'; DROP TABLE chunks; --",
    ];
    for q in queries {
        if let Err(e) = index.search(q, 10) {
            panic!("query {q:?} failed: {e}");
        }
    }
    let long = "account ".repeat(256);
    assert_eq!(index.search(&long, 10).unwrap().len(), 1);
    assert_eq!(index.search("title:account", 10).unwrap().len(), 1);
    assert_eq!(index.search("\"quoted", 10).unwrap().len(), 1);
}

#[test]
fn bm25_prefers_title_and_body_over_body_only() {
    let (_dir, index) = new_index();
    let both = chunk(
        "both",
        0,
        "Warranty",
        "The warranty covers parts and labour for two years.",
    );
    let once = chunk(
        "once",
        0,
        "Service",
        "A warranty card comes with the parts and the labour sheet.",
    );
    let neither = chunk("neither", 0, "Other", "Nothing relevant to see here.");
    add_all(&index, &[once.clone(), neither, both.clone()]);
    index.commit().unwrap();

    let hits = index.search("warranty", 10).unwrap();
    assert_eq!(ids(&hits), vec![both.id, once.id]);
    assert!(hits[0].1 > hits[1].1 && hits[1].1 > 0.0);

    // The title alone scores: a title-only match is found.
    let t = index.search("service", 10).unwrap();
    assert_eq!(ids(&t), vec![once.id]);
}

/// Title and body are one BM25 field: a term scores the same whether it sits
/// in the title or in the text, where two summed fields would count a title
/// word twice (its idf once per field).
#[test]
fn a_title_word_counts_once() {
    let (_dir, index) = new_index();
    let in_title = chunk("t", 0, "Refunds", "money back within thirty days");
    let in_body = chunk("b", 0, "", "Refunds money back within thirty days");
    let filler = chunk("f", 0, "Other", "shipping takes a week");
    add_all(&index, &[in_title.clone(), in_body.clone(), filler]);
    index.commit().unwrap();

    let hits = index.search("refunds", 10).unwrap();
    assert_eq!(hits.len(), 2);
    assert!(
        (hits[0].1 - hits[1].1).abs() < 1e-6,
        "title and body matches score differently: {hits:?}"
    );
}

#[test]
fn score_ties_are_broken_by_ascending_chunk_id() {
    let (_dir, index) = new_index();
    // Identical text and title in distinct documents: equal BM25 scores.
    // Spread over several commits so they live in several segments.
    let mut tied: Vec<Chunk> = Vec::new();
    for batch in 0..4 {
        for i in 0..5 {
            let c = chunk(
                &format!("doc-{batch}-{i}"),
                0,
                "Same",
                "identical tied text",
            );
            index.add(&c, &vector_of(&c)).unwrap();
            tied.push(c);
        }
        index.commit().unwrap();
    }
    let mut expected: Vec<ChunkId> = tied.iter().map(|c| c.id).collect();
    expected.sort();

    let all = index.search("tied", 100).unwrap();
    assert_eq!(ids(&all), expected);
    assert!(all.windows(2).all(|w| w[0].1 == w[1].1));
    for limit in [1, 3, 7] {
        let top = index.search("tied", limit).unwrap();
        assert_eq!(ids(&top), expected[..limit].to_vec(), "limit {limit}");
    }
    // Same answer every time.
    for _ in 0..3 {
        assert_eq!(
            index.search("identical tied", 5).unwrap(),
            index.search("identical tied", 5).unwrap()
        );
    }
}

#[test]
fn chunks_round_trip_every_field() {
    let (_dir, index) = new_index();
    let mut meta = Metadata::new();
    meta.insert("source".into(), "handbook.pdf".into());
    meta.insert("page".into(), 12.into());
    meta.insert(
        "tags".into(),
        serde_json::json!(["hr", "policy", {"nested": [1.5, null, true]}]),
    );
    let rich = Chunk {
        metadata: meta,
        char_start: 1234,
        char_end: 1290,
        ..chunk(
            "hand/book é",
            7,
            "Ünïcödé — title 🦀",
            "Text with\nnewlines,\ttabs and “quotes” 東京.",
        )
    };
    let plain = chunk("plain", 0, "", "");
    add_all(&index, &[rich.clone(), plain.clone()]);
    index.commit().unwrap();

    let missing = ChunkId(42);
    let got = index
        .chunks(&[plain.id, missing, rich.id, rich.id])
        .unwrap();
    assert_eq!(
        got,
        vec![
            Some(plain.clone()),
            None,
            Some(rich.clone()),
            Some(rich.clone())
        ]
    );
    assert!(index.chunks(&[]).unwrap().is_empty());
    assert_eq!(
        index.document_chunk_ids("hand/book é").unwrap(),
        vec![rich.id]
    );
    // doc_id is matched exactly, not analyzed.
    assert!(index.document_chunk_ids("hand").unwrap().is_empty());
    assert!(index.document_chunk_ids("HAND/BOOK É").unwrap().is_empty());
}

#[test]
fn chunks_finds_many_ids_across_segments() {
    let (_dir, index) = new_index();
    let mut all = Vec::new();
    for batch in 0..3 {
        for i in 0..50 {
            let c = chunk(
                &format!("doc{batch}"),
                i,
                "t",
                &format!("chunk number {i} of batch {batch}"),
            );
            all.push(c);
        }
        add_all(&index, &all[batch * 50..]);
        index.commit().unwrap();
    }
    let mut wanted: Vec<ChunkId> = all.iter().rev().step_by(3).map(|c| c.id).collect();
    wanted.push(ChunkId(7));
    let got = index.chunks(&wanted).unwrap();
    assert_eq!(got.len(), wanted.len());
    for (id, c) in wanted.iter().zip(&got) {
        match c {
            Some(c) => assert_eq!(c.id, *id),
            None => assert_eq!(*id, ChunkId(7)),
        }
    }
    assert_eq!(index.num_documents().unwrap(), 3);
    assert_eq!(index.live_chunk_ids().unwrap().len(), 150);
}

#[test]
fn document_ids_lists_live_documents_across_segments() {
    let (_dir, index) = new_index();
    add_all(
        &index,
        &[chunk("b", 0, "", "one"), chunk("a", 0, "", "two")],
    );
    index.commit().unwrap();
    add_all(
        &index,
        &[chunk("c", 0, "", "three"), chunk("a", 1, "", "four")],
    );
    index.delete_document("b").unwrap();
    index.commit().unwrap();
    assert_eq!(index.document_ids().unwrap(), ["a", "c"]);
}

#[test]
fn document_chunk_ids_are_in_ordinal_order() {
    let (_dir, index) = new_index();
    let chunks: Vec<Chunk> = (0..12)
        .map(|i| chunk("doc", i, "", &format!("part {i}")))
        .collect();
    // Added out of order, over two commits.
    for i in [5, 0, 11, 3, 8, 1] {
        index.add(&chunks[i], &vector_of(&chunks[i])).unwrap();
    }
    index.commit().unwrap();
    for i in [2, 10, 4, 9, 7, 6] {
        index.add(&chunks[i], &vector_of(&chunks[i])).unwrap();
    }
    index.commit().unwrap();
    let expected: Vec<ChunkId> = chunks.iter().map(|c| c.id).collect();
    assert_eq!(index.document_chunk_ids("doc").unwrap(), expected);
    assert_eq!(index.num_documents().unwrap(), 1);
}

#[test]
fn vectors_round_trip_exactly() {
    let (_dir, index) = new_index();
    let special = vec![
        0.0,
        -0.0,
        1.0 / 3.0,
        f32::MIN_POSITIVE / 2.0, // subnormal
        f32::MAX,
        f32::MIN,
        f32::EPSILON,
        -123.456,
    ];
    let a = chunk("a", 0, "", "first");
    let b = chunk("b", 0, "", "second");
    let c = chunk("c", 0, "", "third");
    let random: Vec<f32> = (0..384u32)
        .map(|i| ((i.wrapping_mul(2_654_435_761) % 10_000) as f32 / 5_000.0) - 1.0)
        .collect();
    index.add(&a, &special).unwrap();
    index.add(&b, &random).unwrap();
    index.add(&c, &[]).unwrap();
    index.commit().unwrap();

    let mut seen = std::collections::HashMap::new();
    index
        .for_each_vector(|id, v| {
            assert!(seen.insert(id, v).is_none(), "{id} visited twice");
        })
        .unwrap();
    assert_eq!(seen.len(), 3);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&seen[&a.id]), bits(&special));
    assert_eq!(bits(&seen[&b.id]), bits(&random));
    assert!(seen[&c.id].is_empty());
}

/// `vectors` finds ids across segments, in the order asked, and gives
/// `None` for a deleted chunk and an unknown id.
#[test]
fn vectors_by_id_match_the_stored_ones() {
    let (_dir, index) = new_index();
    let a = chunk("a", 0, "", "first");
    let b = chunk("b", 0, "", "second");
    let c = chunk("c", 0, "", "the third, longer");
    index.add(&a, &vector_of(&a)).unwrap();
    index.add(&b, &vector_of(&b)).unwrap();
    index.commit().unwrap();
    index.add(&c, &vector_of(&c)).unwrap();
    index.delete_document("b").unwrap();
    index.commit().unwrap();

    let got = index.vectors(&[c.id, ChunkId(7), b.id, a.id]).unwrap();
    assert_eq!(got[0].as_deref(), Some(vector_of(&c).as_slice()));
    assert_eq!(got[1], None, "unknown id");
    assert_eq!(got[2], None, "deleted chunk");
    assert_eq!(got[3].as_deref(), Some(vector_of(&a).as_slice()));
}

#[test]
fn open_reports_missing_and_corrupt_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("does/not/exist");
    assert!(matches!(
        LexicalIndex::open(&nowhere),
        Err(Error::Missing { path }) if path == nowhere
    ));
    // An existing but empty folder holds no index either.
    assert!(matches!(
        LexicalIndex::open(dir.path()),
        Err(Error::Missing { .. })
    ));

    let garbage = dir.path().join("garbage");
    std::fs::create_dir(&garbage).unwrap();
    std::fs::write(garbage.join("meta.json"), b"{ this is not json \xff").unwrap();
    let err = LexicalIndex::open(&garbage).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("corrupt"), "{err}");
    // open_or_create must not paper over a broken index by overwriting it.
    assert!(matches!(
        LexicalIndex::open_or_create(&garbage),
        Err(Error::Corrupt { .. })
    ));
    assert_eq!(
        std::fs::read(garbage.join("meta.json")).unwrap(),
        b"{ this is not json \xff"
    );
}

#[test]
fn open_rejects_missing_segment_files_and_foreign_schemas() {
    let dir = tempfile::tempdir().unwrap();
    {
        let index = LexicalIndex::open_or_create(dir.path()).unwrap();
        add_all(&index, &[chunk("d", 0, "", "some text")]);
        index.commit().unwrap();
    }
    let removed = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "store"))
        .expect("a segment store file");
    std::fs::remove_file(&removed).unwrap();
    let err = LexicalIndex::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");

    // A valid tantivy index with some other schema.
    let foreign = tempfile::tempdir().unwrap();
    let mut builder = tantivy::schema::Schema::builder();
    builder.add_text_field("title", tantivy::schema::TEXT);
    tantivy::Index::create_in_dir(foreign.path(), builder.build()).unwrap();
    let err = LexicalIndex::open(foreign.path()).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
}

#[test]
fn reopen_sees_committed_data_and_not_uncommitted_data() {
    let dir = tempfile::tempdir().unwrap();
    let committed = chunk("c", 0, "Kept", "durable words");
    let staged = chunk("s", 0, "Lost", "ephemeral words");
    {
        let index = LexicalIndex::open_or_create(dir.path()).unwrap();
        add_all(&index, std::slice::from_ref(&committed));
        index.commit().unwrap();
        add_all(&index, std::slice::from_ref(&staged));
        index.delete_document("c").unwrap();
        // Dropped without commit.
    }
    for index in [
        LexicalIndex::open(dir.path()).unwrap(),
        LexicalIndex::open_or_create(dir.path()).unwrap(),
    ] {
        assert_eq!(index.num_chunks(), 1);
        assert_eq!(ids(&index.search("words", 10).unwrap()), vec![committed.id]);
        assert_eq!(
            index.chunks(&[committed.id, staged.id]).unwrap(),
            vec![Some(committed.clone()), None]
        );
        let mut vectors = Vec::new();
        index
            .for_each_vector(|id, v| vectors.push((id, v)))
            .unwrap();
        assert_eq!(vectors, vec![(committed.id, vector_of(&committed))]);
    }
}

#[test]
fn second_writer_is_locked_out_but_can_read_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let writer = LexicalIndex::open_or_create(dir.path()).unwrap();
    let reader = LexicalIndex::open(dir.path()).unwrap();

    let c = chunk("d", 0, "", "shared words");
    writer.add(&c, &vector_of(&c)).unwrap();
    // Merely opening and reading never takes the lock...
    assert!(reader.search("shared", 10).unwrap().is_empty());
    // ...but a second writer is refused with a clear error.
    let err = reader.add(&c, &vector_of(&c)).unwrap_err();
    assert!(
        matches!(&err, Error::Locked { path } if path == dir.path()),
        "{err:?}"
    );
    assert!(matches!(
        reader.delete_document("d"),
        Err(Error::Locked { .. })
    ));
    // Committing with nothing staged takes no lock either.
    reader.commit().unwrap();

    writer.commit().unwrap();
    assert!(reader.search("shared", 10).unwrap().is_empty()); // manual reload policy
    reader.reload().unwrap();
    assert_eq!(ids(&reader.search("shared", 10).unwrap()), vec![c.id]);

    drop(writer);
    let c2 = chunk("d2", 0, "", "more shared words");
    reader.add(&c2, &vector_of(&c2)).unwrap();
    reader.commit().unwrap();
    assert_eq!(reader.num_chunks(), 2);
}

#[test]
fn concurrent_adds_from_threads() {
    let (_dir, index) = new_index();
    let index = Arc::new(index);
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let index = Arc::clone(&index);
            std::thread::spawn(move || {
                for i in 0..25 {
                    let c = chunk(&format!("t{t}"), i, "", &format!("thread {t} item {i}"));
                    index.add(&c, &vector_of(&c)).unwrap();
                    // Readers run alongside the writers.
                    index.search("thread item", 5).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    index.commit().unwrap();
    assert_eq!(index.num_chunks(), 100);
    assert_eq!(index.num_documents().unwrap(), 4);
    assert_eq!(index.search("item", 1000).unwrap().len(), 100);
}

#[test]
fn disk_bytes_counts_the_committed_index() {
    let (dir, index) = new_index();
    let empty = index.disk_bytes().unwrap();
    assert!(empty > 0, "meta.json is counted");
    let chunks: Vec<Chunk> = (0..200)
        .map(|i| {
            chunk(
                "big",
                i,
                "Size",
                &format!("some reasonably long text number {i} ").repeat(5),
            )
        })
        .collect();
    add_all(&index, &chunks);
    index.commit().unwrap();
    let full = index.disk_bytes().unwrap();
    assert!(full > empty + 10_000, "{empty} -> {full}");
    let on_disk: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(full <= on_disk);
    assert_eq!(index.path(), dir.path());
}

#[test]
fn open_or_create_creates_missing_folders() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/lexical");
    let index = LexicalIndex::open_or_create(&nested).unwrap();
    assert_eq!(index.num_chunks(), 0);
    assert!(index.search("anything", 10).unwrap().is_empty());
    assert_eq!(index.num_documents().unwrap(), 0);
    assert!(Path::new(&nested).join("meta.json").is_file());
}

/// Child half of `a_crash_leaves_the_last_commit`: runs only when re-executed
/// by it, commits one chunk, stages more, then dies without unwinding.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os("SIFT_LEXICAL_CRASH_DIR") else {
        return;
    };
    let index = LexicalIndex::open_or_create(Path::new(&dir)).unwrap();
    let kept = chunk("kept", 0, "", "committed before the crash");
    add_all(&index, std::slice::from_ref(&kept));
    index.commit().unwrap();
    // Enough staged work that the writer is busy when the process dies.
    let staged: Vec<Chunk> = (0..2000)
        .map(|i| chunk("staged", i, "", &format!("never committed {i}")))
        .collect();
    add_all(&index, &staged);
    index.delete_document("kept").unwrap();
    std::process::abort();
}

#[test]
fn a_crash_leaves_the_last_commit() {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("SIFT_LEXICAL_CRASH_DIR", dir.path())
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child must have crashed");

    let index = LexicalIndex::open(dir.path()).unwrap();
    let kept = chunk("kept", 0, "", "committed before the crash");
    assert_eq!(index.live_chunk_ids().unwrap(), HashSet::from([kept.id]));
    assert!(index.search("never", 10).unwrap().is_empty());
    // The dead process's writer lock does not outlive it.
    let after = chunk("after", 0, "", "written after the crash");
    add_all(&index, std::slice::from_ref(&after));
    index.commit().unwrap();
    assert_eq!(
        index.live_chunk_ids().unwrap(),
        HashSet::from([kept.id, after.id])
    );
}

#[test]
fn num_documents_dedupes_across_segments_and_ignores_deleted_chunks() {
    let (_dir, index) = new_index();
    add_all(
        &index,
        &[chunk("a", 0, "", "a zero"), chunk("b", 0, "", "b zero")],
    );
    index.commit().unwrap();
    add_all(
        &index,
        &[chunk("a", 1, "", "a one"), chunk("c", 0, "", "c zero")],
    );
    index.commit().unwrap();
    assert_eq!(index.num_documents().unwrap(), 3);

    index.delete_document("b").unwrap();
    index.commit().unwrap();
    assert_eq!(index.num_documents().unwrap(), 2);
    assert_eq!(index.document_chunk_ids("a").unwrap().len(), 2);

    index.delete_document("a").unwrap();
    index.commit().unwrap();
    assert_eq!(index.num_documents().unwrap(), 1);
    assert_eq!(index.num_chunks(), 1);
}
