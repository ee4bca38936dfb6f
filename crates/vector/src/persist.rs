//! Saving and loading a [`VectorIndex`].
//!
//! A save folder holds hnsw_rs's dump (`vectors.hnsw.graph`,
//! `vectors.hnsw.data`) and `vector-meta.json`, written last, which records
//! the dimension, point count, format version, graph parameters and the
//! length and xxh3 hash of both dump files.
//!
//! The hashes are what make loading safe: hnsw_rs's loader trusts its input.
//! On a truncated data file it calls `std::process::exit(1)`; garbage lengths
//! make it allocate without bound (an abort, not a panic) or read past a
//! buffer in an `unsafe` block. None of that can be caught, so the loader is
//! only ever handed files that are byte-for-byte what hnsw_rs wrote. Its
//! panics (`unwrap`s, asserts) are still caught with `catch_unwind` as a
//! second line of defence.
//!
//! Saving is atomic by renames within the parent folder of `dir`:
//! 1. everything is written and fsynced in `.NAME.saving` (a stale one, left
//!    by an interrupted save, is deleted first);
//! 2. `dir` is renamed to `.NAME.previous`, `.NAME.saving` to `dir`, and the
//!    parent folder is fsynced;
//! 3. `.NAME.previous` is deleted.
//!
//! A crash before step 2 leaves `dir` untouched; a crash between the two
//! renames leaves `dir` missing and `.NAME.previous` complete, which `load`
//! falls back to.
//!
//! Across processes, a save holds an exclusive advisory lock (flock) on
//! `.NAME.lock` beside `dir` and a load a shared one: a reader in another
//! process never sees the renames half done, nor `.NAME.previous` deleted
//! under it while it reads. Within a process a mutex does the same.

use crate::distance::UnitDot;
use crate::graph::GraphCell;
use crate::index::MAX_LAYER;
use crate::{Error, Result, VectorIndex};
use fs4::fs_std::FileExt;
use hnsw_rs::api::AnnT;
use hnsw_rs::hnswio::{load_description, HnswIo};
use serde::{Deserialize, Serialize};
use sift_core::HnswConfig;
use std::any::Any;
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use xxhash_rust::xxh3::Xxh3;

pub(crate) const META_FILE: &str = "vector-meta.json";
const BASENAME: &str = "vectors";
const FORMAT_VERSION: u32 = 1;
const GRAPH_SUFFIX: &str = ".hnsw.graph";
const DATA_SUFFIX: &str = ".hnsw.data";

/// Serialises saves and loads within the process, so a load never sees a
/// save's renames half done.
static LOCK: Mutex<()> = Mutex::new(());

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    format_version: u32,
    dim: usize,
    point_count: usize,
    /// Parameters the graph was built with (and `ef_search` at save time).
    hnsw: HnswConfig,
    /// `None` for an empty index: hnsw_rs cannot dump an empty graph.
    files: Option<DumpFiles>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DumpFiles {
    basename: String,
    graph: FileCheck,
    data: FileCheck,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCheck {
    len: u64,
    /// xxh3-64 of the whole file, 16 hex digits.
    xxh3: String,
}

/// The folder and its two siblings used while saving.
pub(crate) struct Slots {
    parent: PathBuf,
    pub(crate) saving: PathBuf,
    pub(crate) previous: PathBuf,
    /// Locked exclusively by a save, shared by a load (across processes).
    lock: PathBuf,
}

pub(crate) fn slots(dir: &Path) -> Result<Slots> {
    let name = dir.file_name().ok_or_else(|| Error::Io {
        path: dir.to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the vector index folder needs a name",
        ),
    })?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = name.to_string_lossy();
    Ok(Slots {
        saving: parent.join(format!(".{name}.saving")),
        previous: parent.join(format!(".{name}.previous")),
        lock: parent.join(format!(".{name}.lock")),
        parent,
    })
}

/// Where a save may be stopped, to test crash safety.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) enum CrashPoint {
    /// Dump written, no meta yet.
    AfterDump,
    /// `dir` renamed away, the new folder not yet in place.
    BetweenRenames,
}

