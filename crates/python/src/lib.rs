//! Python bindings of the sift engine: the `sift._sift` extension module
//! that the `sift` package (python/sift) re-exports.
//!
//! One class, [`Index`], over one index folder: open or create it, add,
//! replace and delete documents, search in two stages, rerank or embed
//! texts. Engine work runs with the GIL released, so Python threads search
//! side by side; engine errors become `sift.SiftError` (bad input:
//! `sift.InvalidInputError`) with the engine's message.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pythonize::{depythonize, pythonize};
use sift_core::rescore::{Rescore, Rule};
use sift_core::{
    Candidate, Chunk, ChunkId, Config, Document, ModelSource, Precision, RerankerKind,
    SearchOptions, StageTimings,
};
use sift_engine::{ingest::Source, Engine, SearchResponse};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

create_exception!(
    _sift,
    SiftError,
    PyException,
    "An error of the sift engine (a missing model, an unusable index, an I/O failure…)."
);
create_exception!(
    _sift,
    InvalidInputError,
    SiftError,
    "A query, option, document or rule the engine refuses (the message says why)."
);

/// The engine's error as a Python exception, message unchanged.
fn py_error(e: sift_engine::Error) -> PyErr {
    match &e {
        sift_engine::Error::Core(
            sift_core::Error::InvalidQuery(_) | sift_core::Error::InvalidSetting(_),
        ) => InvalidInputError::new_err(e.to_string()),
        _ => SiftError::new_err(e.to_string()),
    }
}

fn invalid(message: impl std::fmt::Display) -> PyErr {
    InvalidInputError::new_err(message.to_string())
}

/// A Python value read as a serde type; the error names what was expected.
fn read<T: serde::de::DeserializeOwned>(value: &Bound<'_, PyAny>, what: &str) -> PyResult<T> {
    depythonize(value).map_err(|e| invalid(format!("invalid {what}: {e}")))
}

/// A `precision=` keyword: one of the config's names for [`Precision`].
fn parse_precision(p: &str) -> PyResult<Precision> {
    serde_json::from_value::<Precision>(p.into()).map_err(|_| {
        invalid(format!(
            "precision {p:?}: expected \"f32\", \"fast\" or \"int8\""
        ))
    })
}

/// A sift index folder, opened (or created) with its models loaded.
///
/// `Index(path, create=False, config=None, bi_encoder_path=None,
/// reranker_path=None, reranker_fallback=None, precision=None,
/// load_reranker=True)`. `config` is a TOML file's path or a dict of the
/// same keys (`{"search": {"depth": 30}}`); without one, `PATH/sift.toml`
/// is read when it exists. The model paths also come from
/// `SIFT_BI_ENCODER_PATH` and `SIFT_RERANKER_PATH`, as for the CLI.
#[pyclass(frozen, module = "sift._sift")]
struct Index {
    engine: Arc<Engine>,
}

