//! End-to-end tests of the `sift` binary: one test binary, a module per
//! topic (ripgrep style). Every test runs the real binary offline, with the
//! real bi-encoder, on a small corpus it writes itself.

mod compact;
mod crash;
mod hub;
mod index;
mod llm;
mod rescore;
mod robustness;
mod search;
mod serve_crash;
mod train;
mod util;
