//! Rescoring: the rules a fixed model cannot learn ("prefer recent",
//! "prefer official sources"), applied after stage 2, or after fusion when
//! stage 2 is off. Elasticsearch's `function_score`, Qdrant's formula query
//! and Vespa's freshness feature do the same.
//!
//! How a rule's factor meets the stage score:
//!
//! 1. The stage score is put on 0..=1 over the query's candidates
//!    ([`Basis`]): by the scores (the default) or by rank. A
//!    cross-encoder logit, an RRF score and an LLM's probability live on
//!    different scales, and a logit can be negative (×1.5 would lower it).
//!    On 0..=1 a factor means the same whatever ordered the list, and the
//!    rescore is invariant to the scale of the scores (and, for logits, to
//!    their shift).
//! 2. Each rule gives a factor. A decay gives `1 − weight × (1 − d)`, where
//!    `d` in 0..=1 is the decay function at the value's distance from the
//!    origin: `weight` (default 1) bounds how much the rule can take away.
//!    A boost gives its factor when its condition holds, else 1.
//! 3. [`Combine::Multiply`] (the default) scores `base × Π factors`, so a
//!    factor is a share of the relevance: an irrelevant recent page (base
//!    near 0) stays below a relevant older one. [`Combine::Sum`] scores
//!    `base + Σ (factor − 1)`, Qdrant's `$score + decay`.
//!
//! The candidates are then sorted by that score; ties keep the order they
//! came in. Every hit keeps its base and each rule's factor ([`Rescored`]).
//!
//! ```
//! use sift_core::rescore::{Rescore, Rule};
//! // What `--prefer-recent 90d --boost 'source=official:1.5'` asks for.
//! let rescore = Rescore::new(vec![
//!     Rule::prefer_recent("90d").unwrap(),
//!     Rule::parse_boost("source=official:1.5").unwrap(),
//! ]);
//! rescore.validate().unwrap();
//! ```

use crate::{Candidate, Error, Metadata, Result};
use jiff::{civil, Timestamp, Unit};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The rules of one query, and how they meet the stage score.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rescore {
    /// Applied in order; each gives one factor per candidate.
    pub rules: Vec<Rule>,
    pub basis: Basis,
    pub combine: Combine,
}

/// How the stage score is put on 0..=1 before the factors apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The scores, keeping how far apart the stage put them: divided by
    /// the top one when none is negative (RRF, probabilities, blends,
    /// whose zero means something), else min-max, `(s − min) / (max −
    /// min)` (logits, whose zero means nothing; the last candidate gets 0).
    #[default]
    Score,
    /// `1 − (rank − 1) / n`: ignores the scores' spread, only their order.
    Rank,
}

/// How the factors combine with the base score.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// `base × Π factors`.
    #[default]
    Multiply,
    /// `base + Σ (factor − 1)`.
    Sum,
}

/// One rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Rule {
    Decay(Decay),
    Boost(Boost),
}

/// A decay over a date or a number in the metadata, as Elasticsearch's
/// decay functions: 1 within `offset` of `origin`, `decay` at `offset +
/// scale`, and falling beyond.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decay {
    /// Metadata key, e.g. `date` (what a text file's `Updated:` line sets).
    pub field: String,
    #[serde(default)]
    pub function: DecayFunction,
    /// `"now"`, `"newest"` or `"oldest"` (the extreme value among the
    /// query's candidates), a date (`2026-01-31`, RFC 3339), or a number.
    #[serde(default = "Decay::default_origin")]
    pub origin: Quantity,
    /// Distance at which the decay reaches `decay`: a duration (`90d`,
    /// `12w`, `1y`, `36h`) for dates, a number for numbers.
    pub scale: Quantity,
    /// Distance from the origin within which nothing decays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<Quantity>,
    /// The decay at `offset + scale`, in (0, 1).
    #[serde(default = "Decay::default_decay")]
    pub decay: f64,
    /// How much the rule can take away, in 0..=1: the factor is
    /// `1 − weight × (1 − d)`.
    #[serde(default = "Decay::default_weight")]
    pub weight: f64,
    /// The factor of a candidate without a usable value. Default: the
    /// factor one `scale` beyond the offset (as old as a page the rule
    /// halves, at the default `decay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<f64>,
}

/// The shape of a [`Decay`], Elasticsearch's three.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecayFunction {
    /// `decay^((x/scale)²)`: flat near the origin, then falls.
    Gauss,
    /// `decay^(x/scale)`: a half-life, at the default `decay` of 0.5.
    #[default]
    Exp,
    /// `max(0, 1 − (1 − decay) x / scale)`: reaches 0 at `scale / (1 − decay)`.
    Linear,
}

/// A number, or a text that is read as a date, duration or keyword.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Quantity {
    Number(f64),
    Text(String),
}

/// A factor for candidates whose metadata matches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boost {
    /// Metadata key, e.g. `source` or `tags`.
    pub field: String,
    /// The value to match. A trailing `*` matches a prefix (`billing/*`);
    /// a number or boolean in the metadata matches its decimal form; a list
    /// matches when any of its items does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    /// Match any of these values (set `equals` or `any_of`, not both).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub any_of: Vec<String>,
    /// Applied when the value matches (> 0; below 1 demotes).
    pub factor: f64,
}

