//! A BERT cross-encoder built from differentiable candle operations, so it
//! can be trained.
//!
//! It computes what `sift_bert::CrossEncoder` (and Hugging Face's
//! `BertForSequenceClassification`) compute, but from operations that all
//! have a backward pass: candle's fused layer norm and last-dimension
//! softmax, which inference uses, have none. It is split where training
//! needs it: [`CrossEncoderNet::embed`] and [`CrossEncoderNet::layer`] run
//! one stage at a time, so the frozen lower layers run once per pair and
//! their output is cached, and only the top layers run each step.

use crate::{Error, Result};
use candle_core::{DType, Device, Module, Tensor, Var, D};
use candle_nn::{Embedding, Init, Linear, VarBuilder, VarMap};
use rand::SeedableRng;
use rand_distr::Distribution;
use sift_bert::ModelFiles;
use std::collections::HashMap;
use std::path::Path;

/// The BERT hyper-parameters training needs, read from `config.json`.
#[derive(Clone, Debug, serde::Deserialize)]
pub(crate) struct BertShape {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub initializer_range: Option<f64>,
}

fn default_eps() -> f64 {
    1e-12
}

/// Masked keys get this added to their attention score: far below any real
/// score, still finite so the softmax never sees `-inf - -inf`.
const MASKED: f64 = -1e9;

struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    fn load(vb: VarBuilder, size: usize, eps: f64) -> candle_core::Result<Self> {
        Ok(LayerNorm {
            weight: vb.get_with_hints(size, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(size, "bias", Init::Const(0.0))?,
            eps: eps as f32,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm_slow(x, &self.weight, &self.bias, self.eps)
    }
}

fn linear(vb: VarBuilder, inputs: usize, outputs: usize) -> candle_core::Result<Linear> {
    let weight = vb.get_with_hints((outputs, inputs), "weight", Init::Const(0.0))?;
    let bias = vb.get_with_hints(outputs, "bias", Init::Const(0.0))?;
    Ok(Linear::new(weight, Some(bias)))
}

/// Softmax over the last dimension with the maximum detached: the result
/// is the same, and the backward pass skips the (zero) gradient of the max.
fn softmax_last(x: &Tensor) -> candle_core::Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let exp = x.broadcast_sub(&max)?.exp()?;
    exp.broadcast_div(&exp.sum_keepdim(D::Minus1)?)
}

#[cfg_attr(not(test), allow(dead_code))]
struct Embeddings {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    norm: LayerNorm,
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
    heads: usize,
}

impl Layer {
    fn load(vb: VarBuilder, s: &BertShape) -> candle_core::Result<Self> {
        let h = s.hidden_size;
        let attention = vb.pp("attention");
        Ok(Layer {
            query: linear(attention.pp("self").pp("query"), h, h)?,
            key: linear(attention.pp("self").pp("key"), h, h)?,
            value: linear(attention.pp("self").pp("value"), h, h)?,
            attention_out: linear(attention.pp("output").pp("dense"), h, h)?,
            attention_norm: LayerNorm::load(
                attention.pp("output").pp("LayerNorm"),
                h,
                s.layer_norm_eps,
            )?,
            intermediate: linear(vb.pp("intermediate").pp("dense"), h, s.intermediate_size)?,
            output: linear(vb.pp("output").pp("dense"), s.intermediate_size, h)?,
            output_norm: LayerNorm::load(vb.pp("output").pp("LayerNorm"), h, s.layer_norm_eps)?,
            heads: s.num_attention_heads,
        })
    }

    /// `x`: `[batch, len, hidden]`; `bias`: `[batch, 1, 1, len]`, 0 for real
    /// tokens and [`MASKED`] for padding.
    fn forward(&self, x: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
        let (b, l, h) = x.dims3()?;
        let head_dim = h / self.heads;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, l, self.heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(self.query.forward(x)?)?;
        let k = split(self.key.forward(x)?)?;
        let v = split(self.value.forward(x)?)?;
        let scores = (q.matmul(&k.t()?.contiguous()?)? / (head_dim as f64).sqrt())?;
        let probs = softmax_last(&scores.broadcast_add(bias)?)?;
        let context = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, l, h))?;
        let attended = self
            .attention_norm
            .forward(&(self.attention_out.forward(&context)? + x)?)?;
        let inner = self.intermediate.forward(&attended)?.gelu_erf()?;
        self.output_norm
            .forward(&(self.output.forward(&inner)? + attended)?)
    }
}

