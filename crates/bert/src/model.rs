//! Loading a BERT body and running it over a packed batch.

use crate::encoder::{Encoder, Packed};
use crate::kernels::Matmul;
use crate::{Error, ModelFiles, Precision, Result};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;
use tokenizers::Tokenizer;

/// One tokenised input: word-piece ids and segment (token type) ids.
#[derive(Clone, Debug, Default)]
pub(crate) struct Encoded {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
}

/// A BERT body with the weights it was loaded from, so heads can be loaded
/// beside it from the same file.
pub(crate) struct Bert {
    pub encoder: Encoder,
    pub config: Config,
}

impl Bert {
    /// Load the body. Weights may be stored bare (`embeddings.*`, as
    /// sentence-transformers saves them) or under `bert.` (as
    /// `BertForSequenceClassification` saves them); the returned builder is
    /// rooted at that prefix, so `pooler.*` resolves either way.
    pub fn load(
        files: &ModelFiles,
        precision: Precision,
    ) -> Result<(Bert, VarBuilder<'static>, VarBuilder<'static>)> {
        let config_text =
            std::fs::read_to_string(&files.config).map_err(|e| invalid(&files.config, e))?;
        let config: Config =
            serde_json::from_str(&config_text).map_err(|e| invalid(&files.config, e))?;
        let device = Device::Cpu;
        // SAFETY: the file is memory-mapped read-only; like every mmap user we
        // assume nobody truncates it while the model is loaded.
        let root =
            unsafe { VarBuilder::from_mmaped_safetensors(&[&files.weights], DType::F32, &device) }
                .map_err(|e| invalid(&files.weights, e))?;
        let body = if root.contains_tensor("bert.embeddings.word_embeddings.weight") {
            root.pp("bert")
        } else {
            root.clone()
        };
        let encoder = Encoder::load(body.clone(), &config, Matmul::from(precision))
            .map_err(|e| invalid(&files.weights, e))?;
        Ok((Bert { encoder, config }, root, body))
    }

    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    pub fn max_positions(&self) -> usize {
        self.config.max_position_embeddings
    }

    /// Run the body over a batch, packed (no padding): the last hidden
    /// states of every sequence, back to back.
    pub fn forward(&self, batch: &[Encoded]) -> Result<Packed> {
        self.encoder.forward(batch)
    }
}

/// Load `tokenizer.json` with its own padding and truncation switched off:
/// all-MiniLM-L6-v2's file pads and truncates to a fixed 128 tokens, while
/// the model is meant to read up to 256; we truncate and pad ourselves.
pub(crate) fn load_tokenizer(files: &ModelFiles) -> Result<Tokenizer> {
    let mut tokenizer =
        Tokenizer::from_file(&files.tokenizer).map_err(|e| invalid(&files.tokenizer, e))?;
    tokenizer.with_padding(None);
    tokenizer.with_truncation(None).map_err(Error::tokenizer)?;
    Ok(tokenizer)
}

pub(crate) fn invalid(path: &std::path::Path, e: impl std::fmt::Display) -> Error {
    Error::InvalidModelFile {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// Order of indices that groups inputs of similar length, so batches carry
/// little padding. Results are put back in input order by the callers.
pub(crate) fn length_sorted_order(lengths: &[usize]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    order
}

/// Threads that run batches side by side: one per core.
///
/// The encoder's kernels are single-threaded by design (see
/// [`crate::kernels`]): on small BERT matrices, threads inside each
/// operation spend much of their time waiting on each other, while whole
/// batches on separate cores never wait and never oversubscribe. (Under
/// candle's own kernels this took the demo corpus from 21 s to 13 s of CPU.)
pub(crate) fn batch_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `f` of every item, in order, on [`batch_workers`] threads in contiguous
/// shares: tokenising 50 pairs took 18 of a 256 ms int8 rerank on one
/// core while the other waited.
pub(crate) fn map_parallel<T: Sync, U: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<U> + Sync,
) -> Result<Vec<U>> {
    // Below a few items a thread costs more than it saves.
    let workers = batch_workers().min(items.len() / 4).max(1);
    if workers == 1 {
        return items.iter().map(&f).collect();
    }
    let share = items.len().div_ceil(workers);
    let f = &f;
    let parts: Vec<Result<Vec<U>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(share)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Result<Vec<U>>>()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("tokenizer thread panicked"))
            .collect()
    });
    let mut out = Vec::with_capacity(items.len());
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

/// Run `f` over batches of similar-length inputs, on [`batch_workers`]
/// threads, and return its per-input results in input order.
pub(crate) fn map_batches<T: Send>(
    inputs: &[Encoded],
    batch_size: usize,
    f: impl Fn(&[Encoded]) -> Result<Vec<T>> + Sync,
) -> Result<Vec<T>> {
    let lengths: Vec<usize> = inputs.iter().map(|e| e.ids.len()).collect();
    let order = length_sorted_order(&lengths);
    // Batches are packed (no padding), so their size only sets how big the
    // matrix products are; a few hundred tokens already fill the kernels.
    // With several workers, cut at least four batches per worker so that
    // they finish together: 50 pairs in batches of 16 would leave one core
    // idle for a third of the time.
    let workers = batch_workers();
    let batch_size = if workers > 1 {
        batch_size.min(inputs.len().div_ceil(4 * workers))
    } else {
        batch_size
    };
    let batches: Vec<&[usize]> = order.chunks(batch_size.max(1)).collect();
    let run = |batch: &[usize]| -> Result<Vec<T>> {
        let encoded: Vec<Encoded> = batch.iter().map(|&i| inputs[i].clone()).collect();
        f(&encoded)
    };
    let workers = workers.min(batches.len());
    let results: Vec<Result<Vec<T>>> = if workers <= 1 {
        batches.iter().map(|b| run(b)).collect()
    } else {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let mut done: Vec<(usize, Result<Vec<T>>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        let mut mine = Vec::new();
                        loop {
                            let b = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(batch) = batches.get(b) else {
                                break mine;
                            };
                            mine.push((b, run(batch)));
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("inference worker panicked"))
                .collect()
        });
        done.sort_by_key(|(b, _)| *b);
        done.into_iter().map(|(_, r)| r).collect()
    };
    let mut out: Vec<Option<T>> = (0..inputs.len()).map(|_| None).collect();
    for (batch, result) in batches.iter().zip(results) {
        for (&i, value) in batch.iter().zip(result?) {
            out[i] = Some(value);
        }
    }
    Ok(out
        .into_iter()
        .map(|v| v.expect("every input is in one batch"))
        .collect())
}
