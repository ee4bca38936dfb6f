use crate::model::{invalid, load_tokenizer, map_batches, Bert, Encoded};
use crate::{Error, ModelFiles, Precision, Result};
use candle_core::{Module, D};
use candle_nn::{linear, Linear};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

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
    pooler: Linear,
    classifier: Linear,
    /// Truncates only the passage, as `truncation="only_second"` does.
    pair_tokenizer: Tokenizer,
    /// Fallback when the query alone leaves no room for the passage.
    longest_first_tokenizer: Tokenizer,
    max_length: usize,
    batch_size: usize,
    origin: String,
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
        let pooler = linear(hidden, hidden, body.pp("pooler").pp("dense"))
            .map_err(|e| invalid(&files.weights, e))?;
        let classifier = linear(hidden, 1, root.pp("classifier")).map_err(|e| {
            invalid(
                &files.weights,
                format!("expected a one-label classifier head `classifier.*` ({e})"),
            )
        })?;
        let max_length = max_length.min(bert.max_positions());
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
        })
    }

    /// Where the weights came from (a folder or a hub id).
    pub fn origin(&self) -> &str {
        &self.origin
    }

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

    /// Score each passage against the query; logits in input order.
    pub fn score<S: AsRef<str>>(&self, query: &str, passages: &[S]) -> Result<Vec<f32>> {
        let encoded = passages
            .iter()
            .map(|p| self.encode_pair(query, p.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        map_batches(&encoded, self.batch_size, |batch| {
            let h = self.bert.hidden_size();
            let packed = self.bert.forward(batch)?;
            // [CLS] is each sequence's first row.
            let mut cls = Vec::with_capacity(batch.len() * h);
            for &start in &packed.offsets[..batch.len()] {
                cls.extend_from_slice(&packed.hidden[start * h..][..h]);
            }
            let cls = self.bert.encoder.rows_tensor(cls, batch.len())?;
            let pooled = self.pooler.forward(&cls)?.tanh()?;
            Ok(self
                .classifier
                .forward(&pooled)?
                .squeeze(D::Minus1)?
                .to_vec1::<f32>()?)
        })
    }
}