pub(crate) fn save(index: &VectorIndex, dir: &Path) -> Result<()> {
    save_until(index, dir, None)
}

/// Save, returning early (as a crash would) at `crash`.
pub(crate) fn save_until(index: &VectorIndex, dir: &Path, crash: Option<CrashPoint>) -> Result<()> {
    let _guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let slots = slots(dir)?;
    fs::create_dir_all(&slots.parent).map_err(Error::io(&slots.parent))?;
    let _exclusive = lock_file(&slots.lock, Access::Save)?;
    if dir.exists() {
        check_replaceable(dir)?;
    }
    remove_if_exists(&slots.saving)?;
    fs::create_dir(&slots.saving).map_err(Error::io(&slots.saving))?;

    let files = if index.is_empty() {
        None
    } else {
        Some(dump(index, &slots.saving)?)
    };
    if crash == Some(CrashPoint::AfterDump) {
        return Ok(());
    }
    let meta = Meta {
        format_version: FORMAT_VERSION,
        dim: index.dim,
        point_count: index.len(),
        hnsw: index.config.clone(),
        files,
    };
    let json = serde_json::to_vec_pretty(&meta).expect("meta is always serialisable");
    write_synced(&slots.saving.join(META_FILE), &json)?;
    sync_dir(&slots.saving)?;

    if dir.exists() {
        // `dir` is the latest complete save; an old `.previous` is stale.
        remove_if_exists(&slots.previous)?;
        fs::rename(dir, &slots.previous).map_err(Error::io(dir))?;
    }
    if crash == Some(CrashPoint::BetweenRenames) {
        return Ok(());
    }
    fs::rename(&slots.saving, dir).map_err(Error::io(dir))?;
    sync_dir(&slots.parent)?;
    remove_if_exists(&slots.previous)?;
    sync_dir(&slots.parent)?;
    tracing::debug!(dir = %dir.display(), points = index.len(), "vector index saved");
    Ok(())
}

/// Dump the graph into `folder` and fsync the files.
fn dump(index: &VectorIndex, folder: &Path) -> Result<DumpFiles> {
    let dumped = catch_unwind(AssertUnwindSafe(|| {
        index
            .graph
            .with_dependent(|_, graph| graph.file_dump(folder, BASENAME))
    }));
    let basename = match dumped {
        Ok(Ok(basename)) => basename,
        Ok(Err(e)) => return Err(save_error(folder, format!("hnsw_rs dump failed: {e:#}"))),
        Err(panic) => {
            let reason = format!("hnsw_rs dump panicked: {}", panic_message(&*panic));
            return Err(save_error(folder, reason));
        }
    };
    let mut checks = Vec::with_capacity(2);
    for suffix in [GRAPH_SUFFIX, DATA_SUFFIX] {
        let path = folder.join(format!("{basename}{suffix}"));
        File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(Error::io(&path))?;
        checks.push(check_file(&path).map_err(Error::io(&path))?);
    }
    let data = checks.pop().expect("two files");
    let graph = checks.pop().expect("two files");
    Ok(DumpFiles {
        basename,
        graph,
        data,
    })
}

pub(crate) fn load(dir: &Path, config: &HnswConfig) -> Result<Option<VectorIndex>> {
    let _guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let slots = slots(dir)?;
    let _shared = lock_file(&slots.lock, Access::Load)?;
    if dir.join(META_FILE).is_file() {
        return load_folder(dir, config).map(Some);
    }
    if slots.previous.join(META_FILE).is_file() {
        tracing::warn!(
            dir = %dir.display(),
            "a save was interrupted between its renames; loading the previous save"
        );
        return load_folder(&slots.previous, config).map(Some);
    }
    if has_dump_files(dir) {
        return Err(Error::corrupt(
            dir,
            format!("graph files without {META_FILE} (an interrupted write?)"),
        ));
    }
    Ok(None)
}

