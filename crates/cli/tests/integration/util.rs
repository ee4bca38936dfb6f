//! Harness: run the built `sift` binary in a temporary folder, offline,
//! with the bi-encoder from `data/models`.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The bi-encoder fetched by `just fetch-models`.
pub fn model_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/models/all-MiniLM-L6-v2")
        .canonicalize()
        .unwrap_or_else(|_| panic!("no bi-encoder in data/models: run `just fetch-models`"));
    assert!(
        dir.join("model.safetensors").is_file(),
        "no bi-encoder in {}: run `just fetch-models`",
        dir.display()
    );
    dir
}

/// The GGUF model fetched by `just fetch-llm`.
pub fn gguf_path() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf");
    assert!(
        path.is_file(),
        "no LLM at {}: run `just fetch-llm`",
        path.display()
    );
    path.canonicalize().unwrap()
}

/// The trained cross-encoder committed in data/rerankers.
pub fn committed_reranker() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/rerankers/sift-minilm-l6-scifact")
        .canonicalize()
        .expect("data/rerankers/sift-minilm-l6-scifact is committed")
}

/// The demo corpus.
pub fn helpcentre_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/helpcentre")
}

/// A scratch folder with these pages of the demo help centre (paths under
/// data/helpcentre) copied to docs/ and indexed.
pub fn with_demo_pages(pages: &[&str]) -> Sift {
    let sift = Sift::new();
    for page in pages {
        sift.write(
            &format!("docs/{page}"),
            std::fs::read(helpcentre_dir().join(page)).unwrap(),
        );
    }
    sift.ok(&["index", "docs"]);
    sift
}

/// One sandbox: a working folder (the index defaults to `idx` in it) and
/// an empty Hugging Face home, so nothing is read from a cache or the network.
pub struct Sift {
    work: tempfile::TempDir,
    hf_home: tempfile::TempDir,
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub args: Vec<String>,
}

impl Sift {
    pub fn new() -> Sift {
        Sift {
            work: tempfile::tempdir().unwrap(),
            hf_home: tempfile::tempdir().unwrap(),
        }
    }