/// What one rule did to one candidate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Factor {
    /// The rule, as [`Rule::describe`] says it.
    pub rule: String,
    /// The metadata value the rule read (`null` when there was none).
    pub value: Option<Value>,
    pub factor: f32,
}

/// A candidate's rescore: its stage score on 0..=1, each rule's factor,
/// and the score it is now ordered by.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rescored {
    pub base: f32,
    /// How `score` was made from `base` and the factors.
    pub combine: Combine,
    pub factors: Vec<Factor>,
    pub score: f32,
}

impl Decay {
    fn default_origin() -> Quantity {
        Quantity::Text("now".into())
    }
    fn default_decay() -> f64 {
        0.5
    }
    fn default_weight() -> f64 {
        1.0
    }
}

impl Rule {
    /// Newer documents first, by the `date` metadata: an exponential decay
    /// with a half-life of `scale` (e.g. `90d`) from the newest candidate,
    /// at weight 0.5, so age can take away at most half of a page's
    /// relevance and a relevant old page still beats an irrelevant new one.
    ///
    /// From the newest candidate rather than from now: from now, the pages
    /// of a help centre last edited two years ago would all have decayed
    /// to the floor and the rule would stop telling them apart; and the
    /// same query would reorder as the clock moves. A rule with `origin =
    /// "now"` does the other ("from the last 90 days").
    pub fn prefer_recent(scale: &str) -> Result<Rule> {
        let rule = Rule::Decay(Decay {
            field: "date".into(),
            function: DecayFunction::Exp,
            origin: Quantity::Text("newest".into()),
            scale: Quantity::Text(scale.trim().into()),
            offset: None,
            decay: 0.5,
            weight: 0.5,
            missing: None,
        });
        rule.validate().map_err(|e| {
            Error::InvalidSetting(format!("--prefer-recent {scale}: {}", detail(&e)))
        })?;
        Ok(rule)
    }

    /// Older documents first: the mirror of [`prefer_recent`](Self::prefer_recent),
    /// decaying from the oldest candidate's date.
    pub fn prefer_older(scale: &str) -> Result<Rule> {
        let mut rule = Rule::prefer_recent(scale)?;
        if let Rule::Decay(d) = &mut rule {
            d.origin = Quantity::Text("oldest".into());
        }
        Ok(rule)
    }

    /// A boost from the CLI's `FIELD=VALUE[|VALUE…]:FACTOR`, e.g.
    /// `source=official:1.5` or `tags=billing|refunds:1.2`.
    pub fn parse_boost(spec: &str) -> Result<Rule> {
        let bad = |why: &str| {
            Error::InvalidSetting(format!(
                "--boost {spec:?}: {why} (expected FIELD=VALUE:FACTOR, e.g. source=official:1.5)"
            ))
        };
        let (condition, factor) = spec.rsplit_once(':').ok_or_else(|| bad("no :FACTOR"))?;
        let factor: f64 = factor
            .trim()
            .parse()
            .map_err(|_| bad(&format!("{factor:?} is not a number")))?;
        let (field, values) = condition.split_once('=').ok_or_else(|| bad("no FIELD="))?;
        let mut values: Vec<String> = values.split('|').map(|v| v.trim().to_string()).collect();
        let (equals, any_of) = if values.len() == 1 {
            (values.pop(), Vec::new())
        } else {
            (None, values)
        };
        let rule = Rule::Boost(Boost {
            field: field.trim().into(),
            equals,
            any_of,
            factor,
        });
        rule.validate().map_err(|e| bad(&detail(&e)))?;
        Ok(rule)
    }

    /// The rule in a few words, as provenance names it:
    /// `date: exp decay from now, scale 90d, weight 0.5`, `source = official ×1.5`.
    pub fn describe(&self) -> String {
        match self {
            Rule::Decay(d) => {
                let mut s = format!(
                    "{}: {} decay from {}, scale {}",
                    d.field,
                    d.function.name(),
                    d.origin,
                    d.scale
                );
                if let Some(offset) = &d.offset {
                    s.push_str(&format!(", offset {offset}"));
                }
                if d.decay != 0.5 {
                    s.push_str(&format!(", decay {}", d.decay));
                }
                if d.weight != 1.0 {
                    s.push_str(&format!(", weight {}", d.weight));
                }
                s
            }
            Rule::Boost(b) => {
                let values = match &b.equals {
                    Some(v) => v.clone(),
                    None => format!("any of {}", b.any_of.join(", ")),
                };
                format!("{} = {values} ×{}", b.field, b.factor)
            }
        }
    }

    pub fn validate(&self) -> Result<()> {
        match self {
            Rule::Decay(d) => d.validate(),
            Rule::Boost(b) => b.validate(),
        }
    }
}

