//! The one interface of the back ends: next-token log-probabilities and
//! greedy completion of a plain-text prompt.

use crate::Result;
use std::time::Instant;

/// A language model the rerankers can ask.
///
/// Prompts are plain text: the in-process model reads them as they are
/// (after `<bos>`), an endpoint receives them as one user message.
pub trait LanguageModel: Send + Sync {
    /// What answers, for logs and for telling users which model ran.
    fn describe(&self) -> String;

    /// For each prompt, the log-probability (over the whole vocabulary) that
    /// the next token is each of `choices` (token texts such as `" yes"`);
    /// `None` where the back end cannot tell (e.g. a choice outside an
    /// endpoint's `top_logprobs`). Work stops with
    /// [`Error::BudgetExhausted`](crate::Error::BudgetExhausted) once
    /// `deadline` has passed.
    fn next_token_logprobs(
        &self,
        prompts: &[String],
        choices: &[&str],
        deadline: Option<Instant>,
    ) -> Result<Vec<Vec<Option<f32>>>>;

    /// Greedy (deterministic) continuation of `prompt`, at most `max_tokens`
    /// tokens, ending early at the end-of-turn/end-of-text token.
    fn complete(
        &self,
        prompt: &str,
        max_tokens: usize,
        deadline: Option<Instant>,
    ) -> Result<String>;

    /// Like [`LanguageModel::complete`], but the answer may use only tokens
    /// made of `alphabet`'s characters (constrained greedy decoding): the
    /// in-process model then scores those few tokens instead of the whole
    /// vocabulary. Back ends that cannot constrain decoding (HTTP) answer
    /// as `complete` does.
    fn complete_in(
        &self,
        prompt: &str,
        max_tokens: usize,
        alphabet: &str,
        deadline: Option<Instant>,
    ) -> Result<String> {
        let _ = alphabet;
        self.complete(prompt, max_tokens, deadline)
    }
}

/// Fail once `deadline` has passed.
pub(crate) fn check_deadline(deadline: Option<Instant>) -> Result<()> {
    match deadline {
        Some(d) if Instant::now() >= d => Err(crate::Error::BudgetExhausted),
        _ => Ok(()),
    }
}
