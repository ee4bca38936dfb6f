//! How text becomes BM25 terms, in every script.
//!
//! [`ScriptTokenizer`] cuts text into words like tantivy's
//! `SimpleTokenizer` (runs of letters and digits), but keeps a word's
//! combining marks with it (Devanagari's virama, Arabic's vowel marks), folds
//! compatibility forms (NFKC: `ﬁ` → `fi`, `ＡＢＣ` → `ABC`, decomposed
//! accents recomposed), and cuts the scripts written without spaces (Han,
//! Hiragana, Katakana) and Hangul into overlapping character bigrams, the
//! way Elasticsearch's `cjk` analyzer does: `汶川大地震` is indexed as
//! `汶川 川大 大地 地震`, so the two-character word `地震` in a query
//! matches inside the longer run. A lone character of those scripts is a
//! term of its own. Latin and the other spaced scripts then go through the
//! English filters (lower case, ASCII folding, stop words, Snowball stems),
//! which leave the bigrams as they are.

use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
    StopWordFilter, TextAnalyzer, TextAnalyzerBuilder, Token, TokenStream, Tokenizer,
};
use unicode_normalization::{char::is_combining_mark, UnicodeNormalization};

/// The analyzer of indexes made by this version: [`ScriptTokenizer`], then
/// the English filters.
pub(crate) const CURRENT: &str = "sift_text";

/// The analyzer of indexes made before text in every script was
/// tokenised (tantivy's `SimpleTokenizer`, then the same filters). Such an
/// index keeps being read and written with it, so its terms still match.
pub(crate) const LEGACY: &str = "sift_en";

/// Tokens longer than this many bytes (base64 blobs, hashes…) are dropped.
const MAX_TOKEN_BYTES: usize = 40;

/// The analyzer registered under `name` ([`CURRENT`] or [`LEGACY`]).
pub(crate) fn analyzer(name: &str) -> TextAnalyzer {
    if name == LEGACY {
        english(TextAnalyzer::builder(SimpleTokenizer::default()))
    } else {
        english(TextAnalyzer::builder(ScriptTokenizer::default()))
    }
}

/// The filters both analyzers share: long-token removal, lower case, ASCII
/// folding, Lucene's English stop words, the Snowball English stemmer.
fn english<T: Tokenizer>(builder: TextAnalyzerBuilder<T>) -> TextAnalyzer {
    builder
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(StopWordFilter::new(Language::English).expect("tantivy ships English stop words"))
        .filter(Stemmer::new(Language::English))
        .build()
}

/// The terms `text` is indexed under (or searched for), in order, with
/// repetitions: what the analyzer of a new index makes of it.
///
/// ```
/// assert_eq!(sift_lexical::analyze("Closing the Accounts!"), ["close", "account"]);
/// assert_eq!(sift_lexical::analyze("汶川大地震"), ["汶川", "川大", "大地", "地震"]);
/// assert_eq!(sift_lexical::analyze("ﬁnance ＡＢＣ"), ["financ", "abc"]);
/// ```
pub fn analyze(text: &str) -> Vec<String> {
    analyze_with(&mut analyzer(CURRENT), text)
}

pub(crate) fn analyze_with(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut stream = analyzer.token_stream(text);
    let mut terms = Vec::new();
    stream.process(&mut |token| terms.push(token.text.clone()));
    terms
}

/// Words of every script, with bigrams for the unspaced ones (see the
/// module documentation).
#[derive(Clone, Default)]
pub struct ScriptTokenizer {
    tokens: Vec<Token>,
}

/// The tokens of one text, made up front (a chunk is at most a few
/// thousand characters).
pub struct ScriptTokenStream<'a> {
    tokens: &'a mut [Token],
    next: usize,
}

impl Tokenizer for ScriptTokenizer {
    type TokenStream<'a> = ScriptTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> ScriptTokenStream<'a> {
        self.tokens.clear();
        let mut word: Option<(usize, bool)> = None; // (byte start, bigrammed)
        for (at, c) in text
            .char_indices()
            .chain(std::iter::once((text.len(), ' ')))
        {
            let class = class_of(c);
            if let Some((start, bigrammed)) = word {
                // A combining mark stays with the word before it, whatever
                // its script; a change between bigrammed and spaced scripts
                // ends a word ("iPhone手机" is two).
                let continues = match class {
                    Class::Mark => true,
                    Class::Word { bigrammed: b } => b == bigrammed,
                    Class::Other => false,
                };
                if continues {
                    continue;
                }
                self.push_word(text, start..at, bigrammed);
                word = None;
            }
            if let Class::Word { bigrammed } = class {
                word = Some((at, bigrammed));
            }
        }
        ScriptTokenStream {
            tokens: &mut self.tokens,
            next: 0,
        }
    }
}

impl ScriptTokenizer {
    fn push_word(&mut self, text: &str, bytes: std::ops::Range<usize>, bigrammed: bool) {
        let word = &text[bytes.clone()];
        if !bigrammed {
            let folded: String = word.nfkc().collect();
            self.push(folded, bytes);
            return;
        }
        let chars: Vec<(usize, char)> = word
            .char_indices()
            .map(|(i, c)| (bytes.start + i, c))
            .collect();
        let end_of = |i: usize| chars.get(i + 1).map_or(bytes.end, |&(b, _)| b);
        if chars.len() == 1 {
            self.push(word.nfkc().collect(), bytes);
            return;
        }
        for i in 0..chars.len() - 1 {
            let (start, first) = chars[i];
            let second = chars[i + 1].1;
            let bigram: String = [first, second].into_iter().nfkc().collect();
            self.push(bigram, start..end_of(i + 1));
        }
    }

