//! Text in every script through the chunker, with the bi-encoder's real
//! tokenizer: its normalisation (NFD, accent stripping, CJK spacing) maps
//! several word pieces onto one character, drops others, and puts the
//! offsets of what remains back onto the original text.
//!
//! Random documents mix ASCII with Hangul (precomposed and as conjoining
//! jamo), Japanese, Chinese, Devanagari and Arabic with combining marks,
//! emoji with ZWJ sequences and skin tones, NFD-decomposed Latin,
//! ligatures, full-width forms, zero-width spaces and bidi marks, sized so
//! that the odd pieces land on and near chunk boundaries. Invariants: no
//! panic, chunks in order, offsets inside the text and on character
//! boundaries, each chunk's text the text its offsets cite, and every
//! visible character of the body in some chunk.

use proptest::prelude::*;
use sift_core::{ChunkingConfig, Document};
use sift_engine::Chunker;
use std::sync::OnceLock;
use tokenizers::Tokenizer;
use unicode_segmentation::UnicodeSegmentation;

mod common;

fn tokenizer() -> &'static Tokenizer {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let mut tokenizer = Tokenizer::from_file(common::model_dir().join("tokenizer.json"))
            .expect("tokenizer.json");
        // Count the pieces of a whole text: the file's truncation and
        // padding (to 128) are for the encoder, not for the chunker's input.
        tokenizer.with_truncation(None).expect("no truncation");
        tokenizer.with_padding(None);
        tokenizer
    })
}

/// Pieces the documents are built from. Each is one "word" of some script;
/// they are joined by spaces, nothing, newlines or blank lines.
const PIECES: &[&str] = &[
    "account",
    "deleted",
    "Close",
    "30",
    ".",
    // Hangul, precomposed: each syllable becomes several word pieces that
    // share its one character (the crash of SQuAD's train-79-51).
    "한국어",
    "데이터를",
    "삭제합니다",
    // The same syllables as conjoining jamo (NFD).
    "\u{1112}\u{1161}\u{11AB}\u{1100}\u{116E}\u{11A8}",
    // Japanese, Chinese.
    "東京都",
    "ひらがな",
    "カタカナ",
    "汶川大地震",
    "数据",
    // Devanagari and Arabic with combining marks.
    "हिन्दी",
    "क्षत्रिय",
    "العَرَبِيَّة",
    "مَرْحَبًا",
    // Emoji: ZWJ families, skin tones, flags, a keycap.
    "👨\u{200D}👩\u{200D}👧\u{200D}👦",
    "👍🏽",
    "🇰🇷",
    "1\u{FE0F}\u{20E3}",
    "🙂",
    // NFD Latin, a ligature, full-width forms.
    "cafe\u{301}",
    "Zu\u{308}rich",
    "ﬁnance",
    "ＡＢＣ１２３",
    // Invisible format characters.
    "\u{200B}",
    "\u{200F}",
    "\u{200E}",
    "\u{FEFF}",
    "a\u{200D}b",
    "## Heading",
];

const JOINERS: &[&str] = &[" ", " ", " ", "", "\n", "\n\n", "\n## Section 한국\n"];

fn document() -> impl Strategy<Value = String> {
    prop::collection::vec((0..PIECES.len(), 0..JOINERS.len()), 0..160).prop_map(|parts| {
        let mut text = String::new();
        for (piece, joiner) in parts {
            text.push_str(PIECES[piece]);
            text.push_str(JOINERS[joiner]);
        }
        text
    })
}

/// Characters that produce no token and may sit outside every chunk: white
/// space and the invisible format characters.
fn invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{200B}'..='\u{200F}' | '\u{FEFF}' | '\u{061C}' | '\u{2060}' | '#'
        )
}

fn check(text: &str, max_tokens: usize, overlap_tokens: usize) -> Result<(), TestCaseError> {
    let config = ChunkingConfig {
        max_tokens,
        overlap_tokens,
    };
    let doc = Document::new("doc", "Title", text);
    let chunks = Chunker::new(tokenizer(), &config)
        .chunk(&doc)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let chars: Vec<char> = text.chars().collect();
    // Character index → is a grapheme boundary.
    let mut boundary = vec![false; chars.len() + 1];
    let mut at = 0;
    for g in text.graphemes(true) {
        boundary[at] = true;
        at += g.chars().count();
    }
    boundary[chars.len()] = true;
    let mut covered = vec![false; chars.len()];
    let mut previous_start = 0;
    for (i, c) in chunks.iter().enumerate() {
        prop_assert_eq!(c.ordinal as usize, i);
        prop_assert!(
            c.char_start <= c.char_end && c.char_end <= chars.len(),
            "{c:?}"
        );
        prop_assert!(
            c.char_start >= previous_start,
            "chunks out of order: {chunks:?}"
        );
        previous_start = c.char_start;
        prop_assert!(
            boundary[c.char_start] && boundary[c.char_end],
            "chunk {i} cuts a character: {:?}",
            c.text
        );
        let cited: String = chars[c.char_start..c.char_end].iter().collect();
        prop_assert_eq!(&cited, &c.text);
        covered[c.char_start..c.char_end].fill(true);
        let tokens = tokenizer().encode(c.text.as_str(), false).unwrap().len();
        // A window holds at most max_tokens pieces of the document; cut out
        // of it, a chunk's text can tokenize a little differently at its
        // edges (a word piece continues across the cut).
        prop_assert!(
            tokens <= max_tokens + 4,
            "chunk {i}: {tokens} tokens > {max_tokens}"
        );
    }
    // Heading lines are paths, not body.
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let n = line.chars().count();
        if !line.trim_start().starts_with('#') {
            for (j, &c) in chars[at..at + n].iter().enumerate() {
                prop_assert!(
                    covered[at + j] || invisible(c),
                    "character {} ({c:?}) of the body is in no chunk: {text:?}",
                    at + j
                );
            }
        }
        at += n;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_script_chunks_cleanly(text in document(), max_tokens in 4usize..64, overlap in 0usize..8) {
        check(&text, max_tokens, overlap.min(max_tokens - 1))?;
    }
}

