//! [`VectorIndex`]: the HNSW graph keyed by [`ChunkId`].

use crate::distance::{self, UnitDot};
use crate::graph::GraphCell;
use crate::{Error, Result};
use hnsw_rs::prelude::{DataId, Distance, FilterT};
use sift_core::{ChunkId, HnswConfig};
use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::path::Path;

// hnsw_rs keys points by `usize`; a `ChunkId` is a full 64-bit hash.
const _: () = assert!(usize::BITS >= 64, "sift-vector needs a 64-bit target");

/// Layers of the graph (hnsw_rs's maximum; its dump format requires it).
pub(crate) const MAX_LAYER: usize = 16;
/// hnsw_rs exits the process for more than 256 links and stores the number
/// as a `u8` in its dump.
const MAX_M: usize = 255;
/// How far a vector's norm may be from 1 (f16/f32 round trips stay well
/// within this; an unnormalised embedding does not).
const NORM_TOLERANCE: f32 = 1e-3;
/// Batches at least this large use hnsw_rs's rayon `parallel_insert`.
const PARALLEL_MIN: usize = 256;
/// Into an empty graph the first points go in one by one: hnsw_rs's insert
/// races on the entry point while the graph is empty, which can leave the
/// first concurrently inserted points without links.
const SEQUENTIAL_SEED: usize = 64;
/// How many times a filtered search doubles its `ef` before falling back to
/// brute force (at 16× the walk costs about as much as a scan anyway).
const MAX_EF_DOUBLINGS: u32 = 4;

/// The dense retriever's index: an HNSW graph (hnsw_rs) of L2-normalised
/// vectors keyed by [`ChunkId`], searched by cosine similarity.
///
/// The graph is derived data. hnsw_rs cannot delete points, so replaced or
/// deleted chunks stay in it as dead points; every search takes a liveness
/// predicate from the caller (who owns the system of record) and never
/// returns a dead id. Each vector is held once, inside the graph's points.
///
/// ```
/// use sift_core::{ChunkId, HnswConfig};
/// use sift_vector::VectorIndex;
///
/// let mut index = VectorIndex::new(3, &HnswConfig::default(), 10);
/// let inserted = index
///     .insert(&[
///         (ChunkId(1), vec![1.0, 0.0, 0.0]),
///         (ChunkId(2), vec![0.0, 1.0, 0.0]),
///         (ChunkId(3), vec![0.6, 0.8, 0.0]),
///     ])
///     .unwrap();
/// assert_eq!(inserted, 3);
/// assert!(index.contains(ChunkId(3)));
///
/// // Chunk 3 was replaced: it stays in the graph but is filtered out.
/// let hits = index.search(&[0.0, 1.0, 0.0], 2, &|id| id != ChunkId(3));
/// let ids: Vec<ChunkId> = hits.iter().map(|&(id, _)| id).collect();
/// assert_eq!(ids, [ChunkId(2), ChunkId(1)]);
/// assert!((hits[0].1 - 1.0).abs() < 1e-6);
///
/// // Persist beside the system of record and reopen.
/// let dir = tempfile::tempdir().unwrap();
/// index.save(&dir.path().join("vectors")).unwrap();
/// let reopened = VectorIndex::load(&dir.path().join("vectors"), &HnswConfig::default())
///     .unwrap()
///     .expect("a saved index");
/// assert_eq!(reopened.len(), 3);
/// ```
pub struct VectorIndex {
    pub(crate) graph: GraphCell,
    /// Every id in the graph, live or dead (the vectors live in the graph).
    pub(crate) ids: HashSet<ChunkId>,
    pub(crate) dim: usize,
    /// `m` and `ef_construction` the graph is built with; current `ef_search`.
    pub(crate) config: HnswConfig,
}

impl VectorIndex {
    /// An empty index for vectors of `dim` entries. `expected_points` only
    /// sizes allocations.
    ///
    /// `config.m` is clamped to `2..=255` and `ef_*` to at least 1 (hnsw_rs
    /// limits; [`HnswConfig::validate`] rejects such values earlier).
    ///
    /// # Panics
    /// If `dim` is 0.
    pub fn new(dim: usize, config: &HnswConfig, expected_points: usize) -> Self {
        assert!(dim > 0, "a vector index needs a positive dimension");
        let config = HnswConfig {
            m: config.m.clamp(2, MAX_M),
            ef_construction: config.ef_construction.max(1),
            ef_search: config.ef_search.max(1),
        };
        let graph = GraphCell::fresh(config.m, expected_points, MAX_LAYER, config.ef_construction);
        VectorIndex {
            graph,
            ids: HashSet::with_capacity(expected_points),
            dim,
            config,
        }
    }

