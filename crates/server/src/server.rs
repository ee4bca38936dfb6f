use crate::error::ApiError;
use crate::handlers;
use crate::page;
use crate::state::AppState;
use crate::{Error, Result};
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use sift_engine::Engine;
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};

/// Limits and knobs of a [`Server`]. The defaults suit a 2-core machine.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// When set, every route but `/health` and the page's own files (`/`,
    /// `/ui/*`) needs `Authorization: Bearer KEY`.
    pub api_key: Option<String>,
    /// Largest request body, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Most texts per `/rerank`, inputs per `/v1/embeddings` and documents
    /// per `POST /documents` (413 beyond).
    pub max_batch: usize,
    /// Model inference jobs run at once (default: the number of cores).
    pub inference_threads: usize,
    /// Requests that may wait for an inference slot before new ones are
    /// turned away with 503 `overloaded`.
    pub max_queued: usize,
    /// A read request (search, rerank, embeddings…) that takes longer,
    /// queueing included, is answered 503 `timeout`. Writes are not timed
    /// out: a write that started always finishes and is answered.
    pub request_timeout: Duration,
    /// On shutdown, how long in-flight requests get to finish.
    pub shutdown_grace: Duration,
    /// A `sift eval --out` folder, or a folder of them, whose reports the
    /// page shows (`GET /eval/runs`, `GET /eval/file`); nothing outside it
    /// is served. `None`: those routes answer 404 `eval_dir_not_set`.
    pub eval_dir: Option<PathBuf>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            api_key: None,
            max_body_bytes: 8 << 20,
            max_batch: 1000,
            inference_threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            max_queued: 512,
            request_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
            eval_dir: None,
        }
    }
}

/// A bound, not yet serving, HTTP server over one [`Engine`].
///
/// ```no_run
/// # async fn demo(engine: sift_engine::Engine) -> sift_server::Result<()> {
/// use sift_server::{Server, ServerOptions};
/// let server = Server::bind("127.0.0.1:8080".parse().unwrap(), engine.into(), ServerOptions::default()).await?;
/// println!("listening on http://{}", server.local_addr());
/// server.run(sift_server::shutdown_signal()).await
/// # }
/// ```
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: Arc<AppState>,
}

