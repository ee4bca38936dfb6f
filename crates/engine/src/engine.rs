use crate::chunker::Chunker;
use crate::lock::WriterLock;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use sift_bert::{BiEncoder, CrossEncoder, ModelFiles, ModelRole};
use sift_core::rescore::interpret_instruction;
use sift_core::{
    validate_query, Candidate, Chunk, ChunkId, ChunkingConfig, Config, Document, LlmBackend,
    Metadata, RerankerKind, SearchOptions, Stage, StageTimings, MAX_DEPTH,
};
use sift_fusion::reciprocal_rank_fusion;
use sift_lexical::{Bm25Stats, LexicalIndex};
use sift_llm::{GgufModel, HttpModel, LanguageModel};
use sift_rerank::{
    CrossEncoderReranker, ListwiseReranker, LlmPointwiseReranker, RerankQuery, Reranker,
};
use sift_vector::VectorIndex;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::{Duration, Instant};

/// With a metadata filter, fusion keeps this many times `depth` candidates
/// (at most [`MAX_DEPTH`]), so that after filtering there are usually still
/// `depth` left to rerank.
pub const FILTER_POOL_FACTOR: usize = 4;

const META_FILE: &str = "sift-index.json";
const LEXICAL_DIR: &str = "lexical";
const VECTORS_DIR: &str = "vectors";
/// 2: chunks carry their heading path (`section`), and a text file's
/// offsets are into the whole file.
const FORMAT_VERSION: u32 = 2;
/// Stored vectors inserted into a graph being rebuilt per batch: bounds the
/// copies held at once (4096 × 384 floats = 6 MB) while keeping hnsw_rs's
/// parallel insert busy.
const COMPACT_BATCH: usize = 4096;

/// What an index was built with; checked on every open.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct IndexMeta {
    format_version: u32,
    embedding_dim: usize,
    bi_encoder: String,
    chunking: ChunkingConfig,
}

/// Options for opening an [`Engine`].
pub struct EngineBuilder {
    dir: PathBuf,
    config: Config,
    create_if_missing: bool,
    writable: bool,
    load_reranker: bool,
}

impl EngineBuilder {
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Create an empty index when `dir` has none (for indexing). Implies
    /// [`writable`](Self::writable).
    pub fn create_if_missing(mut self, yes: bool) -> Self {
        self.create_if_missing = yes;
        self
    }

    /// Take the index's writer lock (`sift-index.lock`) at open and hold it
    /// while the engine lives, so that a second writer (another `sift
    /// index`, a `sift serve`) is refused at once with
    /// [`Error::IndexBusy`] rather than when it first writes. An engine
    /// opened without it still takes the lock at its first write (and
    /// keeps it); opening to read takes none.
    pub fn writable(mut self, yes: bool) -> Self {
        self.writable = yes;
        self
    }

    /// Load the cross-encoder (default: yes). Indexing does not need it.
    pub fn load_reranker(mut self, yes: bool) -> Self {
        self.load_reranker = yes;
        self
    }

    pub fn open(self) -> Result<Engine> {
        Engine::open_with(self)
    }
}

/// What happened to the documents given to [`Engine::index`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IndexReport {
    /// Documents new or changed, whose chunks were (re)written.
    pub documents_written: usize,
    /// Documents whose chunks were all already indexed.
    pub documents_unchanged: usize,
    /// Documents that produced no chunk (no text and no title).
    pub documents_empty: usize,
    pub chunks_written: usize,
    pub commits: usize,
    /// Documents that could not be indexed, with the reason; the others
    /// of the same call were indexed.
    pub failed: Vec<FailedDocument>,
}

/// A document [`Engine::index`] could not index: its text did not chunk or
/// embed. It is left as it was (its earlier version, if any, stays).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailedDocument {
    pub id: String,
    pub reason: String,
}

/// Progress of [`Engine::index`], reported after every embedded batch.
#[derive(Clone, Copy, Debug)]
pub struct IndexProgress {
    pub chunks_done: usize,
    pub chunks_total: usize,
}

/// What one query returned.
#[derive(Clone, Debug, Serialize)]
pub struct SearchResponse {
    pub hits: Vec<Candidate>,
    pub timings: StageTimings,
    /// The reranker that ordered the hits, or `None` for stage-1 order.
    pub reranked_by: Option<String>,
    /// Said to the user when the query was answered differently than asked
    /// (e.g. rerank requested but no reranker available).
    pub notice: Option<String>,
}

/// Stage 1 of a query, with each retriever's own list kept for evaluation.
#[derive(Clone, Debug)]
pub struct Retrieval {
    pub bm25: Vec<(ChunkId, f32)>,
    pub dense: Vec<(ChunkId, f32)>,
    /// Fused candidates (top `depth`), chunks fetched.
    pub candidates: Vec<Candidate>,
    pub timings: StageTimings,
}

/// Counts and sizes of an open index.
#[derive(Clone, Debug, Serialize)]
pub struct IndexStats {
    pub documents: u64,
    pub chunks: u64,
    /// Points in the HNSW graph, including those of deleted chunks.
    pub vector_points: usize,
    /// Points of replaced or deleted chunks (hnsw_rs cannot remove a
    /// point); [`Engine::compact`] drops them.
    pub dead_points: usize,
    /// `dead_points / vector_points` (0 for an empty graph), the figure
    /// `index.compact_dead_ratio` is compared with.
    pub dead_ratio: f64,
    pub lexical_bytes: u64,
    pub embedding_dim: usize,
    pub bi_encoder: String,
    pub reranker: Option<String>,
}

