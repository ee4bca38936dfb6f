//! [`LexicalIndex`]: the chunk store and BM25 retriever.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use sift_core::{Chunk, ChunkId, Metadata};
use tantivy::collector::sort_key::{SortBySimilarityScore, SortByStaticFastValue};
use tantivy::collector::TopDocs;
use tantivy::directory::error::LockError;
use tantivy::query::{Bm25StatisticsProvider, BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{FieldType, IndexRecordOption, Schema, Value};
use tantivy::{
    DocAddress, DocId, DocSet, Index, IndexReader, IndexWriter, Order, ReloadPolicy,
    TantivyDocument, TantivyError, Term, TERMINATED,
};

use crate::analysis;
use crate::schema::{self, build_schema, Fields};
use crate::{Error, Result};

/// Memory the writer may buffer before it flushes a segment, all threads together.
const WRITER_MEMORY_BYTES: usize = 100_000_000;
/// Indexing threads at most (each thread writes its own segments).
const MAX_WRITER_THREADS: usize = 2;
/// tantivy's index metadata file; its presence means "there is an index here".
const META_FILE: &str = "meta.json";

/// The system of record of the engine: every chunk, its embedding, and a BM25
/// index over its title and text, committed atomically by tantivy.
///
/// Writes are staged until [`commit`](Self::commit); searches see the index
/// as of the last commit (or [`reload`](Self::reload)). The writer, and
/// tantivy's writer lock with it, is taken on the first write only, so any
/// number of processes may read an index while one writes it.
///
/// ```
/// use sift_core::{Chunk, ChunkId, Metadata};
/// use sift_lexical::LexicalIndex;
///
/// let dir = tempfile::tempdir()?;
/// let index = LexicalIndex::open_or_create(dir.path())?;
///
/// let text = "To close an account, open Settings and choose Delete.";
/// let chunk = Chunk {
///     id: ChunkId::derive("faq", 0, text),
///     doc_id: "faq".into(),
///     ordinal: 0,
///     title: "Accounts".into(),
///     section: Vec::new(),
///     text: text.into(),
///     char_start: 0,
///     char_end: text.chars().count(),
///     metadata: Metadata::new(),
/// };
/// index.add(&chunk, &[0.25, -0.5, 1.0])?;
/// assert!(index.search("closing accounts", 10)?.is_empty()); // staged, not committed
///
/// index.commit()?;
/// let hits = index.search("closing accounts", 10)?;
/// assert_eq!(hits.len(), 1);
/// assert_eq!(hits[0].0, chunk.id);
/// assert_eq!(index.chunks(&[chunk.id])?, vec![Some(chunk)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LexicalIndex {
    path: PathBuf,
    index: Index,
    reader: IndexReader,
    fields: Fields,
    /// The name of the analyzer of the `text` field (see [`analysis`]):
    /// queries are analyzed with it.
    analyzer: &'static str,
    /// Created on the first write; `None` while this handle has only read.
    writer: Mutex<Option<Writer>>,
}

/// The tantivy writer and whether it holds changes not yet committed.
struct Writer {
    inner: IndexWriter,
    dirty: bool,
    /// Opstamp of the last commit (tantivy's `commit_opstamp` is only that
    /// of the commit the writer was opened on).
    committed: u64,
}

impl std::fmt::Debug for LexicalIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LexicalIndex")
            .field("path", &self.path)
            .field("num_chunks", &self.num_chunks())
            .finish_non_exhaustive()
    }
}

