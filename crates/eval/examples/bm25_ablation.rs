//! Where does sift's BM25 stand against the published BEIR figures, and why?
//!
//! Scores a BEIR split with a small in-memory BM25 (the textbook formula,
//! Lucene's idf) under variants of what sift does: retrieval unit (sift's
//! ~200-token chunks with the title on each, or whole documents), fields
//! (title and body scored separately and summed, as sift-lexical does, or
//! one flat field as Anserini's "flat" runs), k1/b (tantivy's fixed 1.2 /
//! 0.75, or Anserini's 0.9 / 0.4), and the analyzer (sift's, without stop
//! words, without stemming). Chunks are collapsed to documents by their best
//! chunk, as `sift eval` does. Exact tf and document lengths are used
//! (tantivy quantises lengths to one byte), so the first row is close to,
//! not equal to, `sift eval`'s BM25.
//!
//! ```text
//! SIFT_BI_ENCODER_PATH=data/models/all-MiniLM-L6-v2 \
//!   cargo run --release -p sift-eval --example bm25_ablation -- ../shared/datasets/scifact test
//! ```

use sift_bert::{BiEncoder, ModelFiles};
use sift_core::{ChunkingConfig, Document};
use sift_engine::Chunker;
use sift_metrics::{evaluate, read_corpus, Dataset, Metric, MissingQueries, Run};
use std::collections::HashMap;
use std::path::PathBuf;
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
    StopWordFilter, TextAnalyzer,
};

#[derive(Clone, Copy, PartialEq)]
enum Unit {
    Chunks,
    Documents,
}

#[derive(Clone, Copy)]
struct Variant {
    name: &'static str,
    unit: Unit,
    flat: bool,
    k1: f64,
    b: f64,
    stop_words: bool,
    stem: bool,
}

/// sift-lexical's analyzer (crates/lexical/src/schema.rs), with stop words
/// and stemming optional.
fn analyzer(stop_words: bool, stem: bool) -> TextAnalyzer {
    let mut builder = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .dynamic();
    if stop_words {
        builder = builder.filter_dynamic(StopWordFilter::new(Language::English).unwrap());
    }
    if stem {
        builder = builder.filter_dynamic(Stemmer::new(Language::English));
    }
    builder.build()
}

fn analyze(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut stream = analyzer.token_stream(text);
    let mut terms = Vec::new();
    stream.process(&mut |t| terms.push(t.text.clone()));
    terms
}

/// One field of an in-memory BM25 index.
#[derive(Default)]
struct Field {
    postings: HashMap<String, Vec<(u32, u32)>>,
    lengths: Vec<u32>,
}

impl Field {
    fn add(&mut self, unit: u32, terms: &[String]) {
        let mut tf: HashMap<&str, u32> = HashMap::new();
        for t in terms {
            *tf.entry(t).or_default() += 1;
        }
        for (t, n) in tf {
            self.postings
                .entry(t.to_owned())
                .or_default()
                .push((unit, n));
        }
        self.lengths.push(terms.len() as u32);
    }

    fn score(&self, terms: &[String], k1: f64, b: f64, scores: &mut [f64]) {
        let n = self.lengths.len() as f64;
        let avg = self.lengths.iter().map(|&l| l as f64).sum::<f64>() / n.max(1.0);
        for t in terms {
            let Some(postings) = self.postings.get(t) else {
                continue;
            };
            let df = postings.len() as f64;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(unit, tf) in postings {
                let tf = tf as f64;
                let len = self.lengths[unit as usize] as f64;
                scores[unit as usize] +=
                    idf * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * len / avg.max(1e-9)));
            }
        }
    }
}