/// What [`Engine::compact`] did.
#[derive(Clone, Debug, Serialize)]
pub struct CompactionReport {
    /// Graph points before and after.
    pub points_before: usize,
    pub points_after: usize,
    /// `dead_points / vector_points` before and after.
    pub dead_ratio_before: f64,
    pub dead_ratio_after: f64,
    /// Chunks committed while the new graph was being built, added to it
    /// before the swap.
    pub caught_up: usize,
    /// Building the new graph (searches and writes went on meanwhile).
    #[serde(serialize_with = "seconds")]
    pub build: Duration,
    /// Catching up, saving and swapping (writes waited meanwhile).
    #[serde(serialize_with = "seconds")]
    pub swap: Duration,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The retrieval engine over one index directory.
///
/// ```no_run
/// use sift_core::{Config, Document, SearchOptions};
/// use sift_engine::Engine;
///
/// let engine = Engine::builder("my-index").config(Config::default()).create_if_missing(true).open()?;
/// engine.index(&[Document::new("faq/close.md", "Closing your account", "Your notes are deleted after 30 days.")], |_| {})?;
/// let response = engine.search("what happens to my notes", &SearchOptions::default().depth(20).k(3))?;
/// for hit in &response.hits {
///     println!("{:+.2} {} [{}..{}]", hit.scores.final_score(), hit.chunk.doc_id, hit.chunk.char_start, hit.chunk.char_end);
/// }
/// # Ok::<(), sift_engine::Error>(())
/// ```
pub struct Engine {
    dir: PathBuf,
    config: Config,
    meta: IndexMeta,
    lexical: LexicalIndex,
    vectors: RwLock<VectorIndex>,
    /// Ids of the chunks in the last commit: the HNSW graph never forgets a
    /// point, so dense hits are filtered through this.
    live: RwLock<Arc<HashSet<ChunkId>>>,
    bi_encoder: BiEncoder,
    reranker: Option<Box<dyn Reranker>>,
    /// Why there is no reranker, when there is none.
    reranker_missing: Option<String>,
    /// The in-process GGUF model, loaded on first use (LLM rerankers with
    /// the `gguf` back end, the server's chat route).
    gguf: OnceLock<std::result::Result<Arc<GgufModel>, String>>,
    /// The LLM rerankers' model (`rerank.llm.backend`), made on first use.
    llm: OnceLock<std::result::Result<Arc<dyn LanguageModel>, String>>,
    /// One writer at a time: within the process, this mutex; across
    /// processes, the [`WriterLock`] inside it, taken at open by a writable
    /// engine, otherwise at the first write, and then kept.
    writer: Mutex<Option<WriterLock>>,
    /// One compaction at a time (it takes `writer` only for its last step).
    compaction: Mutex<()>,
}

impl Engine {
    pub fn builder(dir: impl Into<PathBuf>) -> EngineBuilder {
        EngineBuilder {
            dir: dir.into(),
            config: Config::default(),
            create_if_missing: false,
            writable: false,
            load_reranker: true,
        }
    }