    /// Load the graph saved in `dir` by [`save`](Self::save).
    ///
    /// `Ok(None)` when nothing was saved there. `Err(Error::Corrupt { .. })`
    /// when files exist but cannot be used (truncated, garbage, inconsistent
    /// with `vector-meta.json`, another format version): rebuild from the
    /// system of record. Never panics on bad files. The graph keeps the `m`
    /// and `ef_construction` it was built with; `ef_search` comes from
    /// `config`.
    pub fn load(dir: &Path, config: &HnswConfig) -> Result<Option<Self>> {
        crate::persist::load(dir, config)
    }

    /// Persist into the folder `dir`, atomically: the files are written and
    /// fsynced in a temporary sibling folder that then replaces `dir` by
    /// renames, so a crash at any point leaves the previous save loadable.
    ///
    /// `dir` belongs to the index: it is replaced whole (a folder holding
    /// anything the index did not write is refused). Saves and loads are
    /// serialised within the process by a mutex and across processes by an
    /// advisory lock on `.NAME.lock` beside `dir` (shared for loads), so a
    /// load never sees a save half done. Which process may save at all is
    /// the caller's business (sift's engine: the one holding the index's
    /// writer lock, or a reader that can take it for a moment).
    pub fn save(&self, dir: &Path) -> Result<()> {
        crate::persist::save(self, dir)
    }

    /// Delete what an interrupted [`save`](Self::save) to `dir` left beside
    /// it (a half-written new folder; the old one, once `dir` is complete),
    /// returning the folders removed. It takes the save lock, so a save in
    /// progress in another process is waited for, never cut short.
    pub fn remove_save_leftovers(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
        crate::persist::remove_leftovers(dir)
    }

    /// Insert the points whose ids are not in the graph yet (ids already
    /// present, or repeated within `points`, are skipped); returns how many
    /// were inserted.
    ///
    /// Every vector must have [`dim`](Self::dim) finite entries and unit
    /// norm (±1e-3), otherwise nothing is inserted and the first offending
    /// point is reported.
    pub fn insert(&mut self, points: &[(ChunkId, Vec<f32>)]) -> Result<usize> {
        for (id, vector) in points {
            self.validate(*id, vector)?;
        }
        let mut batch_ids = HashSet::new();
        let fresh: Vec<(&Vec<f32>, DataId)> = points
            .iter()
            .filter(|(id, _)| !self.ids.contains(id) && batch_ids.insert(*id))
            .map(|(id, vector)| (vector, to_data_id(*id)))
            .collect();
        if fresh.is_empty() {
            return Ok(0);
        }
        let seed = if self.ids.is_empty() {
            SEQUENTIAL_SEED.min(fresh.len())
        } else {
            0
        };
        let (sequential, rest) = if fresh.len() - seed >= PARALLEL_MIN {
            fresh.split_at(seed)
        } else {
            (&fresh[..], &[][..])
        };
        self.graph.with_dependent(|_, graph| {
            for (vector, id) in sequential {
                graph.insert((vector.as_slice(), *id));
            }
            if !rest.is_empty() {
                graph.parallel_insert(rest);
            }
        });
        self.ids.extend(batch_ids);
        tracing::debug!(
            inserted = fresh.len(),
            total = self.len(),
            "vector index insert"
        );
        Ok(fresh.len())
    }

    /// Whether a point with this id is in the graph (live or dead).
    pub fn contains(&self, id: ChunkId) -> bool {
        self.ids.contains(&id)
    }

    /// Points in the graph, live or dead.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The graph's parameters (`m`, `ef_construction`) and current `ef_search`.
    pub fn config(&self) -> &HnswConfig {
        &self.config
    }

    /// Breadth of the graph walk at query time (at least 1; a search always
    /// uses at least `k`).
    pub fn set_ef_search(&mut self, ef: usize) {
        self.config.ef_search = ef.max(1);
    }

