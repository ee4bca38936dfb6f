//! A SentencePiece (BPE-by-score) tokenizer built from a GGUF file's
//! `tokenizer.ggml.*` metadata, as llama.cpp's `llm_tokenizer_spm` does.
//!
//! The Gemma GGUF carries its vocabulary, piece scores and token types but
//! no `tokenizer.json`, so the `tokenizers` crate cannot load it; the
//! algorithm is small enough to run here: spaces become `▁`, the text is
//! split into characters, and the adjacent pair whose merged piece has the
//! highest score is merged until no pair is in the vocabulary. A piece
//! outside the vocabulary falls back to its UTF-8 bytes (`<0xNN>` pieces).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

/// Token types of the GGUF `tokenizer.ggml.token_type` array.
const TYPE_CONTROL: i32 = 3;
const TYPE_BYTE: i32 = 6;

const SPACE: char = '\u{2581}';

/// A SentencePiece tokenizer over a GGUF vocabulary.
#[derive(Clone, Debug)]
pub struct SpmTokenizer {
    pieces: Vec<String>,
    scores: Vec<f32>,
    types: Vec<i32>,
    ids: HashMap<String, u32>,
    bytes: [Option<u32>; 256],
    add_space_prefix: bool,
    bos: Option<u32>,
    eos: Option<u32>,
    unknown: Option<u32>,
}

impl SpmTokenizer {
    /// A tokenizer from pieces, their scores and token types (GGUF order),
    /// the special ids and whether a space is put before the text.
    pub fn new(
        pieces: Vec<String>,
        scores: Vec<f32>,
        types: Vec<i32>,
        add_space_prefix: bool,
        bos: Option<u32>,
        eos: Option<u32>,
        unknown: Option<u32>,
    ) -> std::result::Result<Self, String> {
        if pieces.is_empty() {
            return Err("the vocabulary is empty".into());
        }
        let scores = if scores.len() == pieces.len() {
            scores
        } else if scores.is_empty() {
            vec![0.0; pieces.len()]
        } else {
            return Err(format!(
                "{} pieces but {} scores",
                pieces.len(),
                scores.len()
            ));
        };
        let types = if types.len() == pieces.len() {
            types
        } else {
            vec![1; pieces.len()]
        };
        let mut ids = HashMap::with_capacity(pieces.len());
        let mut bytes = [None; 256];
        for (i, piece) in pieces.iter().enumerate() {
            if types[i] == TYPE_BYTE {
                if let Some(b) = parse_byte_piece(piece) {
                    bytes[b as usize] = Some(i as u32);
                }
                continue;
            }
            // The first of duplicate pieces wins, as in SentencePiece.
            ids.entry(piece.clone()).or_insert(i as u32);
        }
        Ok(SpmTokenizer {
            pieces,
            scores,
            types,
            ids,
            bytes,
            add_space_prefix,
            bos,
            eos,
            unknown,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    /// The id of a piece given in its vocabulary spelling (`▁yes`), if any.
    pub fn piece_id(&self, piece: &str) -> Option<u32> {
        self.ids.get(piece).copied()
    }

    /// Whether the id is a control token (`<bos>`, `<end_of_turn>`, …).
    pub fn is_control(&self, id: u32) -> bool {
        self.types.get(id as usize) == Some(&TYPE_CONTROL)
    }

    /// Token ids of `text` (no `<bos>`; see [`SpmTokenizer::bos_id`]).
    /// Special-token spellings in the text are tokenized as text.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut normalized = String::with_capacity(text.len() + 3);
        if self.add_space_prefix && !text.is_empty() {
            normalized.push(SPACE);
        }
        normalized.extend(text.chars().map(|c| if c == ' ' { SPACE } else { c }));
        let mut out = Vec::with_capacity(normalized.len() / 3 + 1);
        self.encode_normalized(&normalized, &mut out);
        out
    }

    fn encode_normalized(&self, text: &str, out: &mut Vec<u32>) {
        if text.is_empty() {
            return;
        }
        // Symbols are byte ranges of `text`, linked as a list.
        let mut symbols: Vec<Symbol> = text
            .char_indices()
            .map(|(i, c)| Symbol {
                start: i,
                len: c.len_utf8(),
                prev: None,
                next: None,
            })
            .collect();
        let n = symbols.len();
        for (i, s) in symbols.iter_mut().enumerate() {
            s.prev = i.checked_sub(1);
            s.next = (i + 1 < n).then_some(i + 1);
        }
        let mut heap = BinaryHeap::new();
        for i in 1..n {
            self.push_bigram(text, &symbols, i - 1, i, &mut heap);
        }
        while let Some(bigram) = heap.pop() {
            let (l, r) = (bigram.left, bigram.right);
            // Stale: one side was merged away or has grown since.
            if symbols[l].len == 0
                || symbols[r].len == 0
                || symbols[l].len + symbols[r].len != bigram.len
            {
                continue;
            }
            symbols[l].len += symbols[r].len;
            symbols[r].len = 0;
            symbols[l].next = symbols[r].next;
            if let Some(next) = symbols[r].next {
                symbols[next].prev = Some(l);
            }
            if let Some(prev) = symbols[l].prev {
                self.push_bigram(text, &symbols, prev, l, &mut heap);
            }
            if let Some(next) = symbols[l].next {
                self.push_bigram(text, &symbols, l, next, &mut heap);
            }
        }
        let mut i = Some(0);
        while let Some(at) = i {
            let s = &symbols[at];
            let piece = &text[s.start..s.start + s.len];
            match self.ids.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    for b in piece.bytes() {
                        if let Some(id) = self.bytes[b as usize].or(self.unknown) {
                            out.push(id)
                        }
                    }
                }
            }
            i = s.next;
        }
    }