    /// The working folder; relative paths given to commands resolve here.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.work.path().join(relative)
    }

    /// The Hugging Face home (HF_HOME) the commands see: empty at first.
    pub fn hf_home(&self) -> &Path {
        self.hf_home.path()
    }

    /// The default index folder.
    pub fn index_dir(&self) -> PathBuf {
        self.path("idx")
    }

    /// Write a file (creating its folders) under the working folder.
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sift"));
        cmd.args(args)
            .current_dir(self.work.path())
            .env("SIFT_INDEX", self.index_dir())
            .env("SIFT_BI_ENCODER_PATH", model_dir())
            .env("HF_HUB_OFFLINE", "1")
            .env("HF_HOME", self.hf_home.path())
            .env("NO_COLOR", "1")
            .env_remove("HF_HUB_CACHE")
            .env_remove("HUGGINGFACE_HUB_CACHE")
            .env_remove("HF_ENDPOINT")
            .env_remove("SIFT_CONFIG")
            .env_remove("SIFT_RERANKER_PATH")
            .env_remove("SIFT_LLM_BACKEND")
            .env_remove("SIFT_LLM_GGUF")
            .env_remove("SIFT_LLM_URL")
            .env_remove("SIFT_LOG")
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null());
        cmd.env_remove("SIFT_NO_RERANKER_FALLBACK");
        cmd
    }

    /// Start a command without waiting for it.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Run a command to its end, whatever its exit status. Never a panic.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    /// [`Sift::run`] with environment variables set (`Some`) or removed
    /// (`None`) over the harness's.
    pub fn run_env(&self, args: &[&str], env: &[(&str, Option<&str>)]) -> Run {
        let mut cmd = self.command(args);
        for (key, value) in env {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        let out = cmd.output().unwrap();
        let run = Run {
            code: out.status.code(),
            stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
            args: args.iter().map(|s| s.to_string()).collect(),
        };
        assert!(
            !run.stderr.contains("panicked"),
            "`sift {}` panicked:\n{}",
            run.args.join(" "),
            run.stderr
        );
        run
    }

    /// Run a command that must succeed.
    pub fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(
            run.code,
            Some(0),
            "`sift {}` failed:\nstdout:\n{}\nstderr:\n{}",
            run.args.join(" "),
            run.stdout,
            run.stderr
        );
        run
    }

    /// Run a command that must fail with exit code 1 and an `error:` line
    /// on stderr; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(
            run.code,
            Some(1),
            "`sift {}` should fail:\nstdout:\n{}\nstderr:\n{}",
            run.args.join(" "),
            run.stdout,
            run.stderr
        );
        assert!(
            run.stderr.contains("error:"),
            "`sift {}`: no error message:\n{}",
            run.args.join(" "),
            run.stderr
        );
        run.stderr
    }

    /// `sift search QUERY --json ...extra`, parsed.
    pub fn search_json(&self, query: &str, extra: &[&str]) -> Value {
        let mut args = vec!["search", query, "--json"];
        args.extend_from_slice(extra);
        let run = self.ok(&args);
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("search --json printed invalid JSON ({e}):\n{}", run.stdout))
    }

    /// The hits of a stage-1 search (no rerank), as JSON values.
    pub fn hits(&self, query: &str, extra: &[&str]) -> Vec<Value> {
        let mut args = vec!["--no-rerank"];
        args.extend_from_slice(extra);
        self.search_json(query, &args)["hits"]
            .as_array()
            .expect("hits is an array")
            .clone()
    }

    /// `sift stats ...extra`, parsed.
    pub fn stats(&self, extra: &[&str]) -> Value {
        let mut args = vec!["stats"];
        args.extend_from_slice(extra);
        let run = self.ok(&args);
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("stats printed invalid JSON ({e}):\n{}", run.stdout))
    }
}

/// `(documents, chunks)` of `sift stats`.
pub fn counts(stats: &Value) -> (u64, u64) {
    (
        stats["documents"].as_u64().unwrap(),
        stats["chunks"].as_u64().unwrap(),
    )
}

pub fn doc_id(hit: &Value) -> &str {
    hit["chunk"]["doc_id"].as_str().unwrap()
}

pub fn text(hit: &Value) -> &str {
    hit["chunk"]["text"].as_str().unwrap()
}

/// Document ids of the hits, in order.
pub fn doc_ids(hits: &[Value]) -> Vec<String> {
    hits.iter().map(|h| doc_id(h).to_string()).collect()
}

/// A line of plain search output: `+S.SS text`. Returns the score.
pub fn parse_hit_line(line: &str) -> Option<(f32, &str)> {
    let (score, text) = line.split_once(' ')?;
    let sign = score.chars().next()?;
    let digits = &score[1..];
    let (int, frac) = digits.split_once('.')?;
    let well_formed = (sign == '+' || sign == '-')
        && !int.is_empty()
        && int.chars().all(|c| c.is_ascii_digit())
        && frac.len() == 2
        && frac.chars().all(|c| c.is_ascii_digit())
        && !text.trim().is_empty();
    well_formed.then(|| (score.parse().unwrap(), text))
}

/// Words that are one token each in all-MiniLM-L6-v2's vocabulary, so
/// chunk counts are predictable.
pub const WORDS: [&str; 30] = [
    "the", "river", "stone", "green", "water", "house", "light", "music", "paper", "table",
    "garden", "window", "summer", "winter", "morning", "evening", "bread", "apple", "horse",
    "cloud", "mountain", "forest", "village", "bridge", "market", "orange", "yellow", "silver",
    "golden", "purple",
];

/// `n` single-token words, starting at `offset` in [`WORDS`], cycling.
pub fn words(offset: usize, n: usize) -> String {
    (0..n)
        .map(|i| WORDS[(offset + i) % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}
