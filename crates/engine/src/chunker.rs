//! Cutting documents into chunks that follow their structure: a Markdown
//! heading starts a new chunk, blank-line paragraphs are where a long
//! section prefers to be split, and every chunk carries the heading path it
//! sits under.

use std::ops::Range;

use sift_core::{Chunk, ChunkId, ChunkingConfig, Document};
use tokenizers::Tokenizer;

/// Splits documents into chunks of at most `max_tokens` word pieces.
///
/// A document is first cut into sections at its Markdown headings (`#` to
/// `######`, outside fenced code): no chunk crosses a heading, and each
/// chunk carries the path of headings above it ([`Chunk::section`]), which
/// is embedded and indexed with it. A section longer than `max_tokens` is
/// cut into windows that share `overlap_tokens` with the previous one and
/// start, where one is near, on a paragraph (after a blank line), else on
/// a line (a list item), else on a sentence. Chunk boundaries fall on word
/// edges and every chunk records its character offsets in the document
/// text, so a hit can be cited exactly. Text without headings or blank lines (a BEIR abstract) is
/// one section, cut as it always was.
pub struct Chunker<'a> {
    tokenizer: &'a Tokenizer,
    max_tokens: usize,
    stride: usize,
    overlap: usize,
}

/// A run of a document's text under one heading path.
#[derive(Debug)]
struct Section {
    path: Vec<String>,
    /// Characters of the document text, the heading line excluded.
    chars: Range<usize>,
}

impl<'a> Chunker<'a> {
    pub fn new(tokenizer: &'a Tokenizer, config: &ChunkingConfig) -> Self {
        Chunker {
            tokenizer,
            max_tokens: config.max_tokens,
            stride: config.max_tokens - config.overlap_tokens,
            overlap: config.overlap_tokens,
        }
    }

    /// The chunks of a document, in order. A document whose text has no
    /// tokens but which has a title yields one chunk with empty text, so
    /// it can still be found by its title.
    pub fn chunk(&self, doc: &Document) -> crate::Result<Vec<Chunk>> {
        let encoding = self
            .tokenizer
            .encode_char_offsets(doc.text.as_str(), false)
            .map_err(|e| crate::Error::Tokenizer(e.to_string()))?;
        let (offsets, continues) = monotone_offsets(encoding.get_offsets());
        let make = |ordinal: u32, section: &[String], chars: Range<usize>, text: String| Chunk {
            id: ChunkId::derive_in_section(&doc.id, ordinal, section, &text),
            doc_id: doc.id.clone(),
            ordinal,
            title: doc.title.clone(),
            section: section.to_vec(),
            text,
            char_start: chars.start,
            char_end: chars.end,
            metadata: doc.metadata.clone(),
        };
        // Character index → byte index, once per document.
        let mut byte_at: Vec<usize> = doc.text.char_indices().map(|(b, _)| b).collect();
        byte_at.push(doc.text.len());
        let chars: Vec<char> = doc.text.chars().collect();
        let clusters = Clusters::of(&doc.text, chars.len());
        let windows = Windows {
            offsets: &offsets,
            continues: &continues,
            chars: &chars,
        };
        let mut chunks = Vec::new();
        let mut token = 0;
        for section in sections(&doc.text, &doc.title) {
            // Tokens before the section (a heading line) belong to no chunk.
            while token < offsets.len() && offsets[token].0 < section.chars.start {
                token += 1;
            }
            let first = token;
            while token < offsets.len() && offsets[token].1 <= section.chars.end {
                token += 1;
            }
            for tokens in windows.split(first..token, self.max_tokens, self.stride, self.overlap) {
                // Whole user-perceived characters: a combining accent the
                // normaliser dropped, an emoji's skin tone or ZWJ partner
                // stay with the character they modify.
                let span = clusters.start_of(offsets[tokens.start].0)
                    ..clusters.end_of(offsets[tokens.end - 1].1);
                let text = doc.text[byte_at[span.start]..byte_at[span.end]].to_string();
                chunks.push(make(chunks.len() as u32, &section.path, span, text));
            }
        }
        if chunks.is_empty() && !doc.title.trim().is_empty() {
            chunks.push(make(0, &[], 0..0, String::new()));
        }
        Ok(chunks)
    }
}