/// The two SQuAD paragraphs that crashed `sift index`, reduced: a Korean
/// word inside a paragraph long enough to be cut.
#[test]
fn korean_inside_a_long_paragraph() {
    let text = format!(
        "{} The Korean alphabet (한국어: 한글, Hangul) was created in 1443. {}",
        "Words before the name. ".repeat(30),
        "Words after the name. ".repeat(30)
    );
    for (max_tokens, overlap) in [(256, 32), (64, 16), (16, 4), (5, 1)] {
        check(&text, max_tokens, overlap).unwrap();
    }
}

#[test]
fn a_word_longer_than_a_window_is_cut_not_shredded() {
    // One alphanumeric run of many word pieces (WordPiece reads words of
    // up to 100 characters; a longer one is a single [UNK]): cut into
    // windows of about max_tokens, not into one chunk per piece.
    let text = "x".repeat(3) + &"ab9z".repeat(24);
    let config = ChunkingConfig {
        max_tokens: 8,
        overlap_tokens: 2,
    };
    let chunks = Chunker::new(tokenizer(), &config)
        .chunk(&Document::new("doc", "", &text))
        .unwrap();
    let pieces = tokenizer().encode(text.as_str(), false).unwrap().len();
    assert!(pieces > 16, "{pieces}");
    assert!(
        chunks.len() > 1 && chunks.len() <= pieces.div_ceil(6) + 1,
        "{} chunks for {pieces} pieces",
        chunks.len()
    );
    check(&text, 8, 2).unwrap();
}

/// The SQuAD v1.1 corpus in shared/ (20,963 Wikipedia paragraphs).
fn squad_corpus() -> Vec<Document> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/datasets/squad-v1.1/corpus.jsonl");
    assert!(path.is_file(), "no SQuAD corpus at {}", path.display());
    sift_engine::ingest::Source::open(&path)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// Letters of a script other than Latin (the paragraphs the English-only
/// fuzzing never fed the chunker).
fn non_latin(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_alphabetic() && !c.is_ascii() && !('\u{00C0}'..='\u{024F}').contains(&c))
}

#[test]
fn every_squad_paragraph_chunks_cleanly() {
    let corpus = squad_corpus();
    assert_eq!(corpus.len(), 20_963);
    let config = ChunkingConfig::default();
    let mut chunks = 0;
    for doc in &corpus {
        check(&doc.text, config.max_tokens, config.overlap_tokens)
            .unwrap_or_else(|e| panic!("{}: {e}", doc.id));
        chunks += Chunker::new(tokenizer(), &config).chunk(doc).unwrap().len();
    }
    assert!(chunks >= corpus.len());
}

/// Every SQuAD paragraph with text in another script (Han, Hangul, kana,
/// Arabic, Devanagari, Cyrillic, Greek, Hebrew, Thai: about 400)
/// indexed through the engine, then found by a query in that script.
#[test]
fn squad_paragraphs_in_every_script_index_and_are_found() {
    let docs: Vec<Document> = squad_corpus()
        .into_iter()
        .filter(|d| non_latin(&d.text))
        .collect();
    assert!(docs.len() > 400, "{}", docs.len());
    let dir = tempfile::tempdir().unwrap();
    let engine = sift_engine::Engine::builder(dir.path())
        .config(common::config())
        .create_if_missing(true)
        .load_reranker(false)
        .open()
        .unwrap();
    let report = engine.index(&docs, |_| {}).unwrap();
    assert_eq!(report.failed, []);
    assert_eq!(report.documents_written, docs.len());

    let options = sift_core::SearchOptions {
        depth: 10,
        k: 10,
        rerank: false,
        ..Default::default()
    };
    // Words quoted in the paragraphs; the two-character Chinese word
    // matches inside a longer run only through the bigrams.
    for (query, expected) in [
        ("나라이름", "train-79-51"),
        ("슈퍼 컴보이", "train-385-0"),
        ("汶川大地震", "train-0-1"),
        ("地震", "train-0-1"),
    ] {
        let retrieval = engine.retrieve(query, &options).unwrap();
        let found = retrieval
            .candidates
            .iter()
            .position(|c| c.chunk.doc_id == expected);
        let bm25 = retrieval
            .candidates
            .iter()
            .find(|c| c.chunk.doc_id == expected)
            .and_then(|c| c.scores.bm25);
        assert!(
            found.is_some() && bm25.is_some(),
            "{query:?}: {expected} not found by BM25 (rank {found:?}); got {:?}",
            retrieval
                .candidates
                .iter()
                .map(|c| &c.chunk.doc_id)
                .collect::<Vec<_>>()
        );
    }
}
