//! How candidates are shown to a language model.

use sift_core::Candidate;

/// The candidate's metadata lines and (shortened) text, as the LLM
/// rerankers show it: title, date and source when known.
pub(crate) struct Passage<'a> {
    pub title: &'a str,
    pub date: Option<&'a str>,
    pub source: &'a str,
    pub text: String,
}

impl<'a> Passage<'a> {
    pub fn of(c: &'a Candidate, max_chars: usize) -> Self {
        let meta = |k: &str| c.chunk.metadata.get(k).and_then(|v| v.as_str());
        Passage {
            title: c.chunk.title.trim(),
            date: meta("date"),
            source: meta("source").unwrap_or(c.chunk.doc_id.as_str()),
            text: shorten(&c.chunk.text, max_chars),
        }
    }
}

/// At most `max_chars` characters, cut at a word boundary, with `…` when cut;
/// whitespace runs (newlines included) become one space.
pub(crate) fn shorten(text: &str, max_chars: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max_chars {
        return flat;
    }
    let cut: String = flat.chars().take(max_chars).collect();
    let cut = match cut.rfind(' ') {
        Some(i) if i > max_chars / 2 => &cut[..i],
        _ => cut.as_str(),
    };
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortens_on_words() {
        assert_eq!(shorten("a  b\n\nc", 100), "a b c");
        assert_eq!(shorten("alpha beta gamma delta", 12), "alpha beta…");
        assert_eq!(shorten("ééééééé", 3), "ééé…");
    }
}