/// BERT body + pooler + one-label classifier, every weight a [`Var`] in one
/// [`VarMap`] named as in `BertForSequenceClassification` without its
/// `bert.` prefix.
pub(crate) struct CrossEncoderNet {
    /// Frozen: training reads the embeddings from sift-bert's kernels
    /// ([`sift_bert::BertBody`]); kept for the tests that check the two agree.
    #[cfg_attr(not(test), allow(dead_code))]
    embeddings: Embeddings,
    layers: Vec<Layer>,
    pooler: Linear,
    classifier: Linear,
    varmap: VarMap,
    pub shape: BertShape,
    /// The checkpoint's `config.json`, written back out on save.
    config_json: serde_json::Value,
}

impl CrossEncoderNet {
    /// Load a BERT checkpoint (bare, as sentence-transformers saves it, or
    /// under `bert.`). Its classifier head is used when it has one;
    /// otherwise a fresh head is drawn from `seed` (normal, std
    /// `initializer_range`, zero bias, as Hugging Face initialises it).
    pub fn load(files: &ModelFiles, seed: u64) -> Result<CrossEncoderNet> {
        let config_path = &files.config;
        let config_text = std::fs::read_to_string(config_path)
            .map_err(|e| Error::model(config_path, e.to_string()))?;
        let config_json: serde_json::Value = serde_json::from_str(&config_text)
            .map_err(|e| Error::model(config_path, e.to_string()))?;
        let shape: BertShape = serde_json::from_value(config_json.clone())
            .map_err(|e| Error::model(config_path, e.to_string()))?;
        let weights_path = &files.weights;
        let stored = candle_core::safetensors::load(weights_path, &Device::Cpu)
            .map_err(|e| Error::model(weights_path, e.to_string()))?;
        let stored: HashMap<String, Tensor> = stored
            .into_iter()
            .map(|(name, t)| {
                let name = name.strip_prefix("bert.").unwrap_or(&name).to_owned();
                (name, t)
            })
            .collect();

        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let net = Self::build(vb, &shape).map_err(|e| Error::model(weights_path, e.to_string()))?;

        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let normal =
            rand_distr::Normal::new(0.0f32, shape.initializer_range.unwrap_or(0.02) as f32)
                .expect("a positive standard deviation");
        let vars = varmap.data().lock().expect("not poisoned");
        let mut names: Vec<&String> = vars.keys().collect();
        // Sorted, so the fresh head is drawn in the same order every run.
        names.sort();
        for name in names {
            let var = &vars[name];
            let value = match stored.get(name.as_str()) {
                Some(t) => t.to_dtype(DType::F32)?,
                None if name.starts_with("classifier.") => {
                    let n = var.elem_count();
                    let values: Vec<f32> = if name.ends_with("weight") {
                        (0..n).map(|_| normal.sample(&mut rng)).collect()
                    } else {
                        vec![0.0; n]
                    };
                    Tensor::from_vec(values, var.shape(), &Device::Cpu)?
                }
                None => {
                    return Err(Error::model(
                        weights_path,
                        format!("no weight `{name}` (is this a BERT checkpoint?)"),
                    ))
                }
            };
            if value.shape() != var.shape() {
                return Err(Error::model(
                    weights_path,
                    format!(
                        "`{name}` has shape {:?}, the config implies {:?}",
                        value.dims(),
                        var.dims()
                    ),
                ));
            }
            var.set(&value)?;
        }
        drop(vars);
        Ok(CrossEncoderNet {
            varmap,
            config_json,
            ..net
        })
    }

