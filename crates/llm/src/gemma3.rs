//! Gemma 3 from a quantised GGUF file, in candle.
//!
//! Adapted from candle-transformers' `models::quantized_gemma3` (same
//! weights, same arithmetic) with what a reranker needs: `forward` takes
//! `&self` and an explicit [`Cache`], so one loaded model scores several
//! prompts on several threads at once; the rotary tables are built once for
//! the context actually used (candle's builds two 131,072-position tables
//! per layer, ~2.4 GB for this model); and the masks are right when a
//! cached prefix is extended by more than one token.

use candle_core::quantized::{gguf_file, QMatMul};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_transformers::quantized_nn::RmsNorm;

/// Architecture numbers read from the GGUF metadata.
#[derive(Clone, Debug)]
pub(crate) struct Gemma3Config {
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub hidden: usize,
    pub n_layer: usize,
    pub rms_eps: f64,
    pub sliding_window: usize,
    pub sliding_window_type: usize,
    pub rope_base: f32,
    pub rope_base_local: f32,
    pub context_length: usize,
}

impl Gemma3Config {
    fn from_gguf(ct: &gguf_file::Content) -> Result<Self> {
        let prefix = ["gemma3", "gemma2", "gemma"]
            .into_iter()
            .find(|p| {
                ct.metadata
                    .contains_key(&format!("{p}.attention.head_count"))
            })
            .unwrap_or("gemma3");
        let get = |key: &str| {
            let key = format!("{prefix}.{key}");
            ct.metadata
                .get(&key)
                .ok_or_else(|| candle_core::Error::Msg(format!("no {key} in the GGUF metadata")))
        };
        let u = |key: &str| -> Result<usize> { Ok(get(key)?.to_u32()? as usize) };
        let f = |key: &str, default: f32| get(key).and_then(|v| v.to_f32()).unwrap_or(default);
        Ok(Gemma3Config {
            n_head: u("attention.head_count")?,
            n_kv_head: u("attention.head_count_kv")?,
            head_dim: u("attention.key_length")?,
            hidden: u("embedding_length")?,
            n_layer: u("block_count")?,
            rms_eps: get("attention.layer_norm_rms_epsilon")?.to_f32()? as f64,
            sliding_window: u("attention.sliding_window")?,
            sliding_window_type: u("attention.sliding_window_type").unwrap_or(6),
            rope_base: f("rope.freq_base", 1_000_000.0),
            rope_base_local: f("rope.local_freq_base", 10_000.0),
            context_length: u("context_length").unwrap_or(32_768),
        })
    }
}

struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    fn new(head_dim: usize, base: f32, positions: usize, device: &Device) -> Result<Self> {
        let inv: Vec<f32> = (0..head_dim)
            .step_by(2)
            .map(|i| 1.0 / base.powf(i as f32 / head_dim as f32))
            .collect();
        let inv = Tensor::new(inv.as_slice(), device)?;
        let t = Tensor::arange(0u32, positions as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((positions, 1))?;
        let freqs = t.matmul(&inv.reshape((1, ()))?)?;
        Ok(Rope {
            cos: freqs.cos()?,
            sin: freqs.sin()?,
        })
    }

    fn apply(&self, x: &Tensor, pos: usize) -> Result<Tensor> {
        let (_, _, seq, _) = x.dims4()?;
        let cos = self.cos.narrow(0, pos, seq)?;
        let sin = self.sin.narrow(0, pos, seq)?;
        candle_nn::rotary_emb::rope(&x.contiguous()?, &cos, &sin)
    }
}

struct Layer {
    wq: QMatMul,
    wk: QMatMul,
    wv: QMatMul,
    wo: QMatMul,
    q_norm: RmsNorm,
    k_norm: RmsNorm,
    attn_norm: RmsNorm,
    post_attn_norm: RmsNorm,
    ffn_norm: RmsNorm,
    post_ffn_norm: RmsNorm,
    gate: QMatMul,
    up: QMatMul,
    down: QMatMul,
    /// `Some(window)` on the local (sliding-window) layers.
    sliding: Option<usize>,
}

/// Keys and values of the positions read so far, per layer.
pub(crate) struct Cache {
    kv: Vec<Option<(Tensor, Tensor)>>,
    pos: usize,
}

pub(crate) struct Gemma3 {
    cfg: Gemma3Config,
    /// Token embeddings (dequantised to f32 for the lookup).
    embed: Tensor,
    layers: Vec<Layer>,
    norm: RmsNorm,
    /// The output projection (tied to the token embeddings).
    output: QMatMul,
    /// The output is the f32 `embed` itself (rows can be picked).
    tied: bool,
    rope_global: Rope,
    rope_local: Rope,
    max_positions: usize,
    device: Device,
}