/// The character offsets of a document's tokens made safe to cut by: in
/// order, never overlapping, never reaching back.
///
/// The tokenizer's offsets point into the original text, and normalisation
/// can map several tokens onto the same characters: a Hangul syllable is
/// decomposed (NFD) into jamo that become separate word pieces, each with
/// the syllable's one-character span; a ligature (ﬁ) or an emoji sequence
/// can do the same. Such tokens are folded onto the span of the first: each
/// starts where the one before ended, so the later ones may be empty, and
/// `continues[i]` marks a token that shares characters with token i − 1
/// (no window may be cut between them). Zero-width tokens the tokenizer
/// gives (special tokens) are dropped.
fn monotone_offsets(raw: &[(usize, usize)]) -> (Vec<(usize, usize)>, Vec<bool>) {
    let mut offsets = Vec::with_capacity(raw.len());
    let mut continues = Vec::with_capacity(raw.len());
    let mut end = 0;
    for &(start, stop) in raw.iter().filter(|(s, e)| e > s) {
        let overlaps = !offsets.is_empty() && start < end;
        let start = start.max(end);
        let stop = stop.max(start);
        offsets.push((start, stop));
        continues.push(overlaps);
        end = stop;
    }
    (offsets, continues)
}

/// Grapheme-cluster boundaries of a document, by character index.
struct Clusters {
    /// For each character, the index of the first character of its cluster.
    start: Vec<usize>,
    /// For each character, one past the last character of its cluster.
    end: Vec<usize>,
}

impl Clusters {
    fn of(text: &str, chars: usize) -> Clusters {
        use unicode_segmentation::UnicodeSegmentation;
        let (mut start, mut end) = (Vec::with_capacity(chars), Vec::with_capacity(chars));
        let mut at = 0;
        for cluster in text.graphemes(true) {
            let n = cluster.chars().count();
            start.extend(std::iter::repeat_n(at, n));
            end.extend(std::iter::repeat_n(at + n, n));
            at += n;
        }
        Clusters { start, end }
    }

    /// The start of the cluster holding character `i`.
    fn start_of(&self, i: usize) -> usize {
        self.start.get(i).copied().unwrap_or(i)
    }

    /// The end of the cluster holding the character before `i` (`i` is an
    /// exclusive end).
    fn end_of(&self, i: usize) -> usize {
        i.checked_sub(1)
            .and_then(|last| self.end.get(last).copied())
            .unwrap_or(i)
    }
}

/// The token offsets of one document, and how to cut a run of them into
/// windows.
struct Windows<'t> {
    /// In order and disjoint (see [`monotone_offsets`]).
    offsets: &'t [(usize, usize)],
    /// Token i shares characters with token i − 1.
    continues: &'t [bool],
    chars: &'t [char],
}

impl Windows<'_> {
    /// Token i continues the word of token i − 1 (a "##ted" piece, a jamo
    /// of the same syllable): no window starts or ends between them.
    fn joined(&self, i: usize) -> bool {
        let (offsets, chars) = (self.offsets, self.chars);
        let start = offsets[i].0;
        self.continues[i]
            || (start == offsets[i - 1].1
                && start > 0
                && chars.get(start).is_some_and(|c| c.is_alphanumeric())
                && chars[start - 1].is_alphanumeric())
    }

    /// The text between tokens i − 1 and i.
    fn gap(&self, i: usize) -> &[char] {
        &self.chars[self.offsets[i - 1].1..self.offsets[i].0]
    }

    /// Token i opens a line (a list item, a table row, a verse).
    fn starts_line(&self, i: usize) -> bool {
        self.gap(i).contains(&'\n')
    }

    /// Token i opens a sentence: a line break precedes it, or the token
    /// before it is a full stop, question or exclamation mark.
    fn starts_sentence(&self, i: usize) -> bool {
        let (prev_start, prev_end) = self.offsets[i - 1];
        self.starts_line(i)
            || (prev_end - prev_start == 1 && matches!(self.chars[prev_start], '.' | '?' | '!'))
    }

    /// Token i opens a paragraph: a blank line precedes it.
    fn starts_paragraph(&self, i: usize) -> bool {
        self.gap(i).iter().filter(|&&c| c == '\n').count() >= 2
    }

    /// Cut the tokens `run` into windows of at most `max_tokens`, each
    /// starting `stride` tokens after the previous one's start, moved to a
    /// paragraph, line or sentence start within `overlap` tokens either way.
    fn split(
        &self,
        run: Range<usize>,
        max_tokens: usize,
        stride: usize,
        overlap: usize,
    ) -> Vec<Range<usize>> {
        let mut windows = Vec::new();
        if run.is_empty() {
            return windows;
        }
        let mut first = run.start;
        loop {
            let full = (first + max_tokens).min(run.end) - 1;
            let mut last = full;
            // Shrink rather than grow, so a chunk never exceeds max_tokens;
            // a single word longer than the window is cut as it is.
            while last + 1 < run.end && self.joined(last + 1) && last > first {
                last -= 1;
            }
            // Shrinking reached the window's first token and that token's
            // word runs past the window: the word alone is longer than a
            // window, so it is cut at max_tokens (one piece a chunk would
            // shred it).
            if last == first && full > first && self.joined(first + 1) {
                last = full;
            }
            windows.push(first..last + 1);
            if last + 1 == run.end {
                return windows;
            }
            // The next window starts `stride` tokens on (never past the end
            // of this one, so no text is skipped), moved back to the start
            // of its word, or forward when going back would not advance.
            let mut next = (first + stride).min(last + 1);
            // Prefer starting on a paragraph, else a line (a list item),
            // else a sentence, within one overlap's length back (more
            // overlap) or forward (less, never a gap), so chunks read and
            // cite cleanly.
            let floor = next.saturating_sub(overlap).max(first + 1);
            let ceiling = (next + overlap).min(last + 1);
            let near = || (floor..=next).rev().chain(next + 1..=ceiling);
            let start = near()
                .find(|&i| self.starts_paragraph(i))
                .or_else(|| near().find(|&i| self.starts_line(i)))
                .or_else(|| near().find(|&i| self.starts_sentence(i)));
            if let Some(start) = start {
                next = start;
            }
            while next > first + 1 && self.joined(next) {
                next -= 1;
            }
            while next <= last && self.joined(next) {
                next += 1;
            }
            first = next;
        }
    }
}