    fn build(vb: VarBuilder, s: &BertShape) -> candle_core::Result<CrossEncoderNet> {
        let h = s.hidden_size;
        let emb = vb.pp("embeddings");
        let table = |name: &str, rows: usize| -> candle_core::Result<Embedding> {
            Ok(Embedding::new(
                emb.pp(name)
                    .get_with_hints((rows, h), "weight", Init::Const(0.0))?,
                h,
            ))
        };
        let embeddings = Embeddings {
            word: table("word_embeddings", s.vocab_size)?,
            position: table("position_embeddings", s.max_position_embeddings)?,
            token_type: table("token_type_embeddings", s.type_vocab_size)?,
            norm: LayerNorm::load(emb.pp("LayerNorm"), h, s.layer_norm_eps)?,
        };
        let layers = (0..s.num_hidden_layers)
            .map(|i| Layer::load(vb.pp("encoder").pp("layer").pp(i), s))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(CrossEncoderNet {
            embeddings,
            layers,
            pooler: linear(vb.pp("pooler").pp("dense"), h, h)?,
            classifier: linear(vb.pp("classifier"), h, 1)?,
            varmap: VarMap::new(),
            shape: s.clone(),
            config_json: serde_json::Value::Null,
        })
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Token, position and segment embeddings, normalised:
    /// `[batch, len]` ids → `[batch, len, hidden]`.
    #[cfg(test)]
    pub fn embed(&self, ids: &Tensor, type_ids: &Tensor) -> Result<Tensor> {
        let len = ids.dim(1)?;
        let positions = Tensor::arange(0u32, len as u32, ids.device())?.unsqueeze(0)?;
        let e = &self.embeddings;
        let x = e
            .word
            .forward(ids)?
            .add(&e.token_type.forward(type_ids)?)?
            .broadcast_add(&e.position.forward(&positions)?)?;
        Ok(e.norm.forward(&x)?)
    }

    /// Layer `index` over hidden states `[batch, len, hidden]`; `mask` is
    /// `[batch, len]`, 1 for tokens and 0 for padding. (Training runs the
    /// frozen layers on sift-bert's kernels; tests check they agree.)
    #[cfg(test)]
    pub fn layer(&self, index: usize, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        Ok(self.layers[index].forward(x, &attention_bias(mask)?)?)
    }

    /// Layers `from..` then the head: one logit per row.
    pub fn score_from(&self, from: usize, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let bias = attention_bias(mask)?;
        let mut x = x.clone();
        for layer in &self.layers[from..] {
            x = layer.forward(&x, &bias)?;
        }
        let cls = x.narrow(1, 0, 1)?.squeeze(1)?;
        let pooled = self.pooler.forward(&cls)?.tanh()?;
        Ok(self.classifier.forward(&pooled)?.squeeze(D::Minus1)?)
    }

    /// The variables of the top `layers` layers, the pooler and the
    /// classifier: (body, head). The rest is frozen.
    pub fn trainable_vars(&self, layers: usize) -> (Vec<Var>, Vec<Var>) {
        let first = self.layers.len() - layers.min(self.layers.len());
        let vars = self.varmap.data().lock().expect("not poisoned");
        let mut named: Vec<(&String, &Var)> = vars.iter().collect();
        named.sort_by(|a, b| a.0.cmp(b.0));
        let mut body = Vec::new();
        let mut head = Vec::new();
        for (name, var) in named {
            if name.starts_with("classifier.") {
                head.push(var.clone());
            } else if name.starts_with("pooler.") || layer_index(name).is_some_and(|i| i >= first) {
                body.push(var.clone());
            }
        }
        (body, head)
    }

    /// One weight by name (without `bert.`), e.g. to check what training moved.
    #[cfg(test)]
    pub fn weight(&self, name: &str) -> Option<Tensor> {
        let vars = self.varmap.data().lock().expect("not poisoned");
        vars.get(name).map(|v| v.as_tensor().clone())
    }

    /// Write `config.json` and `model.safetensors` (in `dtype`) in the
    /// Hugging Face `BertForSequenceClassification` layout: body under
    /// `bert.`, head under `classifier.`, one label.
    pub fn save(&self, dir: &Path, dtype: DType, extra_config: serde_json::Value) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let vars = self.varmap.data().lock().expect("not poisoned");
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        for (name, var) in vars.iter() {
            let key = if name.starts_with("classifier.") {
                name.clone()
            } else {
                format!("bert.{name}")
            };
            tensors.insert(key, var.as_tensor().to_dtype(dtype)?);
        }
        let weights = dir.join("model.safetensors");
        candle_core::safetensors::save(&tensors, &weights)
            .map_err(|e| Error::model(&weights, e.to_string()))?;

        let mut config = self.config_json.clone();
        if let Some(map) = config.as_object_mut() {
            map.insert(
                "architectures".into(),
                serde_json::json!(["BertForSequenceClassification"]),
            );
            map.insert("id2label".into(), serde_json::json!({"0": "LABEL_0"}));
            map.insert("label2id".into(), serde_json::json!({"LABEL_0": 0}));
            map.insert(
                "torch_dtype".into(),
                serde_json::json!(if dtype == DType::F16 {
                    "float16"
                } else {
                    "float32"
                }),
            );
            map.remove("_name_or_path");
            if let Some(extra) = extra_config.as_object() {
                for (k, v) in extra {
                    map.insert(k.clone(), v.clone());
                }
            }
        }
        let config_path = dir.join("config.json");
        let text = serde_json::to_string_pretty(&config).expect("JSON values serialise");
        std::fs::write(&config_path, text + "\n").map_err(|e| Error::io(&config_path, e))
    }
}