impl Server {
    /// Bind `addr` (port 0 picks a free port; see [`Server::local_addr`]).
    pub async fn bind(
        addr: SocketAddr,
        engine: Arc<Engine>,
        options: ServerOptions,
    ) -> Result<Server> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let local_addr = listener.local_addr()?;
        let state = Arc::new(AppState::new(engine, options, crate::openapi::render()));
        Ok(Server {
            listener,
            local_addr,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serve until `shutdown` resolves, then stop accepting connections,
    /// give in-flight requests up to `shutdown_grace` to finish, and wait
    /// for the write in progress, if any, to commit.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let state = self.state;
        let grace = state.options.shutdown_grace;
        let stopping = Arc::new(Notify::new());
        let signal = {
            let stopping = stopping.clone();
            async move {
                shutdown.await;
                tracing::info!("shutting down: no new connections; finishing in-flight requests");
                stopping.notify_one();
            }
        };
        tracing::info!(addr = %self.local_addr, "serving");
        // An index opened with dead points past the threshold (written by
        // `sift index` with automatic compaction off, say).
        state.compact_if_needed();
        let serve = axum::serve(self.listener, router(state.clone()))
            .with_graceful_shutdown(signal)
            .into_future();
        tokio::select! {
            served = serve => served?,
            _ = async { stopping.notified().await; tokio::time::sleep(grace).await } => {
                tracing::warn!("requests still in flight after {grace:?}; closing their connections");
            }
        }
        // Every write commits before it is answered; what must not happen is
        // exiting in the middle of one. Its job holds the gate until done.
        let started = Instant::now();
        let _no_write = state.writes.lock().await;
        if started.elapsed() > Duration::from_millis(100) {
            tracing::info!("waited {:?} for a write to commit", started.elapsed());
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// A multi-threaded tokio runtime for the server: two async workers are
/// plenty, since every heavy job runs on the blocking pool.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sift-server")
        .enable_all()
        .build()?)
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

/// Everything a binary needs: a runtime, the bound server (`on_ready` gets
/// its address), serving until SIGINT/SIGTERM, a graceful stop.
pub fn serve_blocking(
    addr: SocketAddr,
    engine: Arc<Engine>,
    options: ServerOptions,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let runtime = runtime()?;
    let result = runtime.block_on(async {
        let server = Server::bind(addr, engine, options).await?;
        on_ready(server.local_addr());
        server.run(shutdown_signal()).await
    });
    // Searches abandoned at the grace deadline may still be computing on
    // the blocking pool; they hold no write, so they are not waited for long.
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
}

/// The application without a listener: every route and layer a [`Server`]
/// serves, to be called in process (`tower::ServiceExt::oneshot`, as the
/// fuzz tests do, thousands of requests without a socket) or nested in
/// another axum app.
pub fn app(engine: Arc<Engine>, options: ServerOptions) -> Router {
    router(Arc::new(AppState::new(
        engine,
        options,
        crate::openapi::render(),
    )))
}

fn router(state: Arc<AppState>) -> Router {
    let max_body = state.options.max_body_bytes;
    let reads = Router::new()
        .route("/search", post(handlers::search))
        .route("/rerank", post(handlers::rerank))
        .route("/v1/embeddings", post(handlers::embeddings))
        .route("/v1/chat/completions", post(handlers::chat_completions))
        .route("/health", get(handlers::health))
        .route("/metrics", get(handlers::metrics))
        .route("/openapi.json", get(handlers::openapi))
        .route("/stats", get(handlers::stats))
        .route("/eval/runs", get(handlers::eval_runs))
        .route("/eval/file", get(handlers::eval_file))
        .route("/", get(page::index))
        .route("/ui/app.js", get(page::script))
        .route("/ui/style.css", get(page::style))
        .route_layer(from_fn_with_state(state.clone(), timeout));
    // A catch-all, so ids with `/` (file paths) need no percent-encoding.
    let writes = Router::new()
        .route("/documents", post(handlers::add_documents))
        .route("/documents/{*id}", delete(handlers::delete_document));
    // Layers run outermost last-added: trace → JSON errors → metrics →
    // panic catcher → auth → body limit → handler.
    reads
        .merge(writes)
        .fallback(handlers::not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(RequestBodyLimitLayer::new(max_body))
        .layer(from_fn_with_state(state.clone(), auth))
        .layer(CatchPanicLayer::new())
        .layer(from_fn_with_state(state.clone(), record_metrics))
        .layer(from_fn(json_errors))
        // Failures are logged where they happen (see ApiError), not as
        // errors per request here: a 503 for a missing reranker is routine.
        .layer(
            TraceLayer::new_for_http()
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .with_state(state)
}

async fn timeout(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let limit = state.options.request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request did not finish within {limit:?}: the server is busy or the request is large"),
        )
        .with_header(header::RETRY_AFTER, "1")
        .into_response(),
    }
}

async fn auth(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(key) = &state.options.api_key else {
        return next.run(req).await;
    };
    // The page's files hold no data (see crate::page); what the page
    // fetches goes through this check like any other call.
    let path = req.uri().path();
    if path == "/health" || (req.method() == Method::GET && page::is_asset(path)) {
        return next.run(req).await;
    }
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match token {
        Some(token) if constant_time_eq(token.trim().as_bytes(), key.as_bytes()) => {
            next.run(req).await
        }
        _ => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this server needs `Authorization: Bearer KEY` with the key it was started with (--api-key / SIFT_API_KEY)",
        )
        .with_header(header::WWW_AUTHENTICATE, "Bearer")
        .into_response(),
    }
}

/// Compares without stopping at the first difference, so response times do
/// not tell how much of a guessed key was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn record_metrics(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    // The route template, never the raw path: ids would explode the labels.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = match *req.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::HEAD => "HEAD",
        _ => "other",
    };
    let start = Instant::now();
    let response = next.run(req).await;
    state
        .metrics
        .observe_request(&route, method, response.status().as_u16(), start.elapsed());
    response
}

/// Gives the error answers made outside the handlers (the router's 405,
/// the body limit's 413, a caught panic's 500) the JSON error shape.
async fn json_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = match status {
        // (The router adds the `Allow` header after this layer has run.)
        StatusCode::METHOD_NOT_ALLOWED => {
            format!("{method} is not allowed on {path}; the Allow header lists what is")
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is larger than the server's limit (--max-body-bytes)".to_string()
        }
        _ if !text.is_empty() => text,
        _ => status.canonical_reason().unwrap_or("error").to_string(),
    };
    let mut fixed = ApiError::new(status, ApiError::code_for(status), message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fixed.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fixed
}