    /// Approximate top-`k` by cosine similarity among the ids for which
    /// `is_live` is true, sorted by similarity descending, ties by id.
    ///
    /// The query is normalised here. A query of the wrong dimension, with a
    /// non-finite entry or of zero norm matches nothing (empty result, with a
    /// warning logged).
    ///
    /// Dead points take slots in the graph walk, so the walk uses
    /// `ef = max(ef_search, k)`, doubles it (up to 16×, at most the graph
    /// size) while fewer than `k` live hits come back, and falls back to
    /// [`exact_search`](Self::exact_search) if still short: when `k` live
    /// points exist, `k` are returned.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        is_live: &(dyn Fn(ChunkId) -> bool + Sync),
    ) -> Vec<(ChunkId, f32)> {
        let Some(query) = self.prepare_query(query) else {
            return Vec::new();
        };
        let n = self.len();
        if k == 0 || n == 0 {
            return Vec::new();
        }
        let filter = |id: &DataId| is_live(to_chunk_id(*id));
        let mut ef = self.config.ef_search.max(k);
        let mut doublings = 0;
        loop {
            let found = self.graph.with_dependent(|_, graph| {
                graph.search_filter(&query, ef, ef, Some(&filter as &dyn FilterT))
            });
            let hits: Vec<(ChunkId, f32)> = found
                .iter()
                .map(|n| (to_chunk_id(n.d_id), distance::similarity(n.distance)))
                // hnsw_rs may keep its (dead) entry point in a result.
                .filter(|&(id, _)| is_live(id))
                .collect();
            if hits.len() >= k {
                return top_k(hits, k);
            }
            if ef >= n || doublings == MAX_EF_DOUBLINGS {
                break;
            }
            ef = (ef * 2).min(n);
            doublings += 1;
        }
        tracing::debug!(k, ef, "filtered graph walk came back short, scanning");
        self.scan(&query, k, is_live)
    }

    /// Exact top-`k` by brute force over the stored vectors, with the same
    /// filtering, scores and order as [`search`](Self::search). For
    /// measuring recall.
    pub fn exact_search(
        &self,
        query: &[f32],
        k: usize,
        is_live: &(dyn Fn(ChunkId) -> bool + Sync),
    ) -> Vec<(ChunkId, f32)> {
        match self.prepare_query(query) {
            Some(query) if k > 0 => self.scan(&query, k, is_live),
            _ => Vec::new(),
        }
    }

    /// Call `f` with every point of the graph (live or dead), in no
    /// particular order.
    pub fn for_each_point(&self, mut f: impl FnMut(ChunkId, &[f32])) {
        self.graph.with_dependent(|_, graph| {
            if graph.get_nb_point() == 0 {
                // hnsw_rs's point iteration assumes an entry point.
                return;
            }
            let points = graph.get_point_indexation();
            for layer in 0..=points.get_max_level_observed() as usize {
                for point in points.get_layer_iterator(layer) {
                    f(to_chunk_id(point.get_origin_id()), point.get_v());
                }
            }
        });
    }

    fn scan(
        &self,
        query: &[f32],
        k: usize,
        is_live: &(dyn Fn(ChunkId) -> bool + Sync),
    ) -> Vec<(ChunkId, f32)> {
        let mut hits = Vec::new();
        self.for_each_point(|id, vector| {
            if is_live(id) {
                hits.push((id, distance::similarity(UnitDot.eval(query, vector))));
            }
        });
        top_k(hits, k)
    }

    /// Whether `vector` could be inserted: [`dim`](Self::dim) finite
    /// entries and unit norm (±1e-3); the error names `id`.
    pub fn check(&self, id: ChunkId, vector: &[f32]) -> Result<()> {
        self.validate(id, vector)
    }

    fn validate(&self, id: ChunkId, vector: &[f32]) -> Result<()> {
        if vector.len() != self.dim {
            return Err(Error::Dimension {
                id,
                expected: self.dim,
                got: vector.len(),
            });
        }
        if !vector.iter().all(|x| x.is_finite()) {
            return Err(Error::NonFinite { id });
        }
        let norm = distance::norm(vector);
        if !((1.0 - NORM_TOLERANCE)..=(1.0 + NORM_TOLERANCE)).contains(&norm) {
            return Err(Error::NotNormalized { id, norm });
        }
        Ok(())
    }

    /// The query as a unit vector, or `None` if it cannot be one.
    fn prepare_query(&self, query: &[f32]) -> Option<Vec<f32>> {
        if query.len() != self.dim {
            tracing::warn!(
                got = query.len(),
                expected = self.dim,
                "query vector has the wrong dimension"
            );
            return None;
        }
        let norm = distance::norm(query);
        if !norm.is_finite() || norm == 0.0 {
            tracing::warn!("query vector is zero or not finite");
            return None;
        }
        Some(query.iter().map(|x| x / norm).collect())
    }
}

impl fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VectorIndex")
            .field("dim", &self.dim)
            .field("len", &self.len())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

pub(crate) fn to_data_id(id: ChunkId) -> DataId {
    id.0 as DataId
}

pub(crate) fn to_chunk_id(id: DataId) -> ChunkId {
    ChunkId(id as u64)
}

/// Similarity descending, then id ascending.
fn rank_order(a: &(ChunkId, f32), b: &(ChunkId, f32)) -> Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

fn top_k(mut hits: Vec<(ChunkId, f32)>, k: usize) -> Vec<(ChunkId, f32)> {
    if k == 0 {
        return Vec::new();
    }
    if hits.len() > k {
        hits.select_nth_unstable_by(k - 1, rank_order);
        hits.truncate(k);
    }
    hits.sort_unstable_by(rank_order);
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_score_then_id() {
        let hits = vec![
            (ChunkId(5), 0.5),
            (ChunkId(2), 0.9),
            (ChunkId(9), 0.9),
            (ChunkId(1), 0.1),
            (ChunkId(3), 0.9),
        ];
        let top = top_k(hits, 4);
        let ids: Vec<u64> = top.iter().map(|h| h.0 .0).collect();
        assert_eq!(ids, [2, 3, 9, 5]);
        assert!(top_k(vec![(ChunkId(1), 1.0)], 0).is_empty());
    }

    #[test]
    fn vector_index_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<VectorIndex>();
    }
}