#[pymethods]
impl Index {
    #[new]
    #[pyo3(signature = (path, *, create = false, config = None, bi_encoder_path = None, reranker_path = None, reranker_fallback = None, precision = None, load_reranker = true))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        create: bool,
        config: Option<&Bound<'_, PyAny>>,
        bi_encoder_path: Option<PathBuf>,
        reranker_path: Option<PathBuf>,
        reranker_fallback: Option<bool>,
        precision: Option<&str>,
        load_reranker: bool,
    ) -> PyResult<Self> {
        let mut config = load_config(&path, config)?;
        let env_path = |var: &str| std::env::var_os(var).map(PathBuf::from);
        let m = &mut config.models;
        if let Some(p) = bi_encoder_path.or_else(|| env_path("SIFT_BI_ENCODER_PATH")) {
            m.bi_encoder.path = Some(p);
        }
        if let Some(p) = reranker_path.or_else(|| env_path("SIFT_RERANKER_PATH")) {
            m.cross_encoder.path = Some(p);
        }
        m.ask_for_fallback(reranker_fallback);
        if let Some(p) = precision {
            m.precision = parse_precision(p)?;
        }
        config.validate().map_err(|e| invalid(e.to_string()))?;
        let engine = py
            .detach(|| {
                Engine::builder(&path)
                    .config(config)
                    .create_if_missing(create)
                    .load_reranker(load_reranker)
                    .open()
            })
            .map_err(py_error)?;
        Ok(Index {
            engine: Arc::new(engine),
        })
    }

    /// Add or replace documents: a list of dicts with `id`, `text` and
    /// optional `title` and `metadata` (a `date` there feeds
    /// `prefer_recent`). Committed before it returns; a document whose
    /// chunks are unchanged is not re-embedded. Returns the report
    /// (`documents_written`, `documents_unchanged`, `chunks_written`, …).
    fn add<'py>(
        &self,
        py: Python<'py>,
        documents: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let documents: Vec<Document> = read(documents, "documents")?;
        if let Some(i) = documents.iter().position(|d| d.id.trim().is_empty()) {
            return Err(invalid(format!("documents[{i}].id is empty")));
        }
        let engine = self.engine.clone();
        let report = py
            .detach(|| engine.index(&documents, |_| {}))
            .map_err(py_error)?;
        Ok(pythonize(py, &report)?)
    }

    /// Index a folder of `.txt` / `.md` files or a BEIR `corpus.jsonl`, as
    /// `sift index PATH` does. Returns the report.
    fn add_path<'py>(&self, py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyAny>> {
        let engine = self.engine.clone();
        let report = py
            .detach(|| -> sift_engine::Result<_> {
                let documents = Source::open(&path)?.collect::<sift_engine::Result<Vec<_>>>()?;
                engine.index(&documents, |_| {})
            })
            .map_err(py_error)?;
        Ok(pythonize(py, &report)?)
    }

    /// Remove a document and its chunks; False when it was not indexed.
    fn delete(&self, py: Python<'_>, doc_id: &str) -> PyResult<bool> {
        let engine = self.engine.clone();
        py.detach(|| engine.delete(doc_id)).map_err(py_error)
    }

    /// Both stages: retrieve `depth` candidates, rerank, apply rescoring
    /// rules, return the top `k` as a [`SearchResult`]. Omitted options
    /// take the index's configured defaults (`search.*`).
    ///
    /// `filter` keeps candidates whose metadata has each key with an equal
    /// value; `rescore` is the rules table as a dict (`{"rules": [...]}`);
    /// `prefer_recent="90d"` and `boost=["source=official:1.5"]` are the
    /// CLI's shorthands, added to it.
    #[pyo3(signature = (query, *, depth = None, k = None, rerank = None, reranker = None, filter = None, stage1_weight = None, instruction = None, rrf_k = None, retriever_depth = None, rescore = None, prefer_recent = None, boost = None))]
    #[allow(clippy::too_many_arguments)]
    fn search(
        &self,
        py: Python<'_>,
        query: String,
        depth: Option<usize>,
        k: Option<usize>,
        rerank: Option<bool>,
        reranker: Option<&str>,
        filter: Option<&Bound<'_, PyAny>>,
        stage1_weight: Option<f32>,
        instruction: Option<String>,
        rrf_k: Option<f32>,
        retriever_depth: Option<usize>,
        rescore: Option<&Bound<'_, PyAny>>,
        prefer_recent: Option<&str>,
        boost: Option<Vec<String>>,
    ) -> PyResult<SearchResult> {
        let d = &self.engine.config().search;
        let depth = depth.unwrap_or(d.depth);
        let reranker = match reranker {
            Some(kind) => serde_json::from_value::<RerankerKind>(kind.into()).map_err(|_| {
                invalid(format!(
                    "reranker {kind:?}: expected \"cross-encoder\", \"llm\" or \"listwise\""
                ))
            })?,
            None => d.reranker,
        };
        let filter: BTreeMap<String, serde_json::Value> = match filter {
            Some(f) => read(f, "filter")?,
            None => d.filter.clone(),
        };
        let mut rules: Rescore = match rescore {
            Some(r) => read(r, "rescore")?,
            None => d.rescore.clone(),
        };
        if let Some(scale) = prefer_recent {
            rules
                .rules
                .push(Rule::prefer_recent(scale).map_err(|e| invalid(e.to_string()))?);
        }
        for spec in boost.unwrap_or_default() {
            rules
                .rules
                .push(Rule::parse_boost(&spec).map_err(|e| invalid(e.to_string()))?);
        }
        let options = SearchOptions::default()
            .depth(depth)
            // As in POST /search: a depth under the default k caps the hits.
            .k(k.unwrap_or(d.k.min(depth.max(1))))
            .rerank(rerank.unwrap_or(d.rerank))
            .reranker(reranker)
            .instruction(instruction.or_else(|| d.instruction.clone()))
            .rrf_k(rrf_k.unwrap_or(d.rrf_k))
            .retriever_depth(retriever_depth.or(d.retriever_depth))
            .stage1_weight(stage1_weight.or(d.stage1_weight))
            .filter(filter)
            .rescore(rules);
        let engine = self.engine.clone();
        let response = py
            .detach(|| engine.search(&query, &options))
            .map_err(py_error)?;
        SearchResult::new(py, response)
    }

    /// Stage 1 alone, with each retriever's own list, for a caller that
    /// fuses lists from several indexes (the sharded router of
    /// `sift.cluster`): `{"bm25": [(chunk_id, score)], "dense": [(chunk_id,
    /// cosine)], "chunks": {chunk_id: candidate}, "timings": {...}}`, each
    /// list best first, at most `retriever_depth` (default `depth`) long.
    /// A candidate is `{"chunk": {...}, "scores": {...}}` as the engine
    /// keeps it, ready for [`Reranker::rerank_candidates`].
    ///
    /// `bm25_stats` (the sum of every shard's [`Index::bm25_stats`]) makes
    /// BM25 score with the whole corpus's statistics.
    #[pyo3(signature = (query, *, depth = None, retriever_depth = None, bm25_stats = None))]
    fn retrieve<'py>(
        &self,
        py: Python<'py>,
        query: String,
        depth: Option<usize>,
        retriever_depth: Option<usize>,
        bm25_stats: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let bm25_stats: Option<sift_engine::Bm25Stats> = match bm25_stats {
            Some(s) => Some(read(s, "bm25_stats")?),
            None => None,
        };
        let d = &self.engine.config().search;
        let depth = depth.unwrap_or(d.depth);
        let options = SearchOptions::default()
            .depth(depth)
            .k(1)
            .retriever_depth(retriever_depth.or(d.retriever_depth));
        let engine = self.engine.clone();
        let out = py
            .detach(|| -> sift_engine::Result<_> {
                let r = engine.retrieve_with_stats(&query, &options, bm25_stats.as_ref())?;
                let mut ids: Vec<ChunkId> =
                    r.bm25.iter().chain(&r.dense).map(|(id, _)| *id).collect();
                ids.sort();
                ids.dedup();
                let chunks = engine.chunks(&ids)?;
                let candidates: BTreeMap<String, Candidate> = ids
                    .iter()
                    .zip(chunks)
                    .filter_map(|(id, chunk)| {
                        chunk.map(|chunk| {
                            (
                                id.to_string(),
                                Candidate {
                                    chunk,
                                    scores: Default::default(),
                                },
                            )
                        })
                    })
                    .collect();
                let list = |l: &[(ChunkId, f32)]| -> Vec<(String, f32)> {
                    l.iter().map(|(id, s)| (id.to_string(), *s)).collect()
                };
                Ok(serde_json::json!({
                    "bm25": list(&r.bm25),
                    "dense": list(&r.dense),
                    "chunks": candidates,
                    "timings": r.timings,
                }))
            })
            .map_err(py_error)?;
        Ok(pythonize(py, &out)?)
    }

    /// This index's BM25 statistics for a query's terms (`num_docs`,
    /// `num_tokens`, `doc_freqs`): summed over shards, they are what
    /// [`Index::retrieve`] takes as `bm25_stats`.
    fn bm25_stats<'py>(&self, py: Python<'py>, query: String) -> PyResult<Bound<'py, PyAny>> {
        let engine = self.engine.clone();
        let stats = py.detach(|| engine.bm25_stats(&query)).map_err(py_error)?;
        Ok(pythonize(py, &stats)?)
    }

    /// Score texts against a query with the cross-encoder: a list of
    /// `(index, score)` best first (raw logits; `k` keeps the best k).
    #[pyo3(signature = (query, texts, *, k = None))]
    fn rerank(
        &self,
        py: Python<'_>,
        query: String,
        texts: Vec<String>,
        k: Option<usize>,
    ) -> PyResult<Vec<(usize, f32)>> {
        sift_core::validate_query(&query).map_err(|e| invalid(e.to_string()))?;
        if let Err(why) = self.engine.reranker_status() {
            return Err(SiftError::new_err(format!(
                "no reranker is loaded ({why}); open the index with reranker_path=DIR (a cross-encoder folder) or reranker_fallback=True"
            )));
        }
        let k = k.unwrap_or(texts.len());
        // Texts become candidates whose chunk id is their index.
        let candidates: Vec<Candidate> = texts
            .into_iter()
            .enumerate()
            .map(|(i, text)| Candidate {
                chunk: Chunk {
                    id: ChunkId(i as u64),
                    doc_id: String::new(),
                    ordinal: 0,
                    title: String::new(),
                    section: Vec::new(),
                    char_end: text.chars().count(),
                    text,
                    char_start: 0,
                    metadata: Default::default(),
                },
                scores: Default::default(),
            })
            .collect();
        let engine = self.engine.clone();
        let (hits, _) = py
            .detach(|| {
                let mut timings = StageTimings::default();
                engine.rerank(&query, candidates, k, &mut timings)
            })
            .map_err(py_error)?;
        Ok(hits
            .into_iter()
            .map(|h| (h.chunk.id.0 as usize, h.scores.rerank.unwrap_or(f32::NAN)))
            .collect())
    }

    /// Unit-length bi-encoder embeddings (mean pooling), one per text.
    fn embed(&self, py: Python<'_>, texts: Vec<String>) -> PyResult<Vec<Vec<f32>>> {
        let engine = self.engine.clone();
        py.detach(|| engine.bi_encoder().embed(&texts))
            .map_err(|e| py_error(e.into()))
    }

    /// Counts and sizes of the index, as `sift stats` prints them.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let stats = self.engine.stats().map_err(py_error)?;
        Ok(pythonize(py, &stats)?)
    }

    /// Ids of the indexed documents, sorted.
    fn document_ids(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let engine = self.engine.clone();
        py.detach(|| engine.document_ids()).map_err(py_error)
    }

    /// The index folder.
    #[getter]
    fn path(&self) -> PathBuf {
        self.engine.dir().to_path_buf()
    }

    fn __repr__(&self) -> String {
        format!("sift.Index({:?})", self.engine.dir().display().to_string())
    }
}