/// Cut a document's text into sections at its ATX headings (`## Title`),
/// ignoring `#` lines inside fenced code. A heading's level decides the
/// path: `## A` then `### B` is `A › B`, a later `## C` is `C`. The
/// document's own title line (a first line repeating the title, `# Title`
/// or not) and an `Updated: YYYY-MM-DD` line under it are front matter:
/// neither a section nor part of the path. Sections keep their text even
/// when it is blank; the chunker skips those without tokens.
fn sections(text: &str, title: &str) -> Vec<Section> {
    let mut sections = Vec::new();
    let mut path: Vec<(usize, String)> = Vec::new();
    let skipped = crate::ingest::front_matter(text, title).len;
    let mut at = text[..skipped].chars().count();
    let mut start = at;
    let mut fence: Option<&str> = None;
    for line in text[skipped..].split_inclusive('\n') {
        let line_end = at + line.chars().count();
        let trimmed = line.trim();
        if let Some(marker) = fence {
            if trimmed.starts_with(marker) {
                fence = None;
            }
        } else if let Some(marker) = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m)) {
            fence = Some(marker);
        } else if let Some((level, heading)) = atx_heading(line) {
            sections.push(Section {
                path: path.iter().map(|(_, h)| h.clone()).collect(),
                chars: start..at,
            });
            path.retain(|(l, _)| *l < level);
            path.push((level, heading));
            start = line_end;
        }
        at = line_end;
    }
    sections.push(Section {
        path: path.into_iter().map(|(_, h)| h).collect(),
        chars: start..at,
    });
    sections
}

