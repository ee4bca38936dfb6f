//! sift's own BERT encoder: the forward pass of candle-transformers'
//! `BertModel` over a *packed* batch, on the kernels in [`crate::kernels`].
//!
//! Weights still load through candle's `VarBuilder` (same files, same
//! names, same checks), but are laid out once for the kernels: Q, K and V
//! fused into one `[3h, h]` projection, every projection pre-transposed (or
//! pre-packed into bf16 panels in the fast precision). A batch is the
//! tokens of its sequences back to back — no padding, no attention mask —
//! so a batch of sequences averaging 190 tokens costs 190 tokens each,
//! whatever its longest member.

use crate::kernels::{self, Matmul, PackedLinear};
use crate::model::Encoded;
use crate::profile::{self, Op};
use crate::{Error, Result};
use candle_core::DType;
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct, PositionEmbeddingType};
use std::ops::Range;

struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

struct Layer {
    qkv: PackedLinear,
    attn_out: PackedLinear,
    ln_attn: LayerNorm,
    ffn_in: PackedLinear,
    ffn_out: PackedLinear,
    ln_ffn: LayerNorm,
}

impl Layer {
    /// Whether this layer's attention rounds to bf16: the fast and int8
    /// precisions round the projections' operands to 16 or 8 bits already.
    fn bf16_attention(&self) -> bool {
        match self.qkv.kind() {
            Matmul::F32 => false,
            Matmul::Bf16 | Matmul::Int8 => true,
        }
    }
}

/// A packed batch's last hidden states.
pub(crate) struct Packed {
    /// `[tokens, hidden]`, row-major.
    pub hidden: Vec<f32>,
    /// Sequence `i` is rows `offsets[i]..offsets[i + 1]`.
    pub offsets: Vec<usize>,
}

/// Which rows of the last layer a caller needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rows {
    /// Every token's (pooling over tokens).
    All,
    /// Each sequence's first token's (`[CLS]` for a classification head).
    FirstOfEach,
}

/// The activations of one layer, allocated once per batch.
struct Buffers {
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    y: Vec<f32>,
    inter: Vec<f32>,
}

impl Buffers {
    fn new(tokens: usize, hidden: usize, intermediate: usize) -> Buffers {
        Buffers {
            qkv: vec![0f32; tokens * 3 * hidden],
            ctx: vec![0f32; tokens * hidden],
            y: vec![0f32; tokens * hidden],
            inter: vec![0f32; tokens * intermediate],
        }
    }
}

/// `out = a · Wᵀ + b` over `m` rows, timed as `op`.
fn linear(op: Op, lin: &PackedLinear, a: &[f32], m: usize, out: &mut [f32]) {
    let flops = 2 * m * lin.in_features() * lin.out_features();
    profile::time(op, flops, || lin.forward(a, m, out));
}

/// `Q Kᵀ` and `P V`: two multiply–adds of `len × len × d` per head.
fn attention_flops(offsets: &[usize], hidden: usize) -> usize {
    offsets
        .windows(2)
        .map(|w| (w[1] - w[0]) * (w[1] - w[0]))
        .sum::<usize>()
        * hidden
        * 4
}

/// Each sequence's first row of `x` (`[tokens, hidden]`), back to back.
fn first_rows(x: &[f32], offsets: &[usize], hidden: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity((offsets.len() - 1) * hidden);
    for &start in &offsets[..offsets.len() - 1] {
        out.extend_from_slice(&x[start * hidden..][..hidden]);
    }
    out
}

/// Rows a sequence needs before sharing it between cores pays: a shared
/// layer forks twice, which costs about what a core does on a few rows.
pub(crate) const SPLIT_MIN_TOKENS: usize = 64;

/// Rows per share are a multiple of this (whole AMX tiles, whole blocks of
/// the other kernels' rows).
const SHARE_ALIGN: usize = 16;

/// Contiguous ranges of `rows` rows for up to `cores` cores, each a
/// multiple of [`SHARE_ALIGN`] rows but the last; a single range when the
/// rows are too few to share (below [`SPLIT_MIN_TOKENS`]).
fn row_shares(rows: usize, cores: usize) -> Vec<Range<usize>> {
    if cores <= 1 || rows < SPLIT_MIN_TOKENS {
        return std::iter::once(0..rows).collect();
    }
    let per = rows.div_ceil(cores).next_multiple_of(SHARE_ALIGN);
    (0..rows)
        .step_by(per)
        .map(|start| start..(start + per).min(rows))
        .collect()
}