/// `encoder.layer.N.…` → `N`.
fn layer_index(name: &str) -> Option<usize> {
    name.strip_prefix("encoder.layer.")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// `[batch, len]` mask → `[batch, 1, 1, len]` additive attention bias.
fn attention_bias(mask: &Tensor) -> Result<Tensor> {
    let (b, l) = mask.dims2()?;
    Ok(((1.0 - mask)? * MASKED)?.reshape((b, 1, 1, l))?)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pairs::{pad_pairs, PairTokenizer};
    use std::path::PathBuf;

    pub(crate) fn minilm_dir() -> PathBuf {
        std::env::var_os("SIFT_BI_ENCODER_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/models/all-MiniLM-L6-v2")
            })
    }

    const PAIRS: [(&str, &str); 4] = [
        (
            "how do I close my account",
            "Closing your account deletes your notes after 30 days.",
        ),
        (
            "how do I close my account",
            "Export your notes as Markdown from the settings page.",
        ),
        (
            "vitamin D and bone density",
            "Vitamin D supplements did not change bone mineral density in adults.",
        ),
        ("vitamin D and bone density", "A short one."),
    ];

    /// The trainable network computes what the engine's inference
    /// cross-encoder computes from the checkpoint it writes: training and
    /// serving are one model.
    #[test]
    fn saved_checkpoint_scores_the_same_in_the_inference_cross_encoder() {
        let files = ModelFiles::from_dir(&minilm_dir()).expect("run `just fetch-models`");
        let net = CrossEncoderNet::load(&files, 3).unwrap();
        let tokenizer = PairTokenizer::load(&files.tokenizer, 512).unwrap();
        let encoded: Vec<_> = PAIRS
            .iter()
            .map(|(q, p)| tokenizer.encode(q, p).unwrap())
            .collect();
        let (ids, type_ids, mask) = pad_pairs(&encoded.iter().collect::<Vec<_>>()).unwrap();
        let x = net.embed(&ids, &type_ids).unwrap();
        let ours = net
            .score_from(0, &x, &mask)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();

        let dir = tempfile::tempdir().unwrap();
        net.save(dir.path(), DType::F32, serde_json::json!({}))
            .unwrap();
        std::fs::copy(&files.tokenizer, dir.path().join("tokenizer.json")).unwrap();
        let saved = ModelFiles::from_dir(dir.path()).unwrap();
        let inference = sift_bert::CrossEncoder::load(&saved, 512, 8).unwrap();
        let passages: Vec<&str> = PAIRS.iter().map(|p| p.1).collect();
        let mut theirs = Vec::new();
        for chunk in PAIRS.chunks(2) {
            let passages: Vec<&str> = chunk.iter().map(|p| p.1).collect();
            theirs.extend(inference.score(chunk[0].0, &passages).unwrap());
        }
        assert_eq!(passages.len(), theirs.len());
        for (a, b) in ours.iter().zip(&theirs) {
            assert!(
                (a - b).abs() < 1e-4,
                "training net {ours:?} vs inference {theirs:?}"
            );
        }
        // A fresh head from another seed scores differently: the seed is used.
        let other = CrossEncoderNet::load(&files, 4).unwrap();
        let x = other.embed(&ids, &type_ids).unwrap();
        let other = other
            .score_from(0, &x, &mask)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(other.iter().zip(&ours).any(|(a, b)| (a - b).abs() > 1e-3));
    }

    #[test]
    fn half_precision_checkpoint_is_smaller_and_ranks_the_same() {
        let files = ModelFiles::from_dir(&minilm_dir()).expect("run `just fetch-models`");
        let net = CrossEncoderNet::load(&files, 3).unwrap();
        let full = tempfile::tempdir().unwrap();
        let half = tempfile::tempdir().unwrap();
        net.save(full.path(), DType::F32, serde_json::json!({}))
            .unwrap();
        let trained_with = sift_bert::TrainedWith {
            seed: 3,
            max_length: 64,
            stage1_weight: Some(0.3),
            data_terms: Some("a test's own pairs".into()),
        };
        net.save(
            half.path(),
            DType::F16,
            serde_json::json!({ "sift_trained": trained_with }),
        )
        .unwrap();
        let size = |d: &Path| {
            std::fs::metadata(d.join("model.safetensors"))
                .unwrap()
                .len()
        };
        assert!(size(half.path()) * 2 <= size(full.path()) + 64 * 1024);
        assert!(size(half.path()) < 50 * 1024 * 1024);
        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(half.path().join("config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(config["architectures"][0], "BertForSequenceClassification");
        assert_eq!(config["sift_trained"]["seed"], 3);
        assert_eq!(config["sift_trained"]["data_terms"], "a test's own pairs");
        let reloaded = CrossEncoderNet::load(
            &ModelFiles {
                origin: "half".into(),
                config: half.path().join("config.json"),
                tokenizer: files.tokenizer.clone(),
                weights: half.path().join("model.safetensors"),
            },
            99,
        )
        .unwrap();
        let tokenizer = PairTokenizer::load(&files.tokenizer, 128).unwrap();
        let encoded: Vec<_> = PAIRS
            .iter()
            .map(|(q, p)| tokenizer.encode(q, p).unwrap())
            .collect();
        let (ids, type_ids, mask) = pad_pairs(&encoded.iter().collect::<Vec<_>>()).unwrap();
        let score = |n: &CrossEncoderNet| {
            let x = n.embed(&ids, &type_ids).unwrap();
            n.score_from(0, &x, &mask)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        // The head came from the file (seed 99 would draw another one).
        for (a, b) in score(&net).iter().zip(score(&reloaded)) {
            assert!((a - b).abs() < 2e-2, "{a} vs {b}");
        }
        // The engine's loader reads the record and never reads pairs longer
        // than the checkpoint was trained on.
        let half_files = ModelFiles {
            origin: "half".into(),
            config: half.path().join("config.json"),
            tokenizer: files.tokenizer.clone(),
            weights: half.path().join("model.safetensors"),
        };
        let engine_model = sift_bert::CrossEncoder::load(&half_files, 512, 8).unwrap();
        assert_eq!(engine_model.trained_with(), Some(&trained_with));
        assert_eq!(engine_model.max_length(), 64);
        let long = "word ".repeat(400);
        assert_eq!(engine_model.pair_length("query", &long).unwrap(), 64);
        let full_files = ModelFiles {
            config: full.path().join("config.json"),
            weights: full.path().join("model.safetensors"),
            ..half_files
        };
        let untagged = sift_bert::CrossEncoder::load(&full_files, 512, 8).unwrap();
        assert_eq!(untagged.trained_with(), None);
        assert_eq!(untagged.max_length(), 512);
    }

    #[test]
    fn layer_index_parses_encoder_names_only() {
        assert_eq!(
            layer_index("encoder.layer.4.attention.self.query.weight"),
            Some(4)
        );
        assert_eq!(layer_index("encoder.layer.11.output.dense.bias"), Some(11));
        assert_eq!(layer_index("pooler.dense.weight"), None);
        assert_eq!(layer_index("embeddings.word_embeddings.weight"), None);
    }

    #[test]
    fn softmax_matches_candle_and_sums_to_one() {
        let x = Tensor::new(&[[1.0f32, 2.0, 3.0], [-1e9, 0.5, 0.5]], &Device::Cpu).unwrap();
        let ours = softmax_last(&x).unwrap().to_vec2::<f32>().unwrap();
        let theirs = candle_nn::ops::softmax_last_dim(&x)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        for (a, b) in ours.iter().flatten().zip(theirs.iter().flatten()) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        assert!((ours[1][1] - 0.5).abs() < 1e-6 && ours[1][0] == 0.0);
    }
}