/// Delete what an interrupted save left beside `dir`: its half-written
/// `.NAME.saving`, and `.NAME.previous` once `dir` is complete again.
/// Returns the folders removed. A later save would remove them too; this
/// frees their disk space at once.
pub(crate) fn remove_leftovers(dir: &Path) -> Result<Vec<PathBuf>> {
    let _guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let slots = slots(dir)?;
    if !slots.saving.exists() && !slots.previous.exists() {
        return Ok(Vec::new());
    }
    let _exclusive = lock_file(&slots.lock, Access::Save)?;
    let mut removed = Vec::new();
    if slots.saving.exists() {
        remove_if_exists(&slots.saving)?;
        removed.push(slots.saving.clone());
    }
    // Without a complete `dir`, `.previous` is the save to load: kept.
    if slots.previous.exists() && dir.join(META_FILE).is_file() {
        remove_if_exists(&slots.previous)?;
        removed.push(slots.previous.clone());
    }
    if !removed.is_empty() {
        sync_dir(&slots.parent)?;
    }
    Ok(removed)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Shared: loads exclude saves, not each other.
    Load,
    /// Exclusive.
    Save,
}

/// Take the cross-process lock on `path` (blocking: a save or load takes
/// seconds at most), released when the returned file is dropped.
///
/// A load where the lock file cannot be created (a read-only copy of an
/// index) goes ahead unlocked: nothing can be saving there.
fn lock_file(path: &Path, access: Access) -> Result<Option<File>> {
    let opened = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if access == Access::Load => {
            tracing::debug!(path = %path.display(), error = %e, "loading without the save lock");
            return Ok(None);
        }
        Err(e) => return Err(Error::io(path)(e)),
    };
    // Called as trait functions: std's `File` grew inherent methods of the
    // same names after this workspace's minimum Rust version.
    let locked = match access {
        Access::Load => FileExt::lock_shared(&file),
        Access::Save => FileExt::lock_exclusive(&file),
    };
    locked.map_err(Error::io(path))?;
    Ok(Some(file))
}

