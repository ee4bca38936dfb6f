//! `sift eval --out` folders, read from the one folder the server was given
//! (`--eval-dir`): listed by `GET /eval/runs`, their files served by
//! `GET /eval/file?run=…&file=…`.
//!
//! Nothing outside that folder can be read: a run is named by one of the
//! names the listing produced (compared as strings, never joined as given),
//! a file by one of the names `sift eval` writes, and the resolved path
//! (symbolic links followed) must still lie under the folder.

use crate::api::{EvalRun, EvalRunsResponse};
use crate::error::ApiError;
use axum::http::StatusCode;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The files `sift eval` writes into its `--out` folder that the page
/// shows (crates/eval/src/report.rs), with their content types. Run files
/// (TREC) are not served: they are large and the page has no use for them.
pub(crate) const EVAL_FILES: [(&str, &str); 6] = [
    ("report.json", "application/json"),
    ("report.md", "text/markdown; charset=utf-8"),
    ("sweep.json", "application/json"),
    ("sweep.md", "text/markdown; charset=utf-8"),
    ("sweep.svg", "image/svg+xml"),
    ("sweep.png", "image/png"),
];

/// The name of a run that is the eval folder itself (an `--out` folder
/// given directly rather than its parent).
pub(crate) const ROOT_RUN: &str = ".";

fn no_eval_dir() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "eval_dir_not_set",
        "this server was started without an eval folder; restart it with \
         `sift serve --eval-dir DIR`, DIR being a `sift eval --out` folder or a folder of them",
    )
}

/// The allowed folder, resolved, or why it cannot be used.
fn root(eval_dir: Option<&Path>) -> Result<PathBuf, ApiError> {
    let dir = eval_dir.ok_or_else(no_eval_dir)?;
    dir.canonicalize().map_err(|e| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "eval_dir_missing",
            format!("the eval folder {} cannot be read: {e}", dir.display()),
        )
    })
}

/// The runs under `eval_dir`: the folder itself when it holds a
/// `report.json`, then each sub-folder that does, by name. A sub-folder
/// that resolves outside the folder (a symbolic link out) is left out.
pub(crate) fn list(eval_dir: Option<&Path>) -> Result<EvalRunsResponse, ApiError> {
    let root = root(eval_dir)?;
    let mut runs = Vec::new();
    if root.join("report.json").is_file() {
        runs.push(summarise(ROOT_RUN, &root));
    }
    let entries = std::fs::read_dir(&root).map_err(|e| {
        ApiError::internal(format!(
            "cannot list the eval folder {}: {e}",
            root.display()
        ))
    })?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.'))
        .collect();
    names.sort();
    for name in names {
        let Ok(dir) = root.join(&name).canonicalize() else {
            continue;
        };
        if dir.starts_with(&root) && dir.is_dir() && dir.join("report.json").is_file() {
            runs.push(summarise(&name, &dir));
        }
    }
    Ok(EvalRunsResponse {
        dir: eval_dir
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        runs,
    })
}

/// A run's headline figures from its `report.json`; what cannot be read is
/// `null`, with the reason in `error`, so one broken run does not hide the
/// others.
fn summarise(name: &str, dir: &Path) -> EvalRun {
    let files = EVAL_FILES
        .iter()
        .map(|(f, _)| *f)
        .filter(|f| dir.join(f).is_file())
        .map(str::to_string)
        .collect();
    let mut run = EvalRun {
        name: name.to_string(),
        files,
        dataset: None,
        split: None,
        queries: None,
        depth: None,
        k: None,
        reranker: None,
        recommended_depth: None,
        error: None,
    };
    let report = std::fs::read(dir.join("report.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()));
    match report {
        Ok(r) => {
            let text = |v: &Value| v.as_str().map(str::to_string);
            run.dataset = text(&r["dataset"]);
            run.split = text(&r["split"]);
            run.queries = r["queries"].as_u64();
            run.depth = r["depth"].as_u64();
            run.k = r["k"].as_u64();
            run.reranker = text(&r["reranker"]);
            run.recommended_depth = r["sweeps"]["depth"]["flattening"]["depth"].as_u64();
        }
        Err(e) => run.error = Some(format!("report.json cannot be read: {e}")),
    }
    run
}

/// One file of one run: its bytes and content type.
pub(crate) fn read(
    eval_dir: Option<&Path>,
    run: &str,
    file: &str,
) -> Result<(&'static str, Vec<u8>), ApiError> {
    let Some(&(file, content_type)) = EVAL_FILES.iter().find(|(f, _)| *f == file) else {
        let names: Vec<&str> = EVAL_FILES.iter().map(|(f, _)| *f).collect();
        return Err(ApiError::invalid(format!(
            "file must be one of {}, got {file:?}",
            names.join(", ")
        )));
    };
    let listed = list(eval_dir)?;
    if !listed.runs.iter().any(|r| r.name == run) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "eval_run_not_found",
            format!("no eval run {run:?} in the eval folder; GET /eval/runs lists them"),
        ));
    }
    let root = root(eval_dir)?;
    let dir = if run == ROOT_RUN {
        root.clone()
    } else {
        root.join(run)
    };
    let path = dir.join(file);
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "eval_file_not_found",
            format!("eval run {run:?} has no {file} (sift eval writes the sweep files only when a sweep ran)"),
        )
    };
    let resolved = path.canonicalize().map_err(|_| not_found())?;
    if !resolved.starts_with(&root) {
        // A symbolic link pointing out of the folder.
        return Err(not_found());
    }
    let bytes = std::fs::read(&resolved).map_err(|_| not_found())?;
    Ok((content_type, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_out_folder_given_directly_is_the_run_named_dot() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(
            dir.join("report.json"),
            r#"{"dataset": "d", "sweeps": {"depth": {"flattening": {"depth": 20}}}}"#,
        )
        .unwrap();
        std::fs::write(dir.join("sweep.svg"), "<svg/>").unwrap();
        let listed = list(Some(dir)).unwrap();
        assert_eq!(listed.runs.len(), 1);
        let run = &listed.runs[0];
        assert_eq!(run.name, ROOT_RUN);
        assert_eq!(run.recommended_depth, Some(20));
        assert_eq!(run.files, ["report.json", "sweep.svg"]);
        let (content_type, bytes) = read(Some(dir), ROOT_RUN, "sweep.svg").unwrap();
        assert_eq!(
            (content_type, bytes.as_slice()),
            ("image/svg+xml", &b"<svg/>"[..])
        );
        let e = read(Some(dir), "..", "report.json").unwrap_err();
        assert_eq!(e.code, "eval_run_not_found");
    }

    #[test]
    fn no_folder_and_a_missing_folder_say_so() {
        assert_eq!(list(None).unwrap_err().code, "eval_dir_not_set");
        let e = list(Some(Path::new("/no/such/eval/folder"))).unwrap_err();
        assert_eq!(e.code, "eval_dir_missing");
        assert!(e.message.contains("/no/such/eval/folder"), "{}", e.message);
    }
}