fn run_variant(
    v: &Variant,
    units: &[(String, String, String)],
    dataset: &Dataset,
    depth: usize,
) -> Run {
    let mut analyzer = analyzer(v.stop_words, v.stem);
    let (mut title, mut body) = (Field::default(), Field::default());
    for (i, (_, t, x)) in units.iter().enumerate() {
        if v.flat {
            body.add(i as u32, &analyze(&mut analyzer, &format!("{t} {x}")));
        } else {
            title.add(i as u32, &analyze(&mut analyzer, t));
            body.add(i as u32, &analyze(&mut analyzer, x));
        }
    }
    let mut run = Run::new();
    for q in &dataset.queries {
        let mut terms = analyze(&mut analyzer, &q.text);
        terms.sort();
        terms.dedup();
        let mut scores = vec![0.0; units.len()];
        body.score(&terms, v.k1, v.b, &mut scores);
        if !v.flat {
            title.score(&terms, v.k1, v.b, &mut scores);
        }
        let mut ranked: Vec<usize> = (0..units.len()).filter(|&i| scores[i] > 0.0).collect();
        ranked.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        let mut seen = std::collections::HashSet::new();
        let docs: Vec<(String, f64)> = ranked
            .into_iter()
            .filter(|&i| seen.insert(units[i].0.as_str()))
            .take(depth)
            .enumerate()
            .map(|(r, i)| (units[i].0.clone(), (depth - r) as f64))
            .collect();
        run.insert(q.id.clone(), docs);
    }
    run
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: bm25_ablation DATASET [SPLIT]"));
    let split = args.next().unwrap_or_else(|| "test".into());
    let dataset = Dataset::open(&dir, &split).expect("dataset");
    let corpus: Vec<Document> = read_corpus(dir.join("corpus.jsonl")).expect("corpus");
    let model = std::env::var_os("SIFT_BI_ENCODER_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("data/models/all-MiniLM-L6-v2"));
    let encoder =
        BiEncoder::load(&ModelFiles::from_dir(&model).expect("model"), 256, 8).expect("bi-encoder");
    let chunker = Chunker::new(encoder.tokenizer(), &ChunkingConfig::default());
    let chunks: Vec<(String, String, String)> = corpus
        .iter()
        .flat_map(|d| chunker.chunk(d).expect("chunking"))
        .map(|c| (c.doc_id, c.title, c.text))
        .collect();
    let documents: Vec<(String, String, String)> = corpus
        .iter()
        .map(|d| (d.id.clone(), d.title.clone(), d.text.clone()))
        .collect();
    println!(
        "{} {split}: {} queries, {} documents, {} chunks (sift's default chunking)\n",
        dir.display(),
        dataset.queries.len(),
        documents.len(),
        chunks.len()
    );

    let sift = Variant {
        name: "sift: chunks, title+body, k1 1.2 b 0.75",
        unit: Unit::Chunks,
        flat: false,
        k1: 1.2,
        b: 0.75,
        stop_words: true,
        stem: true,
    };
    let variants = [
        sift,
        Variant {
            name: "whole documents, title+body, 1.2/0.75",
            unit: Unit::Documents,
            ..sift
        },
        Variant {
            name: "whole documents, flat, 1.2/0.75",
            unit: Unit::Documents,
            flat: true,
            ..sift
        },
        Variant {
            name: "chunks, flat, 1.2/0.75",
            flat: true,
            ..sift
        },
        Variant {
            name: "chunks, title+body, 0.9/0.4",
            k1: 0.9,
            b: 0.4,
            ..sift
        },
        Variant {
            name: "chunks, flat, 0.9/0.4",
            flat: true,
            k1: 0.9,
            b: 0.4,
            ..sift
        },
        Variant {
            name: "whole documents, title+body, 0.9/0.4 (Anserini multifield)",
            unit: Unit::Documents,
            k1: 0.9,
            b: 0.4,
            ..sift
        },
        Variant {
            name: "whole documents, flat, 0.9/0.4 (Anserini flat)",
            unit: Unit::Documents,
            flat: true,
            k1: 0.9,
            b: 0.4,
            ..sift
        },
        Variant {
            name: "chunks, title+body, 1.2/0.75, no stop words",
            stop_words: false,
            ..sift
        },
        Variant {
            name: "chunks, title+body, 1.2/0.75, no stemming",
            stem: false,
            ..sift
        },
    ];
    let depth = 100;
    let metrics = [Metric::ndcg(10), Metric::recall(10), Metric::recall(depth)];
    println!(
        "{:<62} {:>8} {:>8} {:>8}",
        "variant", "nDCG@10", "R@10", "R@100"
    );
    for v in &variants {
        let units = match v.unit {
            Unit::Chunks => &chunks,
            Unit::Documents => &documents,
        };
        let run = run_variant(v, units, &dataset, depth);
        let eval = evaluate(&dataset.qrels, &run, &metrics, MissingQueries::Zero);
        let m = |x: &Metric| eval.mean[&x.to_string()];
        println!(
            "{:<62} {:>8.4} {:>8.4} {:>8.4}",
            v.name,
            m(&metrics[0]),
            m(&metrics[1]),
            m(&metrics[2])
        );
    }
}