/// A cross-encoder on its own, for reranking lists made elsewhere (the
/// sharded router reranks the merged list once, here).
///
/// `Reranker(path=None, repo="cross-encoder/ms-marco-MiniLM-L-6-v2",
/// max_length=512, precision=None)`: a local folder, else the hub model.
#[pyclass(frozen, module = "sift._sift")]
struct Reranker {
    reranker: sift_rerank::CrossEncoderReranker,
}

#[pymethods]
impl Reranker {
    #[new]
    #[pyo3(signature = (path = None, *, repo = None, max_length = None, precision = None))]
    fn new(
        py: Python<'_>,
        path: Option<PathBuf>,
        repo: Option<String>,
        max_length: Option<usize>,
        precision: Option<&str>,
    ) -> PyResult<Self> {
        let defaults = Config::default();
        let mut source = match repo {
            Some(repo) => ModelSource::hub(repo),
            None => defaults.models.cross_encoder.clone(),
        };
        source.path = path;
        let precision = match precision {
            Some(p) => parse_precision(p)?,
            None => defaults.models.precision,
        };
        let max_length = max_length.unwrap_or(defaults.rerank.max_length);
        let model = py
            .detach(|| {
                sift_bert::ModelFiles::resolve(&source, sift_bert::ModelRole::CrossEncoder)
                    .and_then(|files| {
                        sift_bert::CrossEncoder::load_with(
                            &files,
                            max_length,
                            defaults.rerank.batch_size,
                            precision,
                        )
                    })
            })
            .map_err(|e| SiftError::new_err(e.to_string()))?;
        Ok(Reranker {
            reranker: sift_rerank::CrossEncoderReranker::new(model),
        })
    }

