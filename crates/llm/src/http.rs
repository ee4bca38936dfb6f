//! The HTTP back end: any OpenAI-compatible chat-completions endpoint.
//!
//! Each prompt goes as one user message with `temperature: 0` (greedy).
//! Next-token probabilities come from `logprobs` / `top_logprobs` of the
//! first generated token. An endpoint that does not return log-probabilities
//! still works, more coarsely: the first word of its answer counts as
//! certain (log-probability 0) when it is one of the choices, and the other
//! choices get none (see [`LanguageModel::next_token_logprobs`]); a warning
//! says so once.

use crate::model::{check_deadline, LanguageModel};
use crate::{Error, Result};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Most alternatives OpenAI's API returns per token.
const TOP_LOGPROBS: usize = 20;

/// Options for an [`HttpModel`].
#[derive(Clone, Debug)]
pub struct HttpModelBuilder {
    url: String,
    model: String,
    api_key: Option<String>,
    timeout: Duration,
    retries: u32,
    concurrency: usize,
}

impl HttpModelBuilder {
    /// The model name sent with each request (`model`).
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    /// Sent as `Authorization: Bearer KEY`.
    pub fn api_key(mut self, key: Option<String>) -> Self {
        self.api_key = key.filter(|k| !k.is_empty());
        self
    }

    /// Longest wait for one request (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Further tries after a connection error, a timeout, 429 or 5xx
    /// (default 2), with exponential backoff from 250 ms.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Requests in flight at once when scoring many prompts (default 4).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    pub fn build(self) -> Result<HttpModel> {
        let endpoint = chat_url(&self.url).map_err(|message| Error::Http {
            url: self.url.clone(),
            message,
        })?;
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(self.timeout.min(Duration::from_secs(10)))
            .build();
        Ok(HttpModel {
            endpoint,
            b: self,
            agent,
            warned_no_logprobs: AtomicBool::new(false),
        })
    }
}

/// A chat-completions endpoint used as a [`LanguageModel`].
pub struct HttpModel {
    endpoint: String,
    b: HttpModelBuilder,
    agent: ureq::Agent,
    warned_no_logprobs: AtomicBool,
}

impl HttpModel {
    /// `url` is the API base (`http://host:8080/v1`) or the full
    /// `…/chat/completions` address.
    pub fn builder(url: impl Into<String>) -> HttpModelBuilder {
        HttpModelBuilder {
            url: url.into(),
            model: String::new(),
            api_key: None,
            timeout: Duration::from_secs(30),
            retries: 2,
            concurrency: 4,
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// POST one chat request, retrying what may pass; the parsed answer.
    fn chat(&self, body: &Value, deadline: Option<Instant>) -> Result<Value> {
        let mut attempt = 0;
        loop {
            check_deadline(deadline)?;
            let timeout = match deadline {
                Some(d) => self
                    .b
                    .timeout
                    .min(d.saturating_duration_since(Instant::now())),
                None => self.b.timeout,
            };
            let mut request = self
                .agent
                .post(&self.endpoint)
                .timeout(timeout)
                .set("Content-Type", "application/json");
            if let Some(key) = &self.b.api_key {
                request = request.set("Authorization", &format!("Bearer {key}"));
            }
            let failure = match request.send_string(&body.to_string()) {
                Ok(response) => {
                    let text = response.into_string().map_err(|e| self.http_err(e))?;
                    return serde_json::from_str(&text).map_err(|e| Error::BadResponse {
                        url: self.endpoint.clone(),
                        message: format!("not JSON ({e})"),
                    });
                }
                Err(ureq::Error::Status(code, response)) => {
                    let text = response.into_string().unwrap_or_default();
                    let message = format!("HTTP {code}: {}", truncate(&text, 300));
                    if code != 429 && code < 500 {
                        return Err(Error::Http {
                            url: self.endpoint.clone(),
                            message,
                        });
                    }
                    message
                }
                Err(e) => e.to_string(),
            };
            if attempt >= self.b.retries {
                return Err(Error::Http {
                    url: self.endpoint.clone(),
                    message: format!("{failure} (after {} tries)", attempt + 1),
                });
            }
            let backoff = Duration::from_millis(250 << attempt.min(6));
            tracing::debug!(attempt, "LLM request failed, retrying: {failure}");
            if deadline.is_some_and(|d| Instant::now() + backoff >= d) {
                return Err(Error::BudgetExhausted);
            }
            std::thread::sleep(backoff);
            attempt += 1;
        }
    }

    fn http_err(&self, e: impl std::fmt::Display) -> Error {
        Error::Http {
            url: self.endpoint.clone(),
            message: e.to_string(),
        }
    }

    fn body(&self, prompt: &str, max_tokens: usize, logprobs: bool) -> Value {
        let mut body = json!({
            "model": self.b.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "temperature": 0.0,
        });
        if logprobs {
            body["logprobs"] = json!(true);
            body["top_logprobs"] = json!(TOP_LOGPROBS);
        }
        body
    }

    fn one_logprobs(
        &self,
        prompt: &str,
        choices: &[&str],
        deadline: Option<Instant>,
    ) -> Result<Vec<Option<f32>>> {
        let answer = self.chat(&self.body(prompt, 1, true), deadline)?;
        let choice = answer
            .get("choices")
            .and_then(|c| c.get(0))
            .ok_or_else(|| self.bad("no choices[0] in the answer"))?;
        let logprobs = choice.get("logprobs").filter(|l| !l.is_null());
        if logprobs.is_some_and(|l| {
            l.get("content")
                .and_then(Value::as_array)
                .is_some_and(|c| c.is_empty())
        }) {
            // The model stopped at once: nothing is known about the choices.
            return Ok(vec![None; choices.len()]);
        }
        let first = logprobs
            .and_then(|l| l.get("content"))
            .and_then(|c| c.get(0));
        if let Some(first) = first {
            let mut found: Vec<Option<f32>> = vec![None; choices.len()];
            let mut entries: Vec<(&str, f32)> = Vec::new();
            if let Some(top) = first.get("top_logprobs").and_then(Value::as_array) {
                for t in top {
                    if let (Some(tok), Some(lp)) = (
                        t.get("token").and_then(Value::as_str),
                        t.get("logprob").and_then(Value::as_f64),
                    ) {
                        entries.push((tok, lp as f32));
                    }
                }
            }
            if let (Some(tok), Some(lp)) = (
                first.get("token").and_then(Value::as_str),
                first.get("logprob").and_then(Value::as_f64),
            ) {
                entries.push((tok, lp as f32));
            }
            for (tok, lp) in entries {
                let tok = tok.replace('\u{2581}', " ");
                for (slot, c) in found.iter_mut().zip(choices) {
                    if slot.is_none() && tok == *c {
                        *slot = Some(lp);
                    }
                }
            }
            return Ok(found);
        }
        // No log-probabilities: the answer's first word, taken as certain.
        if !self.warned_no_logprobs.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                endpoint = %self.endpoint,
                "the endpoint returns no logprobs; LLM scores fall back to its yes/no answer (0 or 1)"
            );
        }
        let text = message_text(choice).unwrap_or_default();
        let word = text
            .split(|c: char| !c.is_alphanumeric())
            .find(|w| !w.is_empty())
            .unwrap_or("");
        Ok(choices
            .iter()
            .map(|c| (c.trim() == word).then_some(0.0))
            .collect())
    }

