mod common;

use common::{points, queries};
use sift_core::{ChunkId, HnswConfig};
use sift_vector::{Error, VectorIndex};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

const ALL: &(dyn Fn(ChunkId) -> bool + Sync) = &|_| true;
const META: &str = "vector-meta.json";

fn build(n: usize, dim: usize) -> VectorIndex {
    let mut index = VectorIndex::new(dim, &HnswConfig::default(), n);
    index.insert(&points(3, n, dim)).unwrap();
    index
}

fn saved(n: usize, dim: usize) -> (tempfile::TempDir, PathBuf, VectorIndex) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vectors");
    let index = build(n, dim);
    index.save(&dir).unwrap();
    (tmp, dir, index)
}

fn load(dir: &Path) -> sift_vector::Result<Option<VectorIndex>> {
    VectorIndex::load(dir, &HnswConfig::default())
}

fn expect_corrupt(dir: &Path) -> String {
    match load(dir) {
        Err(e @ Error::Corrupt { .. }) => e.to_string(),
        Err(other) => panic!("expected Corrupt, got {other:?}"),
        Ok(found) => panic!("expected Corrupt, loaded {found:?}"),
    }
}

fn data_file(dir: &Path) -> PathBuf {
    dir.join("vectors.hnsw.data")
}

fn graph_file(dir: &Path) -> PathBuf {
    dir.join("vectors.hnsw.graph")
}

fn edit_meta(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join(META);
    let mut meta: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    edit(&mut meta);
    fs::write(&path, serde_json::to_vec(&meta).unwrap()).unwrap();
}

fn same_search_results(a: &VectorIndex, b: &VectorIndex, dim: usize) {
    let is_live = |id: ChunkId| id.0 & 0b100 != 0;
    for q in queries(21, 50, dim) {
        assert_eq!(a.search(&q, 10, ALL), b.search(&q, 10, ALL));
        assert_eq!(a.search(&q, 10, &is_live), b.search(&q, 10, &is_live));
        assert_eq!(a.exact_search(&q, 10, ALL), b.exact_search(&q, 10, ALL));
    }
}

#[test]
fn save_then_load_gives_identical_results() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("index").join("vectors");
    let index = build(3_000, 48);

    let start = Instant::now();
    index.save(&dir).unwrap();
    let saved_in = start.elapsed();
    let start = Instant::now();
    let loaded = load(&dir).unwrap().expect("saved index");
    eprintln!(
        "3000 x 48: save {saved_in:.2?}, load {:.2?}",
        start.elapsed()
    );

    assert_eq!(loaded.len(), 3_000);
    assert_eq!(loaded.dim(), 48);
    assert_eq!(loaded.config(), index.config());
    index.for_each_point(|id, v| assert!(loaded.contains(id), "{id} lost ({})", v.len()));
    let mut vectors = std::collections::HashMap::new();
    index.for_each_point(|id, v| {
        vectors.insert(id, v.to_vec());
    });
    loaded.for_each_point(|id, v| assert_eq!(vectors[&id], v));
    same_search_results(&index, &loaded, 48);

    // Only the index's files are in the folder, and no sibling is left
    // over but the save lock (an empty file, kept: deleting it would race
    // another process's open of it).
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [META, "vectors.hnsw.data", "vectors.hnsw.graph"]);
    let mut siblings: Vec<String> = fs::read_dir(dir.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    siblings.sort();
    assert_eq!(siblings, [".vectors.lock", "vectors"]);
}

#[test]
fn a_loaded_index_keeps_growing_and_saves_again() {
    let (_tmp, dir, _) = saved(500, 16);
    let mut loaded = load(&dir).unwrap().unwrap();
    let more = points(99, 700, 16);
    let new_points: Vec<_> = more[500..]
        .iter()
        .map(|(id, v)| (ChunkId(id.0 ^ 1), v.clone()))
        .collect();
    assert_eq!(loaded.insert(&new_points).unwrap(), 200);
    assert_eq!(
        loaded.insert(&points(3, 500, 16)).unwrap(),
        0,
        "ids survive the reload"
    );
    for (id, v) in &new_points {
        assert_eq!(loaded.search(v, 1, ALL)[0].0, *id);
    }
    loaded.save(&dir).unwrap();
    let again = load(&dir).unwrap().unwrap();
    assert_eq!(again.len(), 700);
    same_search_results(&loaded, &again, 16);
}

#[test]
fn ef_search_comes_from_the_load_config() {
    let (_tmp, dir, index) = saved(200, 8);
    let config = HnswConfig {
        m: 40,
        ef_construction: 10,
        ef_search: 33,
    };
    let loaded = VectorIndex::load(&dir, &config).unwrap().unwrap();
    assert_eq!(loaded.config().ef_search, 33);
    // The graph keeps the parameters it was built with.
    assert_eq!(loaded.config().m, index.config().m);
    assert_eq!(
        loaded.config().ef_construction,
        index.config().ef_construction
    );
}

#[test]
fn empty_index_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vectors");
    VectorIndex::new(384, &HnswConfig::default(), 0)
        .save(&dir)
        .unwrap();
    let loaded = load(&dir).unwrap().expect("an empty save is a save");
    assert!(loaded.is_empty());
    assert_eq!(loaded.dim(), 384);
}

