//! A real server on a free loopback port over a small real index, and a
//! real HTTP client (ureq) to call it.

#![allow(dead_code)]

use candle_core::{safetensors, Device, Tensor};
use serde_json::{json, Value};
use sift_core::{Config, Document, ModelSource};
use sift_engine::Engine;
use sift_server::{Server, ServerOptions};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::Duration;

pub fn minilm_dir() -> PathBuf {
    let dir = std::env::var_os("SIFT_BI_ENCODER_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/models/all-MiniLM-L6-v2")
        });
    assert!(
        dir.join("model.safetensors").is_file(),
        "no model in {}: run `just fetch-models`",
        dir.display()
    );
    dir
}

/// Nothing in these tests may reach the network: the hub is off and its
/// cache is an empty folder.
fn offline() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let home =
            std::env::temp_dir().join(format!("sift-server-tests-hf-{}", std::process::id()));
        std::fs::create_dir_all(&home).unwrap();
        std::env::set_var("HF_HUB_OFFLINE", "1");
        std::env::set_var("HF_HOME", home);
    });
}

/// A handful of help-centre articles, with metadata to filter on.
pub fn corpus() -> Vec<Document> {
    let doc = |id: &str, title: &str, text: &str, source: &str| {
        let mut d = Document::new(id, title, text);
        d.metadata.insert("source".into(), json!(source));
        d
    };
    vec![
        doc(
            "faq/close-account.md",
            "Closing your account",
            "When you close your account, your notes and attachments are kept for 30 days \
             so you can change your mind. After 30 days they are deleted permanently and cannot be recovered.",
            "faq",
        ),
        doc(
            "faq/export.md",
            "Exporting your notes",
            "You can export every notebook as Markdown or PDF from Settings, then Export. \
             Exports include attachments up to 100 MB.",
            "faq",
        ),
        doc(
            "billing/refunds.md",
            "Refunds",
            "Annual plans can be refunded within 14 days of purchase. Monthly plans are not refunded, \
             but you can cancel at any time and keep access until the end of the period.",
            "billing",
        ),
        doc(
            "blog/offline.md",
            "Working offline",
            "The desktop app keeps a full copy of your notes, so you can write on a plane. \
             Changes sync when you are back online.",
            "blog",
        ),
        doc(
            "faq/password.md",
            "Resetting your password",
            "Use the forgot password link on the sign-in page; we email a reset link that is valid for one hour.",
            "faq",
        ),
    ]
}

/// A cross-encoder checkpoint made on the spot, as crates/bert's parity
/// test makes one: the MiniLM body under `bert.` and a fixed one-label head.
/// Its scores are meaningless but deterministic, which is all the shape
/// tests need.
pub fn throwaway_cross_encoder(dir: &Path) {
    let src = minilm_dir();
    let body = safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut tensors: HashMap<String, Tensor> = body
        .into_iter()
        .filter(|(name, _)| !name.ends_with("position_ids"))
        .map(|(name, t)| (format!("bert.{name}"), t))
        .collect();
    let weight: Vec<f32> = (0..384)
        .map(|i| (0.1 * ((i + 1) as f64).sin()) as f32)
        .collect();
    tensors.insert(
        "classifier.weight".into(),
        Tensor::from_vec(weight, (1, 384), &Device::Cpu).unwrap(),
    );
    tensors.insert(
        "classifier.bias".into(),
        Tensor::new(&[0.25f32], &Device::Cpu).unwrap(),
    );
    safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
}

pub struct TestServer {
    pub base: String,
    pub addr: SocketAddr,
    pub engine: Arc<Engine>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dirs: Vec<tempfile::TempDir>,
}

#[derive(Default)]
pub struct Setup {
    pub reranker: bool,
    pub api_key: Option<&'static str>,
    pub max_body_bytes: Option<usize>,
    pub max_batch: Option<usize>,
    /// What to index instead of [`corpus`].
    pub documents: Option<Vec<Document>>,
    /// `--eval-dir`.
    pub eval_dir: Option<PathBuf>,
    /// `index.max_document_bytes`.
    pub max_document_bytes: Option<usize>,
}