    fn bad(&self, message: &str) -> Error {
        Error::BadResponse {
            url: self.endpoint.clone(),
            message: message.into(),
        }
    }
}

impl LanguageModel for HttpModel {
    fn describe(&self) -> String {
        if self.b.model.is_empty() {
            self.endpoint.clone()
        } else {
            format!("{} at {}", self.b.model, self.endpoint)
        }
    }

    fn next_token_logprobs(
        &self,
        prompts: &[String],
        choices: &[&str],
        deadline: Option<Instant>,
    ) -> Result<Vec<Vec<Option<f32>>>> {
        let workers = self.b.concurrency.min(prompts.len()).max(1);
        let mut results: Vec<Option<Result<Vec<Option<f32>>>>> =
            (0..prompts.len()).map(|_| None).collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    scope.spawn(move || {
                        (w..prompts.len())
                            .step_by(workers)
                            .map(|i| (i, self.one_logprobs(&prompts[i], choices, deadline)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                for (i, r) in h.join().expect("a request thread panicked") {
                    results[i] = Some(r);
                }
            }
        });
        results
            .into_iter()
            .map(|r| r.expect("every prompt was sent"))
            .collect()
    }

    fn complete(
        &self,
        prompt: &str,
        max_tokens: usize,
        deadline: Option<Instant>,
    ) -> Result<String> {
        let answer = self.chat(&self.body(prompt, max_tokens, false), deadline)?;
        let choice = answer
            .get("choices")
            .and_then(|c| c.get(0))
            .ok_or_else(|| self.bad("no choices[0] in the answer"))?;
        message_text(choice).ok_or_else(|| self.bad("no choices[0].message.content"))
    }
}

fn message_text(choice: &Value) -> Option<String> {
    choice
        .get("message")
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn chat_url(url: &str) -> std::result::Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err("the URL must start with http:// or https://".into());
    }
    Ok(if url.ends_with("/chat/completions") {
        url.to_string()
    } else {
        format!("{url}/chat/completions")
    })
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls() {
        assert_eq!(
            chat_url("http://127.0.0.1:8080/v1/").unwrap(),
            "http://127.0.0.1:8080/v1/chat/completions"
        );
        assert_eq!(
            chat_url("https://x/v1/chat/completions").unwrap(),
            "https://x/v1/chat/completions"
        );
        assert!(chat_url("localhost:8080").is_err());
    }

    #[test]
    fn a_closed_port_is_a_clear_error_after_retries() {
        // Bind then drop a listener: the port is (almost certainly) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let model = HttpModel::builder(format!("http://127.0.0.1:{port}/v1"))
            .retries(1)
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let err = model.complete("hi", 3, None).unwrap_err().to_string();
        assert!(err.contains("after 2 tries"), "{err}");
        let err = model.complete("hi", 3, Some(Instant::now())).unwrap_err();
        assert!(matches!(err, Error::BudgetExhausted), "{err}");
    }
}
