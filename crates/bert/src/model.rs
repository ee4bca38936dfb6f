//! Loading a BERT body and running it over a packed batch.

use crate::encoder::{Encoder, Packed, SPLIT_MIN_TOKENS};
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
        let wanted = Matmul::from(precision);
        let encoder =
            Encoder::load(body.clone(), &config, wanted).map_err(|e| invalid(&files.weights, e))?;
        // Said, so that a precision that changes nothing is not taken for a
        // slow one. The kernels decided; this only reports what they chose.
        if let Some(ran) = encoder.matmul().filter(|&ran| ran != wanted) {
            let needs = match wanted {
                Matmul::Int8 => "AVX-512 VNNI",
                Matmul::Bf16 => "AMX or AVX-512 BF16",
                Matmul::F32 => "nothing",
            };
            tracing::warn!(
                "precision {precision} asked for {}, but its kernels need {needs} and do not run here (this CPU, or SIFT_KERNELS): its linear layers run in {}",
                files.origin,
                format!("{ran:?}").to_lowercase()
            );
        }
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
    pub fn forward(&self, batch: &[Encoded], cores: usize) -> Result<Packed> {
        self.encoder.forward(batch, cores)
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

/// The threads that share one long sequence's rows (see
/// `Encoder::layer_split`): one per core, started on first use and kept,
/// so a shared layer's two forks cost a wake-up, not a thread start.
pub(crate) fn share_pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(batch_workers())
            .thread_name(|i| format!("sift-share-{i}"))
            .build()
            .expect("the share pool's threads start")
    })
}

/// Whether sequences of `lengths` tokens finish sooner one at a time, each
/// shared between `workers` cores, than whole, side by side (longest first,
/// each to the first free core).
///
/// Whole inputs side by side finish with the busiest core; shared ones
/// with the total over all cores, plus what sharing costs (two forks per
/// layer and the partial blocks at the shares' edges, about a fifth of
/// the work measured on 140–300 tokens). One input of 140 tokens went from
/// 31 to 20 ms shared (f32, 2 cores), while three of 104–299 tokens, already
/// balanced at two per core, took 75 ms either way, and 26 instead of 22 ms
/// shared in int8. Sequences shorter than [`SPLIT_MIN_TOKENS`] are not shared.
fn shares_beat_whole_inputs(lengths: &[usize], workers: usize) -> bool {
    const SHARING_COST: f64 = 1.25;
    if workers < 2 || lengths.iter().all(|&n| n < SPLIT_MIN_TOKENS) {
        return false;
    }
    let mut sorted = lengths.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let mut load = vec![0usize; workers];
    for n in sorted {
        *load.iter_mut().min().expect("workers > 0") += n;
    }
    let busiest = *load.iter().max().expect("workers > 0") as f64;
    let total: usize = lengths.iter().sum();
    busiest > SHARING_COST * total as f64 / workers as f64
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
/// threads, and return its per-input results in input order. `f` gets a
/// batch and the number of cores it may spread that batch over.
///
/// Inputs too few to give every core whole batches of their own (fewer
/// than two per core) run one at a time, each shared between all cores
/// (see `Encoder::forward_layers`), when whole inputs side by side would
/// leave cores idle for long ([`shares_beat_whole_inputs`]): a lone long
/// pair would otherwise take one core and leave the rest idle.
pub(crate) fn map_batches<T: Send>(
    inputs: &[Encoded],
    batch_size: usize,
    f: impl Fn(&[Encoded], usize) -> Result<Vec<T>> + Sync,
) -> Result<Vec<T>> {
    let workers = batch_workers();
    let lengths: Vec<usize> = inputs.iter().map(|e| e.ids.len()).collect();
    if inputs.len() < 2 * workers && shares_beat_whole_inputs(&lengths, workers) {
        let mut out = Vec::with_capacity(inputs.len());
        for input in inputs {
            out.extend(f(std::slice::from_ref(input), workers)?);
        }
        return Ok(out);
    }
    let order = length_sorted_order(&lengths);
    // Batches are packed (no padding), so their size only sets how big the
    // matrix products are; a few hundred tokens already fill the kernels.
    // With several workers, cut at least four batches per worker so that
    // they finish together: 50 pairs in batches of 16 would leave one core
    // idle for a third of the time.
    let batch_size = if workers > 1 {
        batch_size.min(inputs.len().div_ceil(4 * workers))
    } else {
        batch_size
    };
    let batches: Vec<&[usize]> = order.chunks(batch_size.max(1)).collect();
    let run = |batch: &[usize]| -> Result<Vec<T>> {
        let encoded: Vec<Encoded> = batch.iter().map(|&i| inputs[i].clone()).collect();
        f(&encoded, 1)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_inputs_are_shared_only_when_whole_ones_leave_cores_idle() {
        // A lone long pair: one core would sit idle.
        assert!(shares_beat_whole_inputs(&[300], 2));
        // A long and a short one: the short one's core idles most of the time.
        assert!(shares_beat_whole_inputs(&[512, 100], 2));
        // Two of a length, or three balanced ones: whole inputs keep both busy.
        assert!(!shares_beat_whole_inputs(&[300, 290], 2));
        assert!(!shares_beat_whole_inputs(&[299, 200, 104], 2));
        // Too short to share, or a single core.
        assert!(!shares_beat_whole_inputs(&[40], 2));
        assert!(!shares_beat_whole_inputs(&[300], 1));
    }
}