/// `## Heading ##` → (2, "Heading"): up to three spaces of indent, one to
/// six `#`, a space, the text without closing `#`s. `#hashtag` is no heading.
fn atx_heading(line: &str) -> Option<(usize, String)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let level = rest.len() - rest.trim_start_matches('#').len();
    let after = &rest[level..];
    if !(1..=6).contains(&level) || !(after.starts_with([' ', '\t']) || after.trim().is_empty()) {
        return None;
    }
    // A closing run of `#` counts only after a space: `## C#` is "C#".
    let text = after.trim();
    let text = match text.trim_end_matches('#') {
        open if open.is_empty() || open.ends_with([' ', '\t']) => open.trim_end(),
        _ => text,
    };
    if text.is_empty() {
        return None;
    }
    Some((level, text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A word-piece tokenizer over a tiny vocabulary, so tests need no model.
    fn tokenizer() -> Tokenizer {
        use tokenizers::models::wordpiece::WordPiece;
        use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
        let vocab = [
            "[UNK]", "the", "data", "is", "delete", "##d", "after", "30", "days", "close", "your",
            "account", ".",
        ];
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), vocab.join("\n")).unwrap();
        let model = WordPiece::from_file(file.path().to_str().unwrap())
            .unk_token("[UNK]".into())
            .build()
            .unwrap();
        let mut t = Tokenizer::new(model);
        t.with_pre_tokenizer(Some(BertPreTokenizer));
        t
    }

    /// Neither end of the chunk is inside a word.
    fn on_word_edges(text: &str, c: &Chunk) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let before = c.char_start.checked_sub(1).map(|i| chars[i]);
        let after = chars.get(c.char_end).copied();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    }

    fn chunk(text: &str, max_tokens: usize, overlap_tokens: usize) -> Vec<Chunk> {
        let tokenizer = tokenizer();
        let chunker = Chunker::new(
            &tokenizer,
            &ChunkingConfig {
                max_tokens,
                overlap_tokens,
            },
        );
        chunker.chunk(&Document::new("doc", "Title", text)).unwrap()
    }

    #[test]
    fn offsets_cite_the_text_exactly() {
        let text = "Close your account. The data is deleted after 30 days. The data is deleted.";
        let chunks = chunk(text, 6, 2);
        assert!(chunks.len() > 2);
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.ordinal as usize, i);
            let cited: String = text
                .chars()
                .skip(c.char_start)
                .take(c.char_end - c.char_start)
                .collect();
            assert_eq!(cited, c.text);
            assert!(on_word_edges(text, c), "{:?}", c.text);
        }
        assert_eq!(chunks[0].char_start, 0);
        assert_eq!(chunks.last().unwrap().char_end, text.chars().count());
    }

    #[test]
    fn windows_overlap_and_never_split_a_word() {
        // "deleted" is two pieces, "delete" + "##d": no chunk may start at "d".
        let text = "the data is deleted after 30 days the data is deleted after 30 days";
        for (max, overlap) in [(3, 1), (4, 2), (5, 0), (2, 1)] {
            let chunks = chunk(text, max, overlap);
            for c in &chunks {
                assert!(on_word_edges(text, c), "{max}/{overlap}: {:?}", c.text);
            }
            // Every character of the text is in some chunk.
            let mut covered = vec![false; text.chars().count()];
            for c in &chunks {
                covered[c.char_start..c.char_end]
                    .iter_mut()
                    .for_each(|x| *x = true);
            }
            let gaps: Vec<usize> = covered
                .iter()
                .enumerate()
                .filter(|(i, c)| !**c && text.chars().nth(*i) != Some(' '))
                .map(|(i, _)| i)
                .collect();
            assert!(gaps.is_empty(), "{max}/{overlap}: uncovered {gaps:?}");
        }
    }

    #[test]
    fn windows_prefer_sentence_starts() {
        // Sentences of five tokens: one always starts within an overlap of 4.
        let text = "Close your account. The data is gone. The data is gone. The data is gone. The data is gone.";
        let chunks = chunk(text, 8, 4);
        assert!(chunks.len() >= 2);
        for c in &chunks[1..] {
            assert!(c.text.starts_with("The"), "{:?}", c.text);
        }
    }

    /// A help-centre page as a file reads it: title, date, intro, sections.
    const PAGE: &str = "# Title\n\nUpdated: 2025-04-03\n\nClose your account.\n\n## The data\n\nThe data is deleted after 30 days.\n\n### Backups\n\nThe data is deleted.\n\n```\n# not a heading\n```\n\n## Your account\n\nClose your account.\n";

    fn cited(text: &str, c: &Chunk) -> String {
        text.chars()
            .skip(c.char_start)
            .take(c.char_end - c.char_start)
            .collect()
    }

    #[test]
    fn headings_start_chunks_and_make_their_path() {
        let chunks = chunk(PAGE, 50, 5);
        let found: Vec<(Vec<&str>, &str)> = chunks
            .iter()
            .map(|c| {
                (
                    c.section.iter().map(String::as_str).collect(),
                    c.text.as_str(),
                )
            })
            .collect();
        assert_eq!(
            found,
            vec![
                // Title and date lines are front matter, not text.
                (vec![], "Close your account."),
                (vec!["The data"], "The data is deleted after 30 days."),
                // A fence's `#` line is code, not a heading.
                (
                    vec!["The data", "Backups"],
                    "The data is deleted.\n\n```\n# not a heading\n```"
                ),
                // A heading of the same level replaces, a deeper one nests.
                (vec!["Your account"], "Close your account."),
            ]
        );
        // The path is part of the id (a renamed heading re-embeds).
        for c in &chunks {
            assert_eq!(
                c.id,
                ChunkId::derive_in_section("doc", c.ordinal, &c.section, &c.text)
            );
        }
        assert_eq!(
            chunks[2].passage(),
            "Title › The data › Backups The data is deleted.\n\n```\n# not a heading\n```"
        );
    }

    #[test]
    fn offsets_cite_the_original_file() {
        let doc = crate::ingest::parse_text(PAGE);
        let tokenizer = tokenizer();
        let config = ChunkingConfig {
            max_tokens: 4,
            overlap_tokens: 1,
        };
        let chunks = Chunker::new(&tokenizer, &config).chunk(&doc).unwrap();
        assert!(chunks.len() > 4);
        for c in &chunks {
            assert_eq!(cited(PAGE, c), c.text, "{c:?}");
            assert!(
                !c.text.contains("##"),
                "a chunk crossed a heading: {:?}",
                c.text
            );
        }
    }

    #[test]
    fn a_long_section_is_split_on_paragraphs_and_keeps_its_path() {
        // One section of two paragraphs, longer than a chunk. The stride
        // (6 tokens) lands on "30"; a sentence starts 3 tokens on, the
        // second paragraph 5 on: the paragraph wins.
        let text = "## The data\n\nthe data is deleted after 30 days. the data\n\nthe data is deleted after 30 days the data is deleted";
        let chunks = chunk(text, 12, 6);
        assert_eq!(chunks.len(), 3, "{chunks:?}");
        for c in &chunks {
            assert_eq!(c.section, ["The data"]);
            assert_eq!(cited(text, c), c.text);
            assert!(c.text.split_whitespace().count() <= 12, "{:?}", c.text);
        }
        assert!(chunks[1]
            .text
            .starts_with("the data is deleted after 30 days the"));
        let before: String = text.chars().take(chunks[1].char_start).collect();
        assert!(before.ends_with("days. the data\n\n"), "{before:?}");
        // Windows still overlap: the second reaches into the third.
        assert!(chunks[2].char_start < chunks[1].char_end);
    }

    #[test]
    fn a_list_is_split_between_its_items() {
        // The stride lands mid-item; a sentence starts one token on, the
        // next item six on: the item wins.
        let text = "- the data is deleted. after 30 days the data\n- the data is deleted after 30 days the data is deleted";
        let chunks = chunk(text, 12, 6);
        assert!(chunks.len() >= 2, "{chunks:?}");
        assert!(
            chunks[1].text.starts_with("- the data"),
            "{:?}",
            chunks[1].text
        );
    }

    #[test]
    fn text_without_structure_has_no_path() {
        let chunks = chunk("Close your account. The data is deleted.", 50, 5);
        assert_eq!(chunks.len(), 1);
        assert!(chunks[0].section.is_empty());
        // Its id is the one derived without a section (earlier indexes').
        assert_eq!(chunks[0].id, ChunkId::derive("doc", 0, &chunks[0].text));
    }

    #[test]
    fn atx_headings_follow_commonmark() {
        assert_eq!(
            atx_heading("## What is deleted ##\n"),
            Some((2, "What is deleted".into()))
        );
        assert_eq!(atx_heading("   # Indented\n"), Some((1, "Indented".into())));
        assert_eq!(atx_heading("### C#\n"), Some((3, "C#".into())));
        assert_eq!(atx_heading("#hashtag\n"), None);
        assert_eq!(atx_heading("####### seven\n"), None);
        assert_eq!(atx_heading("    # code\n"), None);
        assert_eq!(atx_heading("##\n"), None);
    }

    #[test]
    fn ids_change_with_content_only() {
        let a = chunk("the data is deleted", 10, 2);
        let b = chunk("the data is deleted", 10, 2);
        let c = chunk("the data is deleted after 30 days", 10, 2);
        assert_eq!(a[0].id, b[0].id);
        assert_ne!(a[0].id, c[0].id);
    }

    #[test]
    fn title_only_documents_keep_one_chunk() {
        assert_eq!(chunk("", 10, 2).len(), 1);
        let tokenizer = tokenizer();
        let chunker = Chunker::new(&tokenizer, &ChunkingConfig::default());
        assert!(chunker
            .chunk(&Document::new("d", "", "  "))
            .unwrap()
            .is_empty());
    }
}