impl LexicalIndex {
    /// Open the index in `dir`, creating it (and `dir`) when `dir` has no index.
    pub fn open_or_create(dir: &Path) -> Result<Self> {
        if has_index(dir) {
            return Self::open(dir);
        }
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })?;
        let index = Index::create_in_dir(dir, build_schema())?;
        tracing::info!(path = %dir.display(), "created lexical index");
        Self::from_index(dir, index)
    }

    /// Open an existing index: [`Error::Missing`] when `dir` holds none,
    /// [`Error::Corrupt`] when tantivy cannot open it or its schema is not
    /// this crate's.
    pub fn open(dir: &Path) -> Result<Self> {
        if !has_index(dir) {
            return Err(Error::Missing {
                path: dir.to_owned(),
            });
        }
        let corrupt = |e: TantivyError| Error::Corrupt {
            path: dir.to_owned(),
            message: e.to_string(),
        };
        let index = Index::open_in_dir(dir).map_err(corrupt)?;
        check_schema(dir, &index.schema())?;
        check_checksums(dir, &index)?;
        Self::from_index(dir, index).map_err(|e| match e {
            Error::Tantivy(e) => corrupt(e),
            other => other,
        })
    }

    fn from_index(dir: &Path, index: Index) -> Result<Self> {
        // Both analyzers are registered: an index made before text in every
        // script was tokenised names the legacy one in its schema, and is
        // written and searched with it.
        for name in [analysis::CURRENT, analysis::LEGACY] {
            index.tokenizers().register(name, analysis::analyzer(name));
        }
        let analyzer = text_analyzer(&index.schema());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let fields = Fields::of(&index.schema());
        Ok(LexicalIndex {
            path: dir.to_owned(),
            index,
            reader,
            fields,
            analyzer,
            writer: Mutex::new(None),
        })
    }

    /// The distinct analyzed terms of a query, in order, by this index's
    /// analyzer.
    fn query_terms(&self, query: &str) -> Vec<String> {
        let mut analyzer = self
            .index
            .tokenizers()
            .get(self.analyzer)
            .expect("registered when the index was opened");
        let mut seen = HashSet::new();
        analysis::analyze_with(&mut analyzer, query)
            .into_iter()
            .filter(|t| seen.insert(t.clone()))
            .collect()
    }

    /// The folder of the index.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stage a chunk with its embedding (not visible to searches until commit).
    pub fn add(&self, chunk: &Chunk, vector: &[f32]) -> Result<()> {
        let f = &self.fields;
        let mut doc = TantivyDocument::new();
        doc.add_u64(f.chunk_id, chunk.id.0);
        doc.add_text(f.doc_id, &chunk.doc_id);
        doc.add_text(f.title, &chunk.title);
        doc.add_text(f.body, &chunk.text);
        let section =
            serde_json::to_string(&chunk.section).expect("a list of strings always serialises");
        doc.add_text(f.section, section);
        doc.add_text(f.text, chunk.passage());
        doc.add_u64(f.ordinal, u64::from(chunk.ordinal));
        doc.add_u64(f.char_start, chunk.char_start as u64);
        doc.add_u64(f.char_end, chunk.char_end as u64);
        let metadata =
            serde_json::to_string(&chunk.metadata).expect("a map of JSON values always serialises");
        doc.add_text(f.metadata, metadata);
        doc.add_bytes(f.vector, &encode_vector(vector));
        self.with_writer(|writer| {
            writer.add_document(doc)?;
            Ok(())
        })
    }

    /// Stage the removal of every chunk of a document. Chunks of the same
    /// document added after this call (before the commit) are kept, so
    /// delete-then-add replaces a document atomically.
    pub fn delete_document(&self, doc_id: &str) -> Result<()> {
        let term = Term::from_field_text(self.fields.doc_id, doc_id);
        self.with_writer(|writer| {
            writer.delete_term(term);
            Ok(())
        })
    }

    /// Make staged changes durable and visible; returns the commit opstamp.
    ///
    /// Without staged changes it only returns the opstamp of the last commit:
    /// it writes nothing and takes no lock. If the commit fails, the
    /// writer is dropped with whatever it had staged: the index stays at its
    /// last commit and the next write starts afresh.
    pub fn commit(&self) -> Result<u64> {
        let mut guard = self.lock_writer();
        let Some(writer) = guard.as_mut() else {
            return Ok(self.index.load_metas()?.opstamp);
        };
        if !writer.dirty {
            return Ok(writer.committed);
        }
        let opstamp = match writer.inner.commit() {
            Ok(opstamp) => {
                writer.dirty = false;
                writer.committed = opstamp;
                opstamp
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "commit failed; staged changes dropped");
                *guard = None;
                return Err(e.into());
            }
        };
        drop(guard);
        self.reader.reload()?;
        tracing::debug!(path = %self.path.display(), opstamp, num_chunks = self.num_chunks(), "committed");
        Ok(opstamp)
    }

    /// Drop staged changes.
    pub fn rollback(&self) -> Result<()> {
        let mut guard = self.lock_writer();
        if let Some(writer) = guard.as_mut() {
            if let Err(e) = writer.inner.rollback() {
                *guard = None;
                return Err(e.into());
            }
            writer.dirty = false;
        }
        Ok(())
    }

    /// See the index as of its latest commit, e.g. one made by another process.
    pub fn reload(&self) -> Result<()> {
        self.reader.reload()?;
        Ok(())
    }

    /// BM25 top `limit` over title + chunk text (one field), best first;
    /// ties are broken by ascending chunk id.
    ///
    /// The query is free text: it is analyzed like the indexed text and each
    /// distinct term is a SHOULD clause, so no input fails to
    /// parse. A query without indexable terms (only stop words or
    /// punctuation) returns no hits.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<(ChunkId, f32)>> {
        self.search_with_stats(query, limit, None)
    }

    /// This index's BM25 statistics for a query's terms: what a caller
    /// sums over shards ([`Bm25Stats::merge`]) so that every shard scores
    /// with the corpus-wide statistics (Elasticsearch's
    /// `dfs_query_then_fetch`).
    pub fn bm25_stats(&self, query: &str) -> Result<Bm25Stats> {
        let searcher = self.reader.searcher();
        let mut stats = Bm25Stats {
            num_docs: searcher.num_docs(),
            num_tokens: Bm25StatisticsProvider::total_num_tokens(&searcher, self.fields.text)?,
            doc_freqs: Default::default(),
        };
        for term in self.query_terms(query) {
            let df = searcher.doc_freq(&Term::from_field_text(self.fields.text, &term))?;
            stats.doc_freqs.insert(term, df);
        }
        Ok(stats)
    }

    /// [`search`](Self::search) scored with the given statistics (a whole
    /// sharded corpus's) instead of this index's own; terms missing from
    /// them take this index's.
    pub fn search_with_stats(
        &self,
        query: &str,
        limit: usize,
        stats: Option<&Bm25Stats>,
    ) -> Result<Vec<(ChunkId, f32)>> {
        let searcher = self.reader.searcher();
        let limit = limit.min(usize::try_from(searcher.num_docs()).unwrap_or(usize::MAX));
        let terms = self.query_terms(query);
        if terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .iter()
            .map(|term| {
                let query = TermQuery::new(
                    Term::from_field_text(self.fields.text, term),
                    IndexRecordOption::WithFreqs,
                );
                (Occur::Should, Box::new(query) as Box<dyn Query>)
            })
            .collect();
        let query = BooleanQuery::new(clauses);
        // Score descending, then chunk id ascending: deterministic whatever
        // the segment layout (DocAddress, tantivy's own tie-break, is not).
        let collector = TopDocs::with_limit(limit).order_by((
            SortBySimilarityScore,
            (
                SortByStaticFastValue::<u64>::for_field(schema::CHUNK_ID),
                Order::Asc,
            ),
        ));
        let hits = match stats {
            Some(stats) => searcher.search_with_statistics_provider(
                &query,
                &collector,
                &Global {
                    stats,
                    local: &searcher,
                },
            )?,
            None => searcher.search(&query, &collector)?,
        };
        hits.into_iter()
            .map(|((score, id), address)| match id {
                Some(id) => Ok((ChunkId(id), score)),
                None => Err(self.corrupt(format!("document {address:?} has no chunk id"))),
            })
            .collect()
    }

    /// Fetch chunks by id, in the order asked; ids not live are `None`.
    pub fn chunks(&self, ids: &[ChunkId]) -> Result<Vec<Option<Chunk>>> {
        self.stored_by_id(ids, |doc| self.decode_chunk(doc))
    }

    /// Fetch chunks' stored embeddings by id, in the order asked; ids not
    /// live are `None`. For a handful of ids (what changed while a graph
    /// was rebuilt); [`for_each_vector`](Self::for_each_vector) reads all.
    pub fn vectors(&self, ids: &[ChunkId]) -> Result<Vec<Option<Vec<f32>>>> {
        self.stored_by_id(ids, |doc| {
            let id = doc
                .get_first(self.fields.chunk_id)
                .and_then(|v| v.as_u64())
                .map(ChunkId)
                .ok_or_else(|| self.corrupt("a stored chunk has no chunk_id".into()))?;
            let bytes = doc
                .get_first(self.fields.vector)
                .and_then(|v| v.as_bytes())
                .ok_or_else(|| self.corrupt(format!("chunk {id} has no vector")))?;
            self.decode_vector(id, bytes)
        })
    }

    /// Look each id up in the `chunk_id` postings of the current searcher
    /// and decode its live stored document with `decode`.
    fn stored_by_id<T>(
        &self,
        ids: &[ChunkId],
        decode: impl Fn(&TantivyDocument) -> Result<T>,
    ) -> Result<Vec<Option<T>>> {
        let searcher = self.reader.searcher();
        let postings = searcher
            .segment_readers()
            .iter()
            .map(|segment| segment.inverted_index(self.fields.chunk_id))
            .collect::<tantivy::Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(ids.len());
        'ids: for id in ids {
            let term = Term::from_field_u64(self.fields.chunk_id, id.0);
            for (ord, (segment, inverted)) in
                searcher.segment_readers().iter().zip(&postings).enumerate()
            {
                let Some(mut docs) = inverted
                    .read_postings(&term, IndexRecordOption::Basic)
                    .map_err(TantivyError::from)?
                else {
                    continue;
                };
                let mut doc = docs.doc();
                while doc != TERMINATED {
                    if !segment.is_deleted(doc) {
                        let stored: TantivyDocument =
                            searcher.doc(DocAddress::new(ord as u32, doc))?;
                        out.push(Some(decode(&stored)?));
                        continue 'ids;
                    }
                    doc = docs.advance();
                }
            }
            out.push(None);
        }
        Ok(out)
    }

    /// Ids of the live chunks of one document, in ordinal order.
    pub fn document_chunk_ids(&self, doc_id: &str) -> Result<Vec<ChunkId>> {
        let searcher = self.reader.searcher();
        let term = Term::from_field_text(self.fields.doc_id, doc_id);
        let mut found: Vec<(u64, u64)> = Vec::new();
        for segment in searcher.segment_readers() {
            let inverted = segment.inverted_index(self.fields.doc_id)?;
            let Some(mut docs) = inverted
                .read_postings(&term, IndexRecordOption::Basic)
                .map_err(TantivyError::from)?
            else {
                continue;
            };
            let ids = segment.fast_fields().u64(schema::CHUNK_ID)?;
            let ordinals = segment.fast_fields().u64(schema::ORDINAL)?;
            let mut doc = docs.doc();
            while doc != TERMINATED {
                if !segment.is_deleted(doc) {
                    let id = ids
                        .first(doc)
                        .ok_or_else(|| self.no_value(doc, "chunk_id"))?;
                    let ordinal = ordinals
                        .first(doc)
                        .ok_or_else(|| self.no_value(doc, "ordinal"))?;
                    found.push((ordinal, id));
                }
                doc = docs.advance();
            }
        }
        found.sort_unstable();
        Ok(found.into_iter().map(|(_, id)| ChunkId(id)).collect())
    }

    /// Every live chunk id, read from the fast field (no stored document is
    /// decoded).
    pub fn live_chunk_ids(&self) -> Result<HashSet<ChunkId>> {
        let searcher = self.reader.searcher();
        let mut live = HashSet::with_capacity(searcher.num_docs() as usize);
        for segment in searcher.segment_readers() {
            let ids = segment.fast_fields().u64(schema::CHUNK_ID)?;
            for doc in segment.doc_ids_alive() {
                let id = ids
                    .first(doc)
                    .ok_or_else(|| self.no_value(doc, "chunk_id"))?;
                live.insert(ChunkId(id));
            }
        }
        Ok(live)
    }

    /// Call `f` with every live chunk's id and embedding (segment by
    /// segment, reading each store block once).
    pub fn for_each_vector(&self, mut f: impl FnMut(ChunkId, Vec<f32>)) -> Result<()> {
        let searcher = self.reader.searcher();
        for segment in searcher.segment_readers() {
            let store = segment.get_store_reader(1).map_err(TantivyError::from)?;
            for doc in store.iter::<TantivyDocument>(segment.alive_bitset()) {
                let doc = doc?;
                let id = doc
                    .get_first(self.fields.chunk_id)
                    .and_then(|v| v.as_u64())
                    .ok_or_else(|| self.corrupt("a stored chunk has no chunk_id".into()))?;
                let bytes = doc
                    .get_first(self.fields.vector)
                    .and_then(|v| v.as_bytes())
                    .ok_or_else(|| self.corrupt(format!("chunk {} has no vector", ChunkId(id))))?;
                f(ChunkId(id), self.decode_vector(ChunkId(id), bytes)?);
            }
        }
        Ok(())
    }

    /// Number of live chunks as of the last commit seen.
    pub fn num_chunks(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Number of distinct documents among the live chunks (from the
    /// `doc_id` fast field).
    pub fn num_documents(&self) -> Result<u64> {
        let searcher = self.reader.searcher();
        let segments = searcher.segment_readers();
        let mut documents: HashSet<Vec<u8>> = HashSet::new();
        for segment in segments {
            let Some(column) = segment.fast_fields().str(schema::DOC_ID)? else {
                continue;
            };
            // The doc ids of a segment's live chunks, as sorted term ordinals.
            let ords: Vec<u64> = if segment.has_deletes() {
                let mut live = vec![false; column.num_terms()];
                for doc in segment.doc_ids_alive() {
                    for ord in column.term_ords(doc) {
                        live[ord as usize] = true;
                    }
                }
                (0..live.len() as u64)
                    .filter(|&ord| live[ord as usize])
                    .collect()
            } else {
                (0..column.num_terms() as u64).collect()
            };
            if segments.len() == 1 {
                return Ok(ords.len() as u64);
            }
            // Ordinals are per segment and one document's chunks may span
            // segments: dedupe by value.
            column
                .dictionary()
                .sorted_ords_to_term_cb(&ords, |term| {
                    if !documents.contains(term) {
                        documents.insert(term.to_vec());
                    }
                })
                .map_err(TantivyError::from)?;
        }
        Ok(documents.len() as u64)
    }

    /// Ids of the documents with live chunks, sorted.
    pub fn document_ids(&self) -> Result<Vec<String>> {
        let searcher = self.reader.searcher();
        let mut ids = std::collections::BTreeSet::new();
        for segment in searcher.segment_readers() {
            let Some(column) = segment.fast_fields().str(schema::DOC_ID)? else {
                continue;
            };
            let mut live = vec![false; column.num_terms()];
            for doc in segment.doc_ids_alive() {
                for ord in column.term_ords(doc) {
                    live[ord as usize] = true;
                }
            }
            let ords: Vec<u64> = (0..live.len() as u64)
                .filter(|&ord| live[ord as usize])
                .collect();
            column
                .dictionary()
                .sorted_ords_to_term_cb(&ords, |term| {
                    ids.insert(String::from_utf8_lossy(term).into_owned());
                })
                .map_err(TantivyError::from)?;
        }
        Ok(ids.into_iter().collect())
    }

    /// Bytes on disk of the committed index: `meta.json` and every file of
    /// the segments it lists (garbage awaiting collection is not counted).
    pub fn disk_bytes(&self) -> Result<u64> {
        let segments: Vec<String> = self
            .index
            .searchable_segment_ids()?
            .iter()
            .map(|id| id.uuid_string())
            .collect();
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        let mut total = 0;
        for entry in std::fs::read_dir(&self.path).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let ours = name == META_FILE || segments.iter().any(|s| name.starts_with(s.as_str()));
            if !ours {
                continue;
            }
            match entry.metadata() {
                Ok(meta) if meta.is_file() => total += meta.len(),
                Ok(_) => {}
                // Garbage collection may remove a file between listing and stat.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            }
        }
        Ok(total)
    }

    // ---- internals ----

    fn lock_writer(&self) -> MutexGuard<'_, Option<Writer>> {
        // Nothing in this crate panics half-way through a writer call, so the
        // staged state is intact even if another thread panicked holding it.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` on the writer, creating it (and taking tantivy's lock) first
    /// if needed. A tantivy failure drops the writer, as it may be unusable.
    fn with_writer<R>(&self, f: impl FnOnce(&mut IndexWriter) -> Result<R>) -> Result<R> {
        let mut guard = self.lock_writer();
        if guard.is_none() {
            let threads = std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .clamp(1, MAX_WRITER_THREADS);
            let writer = self
                .index
                .writer_with_num_threads(threads, WRITER_MEMORY_BYTES)
                .map_err(|e| match e {
                    TantivyError::LockFailure(LockError::LockBusy, _) => Error::Locked {
                        path: self.path.clone(),
                    },
                    other => other.into(),
                })?;
            tracing::debug!(path = %self.path.display(), threads, "index writer opened");
            *guard = Some(Writer {
                committed: writer.commit_opstamp(),
                inner: writer,
                dirty: false,
            });
        }
        let writer = guard.as_mut().expect("created above");
        writer.dirty = true;
        let result = f(&mut writer.inner);
        if let Err(Error::Tantivy(e)) = &result {
            tracing::warn!(path = %self.path.display(), error = %e, "index writer failed; staged changes dropped");
            *guard = None;
        }
        result
    }

    fn decode_chunk(&self, doc: &TantivyDocument) -> Result<Chunk> {
        let f = &self.fields;
        let u64_of = |field, name: &str| {
            doc.get_first(field)
                .and_then(|v| v.as_u64())
                .ok_or_else(|| self.corrupt(format!("a stored chunk has no {name}")))
        };
        let str_of = |field, name: &str| {
            doc.get_first(field)
                .and_then(|v| v.as_str())
                .ok_or_else(|| self.corrupt(format!("a stored chunk has no {name}")))
        };
        let id = ChunkId(u64_of(f.chunk_id, schema::CHUNK_ID)?);
        let ordinal = u64_of(f.ordinal, schema::ORDINAL)?;
        let metadata: Metadata = serde_json::from_str(str_of(f.metadata, schema::METADATA)?)
            .map_err(|e| self.corrupt(format!("chunk {id}: bad metadata: {e}")))?;
        let section: Vec<String> = serde_json::from_str(str_of(f.section, schema::SECTION)?)
            .map_err(|e| self.corrupt(format!("chunk {id}: bad section: {e}")))?;
        let offset = |field, name: &str| {
            usize::try_from(u64_of(field, name)?)
                .map_err(|_| self.corrupt(format!("chunk {id}: {name} out of range")))
        };
        Ok(Chunk {
            id,
            doc_id: str_of(f.doc_id, schema::DOC_ID)?.to_owned(),
            ordinal: u32::try_from(ordinal)
                .map_err(|_| self.corrupt(format!("chunk {id}: ordinal out of range")))?,
            title: str_of(f.title, schema::TITLE)?.to_owned(),
            section,
            text: str_of(f.body, schema::BODY)?.to_owned(),
            char_start: offset(f.char_start, schema::CHAR_START)?,
            char_end: offset(f.char_end, schema::CHAR_END)?,
            metadata,
        })
    }

    fn decode_vector(&self, id: ChunkId, bytes: &[u8]) -> Result<Vec<f32>> {
        let floats = bytes.chunks_exact(4);
        if !floats.remainder().is_empty() {
            return Err(self.corrupt(format!(
                "chunk {id}: vector of {} bytes is not a whole number of f32s",
                bytes.len()
            )));
        }
        Ok(floats
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    fn corrupt(&self, message: String) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            message,
        }
    }

    fn no_value(&self, doc: DocId, field: &str) -> Error {
        self.corrupt(format!("document {doc} has no {field} fast value"))
    }
}

fn has_index(dir: &Path) -> bool {
    dir.join(META_FILE).is_file()
}

/// tantivy trusts its segment files: damaged or cut short, they make it
/// panic deep inside a read (found by fuzzing the index folder). Each one
/// ends with a CRC32 of its bytes, so reading them all once on open turns
/// damage into an error naming the files before anything else reads them.
/// The cost is one sequential read of the lexical index per open.
fn check_checksums(dir: &Path, index: &Index) -> Result<()> {
    let corrupt = |message: String| Error::Corrupt {
        path: dir.to_owned(),
        message,
    };
    // tantivy's own check subtracts its 8-byte footer trailer from the
    // file length unchecked, so a segment file cut to 4..8 bytes panics
    // inside it instead of failing it (found by the fuzz test): those are
    // damaged before tantivy looks.
    const FOOTER_TRAILER: u64 = 8;
    let metas = index
        .searchable_segment_metas()
        .map_err(|e| corrupt(format!("cannot list the segment files: {e}")))?;
    let segments: std::collections::HashSet<String> =
        metas.iter().map(|meta| meta.id().uuid_string()).collect();
    let mut short: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| corrupt(format!("cannot list the folder: {e}")))?
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let segment = name.split('.').next().unwrap_or_default();
            segments.contains(segment) && entry.metadata().is_ok_and(|m| m.len() < FOOTER_TRAILER)
        })
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    if !short.is_empty() {
        short.sort();
        return Err(corrupt(format!(
            "{} are cut short (shorter than a footer): remove the folder and index again",
            short.join(", ")
        )));
    }
    let damaged = index
        .validate_checksum()
        .map_err(|e| corrupt(format!("cannot check the segment files: {e}")))?;
    if damaged.is_empty() {
        return Ok(());
    }
    let mut names: Vec<String> = damaged.iter().map(|p| p.display().to_string()).collect();
    names.sort();
    Err(corrupt(format!(
        "{} fail their checksum (damaged or cut short): remove the folder and index again",
        names.join(", ")
    )))
}