    fn open_with(b: EngineBuilder) -> Result<Engine> {
        b.config.validate()?;
        let dir = b.dir;
        let meta_path = dir.join(META_FILE);
        let existing = read_meta(&meta_path)?;
        if existing.is_none() && !b.create_if_missing {
            return Err(Error::NoIndex(dir));
        }
        // Before anything is written (or a model loaded): a second writer
        // learns at once that it must wait.
        let writer = if b.writable || b.create_if_missing {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            Some(WriterLock::acquire(&dir)?)
        } else {
            None
        };
        let files = ModelFiles::resolve(&b.config.models.bi_encoder, ModelRole::BiEncoder)?;
        let bi_encoder = BiEncoder::load_with(
            &files,
            b.config.models.embed_max_tokens,
            b.config.models.embed_batch_size,
            b.config.models.precision,
        )?;
        let created = existing.is_none();
        let meta = match existing {
            Some(meta) => {
                if meta.embedding_dim != bi_encoder.dim() {
                    return Err(Error::IncompatibleIndex {
                        path: dir,
                        message: format!(
                            "it holds {}-dimensional vectors from {}, but the bi-encoder {} makes {}-dimensional ones",
                            meta.embedding_dim,
                            meta.bi_encoder,
                            bi_encoder.origin(),
                            bi_encoder.dim()
                        ),
                    });
                }
                // Only said to those about to index: a search does not chunk.
                if b.create_if_missing && meta.chunking != b.config.chunking {
                    tracing::warn!(
                        "the index was chunked with {:?}; keeping that instead of the configured {:?}",
                        meta.chunking,
                        b.config.chunking
                    );
                }
                meta
            }
            None => {
                std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                IndexMeta {
                    format_version: FORMAT_VERSION,
                    embedding_dim: bi_encoder.dim(),
                    bi_encoder: bi_encoder.origin().to_string(),
                    chunking: b.config.chunking.clone(),
                }
            }
        };
        let lexical = if b.create_if_missing {
            LexicalIndex::open_or_create(&dir.join(LEXICAL_DIR))?
        } else {
            LexicalIndex::open(&dir.join(LEXICAL_DIR))?
        };
        // The meta file is written after the lexical index exists, so its
        // presence means a complete (possibly empty) index. An existing one
        // is left alone: opening to read writes nothing (and so never races
        // another process's open).
        if created {
            write_meta(&meta_path, &meta)?;
        }

        let (reranker, reranker_missing) = if b.load_reranker {
            load_reranker(&b.config)
        } else {
            (None, None)
        };
        if writer.is_some() {
            // Only the writer may: a reader could delete a save in progress.
            match VectorIndex::remove_save_leftovers(&dir.join(VECTORS_DIR)) {
                Ok(removed) => {
                    for folder in removed {
                        tracing::info!(folder = %folder.display(), "removed what an interrupted vector save left");
                    }
                }
                Err(e) => tracing::warn!("could not remove an interrupted vector save: {e}"),
            }
        }
        let vectors = load_vectors(&dir, &b.config, meta.embedding_dim);
        let engine = Engine {
            dir,
            config: b.config,
            meta,
            lexical,
            vectors: RwLock::new(vectors),
            live: RwLock::new(Arc::new(HashSet::new())),
            bi_encoder,
            reranker,
            reranker_missing,
            gguf: OnceLock::new(),
            llm: OnceLock::new(),
            writer: Mutex::new(writer),
            compaction: Mutex::new(()),
        };
        engine.refresh_live()?;
        engine.repair_vectors()?;
        Ok(engine)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn bi_encoder(&self) -> &BiEncoder {
        &self.bi_encoder
    }

    /// The loaded reranker's description, or why none is loaded.
    pub fn reranker_status(&self) -> std::result::Result<String, String> {
        match (&self.reranker, &self.reranker_missing) {
            (Some(r), _) => Ok(r.describe()),
            (None, Some(why)) => Err(why.clone()),
            (None, None) => Err("the reranker was not loaded".into()),
        }
    }

    /// The in-process GGUF model of `rerank.llm.gguf`, loaded once on first
    /// use; or why it cannot be had.
    pub fn gguf_model(&self) -> std::result::Result<Arc<GgufModel>, String> {
        self.gguf
            .get_or_init(|| {
                let path = &self.config.rerank.llm.gguf;
                GgufModel::builder(path)
                    .load()
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
    }

    /// The LLM rerankers' model (`rerank.llm.backend`), made once on first
    /// use; or why it cannot be had.
    pub fn llm(&self) -> std::result::Result<Arc<dyn LanguageModel>, String> {
        self.llm
            .get_or_init(|| {
                let c = &self.config.rerank.llm;
                match c.backend {
                    LlmBackend::Gguf => self.gguf_model().map(|m| m as Arc<dyn LanguageModel>),
                    LlmBackend::Http => HttpModel::builder(&c.url)
                        .model(&c.model)
                        .api_key(std::env::var(&c.api_key_env).ok())
                        .timeout(Duration::from_secs_f64(c.timeout_secs))
                        .retries(c.retries)
                        .concurrency(c.concurrency)
                        .build()
                        .map(|m| Arc::new(m) as Arc<dyn LanguageModel>)
                        .map_err(|e| e.to_string()),
                }
            })
            .clone()
    }

    /// The description of the reranker of `kind` (loading the language
    /// model when it is an LLM reranker), or why it cannot be had.
    pub fn reranker_status_of(&self, kind: RerankerKind) -> std::result::Result<String, String> {
        self.reranker_of(kind).map(|r| r.describe())
    }

    /// The weight of the stage-1 order in the blend for `options`: its
    /// `stage1_weight` if set, else the reranker's own (a trained
    /// checkpoint's validated weight), 0 when the reranker cannot be had.
    pub fn stage1_weight_of(&self, options: &SearchOptions) -> f32 {
        // The reranker is looked up only when the query sets no weight: an
        // LLM reranker loads its model on first use.
        match options.stage1_weight {
            Some(w) => w,
            None => self
                .reranker_of(options.reranker)
                .map_or(0.0, |r| stage1_weight(options, r.as_ref())),
        }
    }

    /// The reranker of a kind, or why it cannot be had.
    fn reranker_of(
        &self,
        kind: RerankerKind,
    ) -> std::result::Result<Box<dyn Reranker + '_>, String> {
        let c = &self.config.rerank.llm;
        match kind {
            RerankerKind::CrossEncoder => match &self.reranker {
                Some(r) => Ok(Box::new(Borrowed(r.as_ref()))),
                None => Err(self
                    .reranker_missing
                    .clone()
                    .unwrap_or_else(|| "no reranker is loaded".into())),
            },
            RerankerKind::Llm => Ok(Box::new(LlmPointwiseReranker::new(
                self.llm()?,
                c.max_passage_chars,
            ))),
            RerankerKind::Listwise => Ok(Box::new(ListwiseReranker::new(
                self.llm()?,
                c.window,
                c.step,
                c.max_passage_chars,
            ))),
        }
    }

    fn refresh_live(&self) -> Result<()> {
        let live = Arc::new(self.lexical.live_chunk_ids()?);
        *self.live.write().expect("not poisoned") = live;
        Ok(())
    }

    fn live(&self) -> Arc<HashSet<ChunkId>> {
        self.live.read().expect("not poisoned").clone()
    }

    /// Bring the HNSW graph level with the last commit: a crash after a
    /// commit but before the graph was saved leaves committed chunks out
    /// of it. Their vectors are in the lexical index, so nothing is
    /// re-embedded.
    fn repair_vectors(&self) -> Result<()> {
        let live = self.live();
        let missing = {
            let vectors = self.vectors.read().expect("not poisoned");
            live.iter().filter(|id| !vectors.contains(**id)).count()
        };
        if missing == 0 {
            return Ok(());
        }
        tracing::info!(
            missing,
            "adding committed chunks missing from the vector index"
        );
        let mut points = Vec::with_capacity(missing);
        {
            let vectors = self.vectors.read().expect("not poisoned");
            self.lexical.for_each_vector(|id, v| {
                if !vectors.contains(id) {
                    points.push((id, v));
                }
            })?;
        }
        self.vectors
            .write()
            .expect("not poisoned")
            .insert(&points)?;
        self.save_repaired_vectors();
        Ok(())
    }

    /// Save the graph `repair_vectors` completed, if this process holds the
    /// writer lock or can take it for the save: a reader beside a writer
    /// (`sift search` while `sift index` runs) keeps its repair in memory,
    /// so it never saves over the writer's graph. Failing to save is not
    /// fatal: the next open repairs again.
    fn save_repaired_vectors(&self) {
        let writer = self.writer.lock().expect("not poisoned");
        // Held until the save is done; a reader lets go of it right after.
        let _borrowed = match writer.as_ref() {
            Some(_) => None,
            None => match WriterLock::try_acquire(&self.dir) {
                Ok(Some(lock)) => Some(lock),
                Ok(None) => {
                    tracing::info!(
                        "another process is writing the index: the repaired vector index stays in memory"
                    );
                    return;
                }
                Err(e) => {
                    tracing::info!("the repaired vector index stays in memory: {e}");
                    return;
                }
            },
        };
        if let Err(e) = self.save_vectors() {
            tracing::warn!("could not save the repaired vector index: {e}");
        }
    }

    /// The write mutex, with the cross-process writer lock taken (at the
    /// first write of an engine opened to read) or [`Error::IndexBusy`].
    fn lock_writer(&self) -> Result<MutexGuard<'_, Option<WriterLock>>> {
        let mut writer = self.writer.lock().expect("not poisoned");
        self.hold_writer_lock(&mut writer)?;
        Ok(writer)
    }

    /// Take the cross-process writer lock into `writer` unless it is there.
    fn hold_writer_lock(&self, writer: &mut Option<WriterLock>) -> Result<()> {
        if writer.is_none() {
            *writer = Some(WriterLock::acquire(&self.dir)?);
        }
        Ok(())
    }

    /// Index documents: new ids are added, changed documents have their
    /// chunks replaced, unchanged ones are skipped without re-embedding.
    ///
    /// Work is committed every `index.commit_every_chunks` chunks (at a
    /// document boundary); if the process dies, the index is at its last
    /// commit, with BM25, stored chunks and vectors in agreement (they are
    /// one tantivy commit; the HNSW graph is repaired from it on the next
    /// open).
    pub fn index(
        &self,
        documents: &[Document],
        progress: impl FnMut(IndexProgress),
    ) -> Result<IndexReport> {
        // The cross-process lock is taken below, only when something is to
        // be written: checking that a corpus is indexed (`sift eval` on a
        // complete index) reads, and may run beside another writer.
        let mut writer = self.writer.lock().expect("not poisoned");
        let chunker = Chunker::new(self.bi_encoder.tokenizer(), &self.meta.chunking);
        let mut report = IndexReport::default();
        // The last occurrence of an id wins, as if the documents were indexed one by one.
        let mut seen = HashSet::new();
        let mut changed: Vec<(&str, Vec<Chunk>)> = Vec::new();
        for doc in documents.iter().rev() {
            if !seen.insert(doc.id.as_str()) {
                continue;
            }
            let limit = self.config.index.max_document_bytes;
            let chunked = if limit > 0 && doc.text.len() > limit {
                Err(format!(
                    "its text is {} bytes, over index.max_document_bytes = {limit}",
                    doc.text.len()
                ))
            } else {
                chunk_one(&chunker, doc)
            };
            let chunks = match chunked {
                Ok(chunks) => chunks,
                Err(reason) => {
                    tracing::warn!(doc_id = %doc.id, "not indexed: {reason}");
                    report.failed.push(FailedDocument {
                        id: doc.id.clone(),
                        reason,
                    });
                    continue;
                }
            };
            let existing = self.lexical.document_chunk_ids(&doc.id)?;
            if chunks.is_empty() && existing.is_empty() {
                report.documents_empty += 1;
            } else if chunks.iter().map(|c| c.id).eq(existing.iter().copied()) {
                report.documents_unchanged += 1;
            } else {
                changed.push((doc.id.as_str(), chunks));
            }
        }
        changed.reverse();
        report.failed.reverse();
        if !changed.is_empty() {
            self.hold_writer_lock(&mut writer)?;
        }
        let embed = |group: &[Chunk]| -> Result<Vec<Vec<f32>>> {
            let passages: Vec<String> = group.iter().map(Chunk::passage).collect();
            Ok(self.bi_encoder.embed(&passages)?)
        };
        self.write_documents(changed, report, embed, progress)
    }

    /// Index chunks whose embeddings were computed elsewhere (an import, a
    /// benchmark that replicates a corpus): the same writes, commits and
    /// graph inserts as [`index`](Self::index), without the bi-encoder.
    ///
    /// The chunks given with one `doc_id` (adjacent or not, in the order
    /// given) are that document's chunks: they replace whatever the document
    /// had, and a document whose chunk ids are all unchanged is skipped.
    /// Every vector must have the index's dimension, finite entries and unit
    /// norm (±1e-3); it should come from the index's bi-encoder, or searches
    /// will not find it. Nothing is written when any vector is refused.
    pub fn index_embedded(
        &self,
        chunks: Vec<(Chunk, Vec<f32>)>,
        progress: impl FnMut(IndexProgress),
    ) -> Result<IndexReport> {
        let _writer = self.lock_writer()?;
        {
            let vectors = self.vectors.read().expect("not poisoned");
            for (chunk, vector) in &chunks {
                vectors.check(chunk.id, vector)?;
            }
        }
        let mut report = IndexReport::default();
        let mut by_id: std::collections::HashMap<ChunkId, Vec<f32>> =
            std::collections::HashMap::with_capacity(chunks.len());
        let mut documents: Vec<(String, Vec<Chunk>)> = Vec::new();
        let mut position: std::collections::HashMap<String, usize> =
            std::collections::HashMap::new();
        for (chunk, vector) in chunks {
            by_id.insert(chunk.id, vector);
            let i = *position.entry(chunk.doc_id.clone()).or_insert_with(|| {
                documents.push((chunk.doc_id.clone(), Vec::new()));
                documents.len() - 1
            });
            documents[i].1.push(chunk);
        }
        let mut changed = Vec::with_capacity(documents.len());
        for (doc_id, chunks) in documents {
            let existing = self.lexical.document_chunk_ids(&doc_id)?;
            if chunks.iter().map(|c| c.id).eq(existing.iter().copied()) {
                report.documents_unchanged += 1;
            } else {
                changed.push((doc_id, chunks));
            }
        }
        let embed = |group: &[Chunk]| -> Result<Vec<Vec<f32>>> {
            Ok(group
                .iter()
                .map(|c| by_id.get(&c.id).cloned().unwrap_or_default())
                .collect())
        };
        self.write_documents(changed, report, embed, progress)
    }

    /// Write the changed documents' chunks with the vectors `embed` gives
    /// for each group, committing every `index.commit_every_chunks`; the
    /// caller holds the write lock.
    fn write_documents(
        &self,
        changed: Vec<(impl AsRef<str>, Vec<Chunk>)>,
        mut report: IndexReport,
        mut embed: impl FnMut(&[Chunk]) -> Result<Vec<Vec<f32>>>,
        mut progress: impl FnMut(IndexProgress),
    ) -> Result<IndexReport> {
        let chunks_total: usize = changed.iter().map(|(_, c)| c.len()).sum();
        progress(IndexProgress {
            chunks_done: 0,
            chunks_total,
        });

        let mut staged: Vec<(ChunkId, Vec<f32>)> = Vec::new();
        let batch = self.config.models.embed_batch_size.max(1) * 4;
        let mut chunks_done = 0;
        for (doc_id, chunks) in changed {
            // The whole document is embedded before any of it is staged: a
            // document that fails leaves the index as it was, and the
            // others of the batch go on.
            let mut vectors = Vec::with_capacity(chunks.len());
            let mut failure = None;
            for group in chunks.chunks(batch) {
                match embed(group) {
                    Ok(v) if v.len() == group.len() => vectors.extend(v),
                    Ok(v) => {
                        failure = Some(format!("{} vectors for {} chunks", v.len(), group.len()));
                    }
                    Err(e) => failure = Some(e.to_string()),
                }
                chunks_done += group.len();
                progress(IndexProgress {
                    chunks_done,
                    chunks_total,
                });
                if failure.is_some() {
                    break;
                }
            }
            if let Some(reason) = failure {
                tracing::warn!(doc_id = %doc_id.as_ref(), "not indexed: {reason}");
                report.failed.push(FailedDocument {
                    id: doc_id.as_ref().to_owned(),
                    reason,
                });
                continue;
            }
            self.lexical.delete_document(doc_id.as_ref())?;
            for (chunk, vector) in chunks.iter().zip(vectors) {
                self.lexical.add(chunk, &vector)?;
                staged.push((chunk.id, vector));
            }
            report.chunks_written += chunks.len();
            report.documents_written += 1;
            if staged.len() >= self.config.index.commit_every_chunks {
                self.commit_staged(&mut staged)?;
                report.commits += 1;
            }
        }
        if report.documents_written > 0 {
            self.commit_staged(&mut staged)?;
            report.commits += 1;
            self.save_vectors()?;
        }
        Ok(report)
    }

    fn commit_staged(&self, staged: &mut Vec<(ChunkId, Vec<f32>)>) -> Result<()> {
        self.lexical.commit()?;
        self.vectors.write().expect("not poisoned").insert(staged)?;
        staged.clear();
        self.refresh_live()
    }

    fn save_vectors(&self) -> Result<()> {
        Ok(self
            .vectors
            .read()
            .expect("not poisoned")
            .save(&self.dir.join(VECTORS_DIR))?)
    }

    /// Remove a document's chunks; `false` when no such document was indexed.
    pub fn delete(&self, doc_id: &str) -> Result<bool> {
        let _writer = self.lock_writer()?;
        if self.lexical.document_chunk_ids(doc_id)?.is_empty() {
            return Ok(false);
        }
        self.lexical.delete_document(doc_id)?;
        self.lexical.commit()?;
        // The graph keeps the points; the live set hides them (until
        // `compact`).
        self.refresh_live()?;
        Ok(true)
    }

    /// Whether the graph's dead points have reached `index.compact_dead_ratio`
    /// (never when it is 0, or when there is no dead point).
    pub fn needs_compaction(&self) -> bool {
        let threshold = self.config.index.compact_dead_ratio;
        let (points, dead) = self.point_counts();
        threshold > 0.0 && dead > 0 && dead_ratio(points, dead) >= threshold
    }

    /// Graph points and how many of them are dead. Every live chunk is in
    /// the graph (commits insert it, opening repairs it), so the dead are
    /// the rest.
    fn point_counts(&self) -> (usize, usize) {
        let points = self.vectors.read().expect("not poisoned").len();
        let live = self.live().len();
        (points, points.saturating_sub(live))
    }

    /// Rebuild the HNSW graph from the live chunks' stored vectors (read
    /// from the lexical index, never re-embedded), dropping the points of
    /// replaced and deleted chunks, save it and swap it in.
    ///
    /// Searches are never held up: they use the old graph while the new one
    /// is built without any lock, and wait only for the pointer swap.
    /// Writers are not held off during the build either: a rebuild takes as
    /// long as indexing the vectors again (seconds to minutes), too long for
    /// a `POST /documents` to wait. Instead the build works on a snapshot
    /// of the committed chunks, and then, under the write lock, the chunks
    /// committed meanwhile are read by id and added (the delta is what was
    /// written during the build, small next to the graph); chunks deleted
    /// meanwhile stay as dead points, filtered like any other. The save
    /// happens under the write lock too, so no writer's save can interleave
    /// with it, and before the swap: if it fails, the old graph stays in
    /// memory and on disk. The save is atomic ([`VectorIndex::save`]): a
    /// crash at any point leaves the old or the new graph loadable, and
    /// either agrees with the lexical index after the repair on open.
    ///
    /// Needs the writer lock (taken here if the engine does not hold it
    /// yet). The old and the new graph are in memory together until the
    /// swap. One compaction runs at a time; a second call waits for it.
    pub fn compact(&self) -> Result<CompactionReport> {
        let _compacting = self.compaction.lock().expect("not poisoned");
        // Fail before the work when another process owns the index.
        drop(self.lock_writer()?);
        let (points_before, dead_before) = self.point_counts();
        let started = Instant::now();

        let hnsw = &self.config.hnsw;
        let expected = self.live().len();
        let mut fresh = VectorIndex::new(self.meta.embedding_dim, hnsw, expected);
        let mut batch: Vec<(ChunkId, Vec<f32>)> = Vec::with_capacity(COMPACT_BATCH);
        let mut failed: Option<sift_vector::Error> = None;
        self.lexical.for_each_vector(|id, vector| {
            if failed.is_some() {
                return;
            }
            batch.push((id, vector));
            if batch.len() == COMPACT_BATCH {
                if let Err(e) = fresh.insert(&batch) {
                    failed = Some(e);
                }
                batch.clear();
            }
        })?;
        if let Some(e) = failed {
            return Err(e.into());
        }
        fresh.insert(&batch)?;
        drop(batch);
        let build = started.elapsed();

        let swap_started = Instant::now();
        let writer = self.lock_writer()?;
        let live = self.live();
        let missing: Vec<ChunkId> = live
            .iter()
            .filter(|id| !fresh.contains(**id))
            .copied()
            .collect();
        let caught_up: Vec<(ChunkId, Vec<f32>)> = missing
            .iter()
            .zip(self.lexical.vectors(&missing)?)
            .filter_map(|(id, vector)| vector.map(|v| (*id, v)))
            .collect();
        fresh.insert(&caught_up)?;
        fresh.save(&self.dir.join(VECTORS_DIR))?;
        let points_after = fresh.len();
        let old = std::mem::replace(&mut *self.vectors.write().expect("not poisoned"), fresh);
        drop(writer);
        // Freed outside every lock: dropping a large graph takes a moment.
        drop(old);
        let (_, dead_after) = self.point_counts();
        let report = CompactionReport {
            points_before,
            points_after,
            dead_ratio_before: dead_ratio(points_before, dead_before),
            dead_ratio_after: dead_ratio(points_after, dead_after),
            caught_up: caught_up.len(),
            build,
            swap: swap_started.elapsed(),
        };
        tracing::info!(
            points_before,
            points_after,
            caught_up = report.caught_up,
            build_secs = build.as_secs_f64(),
            swap_secs = report.swap.as_secs_f64(),
            "vector index compacted"
        );
        Ok(report)
    }

    /// Stage 1: BM25 and dense retrieval, fused by RRF, chunks fetched.
    pub fn retrieve(&self, query: &str, options: &SearchOptions) -> Result<Retrieval> {
        self.retrieve_with_stats(query, options, None)
    }

    /// This index's BM25 statistics for the query's terms, for a caller
    /// that sums them over shards (see [`retrieve_with_stats`](Self::retrieve_with_stats)).
    pub fn bm25_stats(&self, query: &str) -> Result<Bm25Stats> {
        validate_query(query)?;
        Ok(self.lexical.bm25_stats(query)?)
    }

    /// [`retrieve`](Self::retrieve) with BM25 scored by the given
    /// corpus-wide statistics (a sharded corpus's, summed from each shard's
    /// [`bm25_stats`](Self::bm25_stats)), so that BM25 scores from
    /// different shards compare as if they came from one index.
    pub fn retrieve_with_stats(
        &self,
        query: &str,
        options: &SearchOptions,
        bm25_stats: Option<&Bm25Stats>,
    ) -> Result<Retrieval> {
        validate_query(query)?;
        options.validate()?;
        let start = Instant::now();
        let mut timings = StageTimings::default();
        let n = options.effective_retriever_depth();
        let bm25 = timings.time(Stage::Bm25, || {
            self.lexical.search_with_stats(query, n, bm25_stats)
        })?;
        let (query_vector, tokenize, embed) = self.bi_encoder.embed_query_timed(query)?;
        timings.add(Stage::Tokenize, tokenize);
        timings.add(Stage::Embed, embed);
        let live = self.live();
        let dense = timings.time(Stage::Hnsw, || {
            self.vectors
                .read()
                .expect("not poisoned")
                .search(&query_vector, n, &|id| live.contains(&id))
        });
        let fused = timings.time(Stage::Fuse, || {
            reciprocal_rank_fusion(&bm25, &dense, options.rrf_k, options.depth)
        });
        let candidates = timings.time(Stage::Fetch, || self.fetch(fused))?;
        timings.total = start.elapsed();
        Ok(Retrieval {
            bm25,
            dense,
            candidates,
            timings,
        })
    }

    fn fetch(&self, fused: Vec<sift_fusion::Fused>) -> Result<Vec<Candidate>> {
        let ids: Vec<ChunkId> = fused.iter().map(|f| f.chunk_id).collect();
        let chunks = self.lexical.chunks(&ids)?;
        // A chunk deleted between retrieval and fetch is simply dropped.
        Ok(fused
            .into_iter()
            .zip(chunks)
            .filter_map(|(f, chunk)| {
                chunk.map(|chunk| Candidate {
                    chunk,
                    scores: f.scores,
                })
            })
            .collect())
    }

    /// Fetch chunks by id (`None` for ids not in the index).
    pub fn chunks(&self, ids: &[ChunkId]) -> Result<Vec<Option<Chunk>>> {
        Ok(self.lexical.chunks(ids)?)
    }

    /// The chunks of one document, in order (empty when it is not indexed).
    pub fn document_chunks(&self, doc_id: &str) -> Result<Vec<Chunk>> {
        let ids = self.lexical.document_chunk_ids(doc_id)?;
        Ok(self.lexical.chunks(&ids)?.into_iter().flatten().collect())
    }

    /// Call `f` with every live chunk's id and stored embedding, read from
    /// the system of record (not the graph), in no particular order.
    pub fn for_each_stored_vector(&self, f: impl FnMut(ChunkId, Vec<f32>)) -> Result<()> {
        Ok(self.lexical.for_each_vector(f)?)
    }

    /// Ids of the indexed documents, sorted.
    pub fn document_ids(&self) -> Result<Vec<String>> {
        Ok(self.lexical.document_ids()?)
    }

    /// Stage 2 on given candidates with the cross-encoder: score, sort, keep
    /// `k`, by the reranker's scores alone (the input order is nobody's
    /// ranking, so nothing is blended). Without a cross-encoder the candidates keep their order and the
    /// describing `Option` is `None`.
    pub fn rerank(
        &self,
        query: &str,
        candidates: Vec<Candidate>,
        k: usize,
        timings: &mut StageTimings,
    ) -> Result<(Vec<Candidate>, Option<String>)> {
        // Given candidates have no stage-1 order to blend with.
        let options = SearchOptions::default().stage1_weight(Some(0.0));
        let (hits, by, _) = self.rerank_with(query, &options, candidates, k, timings)?;
        Ok((hits, by))
    }

    /// Stage 2 with the reranker and instruction of `options`: score, sort,
    /// keep `k`. Returns the hits, which reranker ordered them (`None`: the
    /// cross-encoder is missing and the order is stage 1's) and a notice
    /// for the user, if any. An LLM reranker that cannot be had, fails or
    /// runs past `rerank.llm.budget_secs` is an error.
    pub fn rerank_with(
        &self,
        query: &str,
        options: &SearchOptions,
        candidates: Vec<Candidate>,
        k: usize,
        timings: &mut StageTimings,
    ) -> Result<(Vec<Candidate>, Option<String>, Option<String>)> {
        let kind = options.reranker;
        let reranker = match self.reranker_of(kind) {
            Ok(r) => r,
            Err(why) if kind == RerankerKind::CrossEncoder => {
                let notice = format!("not reranked: {why}; hits are in stage-1 (hybrid RRF) order");
                return Ok((candidates.into_iter().take(k).collect(), None, Some(notice)));
            }
            Err(why) => return Err(Error::RerankerUnavailable { kind, why }),
        };
        let instruction = options.instruction.as_deref();
        let notice = (instruction.is_some() && !reranker.follows_instructions()).then(|| {
            format!("the {kind} reranker does not read instructions; use --reranker llm or listwise for that")
        });
        let budget = Duration::from_secs_f64(self.config.rerank.llm.budget_secs);
        let stage1_weight = stage1_weight(options, reranker.as_ref());
        let request = RerankQuery::new(query)
            .instruction(instruction)
            .stage1_weight(Some(stage1_weight))
            .budget(budget);
        let start = Instant::now();
        let hits = sift_rerank::rerank(reranker.as_ref(), &request, candidates, k)?;
        timings.add(Stage::Rerank, start.elapsed());
        Ok((
            hits,
            Some(describe_blend(reranker.describe(), stage1_weight)),
            notice,
        ))
    }

    /// Both stages: retrieve `depth` candidates (those passing
    /// `options.filter`), rerank them, apply `options.rescore`, return `k`.
    ///
    /// An instruction that the stage-2 reranker cannot read (the
    /// cross-encoder, or no rerank) is mapped to rescoring rules where it
    /// can be ("prefer recent", "prefer official sources"; see
    /// [`sift_core::rescore::interpret_instruction`]) and the notice says
    /// what was and was not understood.
    pub fn search(&self, query: &str, options: &SearchOptions) -> Result<SearchResponse> {
        let start = Instant::now();
        let Retrieval {
            candidates,
            mut timings,
            ..
        } = self.retrieve_filtered(query, options)?;
        let mut notices = Vec::new();
        let mut rescore = options.rescore.clone();
        let mut stage2 = options.clone();
        let reads_instruction = options.rerank && options.reranker.uses_llm();
        if let (Some(instruction), false) = (&options.instruction, reads_instruction) {
            let read = interpret_instruction(instruction);
            rescore.rules.extend(read.rules.iter().cloned());
            notices.extend(read.notice());
            stage2.instruction = None;
        }
        rescore.validate()?;
        // Rules may lift any candidate into the top k: all of them are
        // reranked and rescored before the cut.
        let keep = if rescore.is_empty() {
            options.k
        } else {
            candidates.len()
        };
        let (hits, reranked_by, notice) = if options.rerank {
            self.rerank_with(query, &stage2, candidates, keep, &mut timings)?
        } else {
            (candidates.into_iter().take(keep).collect(), None, None)
        };
        notices.extend(notice);
        let hits = if rescore.is_empty() {
            hits
        } else {
            let rescored = timings.time(Stage::Rescore, || rescore.apply(hits))?;
            rescored.into_iter().take(options.k).collect()
        };
        timings.total = start.elapsed();
        Ok(SearchResponse {
            hits,
            timings,
            reranked_by,
            notice: (!notices.is_empty()).then(|| notices.join("; ")),
        })
    }

    /// Stage 1 keeping only the candidates that pass `options.filter`:
    /// fusion keeps [`FILTER_POOL_FACTOR`] × `depth` (at most
    /// [`MAX_DEPTH`]), so that usually `depth` are left after the filter.
    pub fn retrieve_filtered(&self, query: &str, options: &SearchOptions) -> Result<Retrieval> {
        if options.filter.is_empty() {
            return self.retrieve(query, options);
        }
        let widen = |d: usize| d.saturating_mul(FILTER_POOL_FACTOR).min(MAX_DEPTH);
        let widened = options
            .clone()
            .depth(widen(options.depth))
            .retriever_depth(Some(widen(options.effective_retriever_depth())));
        let mut retrieval = self.retrieve(query, &widened)?;
        retrieval.candidates = std::mem::take(&mut retrieval.candidates)
            .into_iter()
            .filter(|c| matches_filter(&c.chunk.metadata, &options.filter))
            .take(options.depth)
            .collect();
        Ok(retrieval)
    }

    /// Mean recall@k of the HNSW search against exact search, for the
    /// given query texts (or, when none are given, up to `sample` stored
    /// chunk vectors used as queries).
    pub fn vector_recall(&self, queries: &[String], sample: usize, k: usize) -> Result<f64> {
        let vectors = self.vectors.read().expect("not poisoned");
        let query_vectors: Vec<Vec<f32>> = if queries.is_empty() {
            let step = (vectors.len() / sample.max(1)).max(1);
            let mut picked = Vec::new();
            let mut i = 0usize;
            vectors.for_each_point(|_, v| {
                if i.is_multiple_of(step) && picked.len() < sample {
                    picked.push(v.to_vec());
                }
                i += 1;
            });
            picked
        } else {
            self.bi_encoder.embed(queries)?
        };
        let live = self.live();
        Ok(sift_vector::recall_at_k(
            &vectors,
            &query_vectors,
            k,
            &|id| live.contains(&id),
        ))
    }

    pub fn stats(&self) -> Result<IndexStats> {
        let (vector_points, dead_points) = self.point_counts();
        Ok(IndexStats {
            documents: self.lexical.num_documents()?,
            chunks: self.lexical.num_chunks(),
            vector_points,
            dead_points,
            dead_ratio: dead_ratio(vector_points, dead_points),
            lexical_bytes: self.lexical.disk_bytes()?,
            embedding_dim: self.meta.embedding_dim,
            bi_encoder: self.meta.bi_encoder.clone(),
            reranker: self.reranker.as_ref().map(|r| r.describe()),
        })
    }
}

/// Every filter key is present in the metadata with an equal JSON value.
fn matches_filter(metadata: &Metadata, filter: &BTreeMap<String, serde_json::Value>) -> bool {
    filter.iter().all(|(k, v)| metadata.get(k) == Some(v))
}

/// A borrowed reranker, boxed like the ones made per query.
struct Borrowed<'a>(&'a dyn Reranker);

impl Reranker for Borrowed<'_> {
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn follows_instructions(&self) -> bool {
        self.0.follows_instructions()
    }
    fn stage1_weight(&self) -> f32 {
        self.0.stage1_weight()
    }
    fn score(
        &self,
        query: &RerankQuery<'_>,
        candidates: &[Candidate],
    ) -> sift_rerank::Result<Vec<f32>> {
        self.0.score(query, candidates)
    }
}

