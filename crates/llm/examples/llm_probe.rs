//! Load a GGUF model, show how a prompt tokenizes, time a forward pass and
//! a greedy completion: `cargo run --release -p sift-llm --example llm_probe -- MODEL.gguf "prompt"`.
use sift_llm::{GgufModel, LanguageModel};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: llm_probe MODEL.gguf PROMPT")?;
    let prompt = args
        .next()
        .unwrap_or_else(|| "The capital of France is".into());
    let t = Instant::now();
    let model = GgufModel::builder(&path).load()?;
    println!("loaded in {:.2}s", t.elapsed().as_secs_f64());
    let ids = model.tokenizer().encode(&prompt);
    println!("{} tokens: {:?}", ids.len(), &ids[..ids.len().min(40)]);
    let t = Instant::now();
    let g = model.generate(&prompt, 16, 5, None)?;
    println!(
        "generate: {:?} ({} prompt tokens, {:.2}s)",
        g.text,
        g.prompt_tokens,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let lp = model.next_token_logprobs(
        std::slice::from_ref(&prompt),
        &[" Paris", " yes", " no"],
        None,
    )?;
    println!("logprobs {lp:?} in {:.2}s", t.elapsed().as_secs_f64());
    Ok(())
}
