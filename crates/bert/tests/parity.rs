//! Parity with the Python reference implementations, on real weights.
//!
//! Fixtures come from `eval/reference_embeddings.py` (sentence-transformers)
//! and `eval/reference_cross_encoder.py` (transformers); the weights from
//! `just fetch-models`.

use candle_core::{safetensors, DType, Device, Tensor};
use serde::Deserialize;
use sift_bert::{BiEncoder, CrossEncoder, ModelFiles};
use std::collections::HashMap;
use std::path::PathBuf;

fn minilm_dir() -> PathBuf {
    let dir = std::env::var_os("SIFT_BI_ENCODER_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/models/all-MiniLM-L6-v2")
        });
    assert!(
        dir.join("model.safetensors").is_file(),
        "no model in {}: run `just fetch-models`",
        dir.display()
    );
    dir
}

fn fixture<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[derive(Deserialize)]
struct EmbeddingFixture {
    max_seq_length: usize,
    sentences: Vec<String>,
    embeddings: Vec<Vec<f32>>,
}

#[test]
fn bi_encoder_matches_sentence_transformers() {
    let fx: EmbeddingFixture = fixture("minilm_embeddings.json");
    let files = ModelFiles::from_dir(&minilm_dir()).unwrap();
    // A batch size unlike the reference's: padding must not change results.
    let encoder = BiEncoder::load(&files, fx.max_seq_length, 5).unwrap();
    assert_eq!(encoder.dim(), 384);
    let ours = encoder.embed(&fx.sentences).unwrap();
    for (i, (a, b)) in ours.iter().zip(&fx.embeddings).enumerate() {
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-5,
            "sentence {i} not unit length: {norm}"
        );
        let c = cosine(a, b);
        assert!(
            c >= 0.9999,
            "sentence {i}: cosine {c} < 0.9999 ({:?})",
            &fx.sentences[i][..40.min(fx.sentences[i].len())]
        );
    }
    // Truncating at the tokenizer.json's 128 instead of 256 must be caught.
    let short = BiEncoder::load(&files, 128, 5)
        .unwrap()
        .embed(&fx.sentences)
        .unwrap();
    assert!(short
        .iter()
        .zip(&fx.embeddings)
        .any(|(a, b)| cosine(a, b) < 0.99));
}

#[derive(Deserialize)]
struct Pair {
    query: String,
    passage: String,
}
#[derive(Deserialize)]
struct Expected {
    token_counts: Vec<usize>,
    logits: Vec<f32>,
}
#[derive(Deserialize)]
struct CrossEncoderFixture {
    pairs: Vec<Pair>,
    max_length_512: Expected,
    max_length_128: Expected,
}

/// Write the parity checkpoint the reference script describes, in the
/// `BertForSequenceClassification` layout: the MiniLM body under `bert.`,
/// its pooler, and a head with `w[i] = 0.1 sin(i + 1)`, `b = 0.25`.
fn parity_checkpoint(dir: &std::path::Path) -> ModelFiles {
    let src = minilm_dir();
    let body = safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut tensors: HashMap<String, Tensor> = body
        .into_iter()
        .filter(|(name, _)| !name.ends_with("position_ids"))
        .map(|(name, t)| (format!("bert.{name}"), t))
        .collect();
    let weight: Vec<f32> = (0..384)
        .map(|i| (0.1 * ((i + 1) as f64).sin()) as f32)
        .collect();
    tensors.insert(
        "classifier.weight".into(),
        Tensor::from_vec(weight, (1, 384), &Device::Cpu).unwrap(),
    );
    tensors.insert(
        "classifier.bias".into(),
        Tensor::new(&[0.25f32], &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap(),
    );
    safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    ModelFiles::from_dir(dir).unwrap()
}

#[test]
fn cross_encoder_matches_transformers() {
    let fx: CrossEncoderFixture = fixture("cross_encoder_logits.json");
    assert!(fx.pairs.len() >= 20);
    let dir = tempfile::tempdir().unwrap();
    let files = parity_checkpoint(dir.path());
    for (max_length, expected) in [(512, &fx.max_length_512), (128, &fx.max_length_128)] {
        let model = CrossEncoder::load(&files, max_length, 4).unwrap();
        // Pairs grouped by query, as the engine scores them.
        let mut by_query: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, p) in fx.pairs.iter().enumerate() {
            match by_query.iter_mut().find(|(q, _)| *q == p.query) {
                Some((_, idx)) => idx.push(i),
                None => by_query.push((&p.query, vec![i])),
            }
        }
        for (query, idx) in by_query {
            let passages: Vec<&str> = idx.iter().map(|&i| fx.pairs[i].passage.as_str()).collect();
            let logits = model.score(query, &passages).unwrap();
            for (&i, logit) in idx.iter().zip(logits) {
                let len = model.pair_length(query, &fx.pairs[i].passage).unwrap();
                assert_eq!(
                    len, expected.token_counts[i],
                    "pair {i} at {max_length}: token count"
                );
                let diff = (logit - expected.logits[i]).abs();
                assert!(
                    diff <= 1e-4,
                    "pair {i} at {max_length}: {logit} vs {} (diff {diff})",
                    expected.logits[i]
                );
            }
        }
    }
}

