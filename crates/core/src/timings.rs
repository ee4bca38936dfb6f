use serde::{Serialize, Serializer};
use std::time::Duration;

/// The stages of a query, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    Tokenize,
    Bm25,
    Embed,
    Hnsw,
    Fuse,
    Fetch,
    Rerank,
    /// The rescoring rules (`SearchOptions::rescore`).
    Rescore,
}

impl Stage {
    pub const ALL: [Stage; 8] = [
        Stage::Tokenize,
        Stage::Bm25,
        Stage::Embed,
        Stage::Hnsw,
        Stage::Fuse,
        Stage::Fetch,
        Stage::Rerank,
        Stage::Rescore,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Tokenize => "tokenize",
            Stage::Bm25 => "bm25",
            Stage::Embed => "embed",
            Stage::Hnsw => "hnsw",
            Stage::Fuse => "fuse",
            Stage::Fetch => "fetch",
            Stage::Rerank => "rerank",
            Stage::Rescore => "rescore",
        }
    }
}

/// Wall-clock time spent in each stage of one query.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StageTimings {
    stages: [Duration; 8],
    pub total: Duration,
}

impl StageTimings {
    pub fn add(&mut self, stage: Stage, elapsed: Duration) {
        self.stages[stage as usize] += elapsed;
    }

    pub fn get(&self, stage: Stage) -> Duration {
        self.stages[stage as usize]
    }

    /// Time the closure and charge it to `stage`.
    pub fn time<T>(&mut self, stage: Stage, f: impl FnOnce() -> T) -> T {
        let start = std::time::Instant::now();
        let out = f();
        self.add(stage, start.elapsed());
        out
    }

    /// Retrieval (everything before rerank) in this query.
    pub fn first_stage(&self) -> Duration {
        Stage::ALL
            .iter()
            .filter(|s| !matches!(s, Stage::Rerank | Stage::Rescore))
            .map(|s| self.get(*s))
            .sum()
    }
}

/// Serialised as milliseconds per stage, which is what people read.
impl Serialize for StageTimings {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(Stage::ALL.len() + 1))?;
        for stage in Stage::ALL {
            map.serialize_entry(stage.name(), &(self.get(stage).as_secs_f64() * 1e3))?;
        }
        map.serialize_entry("total", &(self.total.as_secs_f64() * 1e3))?;
        map.end()
    }
}