/// `buf`, `[rows, width]`, cut into the row ranges `shares` (contiguous,
/// in order, from row 0).
fn split_rows<'a>(buf: &'a mut [f32], width: usize, shares: &[Range<usize>]) -> Vec<&'a mut [f32]> {
    let mut rest = buf;
    let mut parts = Vec::with_capacity(shares.len());
    for rows in shares {
        let (part, tail) = std::mem::take(&mut rest).split_at_mut(rows.len() * width);
        parts.push(part);
        rest = tail;
    }
    parts
}

/// Run `jobs` at once, one per core, on [`crate::model::share_pool`], and
/// return when all are done (a single job runs on the calling thread).
fn on_cores<F: FnOnce() + Send>(mut jobs: Vec<F>) {
    if jobs.len() == 1 {
        return jobs.pop().expect("one job")();
    }
    crate::model::share_pool().scope(|scope| {
        for job in jobs {
            scope.spawn(move |_| job());
        }
    });
}

impl Packed {
    pub fn rows(&self, i: usize, hidden: usize) -> &[f32] {
        &self.hidden[self.offsets[i] * hidden..self.offsets[i + 1] * hidden]
    }
}

pub(crate) struct Encoder {
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    ln_embed: LayerNorm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    intermediate: usize,
    eps: f32,
    vocab: usize,
    max_positions: usize,
    type_vocab: usize,
}