impl Gemma3 {
    /// Load from GGUF; positions beyond `max_positions` are refused.
    ///
    /// With `dequantize`, the weights are expanded to f32 once at load time
    /// (about 4x the file's size in memory) and every product runs on
    /// candle's f32 GEMM, which picks AVX2/AVX-512 at run time; quantised
    /// products need the CPU features enabled at compile time
    /// (`-C target-cpu=native`) and are several times slower without them.
    pub fn load<R: std::io::Read + std::io::Seek>(
        ct: &gguf_file::Content,
        reader: &mut R,
        max_positions: usize,
        dequantize: bool,
        device: &Device,
    ) -> Result<Self> {
        let cfg = Gemma3Config::from_gguf(ct)?;
        let max_positions = max_positions.min(cfg.context_length).max(1);
        let mut tensor = |name: &str| ct.tensor(reader, name, device);
        let qmm = |t: candle_core::quantized::QTensor| -> Result<QMatMul> {
            if dequantize {
                Ok(QMatMul::Tensor(t.dequantize(device)?))
            } else {
                QMatMul::from_qtensor(t)
            }
        };
        let norm = |t, eps| RmsNorm::from_qtensor(t, eps);
        let token_embd = tensor("token_embd.weight")?;
        let embed = token_embd.dequantize(device)?;
        let (output, tied) = match tensor("output.weight") {
            Ok(t) => (qmm(t)?, false),
            Err(_) if dequantize => (QMatMul::Tensor(embed.clone()), true),
            Err(_) => (qmm(token_embd)?, false),
        };
        let final_norm = norm(tensor("output_norm.weight")?, cfg.rms_eps)?;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let mut t = |name: &str| tensor(&format!("blk.{i}.{name}.weight"));
            let is_sliding = (i + 1) % cfg.sliding_window_type.max(1) > 0;
            layers.push(Layer {
                wq: qmm(t("attn_q")?)?,
                wk: qmm(t("attn_k")?)?,
                wv: qmm(t("attn_v")?)?,
                wo: qmm(t("attn_output")?)?,
                q_norm: norm(t("attn_q_norm")?, cfg.rms_eps)?,
                k_norm: norm(t("attn_k_norm")?, cfg.rms_eps)?,
                attn_norm: norm(t("attn_norm")?, cfg.rms_eps)?,
                post_attn_norm: norm(t("post_attention_norm")?, cfg.rms_eps)?,
                ffn_norm: norm(t("ffn_norm")?, cfg.rms_eps)?,
                post_ffn_norm: norm(t("post_ffw_norm")?, cfg.rms_eps)?,
                gate: qmm(t("ffn_gate")?)?,
                up: qmm(t("ffn_up")?)?,
                down: qmm(t("ffn_down")?)?,
                sliding: is_sliding.then_some(cfg.sliding_window),
            });
        }
        Ok(Gemma3 {
            rope_global: Rope::new(cfg.head_dim, cfg.rope_base, max_positions, device)?,
            rope_local: Rope::new(cfg.head_dim, cfg.rope_base_local, max_positions, device)?,
            cfg,
            embed,
            layers,
            norm: final_norm,
            output,
            tied,
            max_positions,
            device: device.clone(),
        })
    }

    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    pub fn new_cache(&self) -> Cache {
        Cache {
            kv: vec![None; self.layers.len()],
            pos: 0,
        }
    }

    /// Read `tokens` after what `cache` holds; the next-token logits
    /// (whole vocabulary, f32) after the last of them.
    pub fn forward(&self, tokens: &[u32], cache: &mut Cache) -> Result<Vec<f32>> {
        let last = self.forward_hidden(tokens, cache)?;
        self.output.forward(&last)?.flatten_all()?.to_vec1::<f32>()
    }

    /// Like [`Gemma3::forward`], but the logits of `ids` only (a few dot
    /// products instead of the whole 262k-row output projection), when the
    /// output is tied to the f32 embeddings; otherwise `None`.
    pub fn forward_subset(
        &self,
        tokens: &[u32],
        cache: &mut Cache,
        ids: &Tensor,
    ) -> Result<Option<Vec<f32>>> {
        if !self.tied {
            return Ok(None);
        }
        let last = self
            .forward_hidden(tokens, cache)?
            .flatten_all()?
            .unsqueeze(0)?;
        let rows = self.embed.index_select(ids, 0)?;
        Ok(Some(
            last.matmul(&rows.t()?)?.flatten_all()?.to_vec1::<f32>()?,
        ))
    }

    /// The final-normed hidden state after the last of `tokens`, (1, 1, hidden).
    fn forward_hidden(&self, tokens: &[u32], cache: &mut Cache) -> Result<Tensor> {
        let seq = tokens.len();
        if seq == 0 {
            candle_core::bail!("no tokens to read");
        }
        let pos = cache.pos;
        if pos + seq > self.max_positions {
            candle_core::bail!(
                "{} positions exceed the {} this model was loaded for",
                pos + seq,
                self.max_positions
            );
        }
        let ids = Tensor::new(tokens, &self.device)?;
        let mut x = self.embed.index_select(&ids, 0)?.unsqueeze(0)?;
        x = (x * (self.cfg.hidden as f64).sqrt())?;
        for (layer, kv) in self.layers.iter().zip(cache.kv.iter_mut()) {
            let residual = x.clone();
            let h = layer.attn_norm.forward(&x)?;
            let h = self.attention(layer, &h, kv, pos)?;
            let h = layer.post_attn_norm.forward(&h)?;
            let x1 = (h + residual)?;
            let h = layer.ffn_norm.forward(&x1)?;
            let gate = candle_nn::ops::silu(&layer.gate.forward(&h)?)?;
            let h = layer.down.forward(&(gate * layer.up.forward(&h)?)?)?;
            let h = layer.post_ffn_norm.forward(&h)?;
            x = (h + x1)?;
        }
        cache.pos += seq;
        let last = x.narrow(1, seq - 1, 1)?;
        self.norm.forward(&last)
    }

    fn attention(
        &self,
        layer: &Layer,
        x: &Tensor,
        kv: &mut Option<(Tensor, Tensor)>,
        pos: usize,
    ) -> Result<Tensor> {
        let c = &self.cfg;
        let (b, seq, _) = x.dims3()?;
        let q = layer
            .wq
            .forward(x)?
            .reshape((b, seq, c.n_head, c.head_dim))?
            .transpose(1, 2)?;
        let k = layer
            .wk
            .forward(x)?
            .reshape((b, seq, c.n_kv_head, c.head_dim))?
            .transpose(1, 2)?;
        let v = layer
            .wv
            .forward(x)?
            .reshape((b, seq, c.n_kv_head, c.head_dim))?
            .transpose(1, 2)?;
        let q = layer.q_norm.forward(&q.contiguous()?)?;
        let k = layer.k_norm.forward(&k.contiguous()?)?;
        let rope = if layer.sliding.is_some() {
            &self.rope_local
        } else {
            &self.rope_global
        };
        let q = rope.apply(&q, pos)?;
        let k = rope.apply(&k, pos)?;
        let (k, v) = match kv.take() {
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
            None => (k, v.contiguous()?),
        };
        *kv = Some((k.clone(), v.clone()));
        let kv_len = pos + seq;
        let rep = c.n_head / c.n_kv_head;
        let k = candle_transformers::utils::repeat_kv(k, rep)?.contiguous()?;
        let v = candle_transformers::utils::repeat_kv(v, rep)?.contiguous()?;
        let scale = 1.0 / (c.head_dim as f64).sqrt();
        let mut w = (q.matmul(&k.t()?)? * scale)?;
        let needs_mask = seq > 1 || layer.sliding.is_some_and(|win| kv_len > win + 1);
        if needs_mask {
            let mask = mask(seq, pos, layer.sliding, &self.device)?;
            w = w.broadcast_add(&mask)?;
        }
        let w = candle_nn::ops::softmax_last_dim(&w)?;
        let out = w
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, seq, c.n_head * c.head_dim))?;
        layer.wo.forward(&out)
    }
}