/// One document's chunks, or why it has none: a chunker error, or a panic
/// in the chunker or the tokenizer under it (a bug must cost one document,
/// not the job).
fn chunk_one(chunker: &Chunker, doc: &Document) -> std::result::Result<Vec<Chunk>, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| chunker.chunk(doc))) {
        Ok(Ok(chunks)) => Ok(chunks),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(format!("the chunker failed: {what}"))
        }
    }
}

fn read_meta(path: &Path) -> Result<Option<IndexMeta>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let meta: IndexMeta =
                serde_json::from_str(&text).map_err(|e| Error::IncompatibleIndex {
                    path: path.to_owned(),
                    message: format!("unreadable {META_FILE}: {e}"),
                })?;
            if meta.format_version != FORMAT_VERSION {
                return Err(Error::IncompatibleIndex {
                    path: path.to_owned(),
                    message: format!(
                        "format version {} (this build reads {FORMAT_VERSION}; chunks now carry their heading path): remove the folder and index again",
                        meta.format_version
                    ),
                });
            }
            Ok(Some(meta))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn write_meta(path: &Path, meta: &IndexMeta) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(meta).expect("serialisable");
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// The saved HNSW graph, or an empty one when there is none or it is
/// unusable (it is rebuilt from the lexical index by `repair_vectors`).
fn load_vectors(dir: &Path, config: &Config, dim: usize) -> VectorIndex {
    match VectorIndex::load(&dir.join(VECTORS_DIR), &config.hnsw) {
        Ok(Some(index)) if index.dim() == dim => index,
        Ok(Some(index)) => {
            tracing::warn!(
                "vector index has dimension {}, expected {dim}: rebuilding it",
                index.dim()
            );
            VectorIndex::new(dim, &config.hnsw, 0)
        }
        Ok(None) => VectorIndex::new(dim, &config.hnsw, 0),
        Err(e) => {
            tracing::warn!("vector index unusable ({e}): rebuilding it from the stored vectors");
            VectorIndex::new(dim, &config.hnsw, 0)
        }
    }
}