    /// What reranks, as `reranked_by` names it.
    #[getter]
    fn describe(&self) -> String {
        use sift_rerank::Reranker as _;
        self.reranker.describe()
    }

    /// Rerank candidates given in stage-1 order (as `Index.retrieve` makes
    /// them, with `scores.fused` and `scores.stage1_rank` set by the
    /// caller's fusion): the top `k`, each with `scores.rerank` (and
    /// `scores.blended` when the checkpoint keeps a stage-1 weight), exactly
    /// as `Index.search` reranks. `stage1_weight` overrides the checkpoint's.
    #[pyo3(signature = (query, candidates, k, *, stage1_weight = None))]
    fn rerank_candidates<'py>(
        &self,
        py: Python<'py>,
        query: String,
        candidates: &Bound<'py, PyAny>,
        k: usize,
        stage1_weight: Option<f32>,
    ) -> PyResult<Bound<'py, PyAny>> {
        sift_core::validate_query(&query).map_err(|e| invalid(e.to_string()))?;
        let candidates: Vec<Candidate> = read(candidates, "candidates")?;
        let hits = py
            .detach(|| {
                let request = sift_rerank::RerankQuery::new(&query).stage1_weight(stage1_weight);
                sift_rerank::rerank(&self.reranker, &request, candidates, k)
            })
            .map_err(|e| SiftError::new_err(e.to_string()))?;
        Ok(pythonize(py, &hits)?)
    }
}