    fn push_bigram(
        &self,
        text: &str,
        symbols: &[Symbol],
        left: usize,
        right: usize,
        heap: &mut BinaryHeap<Bigram>,
    ) {
        let (l, r) = (&symbols[left], &symbols[right]);
        let piece = &text[l.start..r.start + r.len];
        if let Some(&id) = self.ids.get(piece) {
            heap.push(Bigram {
                score: self.scores[id as usize],
                left,
                right,
                len: piece.len(),
            });
        }
    }

    /// The text of token ids; control tokens are left out, byte pieces are
    /// reassembled into UTF-8 (invalid sequences become U+FFFD).
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            let Some(piece) = self.pieces.get(id as usize) else {
                continue;
            };
            match self.types[id as usize] {
                TYPE_CONTROL => {}
                TYPE_BYTE => bytes.extend(parse_byte_piece(piece)),
                _ => bytes.extend(piece.replace(SPACE, " ").as_bytes()),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Ids of the text tokens (not control or byte tokens) whose text is
    /// non-empty and made only of `alphabet`'s characters.
    pub fn ids_within(&self, alphabet: &str) -> Vec<u32> {
        (0..self.pieces.len())
            .filter(|&i| self.types[i] != TYPE_CONTROL && self.types[i] != TYPE_BYTE)
            .filter(|&i| {
                let text = self.pieces[i].replace(SPACE, " ");
                !text.is_empty() && text.chars().all(|c| alphabet.contains(c))
            })
            .map(|i| i as u32)
            .collect()
    }

    /// One token's text, as an OpenAI `logprobs` entry shows it.
    pub fn token_text(&self, id: u32) -> String {
        self.decode(&[id])
    }
}

fn parse_byte_piece(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}

#[derive(Clone, Copy, Debug)]
struct Symbol {
    start: usize,
    /// 0 once merged into its left neighbour.
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

#[derive(Debug)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    len: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Highest score first; among equal scores the leftmost pair.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> SpmTokenizer {
        let mut pieces: Vec<String> = ["<pad>", "<bos>", "<eos>", "<unk>"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut types = vec![3, 3, 3, 2];
        let mut scores = vec![0.0; 4];
        for b in 0..=255u8 {
            pieces.push(format!("<0x{b:02X}>"));
            types.push(TYPE_BYTE);
            scores.push(0.0);
        }
        for (p, s) in [
            ("▁", -1.0),
            ("h", -2.0),
            ("e", -2.0),
            ("l", -2.0),
            ("o", -2.0),
            ("he", -3.0),
            ("ll", -4.0),
            ("hell", -5.0),
            ("hello", -6.0),
            ("▁hello", -7.0),
            ("lo", -8.0),
        ] {
            pieces.push(p.into());
            types.push(1);
            scores.push(s);
        }
        SpmTokenizer::new(pieces, scores, types, false, Some(1), Some(2), Some(3)).unwrap()
    }

    #[test]
    fn merges_by_score_and_falls_back_to_bytes() {
        let t = toy();
        let ids = t.encode("hello hello");
        let pieces: Vec<&str> = ids.iter().map(|&i| t.pieces[i as usize].as_str()).collect();
        assert_eq!(pieces, ["hello", "▁hello"]);
        assert_eq!(t.decode(&ids), "hello hello");
        // "é" is not a piece: two byte tokens, decoded back to the character.
        let ids = t.encode("hé");
        assert_eq!(ids.len(), 3);
        assert_eq!(t.decode(&ids), "hé");
        assert_eq!(
            t.decode(&[1, ids[0], 2]),
            "h",
            "control tokens are not text"
        );
        assert!(t.encode("").is_empty());
    }
}