/// Additive mask (0 or -inf) of shape (seq, pos + seq): query `i` (at
/// position `pos + i`) reads key `j` when `j <= pos + i` and, on a local
/// layer, `pos + i - j <= window`.
fn mask(seq: usize, pos: usize, window: Option<usize>, device: &Device) -> Result<Tensor> {
    let kv_len = pos + seq;
    let data: Vec<f32> = (0..seq)
        .flat_map(|i| {
            let qp = pos + i;
            (0..kv_len).map(move |j| {
                let visible = j <= qp && window.is_none_or(|w| qp - j <= w);
                if visible {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Tensor::from_vec(data, (seq, kv_len), device)?.reshape((1, 1, seq, kv_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_are_causal_and_windowed() {
        let m = mask(3, 2, Some(2), &Device::Cpu)
            .unwrap()
            .reshape((3, 5))
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let seen: Vec<Vec<bool>> = m
            .iter()
            .map(|r| r.iter().map(|v| *v == 0.0).collect())
            .collect();
        // Query 0 sits at position 2: keys 0..=2 (window 2 reaches back to 0).
        assert_eq!(seen[0], [true, true, true, false, false]);
        // Query 2 sits at position 4: keys 2..=4.
        assert_eq!(seen[2], [false, false, true, true, true]);
    }
}
