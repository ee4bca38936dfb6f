//! How results look in a terminal.

use sift_core::rescore::Combine;
use sift_core::{Candidate, Stage};
use sift_engine::SearchResponse;

/// Characters of chunk text shown on a hit's line.
const SNIPPET_CHARS: usize = 96;

pub fn progress_bar(what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} chunks ({per_sec}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

pub fn print_search(
    response: &SearchResponse,
    json: bool,
    explain: bool,
    timings: bool,
) -> anyhow::Result<()> {
    // On stderr in every format, so JSON on stdout stays parseable.
    if let Some(notice) = &response.notice {
        eprintln!("note: {notice}");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(response)?);
        return Ok(());
    }
    if response.hits.is_empty() {
        println!("no hits");
    }
    for hit in &response.hits {
        println!("{:+.2} {}", shown_score(hit), snippet(&hit.chunk.text));
        println!("      {}", citation(hit));
        if let Some(line) = rescore_line(hit) {
            println!("      {line}");
        }
        if explain {
            println!("      {}", provenance(hit));
        }
    }
    if let Some(note) = blend_note(response) {
        println!("{note}");
    }
    if let Some(note) = rescore_note(response) {
        println!("{note}");
    }
    if timings {
        let t = &response.timings;
        let parts: Vec<String> = Stage::ALL
            .iter()
            .map(|s| format!("{} {:.1}", s.name(), t.get(*s).as_secs_f64() * 1e3))
            .collect();
        println!(
            "timings (ms): {} | total {:.1}",
            parts.join(", "),
            t.total.as_secs_f64() * 1e3
        );
        match &response.reranked_by {
            Some(by) => println!("reranked by {by}"),
            None => println!("not reranked"),
        }
    }
    Ok(())
}

/// The reranker's raw score when stage 2 ran (a logit, P(yes) or 1/rank),
/// else the stage-1 score: what the model said of the hit, not the blend
/// that may order it (that one is in `--explain`).
fn shown_score(hit: &Candidate) -> f32 {
    let s = &hit.scores;
    s.rerank.or(s.fused).unwrap_or_else(|| s.final_score())
}

/// What the rescoring rules made of a hit: `rescored 0.520 = 0.980 × 0.53
/// (date 2025-11-20)`, the base then each rule's factor and the value it read.
fn rescore_line(hit: &Candidate) -> Option<String> {
    let r = hit.scores.rescore.as_ref()?;
    let factors: Vec<String> = r
        .factors
        .iter()
        .map(|f| {
            let field = f.rule.split([':', ' ']).next().unwrap_or_default();
            let value = match &f.value {
                Some(serde_json::Value::String(v)) => v.clone(),
                Some(v) => v.to_string(),
                None => "none".into(),
            };
            match r.combine {
                Combine::Multiply => format!("× {:.2} ({field} {value})", f.factor),
                Combine::Sum => format!("{:+.2} ({field} {value})", f.factor - 1.0),
            }
        })
        .collect();
    Some(format!(
        "rescored {:.3} = {:.3} {}",
        r.score,
        r.base,
        factors.join(" ")
    ))
}

/// Said once under the hits when rescoring rules ordered them: which rules.
fn rescore_note(response: &SearchResponse) -> Option<String> {
    let first = response
        .hits
        .iter()
        .find_map(|h| h.scores.rescore.as_ref())?;
    let rules: Vec<&str> = first.factors.iter().map(|f| f.rule.as_str()).collect();
    Some(format!(
        "order: rescored by {} (base: the stage score on 0..1 over the candidates)",
        rules.join("; ")
    ))
}

/// Where a hit comes from: its document and the headings above it.
fn citation(hit: &Candidate) -> String {
    let c = &hit.chunk;
    if c.section.is_empty() {
        c.doc_id.clone()
    } else {
        format!("{} › {}", c.doc_id, c.section_path())
    }
}

/// Said once under the hits when a blend with stage 1 decided their order,
/// since the raw scores shown then need not descend.
fn blend_note(response: &SearchResponse) -> Option<String> {
    let blended = response.hits.iter().any(|h| h.scores.blended.is_some());
    let disordered = response
        .hits
        .windows(2)
        .any(|w| shown_score(&w[0]) < shown_score(&w[1]));
    blended.then(|| {
        format!(
            "order: the reranker's scores blended with the stage-1 order by rank{} (--explain shows both)",
            if disordered {
                ", so the scores above do not descend"
            } else {
                ""
            }
        )
    })
}

fn snippet(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= SNIPPET_CHARS {
        flat
    } else {
        let cut: String = flat.chars().take(SNIPPET_CHARS).collect();
        format!("{} …", cut.trim_end())
    }
}

fn provenance(hit: &Candidate) -> String {
    let s = &hit.scores;
    let ranked = |r: Option<sift_core::RankedScore>, what: &str| match r {
        Some(r) => format!("{what} #{} {:.3}", r.rank, r.score),
        None => format!("{what} -"),
    };
    format!(
        "chunk {} chars {}..{} | stage 1 #{} | {} | {} | rrf {} | rerank {}{}",
        hit.chunk.ordinal,
        hit.chunk.char_start,
        hit.chunk.char_end,
        s.stage1_rank.map_or("-".into(), |r| r.to_string()),
        ranked(s.bm25, "bm25"),
        ranked(s.dense, "dense"),
        s.fused.map_or("-".into(), |f| format!("{f:.4}")),
        s.rerank.map_or("-".into(), |r| format!("{r:+.3}")),
        s.blended
            .map_or(String::new(), |b| format!(" | blended {b:.5}")),
    )
}