#[test]
fn an_over_long_query_does_not_fail_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let model = CrossEncoder::load(&parity_checkpoint(dir.path()), 64, 4).unwrap();
    let query = "why ".repeat(200);
    let logits = model
        .score(&query, &["short passage", &"long passage ".repeat(300)])
        .unwrap();
    assert_eq!(logits.len(), 2);
    assert!(logits.iter().all(|l| l.is_finite()));
    assert!(model.pair_length(&query, "short passage").unwrap() <= 64);
}

#[test]
fn a_body_without_a_classifier_is_refused_clearly() {
    let err = CrossEncoder::load(&ModelFiles::from_dir(&minilm_dir()).unwrap(), 512, 4)
        .err()
        .unwrap();
    assert!(err.to_string().contains("classifier"), "{err}");
}

/// The faster precisions against the reference on the same fixtures: each
/// must run its own arithmetic where the CPU has it (so a mode that silently
/// fell back to f32 fails the "differs" check) and stay within its budget.
#[test]
fn fast_and_int8_stay_close_to_the_reference() {
    use sift_bert::kernels::Isa;
    use sift_bert::Precision;
    let isa = Isa::detect();
    let fx: EmbeddingFixture = fixture("minilm_embeddings.json");
    let files = ModelFiles::from_dir(&minilm_dir()).unwrap();
    // (precision, whether this CPU runs it, lowest cosine to the reference)
    for (precision, runs, floor) in [
        (Precision::Fast, isa.avx512_bf16, 0.9995),
        // 8-bit weights and activations: 0.9985 measured on Zen 4.
        (Precision::Int8, isa.avx512_vnni, 0.995),
    ] {
        if !runs {
            eprintln!("{precision}: not on this CPU (falls back to f32, tested above)");
            continue;
        }
        let encoder = BiEncoder::load_with(&files, fx.max_seq_length, 5, precision).unwrap();
        let ours = encoder.embed(&fx.sentences).unwrap();
        let cosines: Vec<f64> = ours
            .iter()
            .zip(&fx.embeddings)
            .map(|(a, b)| cosine(a, b))
            .collect();
        let worst = cosines.iter().cloned().fold(1.0, f64::min);
        eprintln!("{precision}: worst cosine to sentence-transformers {worst:.6}");
        assert!(worst >= floor, "{precision}: cosine {worst} < {floor}");
        assert!(
            worst < 0.999_999,
            "{precision}: identical to f32, so it did not run"
        );
    }
    // The reranker: the same order of the fixture's pairs under each query
    // as transformers', up to pairs whose reference logits are nearly tied.
    let cross: CrossEncoderFixture = fixture("cross_encoder_logits.json");
    let dir = tempfile::tempdir().unwrap();
    let parity = parity_checkpoint(dir.path());
    // (precision, whether it runs here, largest difference as a share of
    // the logits' span: 0.5 % and 5 % measured on Zen 4; a wrong column or
    // scale is off by more than the span)
    for (precision, runs, share) in [
        (Precision::Fast, isa.avx512_bf16, 0.02),
        (Precision::Int8, isa.avx512_vnni, 0.15),
    ] {
        if !runs {
            continue;
        }
        let model = CrossEncoder::load_with(&parity, 512, 4, precision).unwrap();
        let want = &cross.max_length_512.logits;
        let mut worst = 0f32;
        for (i, p) in cross.pairs.iter().enumerate() {
            let got = model.score(&p.query, &[p.passage.as_str()]).unwrap()[0];
            worst = worst.max((got - want[i]).abs());
        }
        let spread = want.iter().cloned().fold(f32::NEG_INFINITY, f32::max)
            - want.iter().cloned().fold(f32::INFINITY, f32::min);
        eprintln!("{precision}: worst logit difference {worst:.4} (logits span {spread:.3})");
        assert!(
            worst > 0.0,
            "{precision}: identical to f32, so it did not run"
        );
        assert!(
            worst < share * spread,
            "{precision}: logit off by {worst} of a {spread} span"
        );
    }
}