fn check_schema(dir: &Path, found: &Schema) -> Result<()> {
    let expected = build_schema();
    if *found == expected || *found == schema::build_schema_with(analysis::LEGACY) {
        return Ok(());
    }
    let names = |schema: &Schema| {
        schema
            .fields()
            .map(|(_, entry)| entry.name().to_owned())
            .collect::<Vec<_>>()
    };
    Err(Error::Corrupt {
        path: dir.to_owned(),
        message: format!(
            "not a sift lexical index of this version (an index built by an older sift must be rebuilt: remove the folder and index again): fields {:?}, expected {:?} (with sift's options)",
            names(found),
            names(&expected)
        ),
    })
}

fn encode_vector(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The analyzer the schema's `text` field names, as one of ours.
fn text_analyzer(schema: &Schema) -> &'static str {
    let named = match schema.get_field_entry(Fields::of(schema).text).field_type() {
        FieldType::Str(options) => options.get_indexing_options().map(|i| i.tokenizer()),
        _ => None,
    };
    if named == Some(analysis::LEGACY) {
        analysis::LEGACY
    } else {
        analysis::CURRENT
    }
}

/// BM25's corpus statistics for one query: documents, tokens of the text
/// field, and each query term's document frequency.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bm25Stats {
    pub num_docs: u64,
    pub num_tokens: u64,
    pub doc_freqs: std::collections::BTreeMap<String, u64>,
}

