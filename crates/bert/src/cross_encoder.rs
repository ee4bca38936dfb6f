use crate::encoder::vec;
use crate::kernels::{Matmul, PackedLinear};
use crate::model::{invalid, load_tokenizer, map_batches, map_parallel, Bert, Encoded};
use crate::profile::{self, Op};
use crate::{Error, ModelFiles, Precision, Result};
use serde::{Deserialize, Serialize};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// What `sift train-reranker` records about a checkpoint it wrote, under the
/// `sift_trained` key of its `config.json`; hub checkpoints have none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainedWith {
    pub seed: u64,
    /// The pair length it was trained at. Reading longer pairs than it ever
    /// saw costs quality (measured on SciFact), so the engine reads at most
    /// this many tokens.
    pub max_length: usize,
    /// The weight of the stage-1 order in the final order (see
    /// `sift_rerank::blend`) that did best on the training run's validation
    /// queries; absent in checkpoints from before the blend existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage1_weight: Option<f32>,
    /// What it learnt from and the terms that come with those data, as its
    /// card states them (`sift train-reranker --data-terms`); the engine
    /// names them wherever it says which reranker ranked a result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_terms: Option<String>,
}

impl TrainedWith {
    /// The record in a `config.json`, if it has one.
    pub fn read(config: &std::path::Path) -> Result<Option<TrainedWith>> {
        #[derive(Deserialize)]
        struct Config {
            sift_trained: Option<TrainedWith>,
        }
        let text = std::fs::read_to_string(config).map_err(|e| invalid(config, e))?;
        let parsed: Config = serde_json::from_str(&text).map_err(|e| invalid(config, e))?;
        Ok(parsed.sift_trained)
    }
}

/// A cross-encoder: BERT reads `[CLS] query [SEP] passage [SEP]`, the pooler
/// (dense + tanh on `[CLS]`) and a one-label classifier give a relevance
/// logit.
///
/// Loads the Hugging Face `BertForSequenceClassification` layout
/// (`bert.*`, `classifier.*`) of cross-encoder/ms-marco-MiniLM-L-6-v2, and
/// the checkpoints `sift train-reranker` writes. Scores are raw logits:
/// comparable within one query, meaningless as probabilities.
pub struct CrossEncoder {
    bert: Bert,
    /// Dense `[h, h]` + tanh on `[CLS]`; in f32 whatever the precision (it
    /// is one row per pair: nothing to gain from bf16).
    pooler: PackedLinear,
    /// The one-label classifier: weight `[h]`, bias.
    classifier: (Vec<f32>, f32),
    /// Truncates only the passage, as `truncation="only_second"` does.
    pair_tokenizer: Tokenizer,
    /// Fallback when the query alone leaves no room for the passage.
    longest_first_tokenizer: Tokenizer,
    max_length: usize,
    batch_size: usize,
    origin: String,
    trained_with: Option<TrainedWith>,
}

impl CrossEncoder {
    /// Load in exact [`Precision::F32`].
    pub fn load(files: &ModelFiles, max_length: usize, batch_size: usize) -> Result<CrossEncoder> {
        Self::load_with(files, max_length, batch_size, Precision::F32)
    }

    /// Load with the given [`Precision`] for the matrix products.
    pub fn load_with(
        files: &ModelFiles,
        max_length: usize,
        batch_size: usize,
        precision: Precision,
    ) -> Result<CrossEncoder> {
        let (bert, root, body) = Bert::load(files, precision)?;
        let hidden = bert.hidden_size();
        let head = |vb: candle_nn::VarBuilder, n: usize| -> Result<(Vec<f32>, Vec<f32>)> {
            Ok((vec(&vb, (n, hidden), "weight")?, vec(&vb, n, "bias")?))
        };
        let (w, b) =
            head(body.pp("pooler").pp("dense"), hidden).map_err(|e| invalid(&files.weights, e))?;
        let pooler = PackedLinear::new(&w, &b, hidden, hidden, Matmul::F32);
        let (w, b) = head(root.pp("classifier"), 1).map_err(|e| {
            invalid(
                &files.weights,
                format!("expected a one-label classifier head `classifier.*` ({e})"),
            )
        })?;
        let classifier = (w, b[0]);
        let trained_with = TrainedWith::read(&files.config)?;
        let trained_length = trained_with.as_ref().map_or(usize::MAX, |t| t.max_length);
        let max_length = max_length.min(bert.max_positions()).min(trained_length);
        let base = load_tokenizer(files)?;
        let with_strategy = |strategy| -> Result<Tokenizer> {
            let mut t = base.clone();
            t.with_truncation(Some(TruncationParams {
                max_length,
                strategy,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(Error::tokenizer)?;
            Ok(t)
        };
        tracing::debug!(origin = %files.origin, max_length, "cross-encoder loaded");
        Ok(CrossEncoder {
            pooler,
            classifier,
            pair_tokenizer: with_strategy(TruncationStrategy::OnlySecond)?,
            longest_first_tokenizer: with_strategy(TruncationStrategy::LongestFirst)?,
            bert,
            max_length,
            batch_size: batch_size.max(1),
            origin: files.origin.clone(),
            trained_with,
        })
    }

    /// How `sift train-reranker` trained this checkpoint; `None` for others.
    pub fn trained_with(&self) -> Option<&TrainedWith> {
        self.trained_with.as_ref()
    }

    /// Where the weights came from (a folder or a hub id).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The longest pair read, in tokens: the configured length, capped by
    /// the model's positions and by the length it was trained at.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    fn encode_pair(&self, query: &str, passage: &str) -> Result<Encoded> {
        // A query so long that the passage cannot be cut enough is shortened
        // too, rather than failing the whole batch.
        let encoding = match self.pair_tokenizer.encode((query, passage), true) {
            Ok(encoding) => encoding,
            Err(_) => self
                .longest_first_tokenizer
                .encode((query, passage), true)
                .map_err(Error::tokenizer)?,
        };
        Ok(Encoded {
            ids: encoding.get_ids().to_vec(),
            type_ids: encoding.get_type_ids().to_vec(),
        })
    }

    /// Number of tokens the pair is read as, after truncation.
    pub fn pair_length(&self, query: &str, passage: &str) -> Result<usize> {
        Ok(self.encode_pair(query, passage)?.ids.len())
    }

    /// Pooler (dense + tanh) and classifier over `n` `[CLS]` rows.
    fn head(&self, cls: &[f32], n: usize) -> Vec<f32> {
        let h = self.bert.hidden_size();
        let mut pooled = vec![0f32; n * h];
        self.pooler.forward(cls, n, &mut pooled);
        let (w, b) = &self.classifier;
        pooled
            .chunks_exact(h)
            .map(|row| b + row.iter().zip(w).map(|(x, w)| x.tanh() * w).sum::<f32>())
            .collect()
    }

    /// Score each passage against the query; logits in input order.
    pub fn score<S: AsRef<str> + Sync>(&self, query: &str, passages: &[S]) -> Result<Vec<f32>> {
        let encoded = profile::time(Op::Tokenize, 0, || {
            map_parallel(passages, |p| self.encode_pair(query, p.as_ref()))
        })?;
        map_batches(&encoded, self.batch_size, |batch, cores| {
            // One row per pair: its [CLS] state, all the head reads.
            let cls = self.bert.encoder.forward_first_tokens(batch, cores)?;
            Ok(profile::time(Op::Head, 0, || {
                self.head(&cls.hidden, batch.len())
            }))
        })
    }
}