/// Share of the graph's points that are dead (0 for an empty graph).
fn dead_ratio(points: usize, dead: usize) -> f64 {
    if points == 0 {
        0.0
    } else {
        dead as f64 / points as f64
    }
}

/// The blend weight of the stage-1 order: the query's, else the reranker's.
fn stage1_weight(options: &SearchOptions, reranker: &dyn Reranker) -> f32 {
    options
        .stage1_weight
        .unwrap_or_else(|| reranker.stage1_weight())
}

/// Which reranker ordered the hits, and how much of the stage-1 order it kept.
fn describe_blend(reranker: String, stage1_weight: f32) -> String {
    if stage1_weight > 0.0 {
        format!("{reranker}, blended with the stage-1 order at weight {stage1_weight}")
    } else {
        reranker
    }
}

/// Load the configured cross-encoder; without one the engine still answers
/// with stage 1 and says why.
fn load_reranker(config: &Config) -> (Option<Box<dyn Reranker>>, Option<String>) {
    let models = &config.models;
    let load = |source: &sift_core::ModelSource| {
        ModelFiles::resolve(source, ModelRole::CrossEncoder).and_then(|files| {
            CrossEncoder::load_with(
                &files,
                config.rerank.max_length,
                config.rerank.batch_size,
                models.precision,
            )
        })
    };
    let primary = match load(&models.cross_encoder) {
        Ok(model) => return (Some(Box::new(CrossEncoderReranker::new(model))), None),
        Err(e) => e,
    };
    // The fallback stands in for a hub model that cannot be had (offline),
    // never for a folder the user named.
    let fallback = models
        .cross_encoder_fallback
        .as_ref()
        .filter(|_| models.cross_encoder.path.is_none());
    let Some(fallback) = fallback.map(locate_committed) else {
        tracing::debug!("no reranker: {primary}");
        return (None, Some(format!("no reranker available: {primary}")));
    };
    match load(&fallback) {
        Ok(model) => {
            tracing::warn!(
                "the configured cross-encoder cannot be had ({primary}); reranking with the fallback {}",
                model.origin()
            );
            let configured = models.cross_encoder.origin();
            let reranker = CrossEncoderReranker::fallback_for(model, configured);
            (Some(Box::new(reranker)), None)
        }
        Err(e) => {
            tracing::debug!("no reranker: {primary}; fallback: {e}");
            (
                None,
                Some(format!(
                    "no reranker available: {primary}; and the fallback reranker: {e}"
                )),
            )
        }
    }
}