fn load_folder(folder: &Path, config: &HnswConfig) -> Result<VectorIndex> {
    let meta_path = folder.join(META_FILE);
    let bytes = fs::read(&meta_path).map_err(Error::io(&meta_path))?;
    let meta: Meta = serde_json::from_slice(&bytes)
        .map_err(|e| Error::corrupt(&meta_path, format!("unreadable {META_FILE}: {e}")))?;
    if meta.format_version != FORMAT_VERSION {
        return Err(Error::corrupt(
            &meta_path,
            format!(
                "format version {} (this build reads {FORMAT_VERSION})",
                meta.format_version
            ),
        ));
    }
    if meta.dim == 0 {
        return Err(Error::corrupt(&meta_path, "dimension 0"));
    }
    let Some(files) = &meta.files else {
        if meta.point_count != 0 {
            return Err(Error::corrupt(
                &meta_path,
                format!("{} points but no graph files", meta.point_count),
            ));
        }
        return Ok(VectorIndex::new(meta.dim, config, 0));
    };
    if meta.point_count == 0 {
        return Err(Error::corrupt(&meta_path, "graph files for 0 points"));
    }
    let basename = &files.basename;
    if basename.is_empty() || basename.contains(['/', '\\']) || basename.starts_with('.') {
        return Err(Error::corrupt(
            &meta_path,
            format!("bad basename {basename:?}"),
        ));
    }

    // 1. The files are exactly the ones the meta describes.
    let graph_path = folder.join(format!("{basename}{GRAPH_SUFFIX}"));
    let data_path = folder.join(format!("{basename}{DATA_SUFFIX}"));
    for (path, expected) in [(&graph_path, &files.graph), (&data_path, &files.data)] {
        let actual = check_file(path).map_err(|e| Error::corrupt(path, e.to_string()))?;
        if actual.len != expected.len {
            return Err(Error::corrupt(
                path,
                format!("{} bytes, {META_FILE} says {}", actual.len, expected.len),
            ));
        }
        if actual != *expected {
            return Err(Error::corrupt(
                path,
                format!("checksum differs from {META_FILE}"),
            ));
        }
    }

    // 2. The meta agrees with hnsw_rs's own header and the data file layout:
    //    magic + dim, then per point magic + id + byte length + the vector.
    let expected_data_len = (meta.point_count as u128) * (4 + 8 + 8 + 4 * meta.dim as u128) + 12;
    if files.data.len as u128 != expected_data_len {
        return Err(Error::corrupt(
            &data_path,
            format!(
                "{} bytes cannot hold {} vectors of dimension {}",
                files.data.len, meta.point_count, meta.dim
            ),
        ));
    }
    check_description(&graph_path, &meta)?;

    // 3. Load, catching hnsw_rs's panics.
    let io = HnswIo::new(folder, basename);
    let loaded = catch_unwind(AssertUnwindSafe(|| {
        GraphCell::try_new(io, |io| io.load_hnsw_with_dist::<f32, UnitDot>(UnitDot))
    }));
    let mut graph = match loaded {
        Ok(Ok(graph)) => graph,
        Ok(Err(e)) => return Err(Error::corrupt(&graph_path, format!("hnsw_rs: {e:#}"))),
        Err(panic) => {
            return Err(Error::corrupt(
                &graph_path,
                format!("hnsw_rs panicked: {}", panic_message(&*panic)),
            ))
        }
    };
    // hnsw_rs turns candidate extension on for reloaded graphs; keep
    // inserting as a fresh graph does.
    graph.with_dependent_mut(|_, g| g.set_extend_candidates(false));
    let nb_point = graph.with_dependent(|_, g| g.get_nb_point());
    if nb_point != meta.point_count {
        return Err(Error::corrupt(
            &graph_path,
            format!(
                "{nb_point} points loaded, {META_FILE} says {}",
                meta.point_count
            ),
        ));
    }

    let config = HnswConfig {
        ef_search: config.ef_search.max(1),
        ..meta.hnsw.clone()
    };
    let mut index = VectorIndex {
        graph,
        ids: HashSet::with_capacity(meta.point_count),
        dim: meta.dim,
        config,
    };
    let (mut seen, mut wrong_dim) = (0usize, 0usize);
    let mut ids = HashSet::with_capacity(meta.point_count);
    index.for_each_point(|id, vector| {
        seen += 1;
        wrong_dim += usize::from(vector.len() != meta.dim);
        ids.insert(id);
    });
    if seen != meta.point_count || ids.len() != seen || wrong_dim != 0 {
        return Err(Error::corrupt(
            &graph_path,
            format!(
                "{seen} points ({} distinct ids, {wrong_dim} of the wrong dimension), expected {}",
                ids.len(),
                meta.point_count
            ),
        ));
    }
    index.ids = ids;
    tracing::debug!(folder = %folder.display(), points = seen, "vector index loaded");
    Ok(index)
}

/// hnsw_rs's header of the graph file must match the meta.
fn check_description(graph_path: &Path, meta: &Meta) -> Result<()> {
    let mut reader = BufReader::new(File::open(graph_path).map_err(Error::io(graph_path))?);
    let description = catch_unwind(AssertUnwindSafe(|| load_description(&mut reader)));
    let description = match description {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return Err(Error::corrupt(graph_path, format!("bad header: {e:#}"))),
        Err(panic) => {
            return Err(Error::corrupt(
                graph_path,
                format!("bad header: {}", panic_message(&*panic)),
            ))
        }
    };
    let mismatch = |what: &str, got: String, want: String| {
        Error::corrupt(
            graph_path,
            format!("header says {what} {got}, expected {want}"),
        )
    };
    if description.nb_point != meta.point_count {
        return Err(mismatch(
            "point count",
            description.nb_point.to_string(),
            meta.point_count.to_string(),
        ));
    }
    if description.dimension != meta.dim {
        return Err(mismatch(
            "dimension",
            description.dimension.to_string(),
            meta.dim.to_string(),
        ));
    }
    if description.distname != std::any::type_name::<UnitDot>() {
        return Err(mismatch(
            "distance",
            description.distname.clone(),
            std::any::type_name::<UnitDot>().into(),
        ));
    }
    if description.t_name != std::any::type_name::<f32>() {
        return Err(mismatch(
            "data type",
            description.t_name.clone(),
            "f32".into(),
        ));
    }
    if description.nb_layer as usize != MAX_LAYER {
        return Err(mismatch(
            "layers",
            description.nb_layer.to_string(),
            MAX_LAYER.to_string(),
        ));
    }
    Ok(())
}

