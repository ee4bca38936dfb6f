//! The web page at `/`: a search playground, the documents and the index
//! stats, and `sift eval` reports (issue 17).
//!
//! Plain HTML, JavaScript and CSS from `crates/server/web/`, compiled into
//! the binary with `include_str!`: nothing is built at run time and nothing
//! is fetched from outside the machine. The page is a client of the same
//! API as everyone else (`/search`, `/documents`, `/stats`, `/eval/…`), on
//! the same origin, so it needs no CORS and sees exactly what a chatbot
//! would.
//!
//! The three files are served without the API key, like `/health`: a
//! browser cannot put a bearer token on the request that opens a page, and
//! the files hold no data. Every call the page makes carries the key the
//! user types into it, and is refused without it like any other call.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The page and its two assets, by path.
pub(crate) const ASSETS: [(&str, &str, &str); 3] = [
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../web/index.html"),
    ),
    (
        "/ui/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/app.js"),
    ),
    (
        "/ui/style.css",
        "text/css; charset=utf-8",
        include_str!("../web/style.css"),
    ),
];

/// Whether `path` is one of the page's files (served without the key).
pub(crate) fn is_asset(path: &str) -> bool {
    ASSETS.iter().any(|(p, _, _)| *p == path)
}

fn asset(path: &str) -> Response {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(p, _, _)| *p == path)
        .expect("routes are made from ASSETS");
    (
        [
            (header::CONTENT_TYPE, *content_type),
            // The page changes with the binary; a stale cached script
            // against a newer API is the one thing worth avoiding.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        *body,
    )
        .into_response()
}

pub(crate) async fn index() -> Response {
    asset("/")
}

pub(crate) async fn script() -> Response {
    asset("/ui/app.js")
}

pub(crate) async fn style() -> Response {
    asset("/ui/style.css")
}