/// A fallback named by a relative folder that the working folder lacks (the
/// committed [`sift_core::BUNDLED_RERANKER`] when sift runs outside its
/// checkout) is looked for above the running binary (`target/release/sift`
/// sits two floors under the checkout), then in the checkout this crate was
/// built from; otherwise it stays as named, and loading it says so.
fn locate_committed(source: &sift_core::ModelSource) -> sift_core::ModelSource {
    let Some(relative) = source
        .path
        .as_deref()
        .filter(|p| p.is_relative() && !p.exists())
    else {
        return source.clone();
    };
    let above_binary: Vec<PathBuf> = std::env::current_exe()
        .map(|exe| exe.ancestors().skip(1).map(Path::to_path_buf).collect())
        .unwrap_or_default();
    // crates/engine -> the workspace root.
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2);
    above_binary
        .into_iter()
        .chain(built_from.map(Path::to_path_buf))
        .map(|root| root.join(relative))
        .find(|candidate| candidate.join("config.json").is_file())
        .map(sift_core::ModelSource::local)
        .unwrap_or_else(|| source.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn filter_is_equality_on_every_key() {
        let mut meta = Metadata::new();
        meta.insert("source".into(), json!("faq"));
        meta.insert("year".into(), json!(2024));
        let f = |v: Value| -> BTreeMap<String, Value> { serde_json::from_value(v).unwrap() };
        assert!(matches_filter(&meta, &f(json!({}))));
        assert!(matches_filter(&meta, &f(json!({"source": "faq"}))));
        assert!(matches_filter(
            &meta,
            &f(json!({"source": "faq", "year": 2024}))
        ));
        assert!(!matches_filter(
            &meta,
            &f(json!({"source": "faq", "year": "2024"}))
        ));
        assert!(!matches_filter(&meta, &f(json!({"lang": "en"}))));
    }
}