    fn push(&mut self, text: String, bytes: std::ops::Range<usize>) {
        let position = self.tokens.len();
        self.tokens.push(Token {
            offset_from: bytes.start,
            offset_to: bytes.end,
            position,
            text,
            position_length: 1,
        });
    }
}

impl TokenStream for ScriptTokenStream<'_> {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

enum Class {
    /// A letter or digit; `bigrammed` for the scripts cut into bigrams.
    Word {
        bigrammed: bool,
    },
    /// A combining mark: part of the word before it.
    Mark,
    Other,
}

fn class_of(c: char) -> Class {
    if is_unspaced(c) {
        Class::Word { bigrammed: true }
    } else if c.is_alphanumeric() {
        Class::Word { bigrammed: false }
    } else if is_combining_mark(c) {
        Class::Mark
    } else {
        Class::Other
    }
}

/// Han, Hiragana, Katakana (full and half width) and Hangul: the scripts
/// Elasticsearch's `cjk_bigram` filter cuts into bigrams.
fn is_unspaced(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF       // Hangul Jamo
        | 0x3040..=0x309F     // Hiragana
        | 0x30A0..=0x30FF     // Katakana
        | 0x3130..=0x318F     // Hangul Compatibility Jamo
        | 0x31F0..=0x31FF     // Katakana Phonetic Extensions
        | 0x3400..=0x4DBF     // CJK Extension A
        | 0x4E00..=0x9FFF     // CJK Unified Ideographs
        | 0xA960..=0xA97F     // Hangul Jamo Extended-A
        | 0xAC00..=0xD7AF     // Hangul Syllables
        | 0xD7B0..=0xD7FF     // Hangul Jamo Extended-B
        | 0xF900..=0xFAFF     // CJK Compatibility Ideographs
        | 0xFF66..=0xFF9F     // Half-width Katakana
        | 0xFFA0..=0xFFDC     // Half-width Hangul
        | 0x20000..=0x3134F   // CJK Extensions B–G
    ) && c.is_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(text: &str) -> Vec<String> {
        analyze(text)
    }

    #[test]
    fn english_is_analyzed_as_before() {
        let text = "Closing the Accounts! Deleted after 30 days; café, naïve résumé.";
        assert_eq!(
            terms(text),
            analyze_with(&mut analyzer(LEGACY), text),
            "the spaced scripts keep the legacy analyzer's terms"
        );
    }

    #[test]
    fn unspaced_scripts_become_bigrams() {
        assert_eq!(terms("汶川大地震"), ["汶川", "川大", "大地", "地震"]);
        assert_eq!(terms("東京"), ["東京"]);
        assert_eq!(terms("猫"), ["猫"]);
        assert_eq!(terms("カタカナ"), ["カタ", "タカ", "カナ"]);
        // Hangul is spaced, but particles attach to words: bigrams let
        // "데이터" match "데이터를".
        assert_eq!(terms("데이터를"), ["데이", "이터", "터를"]);
        // A script change ends a word.
        assert_eq!(
            terms("iPhone手机 and 5G网络"),
            ["iphon", "手机", "5g", "网络"]
        );
    }

    #[test]
    fn a_two_character_word_matches_inside_a_longer_run() {
        let indexed = terms("2008年四川大地震造成严重损失");
        for query in ["地震", "四川", "损失"] {
            let q = terms(query);
            assert!(
                q.iter().all(|t| indexed.contains(t)),
                "{query}: {q:?} in {indexed:?}"
            );
        }
    }

    #[test]
    fn combining_marks_stay_in_their_word() {
        // SimpleTokenizer cut Devanagari at the virama ("हिन" + "दी").
        assert_eq!(terms("हिन्दी भाषा"), ["हिन्दी", "भाषा"]);
        assert_eq!(terms("क्षत्रिय").len(), 1);
        assert_eq!(terms("العَرَبِيَّة").len(), 1);
        // Decomposed Latin recomposes, then folds like the precomposed form.
        assert_eq!(terms("cafe\u{301}"), terms("café"));
        assert_eq!(terms("Zu\u{308}rich"), ["zurich"]);
    }

    #[test]
    fn compatibility_forms_fold() {
        assert_eq!(terms("ﬁnance"), terms("finance"));
        assert_eq!(terms("ＡＢＣ１２３"), ["abc123"]);
        // Half-width katakana fold to full width.
        assert_eq!(terms("ｶﾀｶﾅ"), terms("カタカナ"));
    }

    #[test]
    fn emoji_and_invisible_characters_separate_words() {
        assert_eq!(
            terms("close👍🏽account\u{200B}data"),
            ["close", "account", "data"]
        );
        assert!(terms("👨\u{200D}👩\u{200D}👧 \u{200F}\u{FEFF}").is_empty());
    }

    #[test]
    fn offsets_and_positions_are_in_order() {
        let mut tokenizer = ScriptTokenizer::default();
        let text = "abc 汶川大地震 déf";
        let mut stream = tokenizer.token_stream(text);
        let mut last = (0, 0);
        let mut n = 0;
        while stream.advance() {
            let t = stream.token();
            assert!(t.offset_from >= last.0 && t.offset_to > t.offset_from);
            assert!(text.is_char_boundary(t.offset_from) && text.is_char_boundary(t.offset_to));
            assert_eq!(t.position, n);
            last = (t.offset_from, t.offset_to);
            n += 1;
        }
        assert_eq!(n, 6);
    }
}