impl TestServer {
    /// Index [`corpus`] in a fresh folder and serve it on 127.0.0.1:0.
    pub fn start(setup: Setup) -> TestServer {
        offline();
        let index_dir = tempfile::tempdir().unwrap();
        let mut dirs = Vec::new();
        let mut config = Config::default();
        config.models.bi_encoder = ModelSource::local(minilm_dir());
        // An empty source: "no model configured", without asking the hub,
        // and no committed reranker standing in for it.
        config.models.cross_encoder = ModelSource::default();
        config.models.cross_encoder_fallback = None;
        if let Some(limit) = setup.max_document_bytes {
            config.index.max_document_bytes = limit;
        }
        if setup.reranker {
            let model = tempfile::tempdir().unwrap();
            throwaway_cross_encoder(model.path());
            config.models.cross_encoder = ModelSource::local(model.path());
            dirs.push(model);
        }
        let engine = Engine::builder(index_dir.path())
            .config(config)
            .create_if_missing(true)
            .open()
            .unwrap();
        let documents = setup.documents.unwrap_or_else(corpus);
        engine.index(&documents, |_| {}).unwrap();
        let engine = Arc::new(engine);
        dirs.push(index_dir);

        let mut options = ServerOptions {
            api_key: setup.api_key.map(str::to_string),
            // Generous: a busy 2-core CI machine is slow, and a request cut
            // at the deadline is not what the shutdown test is about.
            shutdown_grace: Duration::from_secs(120),
            ..ServerOptions::default()
        };
        if let Some(b) = setup.max_body_bytes {
            options.max_body_bytes = b;
        }
        if let Some(b) = setup.max_batch {
            options.max_batch = b;
        }
        options.eval_dir = setup.eval_dir;
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let served = engine.clone();
        let thread = std::thread::spawn(move || {
            let runtime = sift_server::runtime().unwrap();
            runtime.block_on(async move {
                let server = Server::bind("127.0.0.1:0".parse().unwrap(), served, options)
                    .await
                    .unwrap();
                addr_tx.send(server.local_addr()).unwrap();
                server
                    .run(async move {
                        let _ = stop_rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server binds");
        assert!(addr.ip().is_loopback());
        TestServer {
            base: format!("http://{addr}"),
            addr,
            engine,
            stop: Some(stop_tx),
            thread: Some(thread),
            _dirs: dirs,
        }
    }

    /// Any request with a bearer token.
    pub fn get_with(&self, path: &str, token: &str) -> Reply {
        self.call("GET", path, None, Some(token))
    }

    /// Signal shutdown and wait until the server has stopped.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the server thread ends cleanly");
        }
    }

    pub fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.call("POST", path, Some(&body.to_string()), None)
    }

    pub fn delete(&self, path: &str) -> Reply {
        self.call("DELETE", path, None, None)
    }

    /// Any request; `body` is sent as is (so malformed JSON can be sent).
    pub fn call(&self, method: &str, path: &str, body: Option<&str>, token: Option<&str>) -> Reply {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(120))
            .build();
        let mut request = agent.request(method, &format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        let result = match body {
            Some(body) => request
                .set("Content-Type", "application/json")
                .send_string(body),
            None => request.call(),
        };
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = response.status();
        let content_type = response.header("content-type").unwrap_or("").to_string();
        let www_authenticate = response.header("www-authenticate").map(str::to_string);
        let allow = response.header("allow").map(str::to_string);
        let text = response.into_string().unwrap();
        Reply {
            status,
            content_type,
            www_authenticate,
            allow,
            text,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub www_authenticate: Option<String>,
    pub allow: Option<String>,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// Assert an error answer: the status, the JSON shape, and the code.
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        assert!(
            self.content_type.starts_with("application/json"),
            "error answers are JSON: {self:?}"
        );
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "{body}");
        let message = body["error"]["message"].as_str().unwrap().to_string();
        assert!(!message.is_empty());
        message
    }
}
