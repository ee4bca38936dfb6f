//! The judged datasets a run learns from, each with its share of the steps
//! and the queries it is validated on.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One BEIR dataset to learn from.
///
/// Written on the command line as `DIR[,key=value…]`:
///
/// ```
/// use sift_train::{TrainingSet, Validation};
/// let set: TrainingSet = "../shared/datasets/squad-v1.1,weight=2,validate=dev,max-queries=6000"
///     .parse()
///     .unwrap();
/// assert_eq!(set.weight, 2.0);
/// assert_eq!(set.validation, Validation::Split("dev".into()));
/// assert_eq!(set.max_queries, Some(6000));
/// assert_eq!(set.name(), "squad-v1.1");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingSet {
    /// A BEIR folder: `queries.jsonl`, `qrels/SPLIT.tsv`, `corpus.jsonl`.
    pub dataset: PathBuf,
    /// The judged split learnt from (never `test`).
    pub split: String,
    /// The corpus, when not `DATASET/corpus.jsonl` (`corpus=FILE`).
    pub corpus: Option<PathBuf>,
    /// The index stage 1 mines from (`index=DIR`); by default the run's
    /// index, or a folder of it named after the dataset when there are
    /// several.
    pub index: Option<PathBuf>,
    /// This set's share of each step's queries, relative to the others'
    /// (`weight=W`, default 1).
    pub weight: f64,
    /// What the run is validated on for this set (`validate=dev` or
    /// `validate=0.05`).
    pub validation: Validation,
    /// Learn from only the first N queries of the split (`max-queries=N`).
    pub max_queries: Option<usize>,
    /// Validate on at most N queries (`validation-queries=N`, default 300):
    /// a validation split's last N, a held-out share's first N drawn.
    pub validation_queries: usize,
}

/// Where a set's validation queries come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Validation {
    /// This share of the training split's queries, drawn with the seed and
    /// held back from training.
    HeldOut(f64),
    /// The first queries of another judged split (SQuAD's `dev`).
    Split(String),
}

/// Validation queries per set unless `validation-queries=N` says otherwise.
pub const DEFAULT_VALIDATION_QUERIES: usize = 300;

impl TrainingSet {
    /// `dataset`'s train split, weight 1, 10 % held out for validation.
    pub fn new(dataset: impl Into<PathBuf>) -> TrainingSet {
        TrainingSet {
            dataset: dataset.into(),
            split: "train".into(),
            corpus: None,
            index: None,
            weight: 1.0,
            validation: Validation::HeldOut(0.1),
            max_queries: None,
            validation_queries: DEFAULT_VALIDATION_QUERIES,
        }
    }

    /// The dataset folder's name (`squad-v1.1`), naming the set in reports.
    pub fn name(&self) -> String {
        let path = self
            .dataset
            .canonicalize()
            .unwrap_or_else(|_| self.dataset.clone());
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "dataset".into())
    }

    /// The index this set mines from, given the run's index and whether
    /// the run has several sets.
    pub(crate) fn index_in(&self, run_index: &Path, several: bool) -> PathBuf {
        match (&self.index, several) {
            (Some(dir), _) => dir.clone(),
            (None, false) => run_index.to_path_buf(),
            (None, true) => run_index.join(self.name()),
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidOption(m));
        let name = self.dataset.display();
        if self.split == "test" {
            return bad(format!("{name}: refusing to train on the test split: train on `train` (or a dev split) and evaluate on `test`"));
        }
        if !(self.weight.is_finite() && self.weight > 0.0) {
            return bad(format!(
                "{name}: weight must be positive (got {})",
                self.weight
            ));
        }
        match &self.validation {
            Validation::HeldOut(f) if !(0.0..0.9).contains(f) => {
                return bad(format!(
                    "{name}: a held-out validation share must be within [0, 0.9) (got {f})"
                ))
            }
            Validation::Split(s) if s == "test" => {
                return bad(format!("{name}: refusing to validate on the test split (model selection on test is tuning on test): use dev, or a held-out share such as validate=0.05"))
            }
            Validation::Split(s) if s == &self.split => {
                return bad(format!(
                    "{name}: validating on the split trained on ({s}) measures nothing: use another split or a held-out share"
                ))
            }
            _ => {}
        }
        Ok(())
    }
}