impl Decay {
    fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(Error::InvalidSetting(why));
        if self.field.trim().is_empty() {
            return bad("a decay needs a field".into());
        }
        if !(self.decay > 0.0 && self.decay < 1.0) {
            return bad(format!("decay must be in (0, 1), got {}", self.decay));
        }
        if !(0.0..=1.0).contains(&self.weight) {
            return bad(format!("weight must be in 0..=1, got {}", self.weight));
        }
        if let Some(m) = self.missing {
            if !(m.is_finite() && m >= 0.0) {
                return bad(format!("missing must be a factor >= 0, got {m}"));
            }
        }
        self.axis()?;
        Ok(())
    }

    /// Whether the rule is over dates or numbers, with its scale and
    /// offset in the axis' unit (days, or the number's own).
    fn axis(&self) -> Result<Axis> {
        let on_dates = match &self.scale {
            Quantity::Text(_) => true,
            Quantity::Number(_) => false,
        };
        let distance = |q: &Quantity, what: &str| -> Result<f64> {
            let value = match (q, on_dates) {
                (Quantity::Text(t), true) => duration_days(t).ok_or_else(|| {
                    Error::InvalidSetting(format!(
                        "{what} {t:?} is not a duration such as 90d, 12w, 6mo or 1y"
                    ))
                })?,
                (Quantity::Number(n), false) => *n,
                (q, _) => {
                    return Err(Error::InvalidSetting(format!(
                        "{what} {q} must be {} like the scale",
                        if on_dates { "a duration" } else { "a number" }
                    )))
                }
            };
            if !(value.is_finite() && value >= 0.0) {
                return Err(Error::InvalidSetting(format!(
                    "{what} must be >= 0, got {q}"
                )));
            }
            Ok(value)
        };
        let scale = distance(&self.scale, "scale")?;
        if scale <= 0.0 {
            return Err(Error::InvalidSetting("scale must be above 0".into()));
        }
        let offset = match &self.offset {
            Some(q) => distance(q, "offset")?,
            None => 0.0,
        };
        let origin = match &self.origin {
            Quantity::Text(t) if t == "now" && on_dates => Origin::Now,
            Quantity::Text(t) if t == "newest" => Origin::Newest,
            Quantity::Text(t) if t == "oldest" => Origin::Oldest,
            Quantity::Text(t) if on_dates => Origin::At(date_days(t).ok_or_else(|| {
                Error::InvalidSetting(format!(
                    "origin {t:?} is not \"now\", \"newest\", \"oldest\" or a date such as 2026-01-31"
                ))
            })?),
            Quantity::Number(n) if !on_dates && n.is_finite() => Origin::At(*n),
            other => {
                return Err(Error::InvalidSetting(format!(
                    "origin {other} does not fit a scale of {}: dates take \"now\" or a date and a duration scale, numbers a number",
                    self.scale
                )))
            }
        };
        Ok(Axis {
            on_dates,
            origin,
            scale,
            offset,
        })
    }

    /// The decay function's value at `distance` (in the axis' unit).
    fn decay_at(&self, axis: &Axis, distance: f64) -> f64 {
        let x = (distance - axis.offset).max(0.0) / axis.scale;
        match self.function {
            DecayFunction::Gauss => self.decay.powf(x * x),
            DecayFunction::Exp => self.decay.powf(x),
            DecayFunction::Linear => (1.0 - (1.0 - self.decay) * x).max(0.0),
        }
    }

    fn factor_of(&self, d: f64) -> f64 {
        1.0 - self.weight * (1.0 - d)
    }
}

impl Boost {
    fn validate(&self) -> Result<()> {
        if self.field.trim().is_empty() {
            return Err(Error::InvalidSetting("a boost needs a field".into()));
        }
        if self.equals.is_some() != self.any_of.is_empty() {
            return Err(Error::InvalidSetting(format!(
                "the boost on {} needs exactly one of equals or any_of",
                self.field
            )));
        }
        if !(self.factor.is_finite() && self.factor > 0.0) {
            return Err(Error::InvalidSetting(format!(
                "the boost on {} needs a factor > 0, got {}",
                self.field, self.factor
            )));
        }
        Ok(())
    }

    fn matches(&self, value: &Value) -> bool {
        match value {
            Value::Array(items) => items.iter().any(|v| self.matches(v)),
            Value::String(s) => self.matches_text(s),
            Value::Number(n) => self.matches_text(&n.to_string()),
            Value::Bool(b) => self.matches_text(&b.to_string()),
            Value::Null | Value::Object(_) => false,
        }
    }

    fn matches_text(&self, text: &str) -> bool {
        let one = |pattern: &String| match pattern.strip_suffix('*') {
            Some(prefix) => text.starts_with(prefix),
            None => text == pattern,
        };
        self.equals.iter().chain(&self.any_of).any(one)
    }
}

impl DecayFunction {
    fn name(self) -> &'static str {
        match self {
            DecayFunction::Gauss => "gauss",
            DecayFunction::Exp => "exp",
            DecayFunction::Linear => "linear",
        }
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Quantity::Number(n) => write!(f, "{n}"),
            Quantity::Text(t) => f.write_str(t),
        }
    }
}

/// A decay's resolved axis.
struct Axis {
    on_dates: bool,
    origin: Origin,
    scale: f64,
    offset: f64,
}

