//! Cutting documents into overlapping windows of the bi-encoder's tokens.

use sift_core::{Chunk, ChunkId, ChunkingConfig, Document};
use tokenizers::Tokenizer;

/// Splits documents into chunks of at most `max_tokens` word pieces, each
/// sharing `overlap_tokens` with the previous one. Chunk boundaries fall on
/// token boundaries and every chunk records its character offsets in the
/// document text, so a hit can be cited exactly.
pub struct Chunker<'a> {
    tokenizer: &'a Tokenizer,
    max_tokens: usize,
    stride: usize,
    overlap: usize,
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
        // Offsets of real (non-special) tokens, in characters.
        let offsets: Vec<(usize, usize)> = encoding
            .get_offsets()
            .iter()
            .copied()
            .filter(|(s, e)| e > s)
            .collect();
        let make = |ordinal: u32, char_start: usize, char_end: usize, text: String| Chunk {
            id: ChunkId::derive(&doc.id, ordinal, &text),
            doc_id: doc.id.clone(),
            ordinal,
            title: doc.title.clone(),
            text,
            char_start,
            char_end,
            metadata: doc.metadata.clone(),
        };
        if offsets.is_empty() {
            return Ok(if doc.title.trim().is_empty() {
                vec![]
            } else {
                vec![make(0, 0, 0, String::new())]
            });
        }
        // Character index → byte index, once per document.
        let mut byte_at: Vec<usize> = doc.text.char_indices().map(|(b, _)| b).collect();
        byte_at.push(doc.text.len());
        let chars: Vec<char> = doc.text.chars().collect();
        // A window must not start or end inside a word ("##ted" pieces):
        // tokens that touch their neighbour with no space between belong to
        // one word, and a chunk boundary moves to the word's edge.
        let joined = |i: usize| {
            offsets[i].0 == offsets[i - 1].1
                && chars[offsets[i].0].is_alphanumeric()
                && chars[offsets[i].0 - 1].is_alphanumeric()
        };
        // Token i opens a sentence when a line break precedes it or the
        // token before it is a full stop, question or exclamation mark.
        let starts_sentence = |i: usize| {
            let (prev_start, prev_end) = offsets[i - 1];
            let gap = &chars[prev_end..offsets[i].0];
            gap.contains(&'\n')
                || (prev_end - prev_start == 1 && matches!(chars[prev_start], '.' | '?' | '!'))
        };
        let mut chunks = Vec::new();
        let mut first = 0;
        loop {
            let mut last = (first + self.max_tokens).min(offsets.len()) - 1;
            // Shrink rather than grow, so a chunk never exceeds max_tokens;
            // a single word longer than the window is cut as it is.
            while last + 1 < offsets.len() && joined(last + 1) && last > first {
                last -= 1;
            }
            let (char_start, char_end) = (offsets[first].0, offsets[last].1);
            let text = doc.text[byte_at[char_start]..byte_at[char_end]].to_string();
            chunks.push(make(chunks.len() as u32, char_start, char_end, text));
            if last + 1 == offsets.len() {
                break;
            }
            // The next window starts `stride` tokens on (never past the end
            // of this one, so no text is skipped), moved back to the start
            // of its word, or forward when going back would not advance.
            let mut next = (first + self.stride).min(last + 1);
            // Prefer starting on a sentence or line, within one overlap's
            // length back (more overlap) or forward (less, never a gap),
            // so chunks read and cite cleanly.
            let floor = next.saturating_sub(self.overlap).max(first + 1);
            let ceiling = (next + self.overlap).min(last + 1);
            let sentence = (floor..=next)
                .rev()
                .chain(next + 1..=ceiling)
                .find(|&i| starts_sentence(i));
            if let Some(sentence) = sentence {
                next = sentence;
            }
            while next > first + 1 && joined(next) {
                next -= 1;
            }
            while next <= last && joined(next) {
                next += 1;
            }
            first = next;
        }
        Ok(chunks)
    }
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
