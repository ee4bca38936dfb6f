//! Pieces of the growth benchmark (`sift-growth`, `just bench-growth`):
//! replicating a corpus with fresh ids, the process's resident memory, and
//! the size of an index on disk.

use crate::{Error, Result};
use sift_core::{Chunk, ChunkId};
use std::path::Path;

/// The `i`-th chunk of a corpus replicated past its end: chunk `i mod n`
/// of `originals` in replica `i / n`. Replica 0 is the original itself;
/// replica `r > 0` is the same text under the document id `DOC~rR` (so a
/// fresh [`ChunkId`]) with the original's vector moved by
/// [`perturb`] (`noise`, seeded by the new id).
///
/// # Panics
/// If `originals` is empty.
pub fn replica(originals: &[(Chunk, Vec<f32>)], i: usize, noise: f32) -> (Chunk, Vec<f32>) {
    let n = originals.len();
    let (chunk, vector) = &originals[i % n];
    let r = i / n;
    if r == 0 {
        return (chunk.clone(), vector.clone());
    }
    let doc_id = format!("{}~r{r}", chunk.doc_id);
    let id = ChunkId::derive(&doc_id, chunk.ordinal, &chunk.text);
    let vector = perturb(vector, noise, id.0);
    (
        Chunk {
            id,
            doc_id,
            ..chunk.clone()
        },
        vector,
    )
}

/// `v + noise · g`, normalised, where `g` has independent entries of mean
/// 0 and variance `1 / dim` (so `|g| ≈ 1`) drawn from a generator seeded
/// by `seed`: the cosine to `v` is about `1 / sqrt(1 + noise²)`.
pub fn perturb(v: &[f32], noise: f32, seed: u64) -> Vec<f32> {
    if noise == 0.0 {
        return v.to_vec();
    }
    let mut state = seed;
    let scale = noise / (v.len() as f32).sqrt();
    let mut out: Vec<f32> = v
        .iter()
        .map(|x| x + scale * standard_normal(&mut state))
        .collect();
    let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        out.iter_mut().for_each(|x| *x /= norm);
    }
    out
}

/// splitmix64.
fn next_u64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A standard normal draw (Box–Muller).
fn standard_normal(state: &mut u64) -> f32 {
    let u = |s: &mut u64| ((next_u64(s) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let (u1, u2) = (u(state), u(state));
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Resident memory of a process, from `/proc/PID/status`, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss: u64,
    /// `VmHWM`: the peak of `rss`.
    pub peak_rss: u64,
    /// `RssAnon`: resident heap and stacks (the graph, the model's
    /// transposed weights, caches).
    pub anon: u64,
    /// `RssFile`: resident pages of mapped files (the model file, the
    /// tantivy index), shared with the page cache.
    pub file: u64,
}

impl Memory {
    /// This process's memory (`/proc/self/status`; Linux only).
    pub fn of_self() -> Result<Memory> {
        Self::of_status_file(Path::new("/proc/self/status"))
    }

    /// Another process's memory (`/proc/PID/status`).
    pub fn of_pid(pid: u32) -> Result<Memory> {
        Self::of_status_file(&Path::new("/proc").join(pid.to_string()).join("status"))
    }

    fn of_status_file(path: &Path) -> Result<Memory> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Ok(Self::parse(&text))
    }

    /// Read the `kB` fields of a `status` file; missing ones are 0.
    pub fn parse(status: &str) -> Memory {
        let mut m = Memory::default();
        for line in status.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let kb = value
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok());
            let Some(kb) = kb else { continue };
            let field = match key {
                "VmRSS" => &mut m.rss,
                "VmHWM" => &mut m.peak_rss,
                "RssAnon" => &mut m.anon,
                "RssFile" => &mut m.file,
                _ => continue,
            };
            *field = kb * 1024;
        }
        m
    }
}

/// Bytes of every file under `dir`, recursively.
pub fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let meta = entry.metadata().map_err(|e| Error::io(entry.path(), e))?;
        if meta.is_dir() {
            total += dir_bytes(&entry.path())?;
        } else {
            total += meta.len();
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(dim: usize, seed: u64) -> Vec<f32> {
        perturb(&vec![0.0; dim], 1.0, seed)
    }

    fn chunk(doc: &str, ordinal: u32, text: &str) -> Chunk {
        Chunk {
            id: ChunkId::derive(doc, ordinal, text),
            doc_id: doc.into(),
            ordinal,
            title: "T".into(),
            section: Vec::new(),
            text: text.into(),
            char_start: 0,
            char_end: text.len(),
            metadata: Default::default(),
        }
    }

    #[test]
    fn perturbation_is_small_deterministic_and_unit() {
        let v = unit(384, 1);
        assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
        let a = perturb(&v, 0.1, 42);
        let b = perturb(&v, 0.1, 42);
        assert_eq!(a, b);
        assert_ne!(a, perturb(&v, 0.1, 43));
        let norm = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        let cos: f32 = a.iter().zip(&v).map(|(x, y)| x * y).sum();
        // 1 / sqrt(1.01) = 0.995; the draw's own norm varies by ~5 %.
        assert!((0.99..0.999).contains(&cos), "{cos}");
        assert_eq!(perturb(&v, 0.0, 7), v);
    }

    #[test]
    fn replicas_have_fresh_ids_and_the_same_text() {
        let originals = vec![
            (chunk("a", 0, "alpha"), unit(8, 1)),
            (chunk("a", 1, "beta"), unit(8, 2)),
            (chunk("b", 0, "gamma"), unit(8, 3)),
        ];
        // Replica 0 is the original.
        assert_eq!(replica(&originals, 1, 0.1), originals[1]);
        let (c, v) = replica(&originals, 4, 0.1);
        assert_eq!(c.doc_id, "a~r1");
        assert_eq!((c.ordinal, c.text.as_str()), (1, "beta"));
        assert_eq!(c.id, ChunkId::derive("a~r1", 1, "beta"));
        assert_ne!(v, originals[1].1);
        let (c2, _) = replica(&originals, 7, 0.1);
        assert_eq!(c2.doc_id, "a~r2");
        let ids: std::collections::HashSet<ChunkId> =
            (0..30).map(|i| replica(&originals, i, 0.1).0.id).collect();
        assert_eq!(ids.len(), 30);
        assert_eq!(replica(&originals, 4, 0.1), replica(&originals, 4, 0.1));
    }

    #[test]
    fn status_fields_in_bytes() {
        let status = "Name:\tsift\nVmPeak:\t  999 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nRssAnon:\t     700 kB\nRssFile:\t     300 kB\nThreads:\t3\n";
        let m = Memory::parse(status);
        assert_eq!(
            m,
            Memory {
                rss: 1024 * 1024,
                peak_rss: 2048 * 1024,
                anon: 700 * 1024,
                file: 300 * 1024,
            }
        );
        assert_eq!(Memory::parse("garbage"), Memory::default());
        #[cfg(target_os = "linux")]
        {
            let me = Memory::of_self().unwrap();
            assert!(me.rss > 0 && me.peak_rss >= me.rss);
        }
    }

    #[test]
    fn dir_bytes_counts_nested_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), [0u8; 10]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), [0u8; 5]).unwrap();
        assert_eq!(dir_bytes(dir.path()).unwrap(), 15);
    }
}