enum Origin {
    Now,
    Newest,
    Oldest,
    At(f64),
}

impl Rescore {
    pub fn new(rules: Vec<Rule>) -> Self {
        Rescore {
            rules,
            ..Rescore::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Check every rule; the error names the rule (`rescore.rules[1]`).
    pub fn validate(&self) -> Result<()> {
        for (i, rule) in self.rules.iter().enumerate() {
            rule.validate().map_err(|e| {
                Error::InvalidSetting(format!(
                    "rescore.rules[{i}] ({}): {}",
                    rule.kind(),
                    detail(&e)
                ))
            })?;
        }
        Ok(())
    }

    /// Rescore the candidates (in their current order) and sort them by
    /// the new score; `now` is the clock of `"now"` origins.
    pub fn apply(&self, candidates: Vec<Candidate>) -> Result<Vec<Candidate>> {
        self.apply_at(candidates, Timestamp::now())
    }

    /// [`apply`](Self::apply) with a given clock (for tests and replays).
    pub fn apply_at(
        &self,
        mut candidates: Vec<Candidate>,
        now: Timestamp,
    ) -> Result<Vec<Candidate>> {
        if self.rules.is_empty() || candidates.is_empty() {
            return Ok(candidates);
        }
        self.validate()?;
        let bases = self.bases(&candidates);
        let now_days = now.as_second() as f64 / SECONDS_PER_DAY;
        let mut per_rule: Vec<Vec<Factor>> = Vec::with_capacity(self.rules.len());
        for rule in &self.rules {
            let describe = rule.describe();
            let factors = match rule {
                Rule::Decay(d) => decay_factors(d, &candidates, now_days)?,
                Rule::Boost(b) => candidates
                    .iter()
                    .map(|c| {
                        let value = c.chunk.metadata.get(&b.field);
                        let factor = match value {
                            Some(v) if b.matches(v) => b.factor,
                            _ => 1.0,
                        };
                        (value.cloned(), factor)
                    })
                    .collect(),
            };
            per_rule.push(
                factors
                    .into_iter()
                    .map(|(value, factor)| Factor {
                        rule: describe.clone(),
                        value,
                        factor: factor as f32,
                    })
                    .collect(),
            );
        }
        for (i, candidate) in candidates.iter_mut().enumerate() {
            let factors: Vec<Factor> = per_rule.iter().map(|f| f[i].clone()).collect();
            let base = bases[i];
            let score = match self.combine {
                Combine::Multiply => factors.iter().fold(base, |s, f| s * f.factor),
                Combine::Sum => base + factors.iter().map(|f| f.factor - 1.0).sum::<f32>(),
            };
            candidate.scores.rescore = Some(Rescored {
                base,
                combine: self.combine,
                factors,
                score,
            });
        }
        // Stable: equal scores keep the order they came in.
        candidates.sort_by(|a, b| b.scores.final_score().total_cmp(&a.scores.final_score()));
        Ok(candidates)
    }

    fn bases(&self, candidates: &[Candidate]) -> Vec<f32> {
        let n = candidates.len() as f32;
        match self.basis {
            Basis::Rank => (0..candidates.len()).map(|i| 1.0 - i as f32 / n).collect(),
            Basis::Score => {
                let scores: Vec<f32> = candidates.iter().map(|c| c.scores.final_score()).collect();
                let finite = scores.iter().copied().filter(|s| s.is_finite());
                let (min, max) = finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), s| {
                    (lo.min(s), hi.max(s))
                });
                // Dividing by the top score keeps near-equals near-equal:
                // RRF gives many candidates the same or close scores, and
                // min-max would put the lowest of them at 0 where no boost
                // can lift it.
                let floor = if min >= 0.0 { 0.0 } else { min };
                scores
                    .iter()
                    .map(|&s| {
                        if !s.is_finite() {
                            0.0
                        } else if max > floor {
                            (s - floor) / (max - floor)
                        } else {
                            1.0
                        }
                    })
                    .collect()
            }
        }
    }
}

impl Rule {
    fn kind(&self) -> &'static str {
        match self {
            Rule::Decay(_) => "decay",
            Rule::Boost(_) => "boost",
        }
    }
}

const SECONDS_PER_DAY: f64 = 86_400.0;

/// The message of a validation error, without its "invalid setting" prefix
/// (the caller says where the setting was).
fn detail(e: &Error) -> String {
    match e {
        Error::InvalidSetting(m) => m.clone(),
        other => other.to_string(),
    }
}