impl Bm25Stats {
    /// The statistics of the union of disjoint indexes: sums.
    pub fn merge<'a>(parts: impl IntoIterator<Item = &'a Bm25Stats>) -> Bm25Stats {
        let mut total = Bm25Stats::default();
        for part in parts {
            total.num_docs += part.num_docs;
            total.num_tokens += part.num_tokens;
            for (term, df) in &part.doc_freqs {
                *total.doc_freqs.entry(term.clone()).or_default() += df;
            }
        }
        total
    }
}

/// Given statistics, falling back to the local searcher's.
struct Global<'a> {
    stats: &'a Bm25Stats,
    local: &'a tantivy::Searcher,
}

impl Bm25StatisticsProvider for Global<'_> {
    fn total_num_tokens(&self, _field: tantivy::schema::Field) -> tantivy::Result<u64> {
        Ok(self.stats.num_tokens)
    }
    fn total_num_docs(&self) -> tantivy::Result<u64> {
        Ok(self.stats.num_docs)
    }
    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        match term
            .value()
            .as_str()
            .and_then(|t| self.stats.doc_freqs.get(t))
        {
            Some(df) => Ok(*df),
            None => self.local.doc_freq(term),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(text: &str) -> Chunk {
        Chunk {
            id: ChunkId::derive("doc", 0, text),
            doc_id: "doc".into(),
            ordinal: 0,
            title: String::new(),
            section: Vec::new(),
            text: text.into(),
            char_start: 0,
            char_end: text.chars().count(),
            metadata: Metadata::new(),
        }
    }

    fn hits(index: &LexicalIndex, query: &str) -> usize {
        index.search(query, 10).unwrap().len()
    }

    #[test]
    fn an_index_made_before_bigrams_keeps_its_analyzer() {
        let text = "2008年汶川大地震 closing accounts";
        let legacy = tempfile::tempdir().unwrap();
        Index::create_in_dir(legacy.path(), schema::build_schema_with(analysis::LEGACY)).unwrap();
        let old = LexicalIndex::open(legacy.path()).unwrap();
        assert_eq!(old.analyzer, analysis::LEGACY);
        old.add(&chunk(text), &[1.0]).unwrap();
        old.commit().unwrap();
        old.reload().unwrap();
        // Written and searched with the legacy analyzer: its terms match,
        // English as before; a word inside a run of letters does not (the
        // simple tokenizer made one term of "2008年汶川大地震").
        assert_eq!(hits(&old, "2008年汶川大地震"), 1);
        assert_eq!(hits(&old, "汶川大地震"), 0);
        assert_eq!(hits(&old, "close account"), 1);
        assert_eq!(hits(&old, "地震"), 0);

        let current = tempfile::tempdir().unwrap();
        let new = LexicalIndex::open_or_create(current.path()).unwrap();
        assert_eq!(new.analyzer, analysis::CURRENT);
        new.add(&chunk(text), &[1.0]).unwrap();
        new.commit().unwrap();
        new.reload().unwrap();
        assert_eq!(hits(&new, "地震"), 1);
        assert_eq!(hits(&new, "汶川"), 1);
        assert_eq!(hits(&new, "close account"), 1);
        drop(new);
        assert_eq!(
            LexicalIndex::open(current.path()).unwrap().analyzer,
            analysis::CURRENT
        );
    }

    /// The measurement behind bigrams: short Chinese and Japanese pages
    /// (written for this test), each asked for by a two-character word that
    /// sits inside a longer run of its text. Printed: the share of queries
    /// whose page ranks first under each analyzer.
    #[test]
    fn bigrams_find_the_words_of_unspaced_scripts() {
        let pages = [
            "关闭账户后，您的笔记将在三十天内被永久删除。",
            "年度订阅可以在购买后十四天内申请全额退款。",
            "您可以从设置菜单导出所有笔记为文本文件。",
            "启用两步验证后，每次登录都需要输入验证码。",
            "北京是中华人民共和国的首都，人口超过两千万。",
            "アカウントを削除すると、すべてのノートが消去されます。",
            "パスワードを忘れた場合は、メールで再設定できます。",
            "東京都は日本の首都で、世界最大級の都市圏です。",
            "地震の多い国では、建物の耐震基準が厳しく定められている。",
            "新幹線は東京と大阪を約二時間半で結んでいる。",
        ];
        let queries = [
            ("账户", 0),
            ("删除", 0),
            ("退款", 1),
            ("导出", 2),
            ("验证", 3),
            ("首都", 4),
            ("人口", 4),
            ("削除", 5),
            ("再設定", 6),
            ("都市", 7),
            ("耐震", 8),
            ("大阪", 9),
        ];
        let first_rank_share = |index: &LexicalIndex| {
            for (i, page) in pages.iter().enumerate() {
                let mut c = chunk(page);
                c.doc_id = format!("page-{i}");
                c.id = ChunkId::derive(&c.doc_id, 0, page);
                index.add(&c, &[1.0]).unwrap();
            }
            index.commit().unwrap();
            index.reload().unwrap();
            let found = queries
                .iter()
                .filter(|(query, page)| {
                    let top = index.search(query, 1).unwrap();
                    let wanted = ChunkId::derive(&format!("page-{page}"), 0, pages[*page]);
                    top.first().map(|(id, _)| id) == Some(&wanted)
                })
                .count();
            found as f64 / queries.len() as f64
        };
        let legacy = tempfile::tempdir().unwrap();
        Index::create_in_dir(legacy.path(), schema::build_schema_with(analysis::LEGACY)).unwrap();
        let legacy = first_rank_share(&LexicalIndex::open(legacy.path()).unwrap());
        let current = tempfile::tempdir().unwrap();
        let current = first_rank_share(&LexicalIndex::open_or_create(current.path()).unwrap());
        println!(
            "two-character words of {} CJK pages, page ranked first: bigrams {:.2}, whitespace words {:.2}",
            pages.len(),
            current,
            legacy
        );
        assert_eq!(current, 1.0);
        assert_eq!(
            legacy, 0.0,
            "a word inside a run of unspaced text is no term of its own"
        );
    }
}
