//! Loading a BERT body and running it over a padded batch.

use crate::{Error, ModelFiles, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
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
    pub model: BertModel,
    pub config: Config,
    pub device: Device,
}

impl Bert {
    /// Load the body. Weights may be stored bare (`embeddings.*`, as
    /// sentence-transformers saves them) or under `bert.` (as
    /// `BertForSequenceClassification` saves them); the returned builder is
    /// rooted at that prefix, so `pooler.*` resolves either way.
    pub fn load(files: &ModelFiles) -> Result<(Bert, VarBuilder<'static>, VarBuilder<'static>)> {
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
        let model =
            BertModel::load(body.clone(), &config).map_err(|e| invalid(&files.weights, e))?;
        Ok((
            Bert {
                model,
                config,
                device,
            },
            root,
            body,
        ))
    }

    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    pub fn max_positions(&self) -> usize {
        self.config.max_position_embeddings
    }

    /// Run the body over a batch padded to its longest member.
    /// Returns the last hidden states `[batch, len, hidden]` and the
    /// attention mask `[batch, len]` (1 for real tokens, 0 for padding).
    pub fn forward(&self, batch: &[Encoded]) -> Result<(Tensor, Tensor)> {
        let len = batch.iter().map(|e| e.ids.len()).max().unwrap_or(0);
        let n = batch.len();
        let mut ids = vec![0u32; n * len];
        let mut type_ids = vec![0u32; n * len];
        let mut mask = vec![0u32; n * len];
        for (row, e) in batch.iter().enumerate() {
            let at = row * len;
            ids[at..at + e.ids.len()].copy_from_slice(&e.ids);
            type_ids[at..at + e.type_ids.len()].copy_from_slice(&e.type_ids);
            mask[at..at + e.ids.len()].fill(1);
        }
        let ids = Tensor::from_vec(ids, (n, len), &self.device)?;
        let type_ids = Tensor::from_vec(type_ids, (n, len), &self.device)?;
        let mask = Tensor::from_vec(mask, (n, len), &self.device)?;
        let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?;
        Ok((hidden, mask.to_dtype(DType::F32)?))
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

/// Threads that run batches side by side.
///
/// candle parallelises inside each operation, and on small BERT matrices
/// its workers spend much of their time waiting on each other. When candle
/// is told to run single-threaded (`CANDLE_NUM_THREADS=1` and
/// `RAYON_NUM_THREADS=1`, which the `sift` binary sets), whole batches run in
/// parallel instead, one per core: measured on the demo corpus with 2 cores,
/// 13 s of CPU for what took 21 s with candle's own threading.
pub(crate) fn batch_workers() -> usize {
    if candle_core::utils::get_num_threads() == 1 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        1
    }
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
    let batches: Vec<&[usize]> = order.chunks(batch_size.max(1)).collect();
    let run = |batch: &[usize]| -> Result<Vec<T>> {
        let encoded: Vec<Encoded> = batch.iter().map(|&i| inputs[i].clone()).collect();
        f(&encoded)
    };
    let workers = batch_workers().min(batches.len());
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