/// Each candidate's metadata value and factor under a decay.
fn decay_factors(
    d: &Decay,
    candidates: &[Candidate],
    now_days: f64,
) -> Result<Vec<(Option<Value>, f64)>> {
    let axis = d.axis()?;
    let read = |metadata: &Metadata| -> Option<f64> {
        let value = metadata.get(&d.field)?;
        match (value, axis.on_dates) {
            (Value::String(s), true) => date_days(s),
            // A number on a date axis is a Unix time in seconds.
            (Value::Number(n), true) => n.as_f64().map(|s| s / SECONDS_PER_DAY),
            (Value::Number(n), false) => n.as_f64(),
            (Value::String(s), false) => s.trim().parse().ok(),
            _ => None,
        }
    };
    let values: Vec<Option<f64>> = candidates
        .iter()
        .map(|c| read(&c.chunk.metadata).filter(|v| v.is_finite()))
        .collect();
    let present = values.iter().flatten().copied();
    let origin = match axis.origin {
        Origin::Now => now_days,
        Origin::At(x) => x,
        Origin::Newest => present.fold(f64::NEG_INFINITY, f64::max),
        Origin::Oldest => present.fold(f64::INFINITY, f64::min),
    };
    let missing = d
        .missing
        .unwrap_or_else(|| d.factor_of(d.decay_at(&axis, axis.offset + axis.scale)));
    Ok(candidates
        .iter()
        .zip(values)
        .map(|(c, v)| {
            let factor = match v {
                Some(v) if origin.is_finite() => d.factor_of(d.decay_at(&axis, (v - origin).abs())),
                _ => missing,
            };
            (c.chunk.metadata.get(&d.field).cloned(), factor)
        })
        .collect())
}

/// Days since 1970-01-01 UTC of an RFC 3339 timestamp, a civil date-time
/// (read as UTC) or a date.
fn date_days(text: &str) -> Option<f64> {
    let text = text.trim();
    if let Ok(t) = text.parse::<Timestamp>() {
        return Some(t.as_second() as f64 / SECONDS_PER_DAY);
    }
    let datetime = text.parse::<civil::DateTime>().ok().or_else(|| {
        text.parse::<civil::Date>()
            .ok()
            .map(|d| d.to_datetime(civil::Time::midnight()))
    })?;
    let t = datetime
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .ok()?
        .timestamp();
    Some(t.as_second() as f64 / SECONDS_PER_DAY)
}

/// A duration such as `90d`, `12w`, `6mo`, `1y` or `36h`, in days
/// (months and years as the calendar has them from today).
fn duration_days(text: &str) -> Option<f64> {
    let span: jiff::Span = text.trim().parse().ok()?;
    let today = Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    span.total((Unit::Day, today)).ok().map(f64::abs)
}

/// What an instruction to the cross-encoder path was taken to mean.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Interpreted {
    pub rules: Vec<Rule>,
    /// The parts of the instruction that became rules, each with its rule.
    pub understood: Vec<(String, String)>,
    /// The parts that did not.
    pub not_understood: Vec<String>,
}