impl std::str::FromStr for TrainingSet {
    type Err = String;

    fn from_str(spec: &str) -> std::result::Result<Self, String> {
        let mut parts = spec.split(',');
        let dir = parts.next().unwrap_or_default().trim();
        if dir.is_empty() {
            return Err("a dataset is DIR[,weight=W][,split=S][,validate=SPLIT|SHARE][,max-queries=N][,validation-queries=N][,corpus=FILE][,index=DIR]".into());
        }
        let mut set = TrainingSet::new(dir);
        for part in parts {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} in {spec:?} is not key=value"))?;
            let (key, value) = (key.trim(), value.trim());
            let number = |what: &str| -> std::result::Result<usize, String> {
                value
                    .parse()
                    .map_err(|_| format!("{what} must be a whole number (got {value:?})"))
            };
            match key {
                "weight" => {
                    set.weight = value
                        .parse()
                        .map_err(|_| format!("weight must be a number (got {value:?})"))?
                }
                "split" => set.split = value.to_owned(),
                "validate" => {
                    set.validation = match value.parse::<f64>() {
                        Ok(share) => Validation::HeldOut(share),
                        Err(_) => Validation::Split(value.to_owned()),
                    }
                }
                "max-queries" => set.max_queries = Some(number("max-queries")?),
                "validation-queries" => set.validation_queries = number("validation-queries")?,
                "corpus" => set.corpus = Some(PathBuf::from(value)),
                "index" => set.index = Some(PathBuf::from(value)),
                other => {
                    return Err(format!(
                        "unknown dataset option {other:?}: weight, split, validate, max-queries, validation-queries, corpus or index"
                    ))
                }
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_sets_every_option_and_rejects_unknown_ones() {
        let set: TrainingSet =
            "data/ms, weight=0.5,split=train,validate=0.05,validation-queries=200,corpus=c.jsonl,index=idx/ms"
                .parse()
                .unwrap();
        assert_eq!(set.dataset, PathBuf::from("data/ms"));
        assert_eq!(set.weight, 0.5);
        assert_eq!(set.validation, Validation::HeldOut(0.05));
        assert_eq!(set.validation_queries, 200);
        assert_eq!(set.corpus, Some(PathBuf::from("c.jsonl")));
        assert_eq!(
            set.index_in(Path::new("run"), true),
            PathBuf::from("idx/ms")
        );
        let plain: TrainingSet = "data/ms".parse().unwrap();
        assert_eq!(plain, TrainingSet::new("data/ms"));
        assert_eq!(
            plain.index_in(Path::new("run"), false),
            PathBuf::from("run")
        );
        assert_eq!(
            plain.index_in(Path::new("run"), true),
            PathBuf::from("run/ms")
        );

        for bad in [
            "",
            "d,weight",
            "d,weight=x",
            "d,max-queries=-1",
            "d,colour=red",
        ] {
            assert!(bad.parse::<TrainingSet>().is_err(), "{bad:?} parsed");
        }
        let err = "d,colour=red".parse::<TrainingSet>().unwrap_err();
        assert!(err.contains("colour") && err.contains("weight"), "{err}");
    }

    #[test]
    fn test_splits_and_bad_weights_are_refused() {
        for spec in [
            "d,split=test",
            "d,validate=test",
            "d,validate=train",
            "d,weight=0",
            "d,validate=0.95",
        ] {
            let set: TrainingSet = spec.parse().unwrap();
            assert!(set.validate().is_err(), "{spec} accepted");
        }
        assert!("d,validate=dev"
            .parse::<TrainingSet>()
            .unwrap()
            .validate()
            .is_ok());
    }
}