/// The documents at a path as `sift index` reads them (a folder of
/// `.txt` / `.md` files, or a BEIR `corpus.jsonl`), as dicts for
/// [`Index::add`]; files that cannot be read are skipped with a warning.
#[pyfunction]
fn read_documents<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyAny>> {
    let documents = py
        .detach(|| Source::open(&path)?.collect::<sift_engine::Result<Vec<Document>>>())
        .map_err(py_error)?;
    Ok(pythonize(py, &documents)?)
}

/// The configuration: a TOML file's path, a dict of its keys, or the
/// index's own `sift.toml` when there is one.
fn load_config(index: &std::path::Path, config: Option<&Bound<'_, PyAny>>) -> PyResult<Config> {
    let from_file =
        |path: &std::path::Path| Config::from_toml_file(path).map_err(|e| invalid(e.to_string()));
    match config {
        None => {
            let default = index.join("sift.toml");
            if default.is_file() {
                from_file(&default)
            } else {
                Ok(Config::default())
            }
        }
        Some(value) if value.is_instance_of::<PyDict>() => read(value, "config"),
        Some(value) => from_file(
            &value
                .extract::<PathBuf>()
                .map_err(|_| invalid("config must be a TOML file's path or a dict of its keys"))?,
        ),
    }
}

/// What one query returned.
#[pyclass(frozen, module = "sift._sift")]
struct SearchResult {
    /// Best first.
    #[pyo3(get)]
    hits: Vec<Py<Hit>>,
    /// Milliseconds per stage (tokenize, bm25, embed, hnsw, fuse, fetch,
    /// rerank, rescore) and in total.
    #[pyo3(get)]
    timings: Py<PyAny>,
    /// The reranker that ordered the hits; None for stage-1 order.
    #[pyo3(get)]
    reranked_by: Option<String>,
    /// Set when the query was answered differently than asked.
    #[pyo3(get)]
    notice: Option<String>,
}