impl Interpreted {
    /// What to tell the user: which parts became which rules, and which
    /// were not understood.
    pub fn notice(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.understood.is_empty() {
            let taken: Vec<String> = self
                .understood
                .iter()
                .map(|(clause, rule)| format!("{clause:?} as {rule}"))
                .collect();
            parts.push(format!(
                "instruction read as rescoring rules: {}",
                taken.join("; ")
            ));
        }
        if !self.not_understood.is_empty() {
            let quoted: Vec<String> = self
                .not_understood
                .iter()
                .map(|c| format!("{c:?}"))
                .collect();
            parts.push(format!(
                "not understood: {} (the cross-encoder cannot read free text; it takes recent/newer, older, official, or source X; use --reranker llm for anything else)",
                quoted.join(", ")
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Default half-life of "prefer recent" when the instruction names none.
pub const DEFAULT_RECENCY_SCALE: &str = "365d";

/// The factor "prefer official sources" gives `source = official`.
pub const OFFICIAL_BOOST: f64 = 1.5;

/// Map the common instructions to rules, for the rerankers that cannot
/// read text: recent/newer/latest (optionally "within 90 days"),
/// older/oldest, official, and "source X". Each clause (split at `.`,
/// `;`, `,` and "and") is read on its own; the rest is reported as not
/// understood.
///
/// ```
/// let read = sift_core::rescore::interpret_instruction("Prefer documents from the last 90 days, and official sources");
/// assert_eq!(read.rules.len(), 2);
/// assert!(read.not_understood.is_empty());
/// ```
pub fn interpret_instruction(instruction: &str) -> Interpreted {
    let mut read = Interpreted::default();
    let lowered = instruction.to_lowercase();
    let clauses = lowered
        .split(['.', ';', ',', '\n'])
        .flat_map(|c| c.split(" and "))
        .map(str::trim)
        .filter(|c| !c.is_empty());
    for clause in clauses {
        let words: Vec<&str> = clause
            .split(|ch: char| !(ch.is_alphanumeric() || "-_/*'\"".contains(ch)))
            .filter(|w| !w.is_empty())
            .collect();
        let has = |options: &[&str]| words.iter().any(|w| options.contains(w));
        let rule = if has(&[
            "recent",
            "newer",
            "newest",
            "latest",
            "fresh",
            "freshest",
            "new",
            "current",
            "up-to-date",
        ]) || clause.contains("last ")
        {
            let scale = within(&words).unwrap_or_else(|| DEFAULT_RECENCY_SCALE.to_string());
            Rule::prefer_recent(&scale).ok()
        } else if has(&[
            "older",
            "oldest",
            "earlier",
            "earliest",
            "historical",
            "original",
        ]) {
            let scale = within(&words).unwrap_or_else(|| DEFAULT_RECENCY_SCALE.to_string());
            Rule::prefer_older(&scale).ok()
        } else if has(&["official", "authoritative"]) {
            Some(Rule::Boost(Boost {
                field: "source".into(),
                equals: Some("official".into()),
                any_of: Vec::new(),
                factor: OFFICIAL_BOOST,
            }))
        } else if let Some(i) = words.iter().position(|w| *w == "source" || *w == "sources") {
            words.get(i + 1).map(|value| {
                Rule::Boost(Boost {
                    field: "source".into(),
                    equals: Some(value.trim_matches(['"', '\'']).to_string()),
                    any_of: Vec::new(),
                    factor: OFFICIAL_BOOST,
                })
            })
        } else {
            None
        };
        match rule {
            Some(rule) => {
                read.understood.push((clause.to_string(), rule.describe()));
                read.rules.push(rule);
            }
            None => read.not_understood.push(clause.to_string()),
        }
    }
    read
}

/// A duration named in a clause: "90 days", "6 months", "2 years", "90d".
fn within(words: &[&str]) -> Option<String> {
    for (i, w) in words.iter().enumerate() {
        if duration_days(w).is_some() && w.chars().any(|c| c.is_ascii_digit()) {
            return Some(w.to_string());
        }
        if let Ok(n) = w.parse::<u32>() {
            let unit = words.get(i + 1)?;
            let unit = match unit.trim_end_matches('s') {
                "day" => "d",
                "week" => "w",
                "month" => "mo",
                "year" => "y",
                _ => continue,
            };
            return Some(format!("{n}{unit}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Chunk, ChunkId, Scores};

    fn candidate(id: u64, score: f32, metadata: &[(&str, Value)]) -> Candidate {
        Candidate {
            chunk: Chunk {
                id: ChunkId(id),
                doc_id: format!("d{id}"),
                ordinal: 0,
                title: String::new(),
                section: Vec::new(),
                text: String::new(),
                char_start: 0,
                char_end: 0,
                metadata: metadata
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            },
            scores: Scores {
                rerank: Some(score),
                ..Scores::default()
            },
        }
    }

    fn ids(candidates: &[Candidate]) -> Vec<u64> {
        candidates.iter().map(|c| c.chunk.id.0).collect()
    }

    fn at(date: &str) -> Timestamp {
        format!("{date}T00:00:00Z").parse().unwrap()
    }

    #[test]
    fn the_three_decays_reach_decay_at_one_scale() {
        for function in [
            DecayFunction::Gauss,
            DecayFunction::Exp,
            DecayFunction::Linear,
        ] {
            let d = Decay {
                field: "n".into(),
                function,
                origin: Quantity::Number(0.0),
                scale: Quantity::Number(10.0),
                offset: Some(Quantity::Number(5.0)),
                decay: 0.5,
                weight: 1.0,
                missing: None,
            };
            let axis = d.axis().unwrap();
            assert_eq!(
                d.decay_at(&axis, 3.0),
                1.0,
                "{function:?} within the offset"
            );
            assert!(
                (d.decay_at(&axis, 15.0) - 0.5).abs() < 1e-12,
                "{function:?}"
            );
            assert!(d.decay_at(&axis, 25.0) < 0.5, "{function:?} beyond");
        }
        let linear = Decay {
            function: DecayFunction::Linear,
            ..decay_on_dates("exp")
        };
        let axis = linear.axis().unwrap();
        assert_eq!(linear.decay_at(&axis, 10_000.0), 0.0);
    }

    fn decay_on_dates(_: &str) -> Decay {
        Decay {
            field: "date".into(),
            function: DecayFunction::Exp,
            origin: Quantity::Text("now".into()),
            scale: Quantity::Text("30d".into()),
            offset: None,
            decay: 0.5,
            weight: 1.0,
            missing: None,
        }
    }

    /// Two equally relevant pages: the newer one goes first; an irrelevant
    /// new one stays below both (multiply on a min-max basis).
    #[test]
    fn prefer_recent_lifts_the_newer_of_two_equals_only() {
        let candidates = vec![
            candidate(1, 5.1, &[("date", "2021-03-15".into())]),
            candidate(2, 5.0, &[("date", "2025-11-20".into())]),
            candidate(3, -6.0, &[("date", "2026-11-30".into())]),
        ];
        let rescore = Rescore::new(vec![Rule::prefer_recent("90d").unwrap()]);
        let out = rescore
            .apply_at(candidates.clone(), at("2026-12-01"))
            .unwrap();
        assert_eq!(ids(&out), vec![2, 1, 3]);
        let r = out[0].scores.rescore.as_ref().unwrap();
        assert_eq!(r.factors.len(), 1);
        assert_eq!(r.factors[0].value, Some(Value::from("2025-11-20")));
        assert!(r.factors[0]
            .rule
            .starts_with("date: exp decay from newest, scale 90d"));
        assert!((r.score - r.base * r.factors[0].factor).abs() < 1e-6);
        assert_eq!(out[0].scores.final_score(), r.score);
        // Without the rule the order is the model's.
        assert_eq!(
            ids(&Rescore::default()
                .apply_at(candidates, at("2026-12-01"))
                .unwrap()),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn boosts_match_values_prefixes_and_list_items() {
        let candidates = vec![
            candidate(1, 3.0, &[("source", "community".into())]),
            candidate(2, 2.9, &[("source", "official".into())]),
            candidate(
                3,
                2.8,
                &[("tags", serde_json::json!(["billing", "refunds"]))],
            ),
            candidate(4, 2.7, &[("source", "billing/refunds.md".into())]),
            candidate(5, 0.0, &[]),
        ];
        let official = Rule::parse_boost("source=official:1.5").unwrap();
        let out = Rescore::new(vec![official])
            .apply_at(candidates.clone(), Timestamp::UNIX_EPOCH)
            .unwrap();
        assert_eq!(ids(&out)[0], 2);
        let tags = Rule::parse_boost("tags=refunds|x:1.5").unwrap();
        let out = Rescore::new(vec![tags])
            .apply_at(candidates.clone(), Timestamp::UNIX_EPOCH)
            .unwrap();
        assert_eq!(ids(&out)[0], 3);
        let prefix = Rule::parse_boost("source=billing/*:2").unwrap();
        let out = Rescore::new(vec![prefix])
            .apply_at(candidates, Timestamp::UNIX_EPOCH)
            .unwrap();
        assert_eq!(ids(&out)[0], 4);
        let unmatched = out.iter().find(|c| c.chunk.id.0 == 5).unwrap();
        assert_eq!(
            unmatched.scores.rescore.as_ref().unwrap().factors[0].factor,
            1.0
        );
    }

    #[test]
    fn missing_values_take_the_stated_default() {
        let candidates = vec![
            candidate(1, 1.0, &[]),
            candidate(2, 1.0, &[("date", "not a date".into())]),
        ];
        let rule = Rule::prefer_recent("90d").unwrap();
        let out = Rescore::new(vec![rule])
            .apply_at(candidates, at("2026-01-01"))
            .unwrap();
        // Undated: as if one scale old: 1 − 0.5 × (1 − 0.5).
        for c in &out {
            assert_eq!(c.scores.rescore.as_ref().unwrap().factors[0].factor, 0.75);
        }
        let mut d = decay_on_dates("exp");
        d.missing = Some(1.0);
        let out = Rescore::new(vec![Rule::Decay(d)])
            .apply_at(vec![candidate(1, 1.0, &[])], at("2026-01-01"))
            .unwrap();
        assert_eq!(
            out[0].scores.rescore.as_ref().unwrap().factors[0].factor,
            1.0
        );
    }

    #[test]
    fn sum_and_rank_basis() {
        let candidates = vec![
            candidate(1, 10.0, &[]),
            candidate(2, 9.0, &[("source", "official".into())]),
            candidate(3, -50.0, &[]),
        ];
        let mut rescore = Rescore::new(vec![Rule::parse_boost("source=official:1.05").unwrap()]);
        // Min-max (a negative logit): 1 vs 0.983 × 1.05 = 1.032: the boost wins.
        assert_eq!(
            ids(&rescore
                .apply_at(candidates.clone(), Timestamp::UNIX_EPOCH)
                .unwrap())[0],
            2
        );
        // Rank: 1 vs 0.667 × 1.05: it does not.
        rescore.basis = Basis::Rank;
        assert_eq!(
            ids(&rescore
                .apply_at(candidates.clone(), Timestamp::UNIX_EPOCH)
                .unwrap())[0],
            1
        );
        rescore.combine = Combine::Sum;
        let out = rescore.apply_at(candidates, Timestamp::UNIX_EPOCH).unwrap();
        let second = out.iter().find(|c| c.chunk.id.0 == 2).unwrap();
        let r = second.scores.rescore.as_ref().unwrap();
        assert!((r.score - (r.base + 0.05)).abs() < 1e-6);
    }

    /// Scores with a meaningful zero (RRF) are divided by the top one: the
    /// tied last candidates keep a base a boost can lift.
    #[test]
    fn positive_scores_are_divided_by_the_top_one() {
        let rrf = |id: u64, fused: f32, source: &str| {
            let mut c = candidate(id, 0.0, &[("source", source.into())]);
            c.scores = Scores {
                fused: Some(fused),
                ..Scores::default()
            };
            c
        };
        let candidates = vec![
            rrf(1, 0.0328, "a"),
            rrf(2, 0.0320, "a"),
            rrf(3, 0.0320, "b"),
        ];
        let out = Rescore::new(vec![Rule::parse_boost("source=b:1.05").unwrap()])
            .apply_at(candidates, Timestamp::UNIX_EPOCH)
            .unwrap();
        assert_eq!(ids(&out), vec![3, 1, 2]);
        let base = out[0].scores.rescore.as_ref().unwrap().base;
        assert!((base - 0.0320 / 0.0328).abs() < 1e-6, "{base}");
    }

    #[test]
    fn origins_numbers_and_oldest() {
        let candidates = vec![
            candidate(1, 1.0, &[("date", "2020-01-01".into())]),
            candidate(2, 1.0, &[("date", "2024-01-01".into())]),
        ];
        let older = Rule::prefer_older("365d").unwrap();
        let out = Rescore::new(vec![older])
            .apply_at(candidates, at("2026-01-01"))
            .unwrap();
        assert_eq!(ids(&out), vec![1, 2]);
        assert_eq!(
            out[0].scores.rescore.as_ref().unwrap().factors[0].factor,
            1.0
        );
        let rating: Rule = serde_json::from_str(
            r#"{"kind":"decay","field":"rating","origin":5,"scale":2,"function":"linear"}"#,
        )
        .unwrap();
        let out = Rescore::new(vec![rating])
            .apply_at(
                vec![
                    candidate(1, 1.0, &[("rating", 1.into())]),
                    candidate(2, 1.0, &[("rating", "4.5".into())]),
                ],
                Timestamp::UNIX_EPOCH,
            )
            .unwrap();
        assert_eq!(ids(&out), vec![2, 1]);
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        let err = |json: &str| {
            let rescore: Rescore = serde_json::from_str(json).unwrap();
            rescore.validate().unwrap_err().to_string()
        };
        let e = err(r#"{"rules":[{"kind":"decay","field":"date","scale":"90x"}]}"#);
        assert!(
            e.contains("rescore.rules[0] (decay)") && e.contains("not a duration"),
            "{e}"
        );
        let e =
            err(r#"{"rules":[{"kind":"decay","field":"date","scale":"9d","origin":"yesterday"}]}"#);
        assert!(e.contains("origin \"yesterday\""), "{e}");
        let e = err(r#"{"rules":[{"kind":"decay","field":"n","scale":3,"origin":"2020-01-01"}]}"#);
        assert!(e.contains("does not fit"), "{e}");
        let e = err(r#"{"rules":[{"kind":"decay","field":"date","scale":"9d","decay":1.5}]}"#);
        assert!(e.contains("decay must be in (0, 1)"), "{e}");
        let e = err(r#"{"rules":[{"kind":"boost","field":"source","factor":2}]}"#);
        assert!(e.contains("exactly one of equals or any_of"), "{e}");
        assert!(serde_json::from_str::<Rescore>(r#"{"rules":[{"kind":"bost"}]}"#).is_err());
        for spec in [
            "source=official",
            "source:1.5",
            "source=official:x",
            "=a:1",
            "source=a:-1",
        ] {
            let e = Rule::parse_boost(spec).unwrap_err().to_string();
            assert!(
                e.contains("--boost") && e.contains("FIELD=VALUE:FACTOR"),
                "{spec}: {e}"
            );
        }
        assert!(Rule::prefer_recent("soon")
            .unwrap_err()
            .to_string()
            .contains("--prefer-recent soon"));
        for ok in ["90d", "12w", "6mo", "1y", "36h", "90 days"] {
            Rule::prefer_recent(ok).unwrap();
        }
    }

    #[test]
    fn rules_round_trip_through_toml_and_json() {
        let rescore = Rescore {
            rules: vec![
                Rule::prefer_recent("90d").unwrap(),
                Rule::parse_boost("tags=a|b:1.2").unwrap(),
            ],
            basis: Basis::Rank,
            combine: Combine::Sum,
        };
        let toml_text = toml::to_string(&rescore).unwrap();
        assert_eq!(toml::from_str::<Rescore>(&toml_text).unwrap(), rescore);
        let json = serde_json::to_string(&rescore).unwrap();
        assert_eq!(serde_json::from_str::<Rescore>(&json).unwrap(), rescore);
    }

    #[test]
    fn instructions_map_to_rules_or_say_they_were_not_understood() {
        let read = interpret_instruction("Weight newer documents higher");
        assert_eq!(
            read.rules,
            vec![Rule::prefer_recent(DEFAULT_RECENCY_SCALE).unwrap()]
        );
        let read = interpret_instruction(
            "prefer documents from the last 90 days; prefer official sources",
        );
        assert_eq!(
            read.rules,
            vec![
                Rule::prefer_recent("90d").unwrap(),
                Rule::parse_boost("source=official:1.5").unwrap()
            ]
        );
        let read = interpret_instruction("prefer older pages");
        assert_eq!(
            read.rules,
            vec![Rule::prefer_older(DEFAULT_RECENCY_SCALE).unwrap()]
        );
        let read = interpret_instruction("prefer source billing/*");
        assert_eq!(
            read.rules,
            vec![Rule::parse_boost("source=billing/*:1.5").unwrap()]
        );
        let read = interpret_instruction("answer like a pirate, and prefer recent ones");
        assert_eq!(read.rules.len(), 1);
        assert_eq!(
            read.not_understood,
            vec!["answer like a pirate".to_string()]
        );
        let notice = read.notice().unwrap();
        assert!(
            notice.contains("not understood: \"answer like a pirate\""),
            "{notice}"
        );
        assert!(
            notice.contains("\"prefer recent ones\" as date: exp decay"),
            "{notice}"
        );
    }
}
