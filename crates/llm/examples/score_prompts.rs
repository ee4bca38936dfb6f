//! P(yes) of each prompt in a JSON array: `score_prompts MODEL.gguf PROMPTS.json`
//! (for trying reranker prompt wordings).
use sift_llm::{GgufModel, LanguageModel};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = GgufModel::builder(&args[0]).load()?;
    let prompts: Vec<String> = serde_json::from_str(&std::fs::read_to_string(&args[1])?)?;
    let lps = model.next_token_logprobs(&prompts, &[" yes", " Yes", " no", " No"], None)?;
    for lp in lps {
        let v: Vec<f32> = lp.iter().map(|x| x.unwrap_or(f32::NEG_INFINITY)).collect();
        let yes = (v[0].exp() + v[1].exp()).ln();
        let no = (v[2].exp() + v[3].exp()).ln();
        println!("{:.4}", 1.0 / (1.0 + (no - yes).exp()));
    }
    Ok(())
}
