use crate::model::{load_tokenizer, map_batches, Bert, Encoded};
use crate::{Error, ModelFiles, Result};
use candle_core::{DType, D};
use std::time::{Duration, Instant};
use tokenizers::Tokenizer;

/// Sentence embeddings: BERT, mean pooling over real tokens, L2 normalisation.
///
/// Agrees with sentence-transformers' all-MiniLM-L6-v2 to cosine ≥ 0.9999
/// (see the parity test); inputs are truncated at `max_tokens` (256 there).
pub struct BiEncoder {
    bert: Bert,
    tokenizer: Tokenizer,
    max_tokens: usize,
    batch_size: usize,
    origin: String,
}

impl BiEncoder {
    pub fn load(files: &ModelFiles, max_tokens: usize, batch_size: usize) -> Result<BiEncoder> {
        let (bert, _, _) = Bert::load(files)?;
        let tokenizer = load_tokenizer(files)?;
        let max_tokens = max_tokens.min(bert.max_positions());
        tracing::debug!(origin = %files.origin, max_tokens, "bi-encoder loaded");
        Ok(BiEncoder {
            bert,
            tokenizer,
            max_tokens,
            batch_size: batch_size.max(1),
            origin: files.origin.clone(),
        })
    }

    /// Where the weights came from (a folder or a hub id).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.bert.hidden_size()
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The word-piece tokenizer (padding and truncation off), which the
    /// chunker uses so chunk sizes are counted in the model's own tokens.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Tokenise and truncate (keeping the final `[SEP]`).
    fn encode(&self, text: &str) -> Result<Encoded> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(Error::tokenizer)?;
        let mut ids = encoding.get_ids().to_vec();
        if ids.len() > self.max_tokens {
            let sep = *ids.last().expect("non-empty: has special tokens");
            ids.truncate(self.max_tokens - 1);
            ids.push(sep);
        }
        Ok(Encoded {
            type_ids: vec![0; ids.len()],
            ids,
        })
    }

    /// Embed texts; returns one unit-length vector per text, in input order.
    pub fn embed<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        let encoded = texts
            .iter()
            .map(|t| self.encode(t.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        map_batches(&encoded, self.batch_size, |batch| self.forward(batch))
    }

    /// Embed one text (a query).
    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>> {
        Ok(self.embed(&[text])?.pop().expect("one input, one output"))
    }

    /// Embed one text, also returning the time spent tokenising and the
    /// time spent in the model, which a query's timings report apart.
    pub fn embed_query_timed(&self, text: &str) -> Result<(Vec<f32>, Duration, Duration)> {
        let start = Instant::now();
        let encoded = self.encode(text)?;
        let tokenized = Instant::now();
        let vector = self
            .forward(&[encoded])?
            .pop()
            .expect("one input, one output");
        Ok((vector, tokenized - start, tokenized.elapsed()))
    }

    fn forward(&self, batch: &[Encoded]) -> Result<Vec<Vec<f32>>> {
        let (hidden, mask) = self.bert.forward(batch)?;
        // Mean over real tokens only: padding must not dilute the average.
        let mask = mask.unsqueeze(D::Minus1)?; // [b, t, 1]
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?; // [b, h]
        let counts = mask.sum(1)?; // [b, 1]
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12, f64::INFINITY)?;
        let unit = mean.broadcast_div(&norm)?.to_dtype(DType::F32)?;
        Ok(unit.to_vec2::<f32>()?)
    }
}
