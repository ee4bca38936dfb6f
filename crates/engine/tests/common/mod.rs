//! Helpers shared by the engine's test binaries (each `tests/*.rs` file
//! includes this module; not every binary uses every helper).
#![allow(dead_code)]

use sift_core::{Config, ModelSource};
use std::path::PathBuf;

/// The bi-encoder fetched by `just fetch-models`.
pub fn model_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/models/all-MiniLM-L6-v2");
    assert!(
        dir.join("model.safetensors").is_file(),
        "no bi-encoder in {}: run `just fetch-models`",
        dir.display()
    );
    dir
}

/// The real bi-encoder and a cross-encoder that cannot load (these tests
/// never rerank).
pub fn config() -> Config {
    let mut config = Config::default();
    config.models.bi_encoder = ModelSource::local(model_dir());
    config.models.cross_encoder = ModelSource::local("/nonexistent");
    config
}
