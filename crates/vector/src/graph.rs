//! Ownership of the hnsw_rs graph.
//!
//! `HnswIo::load_hnsw*` returns an `Hnsw<'b, …>` that borrows the `HnswIo`
//! (`&'a self` with `'a: 'b`). Reading hnsw_rs 0.3.5's source, the borrow is
//! only *used* when data are memory-mapped (`ReloadOptions::set_mmap`): the
//! points then hold `&'b [f32]` slices into the `HnswIo`'s `DataMap`. We never
//! mmap (points own their `Vec<f32>`), so transmuting the lifetime to
//! `'static` would work today — but it would be `unsafe` code whose soundness
//! rests on another crate's internals, and `Box::leak`ing each `HnswIo` leaks
//! on every reload. Instead [`GraphCell`] (built with `self_cell`) stores the
//! `HnswIo` next to the graph that borrows it, safely; the `HnswIo` is a few
//! dozen bytes (a path, a name, options). A graph made with `Hnsw::new` gets a
//! default, unused `HnswIo` as its owner.
//!
//! The graph type is invariant in its lifetime (it holds `RwLock`s), hence
//! `#[not_covariant]`: it is reached through `with_dependent(_mut)` closures.

use crate::distance::UnitDot;
use hnsw_rs::hnswio::HnswIo;
use hnsw_rs::prelude::Hnsw;

pub(crate) type Graph<'a> = Hnsw<'a, f32, UnitDot>;

self_cell::self_cell!(
    pub(crate) struct GraphCell {
        owner: HnswIo,
        #[not_covariant]
        dependent: Graph,
    }
);

impl GraphCell {
    /// A new, empty graph.
    pub(crate) fn fresh(
        max_nb_connection: usize,
        expected_points: usize,
        max_layer: usize,
        ef_construction: usize,
    ) -> GraphCell {
        GraphCell::new(HnswIo::default(), |_| {
            Hnsw::new(
                max_nb_connection,
                expected_points,
                max_layer,
                ef_construction,
                UnitDot,
            )
        })
    }
}
