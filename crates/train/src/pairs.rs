//! (query, passage) pairs as word-piece ids, cut to the training length.

use crate::{Error, Result};
use candle_core::{Device, Tensor};
use std::path::Path;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// One tokenised pair: `[CLS] query [SEP] passage [SEP]`.
#[derive(Clone, Debug)]
pub(crate) struct Pair {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
}

/// Tokenises pairs the way `sift_bert::CrossEncoder` does: only the passage
/// is cut (`only_second`), unless the query alone is too long.
pub(crate) struct PairTokenizer {
    only_second: Tokenizer,
    longest_first: Tokenizer,
}

impl PairTokenizer {
    pub fn load(path: &Path, max_length: usize) -> Result<PairTokenizer> {
        let mut base = Tokenizer::from_file(path).map_err(|e| Error::model(path, e.to_string()))?;
        base.with_padding(None);
        let with = |strategy| -> Result<Tokenizer> {
            let mut t = base.clone();
            t.with_truncation(Some(TruncationParams {
                max_length,
                strategy,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
            Ok(t)
        };
        Ok(PairTokenizer {
            only_second: with(TruncationStrategy::OnlySecond)?,
            longest_first: with(TruncationStrategy::LongestFirst)?,
        })
    }

    pub fn encode(&self, query: &str, passage: &str) -> Result<Pair> {
        let encoding = match self.only_second.encode((query, passage), true) {
            Ok(e) => e,
            Err(_) => self
                .longest_first
                .encode((query, passage), true)
                .map_err(|e| Error::Tokenizer(e.to_string()))?,
        };
        Ok(Pair {
            ids: encoding.get_ids().to_vec(),
            type_ids: encoding.get_type_ids().to_vec(),
        })
    }
}

/// Pad pairs to the longest: ids, type ids `[n, len]` (u32) and the mask
/// `[n, len]` (f32, 1 for tokens).
#[cfg(test)]
pub(crate) fn pad_pairs(pairs: &[&Pair]) -> Result<(Tensor, Tensor, Tensor)> {
    let len = pairs.iter().map(|p| p.ids.len()).max().unwrap_or(0);
    let n = pairs.len();
    let mut ids = vec![0u32; n * len];
    let mut type_ids = vec![0u32; n * len];
    let mut mask = vec![0f32; n * len];
    for (row, p) in pairs.iter().enumerate() {
        let at = row * len;
        ids[at..at + p.ids.len()].copy_from_slice(&p.ids);
        type_ids[at..at + p.type_ids.len()].copy_from_slice(&p.type_ids);
        mask[at..at + p.ids.len()].fill(1.0);
    }
    let device = Device::Cpu;
    Ok((
        Tensor::from_vec(ids, (n, len), &device)?,
        Tensor::from_vec(type_ids, (n, len), &device)?,
        Tensor::from_vec(mask, (n, len), &device)?,
    ))
}

/// Stack cached hidden states `[len_i, hidden]` into `[n, max_len, hidden]`
/// with zero rows as padding, and the matching mask `[n, max_len]`.
pub(crate) fn pad_hidden(states: &[&Tensor]) -> Result<(Tensor, Tensor)> {
    let len = states
        .iter()
        .map(|t| t.dim(0))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let max = len.iter().copied().max().unwrap_or(0);
    let padded = states
        .iter()
        .zip(&len)
        .map(|(t, &l)| t.pad_with_zeros(0, 0, max - l))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let mut mask = vec![0f32; states.len() * max];
    for (row, &l) in len.iter().enumerate() {
        mask[row * max..row * max + l].fill(1.0);
    }
    Ok((
        Tensor::stack(&padded, 0)?,
        Tensor::from_vec(mask, (states.len(), max), &Device::Cpu)?,
    ))
}