pub(crate) fn vec(
    vb: &VarBuilder,
    shape: impl Into<candle_core::Shape>,
    name: &str,
) -> Result<Vec<f32>> {
    Ok(vb
        .get(shape, name)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}

fn layer_norm(vb: VarBuilder, h: usize) -> Result<LayerNorm> {
    Ok(LayerNorm {
        gamma: vec(&vb, h, "weight")?,
        beta: vec(&vb, h, "bias")?,
    })
}

impl Encoder {
    /// The products its linear layers run as: the asked-for kind, or f32
    /// where this CPU has no kernel for it (see `PackedLinear::for_isa`).
    pub fn matmul(&self) -> Option<Matmul> {
        self.layers.first().map(|layer| layer.qkv.kind())
    }

    /// Load from a builder rooted at the BERT body (`embeddings.*`, `encoder.*`).
    pub fn load(vb: VarBuilder, config: &Config, kind: Matmul) -> Result<Encoder> {
        let unsupported = |what: String| Error::Candle(candle_core::Error::Msg(what));
        if !matches!(config.hidden_act, HiddenAct::Gelu) {
            return Err(unsupported(format!(
                "hidden_act {:?}: only \"gelu\" (erf) is implemented",
                config.hidden_act
            )));
        }
        if !matches!(
            config.position_embedding_type,
            PositionEmbeddingType::Absolute
        ) {
            return Err(unsupported(
                "only absolute position embeddings are implemented".into(),
            ));
        }
        let (h, i, heads) = (
            config.hidden_size,
            config.intermediate_size,
            config.num_attention_heads,
        );
        if h % heads != 0 {
            return Err(unsupported(format!(
                "hidden size {h} is not a multiple of {heads} heads"
            )));
        }
        let emb = vb.pp("embeddings");
        let linear = |vb: VarBuilder, n: usize, k: usize| -> Result<PackedLinear> {
            let w = vec(&vb, (n, k), "weight")?;
            let b = vec(&vb, n, "bias")?;
            Ok(PackedLinear::new(&w, &b, n, k, kind))
        };
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for l in 0..config.num_hidden_layers {
            let vb = vb.pp(format!("encoder.layer.{l}"));
            let att = vb.pp("attention");
            let mut w = Vec::with_capacity(3 * h * h);
            let mut b = Vec::with_capacity(3 * h);
            for part in ["query", "key", "value"] {
                w.extend(vec(&att.pp("self").pp(part), (h, h), "weight")?);
                b.extend(vec(&att.pp("self").pp(part), h, "bias")?);
            }
            layers.push(Layer {
                qkv: PackedLinear::new(&w, &b, 3 * h, h, kind),
                attn_out: linear(att.pp("output").pp("dense"), h, h)?,
                ln_attn: layer_norm(att.pp("output").pp("LayerNorm"), h)?,
                ffn_in: linear(vb.pp("intermediate").pp("dense"), i, h)?,
                ffn_out: linear(vb.pp("output").pp("dense"), h, i)?,
                ln_ffn: layer_norm(vb.pp("output").pp("LayerNorm"), h)?,
            });
        }
        Ok(Encoder {
            word: vec(&emb.pp("word_embeddings"), (config.vocab_size, h), "weight")?,
            position: vec(
                &emb.pp("position_embeddings"),
                (config.max_position_embeddings, h),
                "weight",
            )?,
            token_type: vec(
                &emb.pp("token_type_embeddings"),
                (config.type_vocab_size, h),
                "weight",
            )?,
            ln_embed: layer_norm(emb.pp("LayerNorm"), h)?,
            layers,
            hidden: h,
            heads,
            intermediate: i,
            eps: config.layer_norm_eps as f32,
            vocab: config.vocab_size,
            max_positions: config.max_position_embeddings,
            type_vocab: config.type_vocab_size,
        })
    }

    /// Run the encoder over the sequences of `batch`, packed, on up to
    /// `cores` cores (see [`Encoder::forward_layers`]).
    pub fn forward(&self, batch: &[Encoded], cores: usize) -> Result<Packed> {
        self.forward_layers(batch, self.layers.len(), Rows::All, cores)
    }

    /// The last hidden state of each sequence's first token (`[CLS]`) only,
    /// one row per sequence: all a classification head reads. The last
    /// layer then runs attention, the output projection, both layer norms
    /// and the feed-forward block for those rows alone (every token's keys
    /// and values are still computed), which skips most of one layer in
    /// six. Each row is computed exactly as in [`Encoder::forward`].
    pub fn forward_first_tokens(&self, batch: &[Encoded], cores: usize) -> Result<Packed> {
        self.forward_layers(batch, self.layers.len(), Rows::FirstOfEach, cores)
    }

    /// The embeddings and the first `layers` layers only.
    ///
    /// A batch of one sequence of at least [`SPLIT_MIN_TOKENS`] runs on up
    /// to `cores` cores, each taking a share of its rows (see
    /// [`Encoder::layer_split`]); anything else runs on the calling thread
    /// alone (callers run such batches side by side, one per core).
    pub fn forward_layers(
        &self,
        batch: &[Encoded],
        layers: usize,
        rows: Rows,
        cores: usize,
    ) -> Result<Packed> {
        let h = self.hidden;
        let mut offsets = Vec::with_capacity(batch.len() + 1);
        offsets.push(0);
        for e in batch {
            if e.ids.len() > self.max_positions {
                return Err(Error::Candle(candle_core::Error::Msg(format!(
                    "sequence of {} tokens exceeds {} positions",
                    e.ids.len(),
                    self.max_positions
                ))));
            }
            offsets.push(offsets.last().unwrap() + e.ids.len());
        }
        let tokens = *offsets.last().unwrap();
        let mut x = profile::time(Op::Embeddings, 0, || self.embed(batch, tokens))?;
        let layers = layers.min(self.layers.len());
        let mut buffers = Buffers::new(tokens, h, self.intermediate);
        let shares = if batch.len() == 1 {
            row_shares(tokens, cores)
        } else {
            std::iter::once(0..tokens).collect()
        };
        for (l, layer) in self.layers.iter().take(layers).enumerate() {
            if l + 1 == layers && rows == Rows::FirstOfEach {
                return Ok(self.last_layer_first_tokens(
                    layer,
                    &x,
                    &offsets,
                    &shares,
                    &mut buffers,
                ));
            }
            if shares.len() > 1 {
                self.layer_split(layer, &mut x, &shares, &mut buffers);
            } else {
                self.layer(layer, &mut x, &offsets, &mut buffers);
            }
        }
        if rows == Rows::FirstOfEach {
            // No layer ran (layers == 0): the embeddings' first rows.
            let firsts = first_rows(&x, &offsets, h);
            let offsets = (0..=batch.len()).collect();
            return Ok(Packed {
                hidden: firsts,
                offsets,
            });
        }
        Ok(Packed { hidden: x, offsets })
    }

    /// Word + position + token type embeddings, then layer norm.
    fn embed(&self, batch: &[Encoded], tokens: usize) -> Result<Vec<f32>> {
        let h = self.hidden;
        let mut x = vec![0f32; tokens * h];
        let mut row = 0;
        for e in batch {
            for (pos, (&id, &ty)) in e.ids.iter().zip(&e.type_ids).enumerate() {
                let (id, ty) = (id as usize, ty as usize);
                if id >= self.vocab || ty >= self.type_vocab {
                    return Err(Error::Candle(candle_core::Error::Msg(format!(
                        "token id {id} / type {ty} out of the vocabulary"
                    ))));
                }
                let dst = &mut x[row * h..][..h];
                let (w, p, t) = (
                    &self.word[id * h..][..h],
                    &self.position[pos * h..][..h],
                    &self.token_type[ty * h..][..h],
                );
                for j in 0..h {
                    dst[j] = w[j] + p[j] + t[j];
                }
                row += 1;
            }
        }
        let zeros = vec![0f32; tokens * h];
        kernels::residual_layer_norm(
            &mut x,
            &zeros,
            &self.ln_embed.gamma,
            &self.ln_embed.beta,
            self.eps,
        );
        Ok(x)
    }

    /// One layer over every token: `x` in, `x` out.
    fn layer(&self, layer: &Layer, x: &mut [f32], offsets: &[usize], b: &mut Buffers) {
        let tokens = *offsets.last().unwrap();
        let h = self.hidden;
        let Buffers { qkv, ctx, y, inter } = b;
        linear(Op::Qkv, &layer.qkv, x, tokens, qkv);
        profile::time(Op::Attention, attention_flops(offsets, h), || {
            if layer.bf16_attention() {
                kernels::attention_bf16(qkv, offsets, self.heads, ctx)
            } else {
                kernels::attention(qkv, offsets, self.heads, ctx)
            }
        });
        linear(Op::AttnOut, &layer.attn_out, ctx, tokens, y);
        self.residual_layer_norm(y, x, &layer.ln_attn);
        kernels::feed_forward(&layer.ffn_in, &layer.ffn_out, y, tokens, inter, x);
        self.residual_layer_norm(x, y, &layer.ln_ffn);
    }

    /// [`Encoder::layer`] for a batch of one sequence, its rows shared
    /// between cores: each core projects its `shares` rows to Q, K and V;
    /// once all keys and values are there, each runs attention for its
    /// rows' queries and the rest of the layer (all row by row) on its rows.
    /// Every row is computed exactly as [`Encoder::layer`] computes it.
    fn layer_split(&self, layer: &Layer, x: &mut [f32], shares: &[Range<usize>], b: &mut Buffers) {
        let h = self.hidden;
        let (heads, i) = (self.heads, self.intermediate);
        let bf16 = layer.bf16_attention();
        let Buffers { qkv, ctx, y, inter } = b;
        self.project_qkv(layer, x, shares, qkv);
        let qkv: &[f32] = qkv;
        let tokens = qkv.len() / (3 * h);
        let parts = split_rows(x, h, shares)
            .into_iter()
            .zip(split_rows(ctx, h, shares))
            .zip(split_rows(y, h, shares))
            .zip(split_rows(inter, i, shares));
        on_cores(
            shares
                .iter()
                .zip(parts)
                .map(|(rows, (((x, ctx), y), inter))| {
                    move || {
                        let m = rows.len();
                        profile::time(Op::Attention, 4 * m * tokens * h, || {
                            kernels::attention_query_rows(qkv, heads, rows.clone(), ctx, bf16)
                        });
                        linear(Op::AttnOut, &layer.attn_out, ctx, m, y);
                        self.residual_layer_norm(y, x, &layer.ln_attn);
                        kernels::feed_forward(&layer.ffn_in, &layer.ffn_out, y, m, inter, x);
                        self.residual_layer_norm(x, y, &layer.ln_ffn);
                    }
                })
                .collect(),
        );
    }

    /// Q, K and V of every row of `x`, each core projecting its `shares`
    /// (with a single share, on the calling thread).
    fn project_qkv(&self, layer: &Layer, x: &[f32], shares: &[Range<usize>], qkv: &mut [f32]) {
        let h = self.hidden;
        on_cores(
            shares
                .iter()
                .zip(split_rows(qkv, 3 * h, shares))
                .map(|(rows, qkv)| {
                    let x = &x[rows.start * h..rows.end * h];
                    move || linear(Op::Qkv, &layer.qkv, x, rows.len(), qkv)
                })
                .collect(),
        );
    }

    /// The last layer for each sequence's first token only (see
    /// [`Encoder::forward_first_tokens`]).
    fn last_layer_first_tokens(
        &self,
        layer: &Layer,
        x: &[f32],
        offsets: &[usize],
        shares: &[Range<usize>],
        b: &mut Buffers,
    ) -> Packed {
        let tokens = *offsets.last().unwrap();
        let seqs = offsets.len() - 1;
        let h = self.hidden;
        let Buffers { qkv, ctx, y, inter } = b;
        self.project_qkv(layer, x, shares, qkv);
        let ctx = &mut ctx[..seqs * h];
        profile::time(Op::Attention, 4 * tokens * h, || {
            kernels::attention_first_rows(qkv, offsets, self.heads, ctx)
        });
        let y = &mut y[..seqs * h];
        linear(Op::AttnOut, &layer.attn_out, ctx, seqs, y);
        let residual = first_rows(x, offsets, h);
        self.residual_layer_norm(y, &residual, &layer.ln_attn);
        let mut out = vec![0f32; seqs * h];
        kernels::feed_forward(&layer.ffn_in, &layer.ffn_out, y, seqs, inter, &mut out);
        self.residual_layer_norm(&mut out, y, &layer.ln_ffn);
        Packed {
            hidden: out,
            offsets: (0..=seqs).collect(),
        }
    }

    fn residual_layer_norm(&self, x: &mut [f32], residual: &[f32], ln: &LayerNorm) {
        profile::time(Op::LayerNorm, 0, || {
            kernels::residual_layer_norm(x, residual, &ln.gamma, &ln.beta, self.eps)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};
    use std::collections::HashMap;

    /// A small BERT with deterministic weights (head size 32, as the bf16
    /// attention needs; widths that fill the int8 panels).
    fn tiny(kind: Matmul) -> Encoder {
        let (h, i, layers, vocab, positions) = (128usize, 256usize, 2usize, 50usize, 512usize);
        let config: Config = serde_json::from_value(serde_json::json!({
            "vocab_size": vocab, "hidden_size": h, "num_hidden_layers": layers,
            "num_attention_heads": 4, "intermediate_size": i, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.0, "max_position_embeddings": positions,
            "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12,
            "pad_token_id": 0, "position_embedding_type": "absolute", "use_cache": false,
            "classifier_dropout": null, "model_type": "bert"
        }))
        .unwrap();
        let mut seed = 0u32;
        let mut tensor = |shape: &[usize], scale: f32| {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * scale
                })
                .collect();
            Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
        };
        let mut w = HashMap::new();
        for (name, rows) in [("word", vocab), ("position", positions), ("token_type", 2)] {
            w.insert(
                format!("embeddings.{name}_embeddings.weight"),
                tensor(&[rows, h], 1.0),
            );
        }
        let norm = |w: &mut HashMap<String, Tensor>, at: String| {
            w.insert(
                format!("{at}.weight"),
                Tensor::ones(h, DType::F32, &Device::Cpu).unwrap(),
            );
            w.insert(
                format!("{at}.bias"),
                Tensor::zeros(h, DType::F32, &Device::Cpu).unwrap(),
            );
        };
        norm(&mut w, "embeddings.LayerNorm".into());
        for l in 0..layers {
            let at = format!("encoder.layer.{l}");
            let mut dense = |name: String, n: usize, k: usize| {
                let weight = tensor(&[n, k], 2.0 / (k as f32).sqrt());
                let bias = tensor(&[n], 0.1);
                w.insert(format!("{name}.weight"), weight);
                w.insert(format!("{name}.bias"), bias);
            };
            for part in ["query", "key", "value"] {
                dense(format!("{at}.attention.self.{part}"), h, h);
            }
            dense(format!("{at}.attention.output.dense"), h, h);
            dense(format!("{at}.intermediate.dense"), i, h);
            dense(format!("{at}.output.dense"), h, i);
            norm(&mut w, format!("{at}.attention.output.LayerNorm"));
            norm(&mut w, format!("{at}.output.LayerNorm"));
        }
        let vb = VarBuilder::from_tensors(w, DType::F32, &Device::Cpu);
        Encoder::load(vb, &config, kind).unwrap()
    }

    #[test]
    fn shares_are_aligned_contiguous_and_cover_every_row() {
        assert_eq!(row_shares(200, 2), vec![0..112, 112..200]);
        assert_eq!(row_shares(64, 2), vec![0..32, 32..64]);
        assert_eq!(row_shares(63, 2), vec![0..63], "too short to share");
        assert_eq!(row_shares(500, 1), vec![0..500]);
        for (rows, cores) in [(64, 3), (100, 4), (511, 2), (512, 8)] {
            let shares = row_shares(rows, cores);
            assert!(
                shares.len() > 1 && shares.len() <= cores,
                "{rows} on {cores}: {shares:?}"
            );
            assert_eq!(shares[0].start, 0);
            assert_eq!(shares.last().unwrap().end, rows);
            for pair in shares.windows(2) {
                assert_eq!(pair[0].end, pair[1].start);
                assert_eq!(pair[0].len() % SHARE_ALIGN, 0, "{shares:?}");
            }
        }
    }

    /// One long sequence shared between cores gives every row what it gets
    /// on one core, in each precision, with every token and with the first
    /// token only (the cross-encoder's path).
    #[test]
    fn a_shared_sequence_equals_one_core() {
        let ids: Vec<u32> = (0..300u32).map(|t| (t * 7 + 3) % 50).collect();
        let seq = Encoded {
            type_ids: (0..300u32).map(|t| u32::from(t >= 120)).collect(),
            ids,
        };
        for kind in [Matmul::F32, Matmul::Bf16, Matmul::Int8] {
            let encoder = tiny(kind);
            for rows in [Rows::All, Rows::FirstOfEach] {
                let one = encoder
                    .forward_layers(std::slice::from_ref(&seq), 2, rows, 1)
                    .unwrap();
                let shared = encoder
                    .forward_layers(std::slice::from_ref(&seq), 2, rows, 3)
                    .unwrap();
                assert_eq!(one.offsets, shared.offsets);
                assert!(one.hidden.iter().all(|v| v.is_finite()));
                let worst = one
                    .hidden
                    .iter()
                    .zip(&shared.hidden)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    worst <= 1e-5,
                    "{kind:?} {rows:?}: shared rows differ by {worst}"
                );
            }
        }
    }

    /// Requests served at once each share their lone input through the one
    /// pool: none waits on another forever, and each gets its own answer.
    #[test]
    fn concurrent_shared_sequences_each_get_their_own_rows() {
        let encoder = tiny(Matmul::F32);
        let seqs: Vec<Encoded> = (0..4u32)
            .map(|s| {
                let len = 100 + 40 * s as usize;
                Encoded {
                    ids: (0..len as u32).map(|t| (t * 3 + s * 11) % 50).collect(),
                    type_ids: vec![0; len],
                }
            })
            .collect();
        let alone: Vec<Vec<f32>> = seqs
            .iter()
            .map(|e| encoder.forward(std::slice::from_ref(e), 1).unwrap().hidden)
            .collect();
        let together: Vec<Vec<f32>> = std::thread::scope(|scope| {
            let handles: Vec<_> = seqs
                .iter()
                .map(|e| {
                    let encoder = &encoder;
                    scope.spawn(move || encoder.forward(std::slice::from_ref(e), 2).unwrap().hidden)
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (i, (a, b)) in alone.iter().zip(&together).enumerate() {
            assert_eq!(a.len(), b.len());
            let worst = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(worst <= 1e-5, "sequence {i}: differs by {worst}");
        }
    }
}
