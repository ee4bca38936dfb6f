use crate::model::{batch_workers, load_tokenizer, map_batches, map_parallel, Bert, Encoded};
use crate::profile::{self, Op};
use crate::{Error, ModelFiles, Precision, Result};
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
    /// Load in exact [`Precision::F32`], the precision indexes are built with.
    pub fn load(files: &ModelFiles, max_tokens: usize, batch_size: usize) -> Result<BiEncoder> {
        Self::load_with(files, max_tokens, batch_size, Precision::F32)
    }

    /// Load with the given [`Precision`] for the matrix products.
    pub fn load_with(
        files: &ModelFiles,
        max_tokens: usize,
        batch_size: usize,
        precision: Precision,
    ) -> Result<BiEncoder> {
        let (bert, _, _) = Bert::load(files, precision)?;
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
    pub fn embed<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        let encoded = profile::time(Op::Tokenize, 0, || {
            map_parallel(texts, |t| self.encode(t.as_ref()))
        })?;
        map_batches(&encoded, self.batch_size, |batch, cores| {
            self.forward(batch, cores)
        })
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
            .forward(&[encoded], batch_workers())?
            .pop()
            .expect("one input, one output");
        Ok((vector, tokenized - start, tokenized.elapsed()))
    }

    fn forward(&self, batch: &[Encoded], cores: usize) -> Result<Vec<Vec<f32>>> {
        let h = self.bert.hidden_size();
        let packed = self.bert.forward(batch, cores)?;
        // Mean over the sequence's tokens (a packed batch has no padding to
        // leave out), then L2 normalisation.
        let pool = || {
            (0..batch.len())
                .map(|i| {
                    let rows = packed.rows(i, h);
                    let n = (rows.len() / h).max(1);
                    let mut mean = vec![0f32; h];
                    for row in rows.chunks_exact(h) {
                        for (m, v) in mean.iter_mut().zip(row) {
                            *m += v;
                        }
                    }
                    let inv_n = 1.0 / n as f32;
                    mean.iter_mut().for_each(|m| *m *= inv_n);
                    let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                    mean.iter_mut().for_each(|m| *m /= norm);
                    mean
                })
                .collect()
        };
        Ok(profile::time(Op::Head, 0, pool))
    }
}