impl SearchResult {
    fn new(py: Python<'_>, response: SearchResponse) -> PyResult<Self> {
        let hits = response
            .hits
            .into_iter()
            .enumerate()
            .map(|(i, c)| Py::new(py, Hit::new(py, i + 1, c)?))
            .collect::<PyResult<_>>()?;
        Ok(SearchResult {
            hits,
            timings: pythonize(py, &response.timings)?.unbind(),
            reranked_by: response.reranked_by,
            notice: response.notice,
        })
    }
}

#[pymethods]
impl SearchResult {
    fn __len__(&self) -> usize {
        self.hits.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "SearchResult({} hits, reranked_by={:?})",
            self.hits.len(),
            self.reranked_by
        )
    }
}

/// One retrieved chunk: what a citation needs and every score.
#[pyclass(frozen, module = "sift._sift")]
struct Hit {
    /// Position in the answer, from 1.
    #[pyo3(get)]
    rank: usize,
    /// Stable chunk id (16 hex digits).
    #[pyo3(get)]
    chunk_id: String,
    #[pyo3(get)]
    doc_id: String,
    /// Position of the chunk within its document, from 0.
    #[pyo3(get)]
    ordinal: u32,
    #[pyo3(get)]
    title: String,
    /// The headings the chunk sits under, outermost first.
    #[pyo3(get)]
    section: Vec<String>,
    #[pyo3(get)]
    text: String,
    /// Offsets (Unicode code points, end exclusive) of `text` in the document.
    #[pyo3(get)]
    char_start: usize,
    #[pyo3(get)]
    char_end: usize,
    #[pyo3(get)]
    metadata: Py<PyAny>,
    /// The score the hit is ordered by.
    #[pyo3(get)]
    score: f32,
    /// Every stage's view: `bm25`, `dense` (rank and score), `fused`,
    /// `stage1_rank`, `rerank`, `blended`, `rescore` (base, factors, score).
    #[pyo3(get)]
    scores: Py<PyAny>,
}

impl Hit {
    fn new(py: Python<'_>, rank: usize, c: Candidate) -> PyResult<Self> {
        let score = c.scores.final_score();
        Ok(Hit {
            rank,
            chunk_id: c.chunk.id.to_string(),
            metadata: pythonize(py, &c.chunk.metadata)?.unbind(),
            scores: pythonize(py, &c.scores)?.unbind(),
            doc_id: c.chunk.doc_id,
            ordinal: c.chunk.ordinal,
            title: c.chunk.title,
            section: c.chunk.section,
            text: c.chunk.text,
            char_start: c.chunk.char_start,
            char_end: c.chunk.char_end,
            score,
        })
    }
}

#[pymethods]
impl Hit {
    /// The citation: `doc_id › section › …`.
    #[getter]
    fn citation(&self) -> String {
        std::iter::once(self.doc_id.as_str())
            .chain(self.section.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" › ")
    }

    /// Every field as a dict (JSON-ready).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("rank", self.rank)?;
        d.set_item("chunk_id", &self.chunk_id)?;
        d.set_item("doc_id", &self.doc_id)?;
        d.set_item("ordinal", self.ordinal)?;
        d.set_item("title", &self.title)?;
        d.set_item("section", &self.section)?;
        d.set_item("text", &self.text)?;
        d.set_item("char_start", self.char_start)?;
        d.set_item("char_end", self.char_end)?;
        d.set_item("metadata", self.metadata.bind(py))?;
        d.set_item("score", self.score)?;
        d.set_item("scores", self.scores.bind(py))?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "Hit(rank={}, score={:.4}, citation={:?})",
            self.rank,
            self.score,
            self.citation()
        )
    }
}

#[pymodule]
fn _sift(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Index>()?;
    m.add_class::<SearchResult>()?;
    m.add_class::<Hit>()?;
    m.add_class::<Reranker>()?;
    m.add_function(wrap_pyfunction!(read_documents, m)?)?;
    m.add("SiftError", m.py().get_type::<SiftError>())?;
    m.add("InvalidInputError", m.py().get_type::<InvalidInputError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
