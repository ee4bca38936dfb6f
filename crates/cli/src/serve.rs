//! `sift serve`: the HTTP API (crates/server) over the index.

use crate::settings::Settings;
use anyhow::Context;
use sift_engine::Engine;
use sift_server::ServerOptions;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to listen on. The default answers only this machine; give
    /// 0.0.0.0 to listen on every interface (and set an API key).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Require `Authorization: Bearer KEY` on every route but /health.
    #[arg(long, env = "SIFT_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Create an empty index when there is none (fill it with POST /documents).
    #[arg(long)]
    create: bool,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = ServerOptions::default().max_body_bytes)]
    max_body_bytes: usize,
    /// Most texts per /rerank, inputs per /v1/embeddings, documents per POST /documents.
    #[arg(long, default_value_t = ServerOptions::default().max_batch)]
    max_batch: usize,
    /// Model inference jobs at once [default: number of cores].
    #[arg(long)]
    inference_threads: Option<usize>,
    /// Seconds before a read request (queueing included) is answered 503.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
    /// A `sift eval --out` folder, or a folder of them (e.g. eval/out), whose
    /// reports and depth-sweep plots the page at / shows. Nothing outside it
    /// is served.
    #[arg(long, env = "SIFT_EVAL_DIR")]
    eval_dir: Option<PathBuf>,
}

pub fn run(settings: &Settings, args: ServeArgs) -> anyhow::Result<()> {
    let addr: SocketAddr = (args.host.as_str(), args.port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve --host {}", args.host))?
        .next()
        .with_context(|| format!("--host {} resolves to no address", args.host))?;
    let engine = Engine::builder(settings.index())
        .config(settings.load()?)
        .create_if_missing(args.create)
        .writable(true)
        .load_reranker(true)
        .open()?;
    if let Err(why) = engine.reranker_status() {
        eprintln!("note: /search answers in stage-1 order and /rerank returns 503: {why}");
    }
    if let Some(dir) = &args.eval_dir {
        // Not fatal: `sift eval --out` may not have run yet; the page says
        // so when asked.
        if !dir.is_dir() {
            tracing::warn!(
                "--eval-dir {} is not a folder (yet); the page's eval section will say so",
                dir.display()
            );
        }
    }
    let defaults = ServerOptions::default();
    let options = ServerOptions {
        api_key: args.api_key.filter(|k| !k.is_empty()),
        max_body_bytes: args.max_body_bytes,
        max_batch: args.max_batch,
        inference_threads: args.inference_threads.unwrap_or(defaults.inference_threads),
        request_timeout: Duration::from_secs(args.timeout_secs),
        eval_dir: args.eval_dir,
        ..defaults
    };
    let auth = if options.api_key.is_some() {
        "bearer token required"
    } else {
        "no auth"
    };
    sift_server::serve_blocking(addr, Arc::new(engine), options, |local| {
        eprintln!(
            "sift serving {} on http://{local} ({auth}); Ctrl-C stops",
            settings.index().display()
        );
        eprintln!("the page: open http://{local}/ in a browser");
    })?;
    eprintln!("sift server stopped");
    Ok(())
}