#[test]
fn nothing_saved_loads_as_none() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(load(tmp.path()).unwrap().is_none(), "empty folder");
    assert!(
        load(&tmp.path().join("missing")).unwrap().is_none(),
        "no folder"
    );
    fs::write(tmp.path().join("notes.txt"), "unrelated").unwrap();
    assert!(
        load(tmp.path()).unwrap().is_none(),
        "folder without graph files"
    );
}

#[test]
fn truncated_data_file_is_corrupt() {
    let (_tmp, dir, _) = saved(300, 16);
    let data = fs::read(data_file(&dir)).unwrap();
    fs::write(data_file(&dir), &data[..data.len() / 2]).unwrap();
    let message = expect_corrupt(&dir);
    assert!(message.contains("bytes"), "{message}");
}

#[test]
fn garbage_data_file_is_corrupt() {
    let (_tmp, dir, _) = saved(300, 16);
    let len = fs::metadata(data_file(&dir)).unwrap().len() as usize;
    let garbage: Vec<u8> = (0..len).map(|i| (i * 7919 % 251) as u8).collect();
    fs::write(data_file(&dir), garbage).unwrap();
    let message = expect_corrupt(&dir);
    assert!(message.contains("checksum"), "{message}");
}

#[test]
fn flipped_byte_in_graph_file_is_corrupt() {
    let (_tmp, dir, _) = saved(300, 16);
    let mut graph = fs::read(graph_file(&dir)).unwrap();
    let middle = graph.len() / 2;
    graph[middle] ^= 0xff;
    fs::write(graph_file(&dir), graph).unwrap();
    expect_corrupt(&dir);
}

#[test]
fn truncated_or_missing_graph_file_is_corrupt() {
    let (_tmp, dir, _) = saved(300, 16);
    let graph = fs::read(graph_file(&dir)).unwrap();
    fs::write(graph_file(&dir), &graph[..10]).unwrap();
    expect_corrupt(&dir);
    fs::remove_file(graph_file(&dir)).unwrap();
    expect_corrupt(&dir);
}

#[test]
fn meta_that_disagrees_with_the_files_is_an_error() {
    let (_tmp, dir, _) = saved(300, 16);
    let original = fs::read(dir.join(META)).unwrap();

    edit_meta(&dir, |m| m["point_count"] = 301.into());
    expect_corrupt(&dir);

    fs::write(dir.join(META), &original).unwrap();
    edit_meta(&dir, |m| m["dim"] = 17.into());
    expect_corrupt(&dir);

    fs::write(dir.join(META), &original).unwrap();
    edit_meta(&dir, |m| m["format_version"] = 99.into());
    assert!(expect_corrupt(&dir).contains("format version"));

    fs::write(dir.join(META), &original).unwrap();
    edit_meta(&dir, |m| m["files"] = serde_json::Value::Null);
    expect_corrupt(&dir);

    fs::write(dir.join(META), b"{ not json").unwrap();
    expect_corrupt(&dir);

    fs::write(dir.join(META), &original).unwrap();
    assert_eq!(load(&dir).unwrap().unwrap().len(), 300, "intact again");
}

#[test]
fn graph_files_without_meta_are_corrupt() {
    // A half-written folder: the meta is written last.
    let (_tmp, dir, _) = saved(100, 8);
    fs::remove_file(dir.join(META)).unwrap();
    assert!(expect_corrupt(&dir).contains(META));
}

#[test]
fn leftover_temporary_folder_does_not_break_load_or_save() {
    let (tmp, dir, index) = saved(400, 16);
    // An interrupted save left a partial temporary sibling behind.
    let leftover = tmp.path().join(".vectors.saving");
    fs::create_dir(&leftover).unwrap();
    let graph = fs::read(graph_file(&dir)).unwrap();
    fs::write(
        leftover.join("vectors.hnsw.graph"),
        &graph[..graph.len() / 3],
    )
    .unwrap();

    let loaded = load(&dir).unwrap().expect("previous save");
    same_search_results(&index, &loaded, 16);

    // The next save replaces the leftover and cleans up.
    let bigger = build(450, 16);
    bigger.save(&dir).unwrap();
    assert!(!leftover.exists());
    assert_eq!(load(&dir).unwrap().unwrap().len(), 450);
}

#[test]
fn save_refuses_to_replace_a_foreign_folder() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("precious.txt"), "keep me").unwrap();
    let err = build(10, 4).save(tmp.path()).unwrap_err();
    assert!(matches!(err, Error::Save { .. }), "{err:?}");
    assert_eq!(
        fs::read_to_string(tmp.path().join("precious.txt")).unwrap(),
        "keep me"
    );
}

#[test]
fn overwriting_a_save_replaces_it() {
    let (_tmp, dir, _) = saved(100, 8);
    let other = {
        let mut index = VectorIndex::new(8, &HnswConfig::default(), 10);
        index
            .insert(&[(ChunkId(7), vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])])
            .unwrap();
        index
    };
    other.save(&dir).unwrap();
    let loaded = load(&dir).unwrap().unwrap();
    assert_eq!(loaded.len(), 1);
    assert!(loaded.contains(ChunkId(7)));
}
