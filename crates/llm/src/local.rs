//! The in-process back end: a quantised Gemma 3 GGUF file run by candle.

use crate::gemma3::Gemma3;
use crate::model::{check_deadline, LanguageModel};
use crate::tokenizer::SpmTokenizer;
use crate::{Error, Result};
use candle_core::quantized::gguf_file;
use candle_core::Device;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Options for loading a [`GgufModel`].
#[derive(Clone, Debug)]
pub struct GgufModelBuilder {
    path: PathBuf,
    max_positions: usize,
    threads: usize,
    dequantize: bool,
}

impl GgufModelBuilder {
    /// Expand the weights to f32 at load time (default: yes). About 1 GB in
    /// memory for Gemma 3 270M instead of 0.25 GB, and several times faster
    /// on a CPU unless the build enables AVX2 at compile time.
    pub fn dequantize(mut self, yes: bool) -> Self {
        self.dequantize = yes;
        self
    }

    /// Longest prompt plus completion, in tokens (default 4096).
    pub fn max_positions(mut self, n: usize) -> Self {
        self.max_positions = n;
        self
    }

    /// Prompts scored side by side (default: the number of cores). Each
    /// runs candle's kernels on its own thread.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self
    }

    pub fn load(self) -> Result<GgufModel> {
        GgufModel::load_with(self)
    }
}

/// A Gemma 3 GGUF model in process, with the tokenizer its metadata holds.
pub struct GgufModel {
    path: PathBuf,
    model: Gemma3,
    tokenizer: SpmTokenizer,
    /// `<end_of_turn>`, when the vocabulary has it: a completion stops there too.
    end_of_turn: Option<u32>,
    threads: usize,
}

impl GgufModel {
    pub fn builder(path: impl Into<PathBuf>) -> GgufModelBuilder {
        GgufModelBuilder {
            path: path.into(),
            max_positions: 4096,
            dequantize: true,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        }
    }

