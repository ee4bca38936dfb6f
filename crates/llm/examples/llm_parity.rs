//! Check the adapted Gemma 3 against candle-transformers' quantized_gemma3 on
//! the same GGUF and tokens: `llm_parity MODEL.gguf "prompt"`.
use candle_core::{quantized::gguf_file, Device, Tensor};
use sift_llm::GgufModel;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: llm_parity MODEL.gguf PROMPT")?;
    let prompt = args
        .next()
        .unwrap_or_else(|| "The capital of France is".into());
    let ours = GgufModel::builder(&path)
        .dequantize(std::env::var_os("DEQUANTIZE").is_some())
        .load()?;
    let tokens = ours.prompt_tokens(&prompt, 0)?;
    let a = ours.next_token_logits(&prompt)?;
    let mut file = std::fs::File::open(&path)?;
    let ct = gguf_file::Content::read(&mut file)?;
    let mut theirs = candle_transformers::models::quantized_gemma3::ModelWeights::from_gguf(
        ct,
        &mut file,
        &Device::Cpu,
    )?;
    let input = Tensor::new(tokens.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
    let b = theirs.forward(&input, 0)?.flatten_all()?.to_vec1::<f32>()?;
    let max = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    let am = |v: &[f32]| {
        v.iter()
            .enumerate()
            .max_by(|x, y| x.1.total_cmp(y.1))
            .unwrap()
            .0
    };
    println!("max |diff| {max}; argmax ours {} theirs {}", am(&a), am(&b));
    Ok(())
}