/// Length and xxh3 of a file.
fn check_file(path: &Path) -> std::io::Result<FileCheck> {
    let mut file = File::open(path)?;
    let mut hasher = Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok(FileCheck {
        len,
        xxh3: format!("{:016x}", hasher.digest()),
    })
}

/// `dir` may be replaced by a save only if it holds nothing but what the
/// index writes.
fn check_replaceable(dir: &Path) -> Result<()> {
    let refuse = |reason: String| Error::Save {
        path: dir.to_owned(),
        reason,
    };
    if !dir.is_dir() {
        return Err(refuse("it exists and is not a folder".into()));
    }
    for entry in fs::read_dir(dir).map_err(Error::io(dir))? {
        let entry = entry.map_err(Error::io(dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name == META_FILE || name.ends_with(GRAPH_SUFFIX) || name.ends_with(DATA_SUFFIX)) {
            return Err(refuse(format!(
                "refusing to replace the folder: it holds {name:?}, which the vector index did not write"
            )));
        }
    }
    Ok(())
}

fn has_dump_files(dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        name.ends_with(GRAPH_SUFFIX) || name.ends_with(DATA_SUFFIX)
    })
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Io {
            path: path.to_owned(),
            source: e,
        }),
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = File::create(path).map_err(Error::io(path))?;
    file.write_all(bytes).map_err(Error::io(path))?;
    file.sync_all().map_err(Error::io(path))
}