    fn load_with(b: GgufModelBuilder) -> Result<GgufModel> {
        let path = b.path;
        let gguf_err = |message: String| Error::Gguf {
            path: path.clone(),
            message,
        };
        let mut file = std::fs::File::open(&path).map_err(|e| {
            gguf_err(if e.kind() == std::io::ErrorKind::NotFound {
                "no such file (`just fetch-llm` puts Gemma 3 270M in data/models/gemma-3-270m/)"
                    .into()
            } else {
                e.to_string()
            })
        })?;
        let content = gguf_file::Content::read(&mut file)
            .map_err(|e| gguf_err(format!("not a readable GGUF file ({e})")))?;
        let tokenizer = tokenizer_from_gguf(&content).map_err(|message| Error::Tokenizer {
            path: path.clone(),
            message,
        })?;
        let started = Instant::now();
        let model = Gemma3::load(
            &content,
            &mut file,
            b.max_positions,
            b.dequantize,
            &Device::Cpu,
        )
        .map_err(|e| gguf_err(format!("not a Gemma 3 model this build can run ({e})")))?;
        tracing::info!(
            path = %path.display(),
            ms = started.elapsed().as_millis() as u64,
            "loaded GGUF model"
        );
        let end_of_turn = tokenizer.piece_id("<end_of_turn>");
        Ok(GgufModel {
            path,
            model,
            tokenizer,
            end_of_turn,
            threads: b.threads,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn tokenizer(&self) -> &SpmTokenizer {
        &self.tokenizer
    }

    /// `<bos>` and the prompt's tokens, checked against the context.
    pub fn prompt_tokens(&self, prompt: &str, room: usize) -> Result<Vec<u32>> {
        let mut tokens: Vec<u32> = self.tokenizer.bos_id().into_iter().collect();
        tokens.extend(self.tokenizer.encode(prompt));
        let limit = self.model.max_positions().saturating_sub(room);
        if tokens.len() > limit {
            return Err(Error::PromptTooLong {
                tokens: tokens.len(),
                limit,
            });
        }
        Ok(tokens)
    }

    /// Next-token logits (whole vocabulary) after `prompt`.
    pub fn next_token_logits(&self, prompt: &str) -> Result<Vec<f32>> {
        let tokens = self.prompt_tokens(prompt, 0)?;
        let mut cache = self.model.new_cache();
        Ok(self.model.forward(&tokens, &mut cache)?)
    }

    /// Greedy continuation with each step's chosen token, its log-probability
    /// and the `top` most likely alternatives (for an OpenAI `logprobs` answer).
    pub fn generate(
        &self,
        prompt: &str,
        max_tokens: usize,
        top: usize,
        deadline: Option<Instant>,
    ) -> Result<Generation> {
        let tokens = self.prompt_tokens(prompt, max_tokens)?;
        let mut cache = self.model.new_cache();
        let mut logits = self.model.forward(&tokens, &mut cache)?;
        let mut steps = Vec::new();
        let mut finished = false;
        for _ in 0..max_tokens {
            let logprobs = log_softmax(&logits);
            let next = argmax(&logprobs);
            if Some(next) == self.tokenizer.eos_id() || Some(next) == self.end_of_turn {
                finished = true;
                break;
            }
            steps.push(Step {
                token: next,
                logprob: logprobs[next as usize],
                top: top_k(&logprobs, top),
            });
            if steps.len() == max_tokens {
                break;
            }
            check_deadline(deadline)?;
            logits = self.model.forward(&[next], &mut cache)?;
        }
        let ids: Vec<u32> = steps.iter().map(|s| s.token).collect();
        Ok(Generation {
            text: self.tokenizer.decode(&ids),
            prompt_tokens: tokens.len(),
            steps,
            finished,
        })
    }

    /// Greedy continuation restricted to the tokens made of `alphabet`
    /// (and the end of text / turn); `None` when the model's output is not
    /// tied to its embeddings (then use [`GgufModel::generate`]).
    pub fn generate_within(
        &self,
        prompt: &str,
        max_tokens: usize,
        alphabet: &str,
        deadline: Option<Instant>,
    ) -> Result<Option<String>> {
        let mut allowed = self.tokenizer.ids_within(alphabet);
        let stops: Vec<u32> = self
            .tokenizer
            .eos_id()
            .into_iter()
            .chain(self.end_of_turn)
            .collect();
        allowed.extend(&stops);
        let ids = candle_core::Tensor::new(allowed.as_slice(), &Device::Cpu)?;
        let tokens = self.prompt_tokens(prompt, max_tokens)?;
        let mut cache = self.model.new_cache();
        let mut out = Vec::new();
        let mut input = tokens;
        for _ in 0..max_tokens {
            check_deadline(deadline)?;
            let Some(logits) = self.model.forward_subset(&input, &mut cache, &ids)? else {
                return Ok(None);
            };
            let next = allowed[argmax(&logits) as usize];
            if stops.contains(&next) {
                break;
            }
            out.push(next);
            input = vec![next];
        }
        Ok(Some(self.tokenizer.decode(&out)))
    }

    fn choice_ids(&self, choices: &[&str]) -> Vec<Option<u32>> {
        choices
            .iter()
            .map(|c| self.tokenizer.encode(c).first().copied())
            .collect()
    }
}

/// One generated token.
#[derive(Clone, Debug)]
pub struct Step {
    pub token: u32,
    pub logprob: f32,
    /// The most likely tokens at this step, best first, with log-probabilities.
    pub top: Vec<(u32, f32)>,
}

/// What [`GgufModel::generate`] produced.
#[derive(Clone, Debug)]
pub struct Generation {
    pub text: String,
    pub prompt_tokens: usize,
    pub steps: Vec<Step>,
    /// Ended by the model (end of turn or text), not by `max_tokens`.
    pub finished: bool,
}

impl LanguageModel for GgufModel {
    fn describe(&self) -> String {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("{name} (in process)")
    }

    fn next_token_logprobs(
        &self,
        prompts: &[String],
        choices: &[&str],
        deadline: Option<Instant>,
    ) -> Result<Vec<Vec<Option<f32>>>> {
        let ids = self.choice_ids(choices);
        let one = |prompt: &String| -> Result<Vec<Option<f32>>> {
            check_deadline(deadline)?;
            let logprobs = log_softmax(&self.next_token_logits(prompt)?);
            Ok(ids
                .iter()
                .map(|id| id.map(|i| logprobs[i as usize]))
                .collect())
        };
        let workers = self.threads.min(prompts.len()).max(1);
        if workers == 1 {
            return prompts.iter().map(one).collect();
        }
        // Prompts i, i + workers, … on worker i; results back in input order.
        let mut results: Vec<Option<Result<Vec<Option<f32>>>>> =
            (0..prompts.len()).map(|_| None).collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let one = &one;
                    scope.spawn(move || {
                        (w..prompts.len())
                            .step_by(workers)
                            .map(|i| (i, one(&prompts[i])))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                for (i, r) in h.join().expect("a scoring thread panicked") {
                    results[i] = Some(r);
                }
            }
        });
        results
            .into_iter()
            .map(|r| r.expect("every prompt was scored"))
            .collect()
    }

    fn complete(
        &self,
        prompt: &str,
        max_tokens: usize,
        deadline: Option<Instant>,
    ) -> Result<String> {
        check_deadline(deadline)?;
        Ok(self.generate(prompt, max_tokens, 0, deadline)?.text)
    }

    fn complete_in(
        &self,
        prompt: &str,
        max_tokens: usize,
        alphabet: &str,
        deadline: Option<Instant>,
    ) -> Result<String> {
        match self.generate_within(prompt, max_tokens, alphabet, deadline)? {
            Some(text) => Ok(text),
            None => self.complete(prompt, max_tokens, deadline),
        }
    }
}

fn tokenizer_from_gguf(ct: &gguf_file::Content) -> std::result::Result<SpmTokenizer, String> {
    let md = &ct.metadata;
    let get = |k: &str| md.get(k);
    let model = get("tokenizer.ggml.model")
        .and_then(|v| v.to_string().ok())
        .map(|s| s.as_str())
        .unwrap_or("");
    if model != "llama" {
        return Err(format!(
            "tokenizer.ggml.model is {model:?}; only SentencePiece (\"llama\") vocabularies are supported"
        ));
    }
    let pieces: Vec<String> = get("tokenizer.ggml.tokens")
        .ok_or("no tokenizer.ggml.tokens")?
        .to_vec()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|v| v.to_string().cloned().map_err(|e| e.to_string()))
        .collect::<std::result::Result<_, _>>()?;
    let scores: Vec<f32> = match get("tokenizer.ggml.scores") {
        Some(v) => v
            .to_vec()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|s| s.to_f32().map_err(|e| e.to_string()))
            .collect::<std::result::Result<_, _>>()?,
        None => Vec::new(),
    };
    let types: Vec<i32> = match get("tokenizer.ggml.token_type") {
        Some(v) => v
            .to_vec()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|s| s.to_i32().map_err(|e| e.to_string()))
            .collect::<std::result::Result<_, _>>()?,
        None => Vec::new(),
    };
    let id = |k: &str| get(k).and_then(|v| v.to_u32().ok());
    let add_space_prefix = get("tokenizer.ggml.add_space_prefix")
        .and_then(|v| v.to_bool().ok())
        .unwrap_or(false);
    SpmTokenizer::new(
        pieces,
        scores,
        types,
        add_space_prefix,
        id("tokenizer.ggml.bos_token_id"),
        id("tokenizer.ggml.eos_token_id"),
        id("tokenizer.ggml.unknown_token_id"),
    )
}

/// Natural-log softmax, computed stably.
pub(crate) fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|l| (l - max).exp()).sum();
    let log_z = max + sum.ln();
    logits.iter().map(|l| l - log_z).collect()
}

/// Index of the largest value; the lowest index among ties (deterministic).
fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}

fn top_k(values: &[f32], k: usize) -> Vec<(u32, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let mut idx: Vec<u32> = (0..values.len() as u32).collect();
    let k = k.min(idx.len());
    idx.select_nth_unstable_by(k - 1, |a, b| {
        values[*b as usize]
            .total_cmp(&values[*a as usize])
            .then(a.cmp(b))
    });
    idx.truncate(k);
    idx.sort_by(|a, b| {
        values[*b as usize]
            .total_cmp(&values[*a as usize])
            .then(a.cmp(b))
    });
    idx.into_iter().map(|i| (i, values[i as usize])).collect()
}