/// fsync a folder so the entries (files created, renames) are durable.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(Error::io(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn save_error(path: &Path, reason: String) -> Error {
    Error::Save {
        path: path.to_owned(),
        reason,
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sift_core::ChunkId;

    fn index_with(n: u64, dim: usize) -> VectorIndex {
        let mut index = VectorIndex::new(dim, &HnswConfig::default(), n as usize);
        let points: Vec<(ChunkId, Vec<f32>)> = (0..n)
            .map(|i| {
                let mut v = vec![0.0; dim];
                v[i as usize % dim] = 1.0;
                v[(i as usize + 1) % dim] = if i % 2 == 0 { 1.0 } else { -1.0 };
                let norm = 2f32.sqrt();
                (ChunkId(i), v.iter().map(|x| x / norm).collect())
            })
            .collect();
        index.insert(&points).unwrap();
        index
    }

    fn load_len(dir: &Path) -> usize {
        load(dir, &HnswConfig::default())
            .unwrap()
            .expect("a save")
            .len()
    }

    #[test]
    fn crash_before_the_renames_keeps_the_previous_save() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vec");
        index_with(10, 8).save(&dir).unwrap();
        save_until(&index_with(20, 8), &dir, Some(CrashPoint::AfterDump)).unwrap();
        let slots = slots(&dir).unwrap();
        assert!(
            slots.saving.exists(),
            "the interrupted save left its folder"
        );
        assert_eq!(load_len(&dir), 10);

        index_with(30, 8).save(&dir).unwrap();
        assert_eq!(load_len(&dir), 30);
        assert!(!slots.saving.exists() && !slots.previous.exists());
    }

    #[test]
    fn crash_between_the_renames_falls_back_to_the_previous_save() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vec");
        index_with(10, 8).save(&dir).unwrap();
        save_until(&index_with(20, 8), &dir, Some(CrashPoint::BetweenRenames)).unwrap();
        assert!(!dir.exists());
        assert_eq!(load_len(&dir), 10, "previous save");

        index_with(30, 8).save(&dir).unwrap();
        assert_eq!(load_len(&dir), 30);
        let slots = slots(&dir).unwrap();
        assert!(!slots.saving.exists() && !slots.previous.exists());
    }

    /// Files that pass the checksums yet are cut short (a meta rewritten to
    /// match them): hnsw_rs panics on them, which must come back as Corrupt.
    #[test]
    fn hnsw_rs_panics_on_consistent_but_truncated_files_become_corrupt() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vec");
        index_with(50, 8).save(&dir).unwrap();
        let graph_path = dir.join(format!("{BASENAME}{GRAPH_SUFFIX}"));
        let graph = fs::read(&graph_path).unwrap();
        // Keep hnsw_rs's header and the first layer's header, cut inside the
        // first point.
        let mut reader = std::io::Cursor::new(&graph);
        load_description(&mut reader).unwrap();
        let cut = reader.position() as usize + 1 + 4 + 8 + 6;
        fs::write(&graph_path, &graph[..cut]).unwrap();

        let meta_path = dir.join(META_FILE);
        let mut meta: Meta = serde_json::from_slice(&fs::read(&meta_path).unwrap()).unwrap();
        meta.files.as_mut().unwrap().graph = check_file(&graph_path).unwrap();
        fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();

        match load(&dir, &HnswConfig::default()) {
            Err(Error::Corrupt { reason, .. }) => {
                assert!(reason.contains("hnsw_rs"), "{reason}")
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn leftovers_of_an_interrupted_save_are_removed_and_the_save_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vec");
        index_with(10, 8).save(&dir).unwrap();
        let slots = slots(&dir).unwrap();

        // Crashed before the renames: `.saving` is garbage, `dir` is good.
        save_until(&index_with(20, 8), &dir, Some(CrashPoint::AfterDump)).unwrap();
        assert_eq!(remove_leftovers(&dir).unwrap(), vec![slots.saving.clone()]);
        assert_eq!(load_len(&dir), 10);

        // Crashed between the renames: `.previous` is the save to load,
        // kept; `.saving` (complete, but never loaded) goes.
        save_until(&index_with(20, 8), &dir, Some(CrashPoint::BetweenRenames)).unwrap();
        assert_eq!(remove_leftovers(&dir).unwrap(), vec![slots.saving.clone()]);
        assert!(slots.previous.exists());
        assert_eq!(load_len(&dir), 10);

        // A stale `.previous` beside a complete `dir` goes.
        index_with(30, 8).save(&dir).unwrap();
        fs::create_dir(&slots.previous).unwrap();
        assert_eq!(
            remove_leftovers(&dir).unwrap(),
            vec![slots.previous.clone()]
        );
        assert_eq!(load_len(&dir), 30);
    }

    /// The save lock is a real flock: while another open file holds it
    /// exclusively (as another process's save would), a shared lock is
    /// refused.
    #[test]
    fn saves_lock_out_loads_across_open_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vec");
        index_with(10, 8).save(&dir).unwrap();
        let slots = slots(&dir).unwrap();
        assert!(slots.lock.is_file(), "a save creates the lock file");
        let held = lock_file(&slots.lock, Access::Save).unwrap().unwrap();
        let other = File::open(&slots.lock).unwrap();
        assert!(!FileExt::try_lock_shared(&other).unwrap());
        drop(held);
        assert!(FileExt::try_lock_shared(&other).unwrap());
    }

    #[test]
    fn folder_names_give_sibling_slots() {
        let s = slots(Path::new("a/b/vec")).unwrap();
        assert_eq!(s.saving, Path::new("a/b/.vec.saving"));
        assert_eq!(s.previous, Path::new("a/b/.vec.previous"));
        assert_eq!(s.lock, Path::new("a/b/.vec.lock"));
        let s = slots(Path::new("vec")).unwrap();
        assert_eq!(s.saving, Path::new("./.vec.saving"));
        assert!(slots(Path::new("/")).is_err());
    }
}
