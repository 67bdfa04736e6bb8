//! The web terminal's files: the page built from `web/` (Vite and TypeScript) is
//! served by the same HTTP server as the API, from the directory of the `web-dir` setting.
//!
//! The router's fallback lands here, so what the API routes match is never shadowed by a file:
//!
//! - a path under `/api/` (or `/api` itself, or `/metrics`) that no route matched is the API's
//!   own 404 in the contract's shape, as before the terminal existed;
//! - a path whose last segment has an extension (`/assets/index-3f2a.js`, `/favicon.svg`) is a
//!   file of the directory ([`ServeDir`]: content type, ranges, conditional requests), or a 404;
//! - any other path (`/`, `/markets`, `/product/AAPL`) is the terminal's `index.html`: the page
//!   routes by its path itself (a single-page app), so a reload or a shared link works.
//!
//! The directory is read at each request, so building the terminal while the server runs
//! works. Without an `index.html` the terminal's paths answer a short page that says how to
//! build it (503), and the API works as ever.
//!
//! **Boundary:** the terminal is a client of the public API like any other; this module only
//! serves files and knows nothing of what they do.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower_http::services::ServeDir;

use crate::error::ApiError;

/// The command that builds the terminal, from the repository's root.
pub const BUILD_COMMAND: &str = "npm --prefix web ci && npm --prefix web run build";

/// The directory of the built terminal.
#[derive(Debug, Clone)]
pub struct WebFiles {
    dir: PathBuf,
}

impl WebFiles {
    pub fn new(dir: &Path) -> Self {
        WebFiles {
            dir: dir.to_path_buf(),
        }
    }

    fn index(&self) -> PathBuf {
        self.dir.join("index.html")
    }

    /// Whether the terminal has been built (its `index.html` is there).
    pub fn built(&self) -> bool {
        self.index().is_file()
    }

    /// The line `bourse serve` prints once the HTTP server listens on `addr`: where to open
    /// the terminal, or how to build it.
    pub fn startup_line(&self, addr: SocketAddr) -> String {
        let url = format!("http://{}/", browsable(addr));
        if self.built() {
            format!("web terminal on {url} (open it in a browser)")
        } else {
            format!(
                "the web terminal is not built ({} has no index.html): run `{BUILD_COMMAND}`, then open {url}",
                self.dir.display()
            )
        }
    }
}

/// An address a browser on this machine can open: a wildcard listener (`0.0.0.0`, `::`) is
/// reached through loopback.
fn browsable(addr: SocketAddr) -> SocketAddr {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// Whether `path` belongs to the API, whose unknown paths answer the contract's 404.
pub fn is_api_path(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/") || path == "/metrics"
}

/// Whether the last segment of `path` names a file (`/assets/app.js`) rather than a page of
/// the terminal (`/product/AAPL`).
fn names_a_file(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|last| last.contains('.'))
}

/// Answers what no route matched (the router's fallback) from `files`.
pub(crate) async fn serve(files: &WebFiles, request: Request) -> Response {
    let path = request.uri().path();
    if is_api_path(path) {
        return crate::error::not_found(request).await.into_response();
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!(
                "{} is not allowed on {path}: the web terminal's pages are read with GET",
                request.method()
            ),
        )
        .into_response();
    }
    if !files.built() {
        return not_built(files);
    }
    if names_a_file(path) {
        file(files, request).await
    } else {
        index(files).await
    }
}

/// A file of the directory, with long caching for Vite's content-hashed `assets/`.
async fn file(files: &WebFiles, request: Request) -> Response {
    let immutable = request.uri().path().starts_with("/assets/");
    let path = request.uri().path().to_string();
    let served = ServeDir::new(&files.dir)
        .append_index_html_on_directories(false)
        .try_call(request)
        .await;
    let mut response = match served {
        Ok(response) => response.map(Body::new),
        Err(error) => {
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("cannot read {path}: {error}"),
            )
            .into_response();
        }
    };
    if response.status() == StatusCode::NOT_FOUND {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such file: {path}"),
        )
        .into_response();
    }
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if immutable && response.status().is_success() {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
    }
    response
}

/// The terminal's page, never cached (it names the current build's assets).
async fn index(files: &WebFiles) -> Response {
    match tokio::fs::read(files.index()).await {
        Ok(page) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            page,
        )
            .into_response(),
        // Removed between the check and the read (a rebuild in progress).
        Err(_) => not_built(files),
    }
}

/// The page shown until the terminal is built.
fn not_built(files: &WebFiles) -> Response {
    let dir = escape_html(&files.dir.display().to_string());
    let build = escape_html(BUILD_COMMAND);
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Bourse: build the web terminal</title></head>\n\
         <body style=\"font-family: system-ui, sans-serif; background: #0b0e11; color: #e6e8ea; \
         max-width: 42rem; margin: 4rem auto; padding: 0 1rem; line-height: 1.5\">\n\
         <h1>The web terminal is not built yet</h1>\n\
         <p>The server serves it from <code>{dir}</code> (the setting <code>web-dir</code>), \
         which has no <code>index.html</code>. Build it from the repository's root:</p>\n\
         <pre style=\"background: #161a1e; padding: 1rem; overflow-x: auto\">{build}</pre>\n\
         <p>and reload this page (no restart needed). The API is up meanwhile: \
         <a style=\"color: #4aa3ff\" href=\"/api/v1/products\">/api/v1/products</a> \
         (docs/api.md in the repository).</p>\n</body></html>\n"
    );
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        page,
    )
        .into_response()
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_are_never_files() {
        for path in ["/api", "/api/", "/api/v1/nowhere", "/api/v1/ws", "/metrics"] {
            assert!(is_api_path(path), "{path}");
        }
        for path in [
            "/",
            "/apiary",
            "/markets",
            "/product/AAPL",
            "/assets/app.js",
        ] {
            assert!(!is_api_path(path), "{path}");
        }
    }

    #[test]
    fn pages_and_files_are_told_apart() {
        assert!(names_a_file("/assets/index-3f2a.js"));
        assert!(names_a_file("/favicon.svg"));
        assert!(!names_a_file("/"));
        assert!(!names_a_file("/product/AAPL"));
        assert!(!names_a_file("/portfolio/"));
    }

    #[test]
    fn the_startup_line_names_an_address_a_browser_opens() {
        let missing = WebFiles::new(Path::new("/nonexistent/web/dist"));
        let line = missing.startup_line("0.0.0.0:8080".parse().unwrap());
        assert!(line.contains("http://127.0.0.1:8080/"), "{line}");
        assert!(line.contains(BUILD_COMMAND), "{line}");

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<!doctype html>").unwrap();
        let built = WebFiles::new(dir.path());
        let line = built.startup_line("127.0.0.1:9000".parse().unwrap());
        assert_eq!(
            line,
            "web terminal on http://127.0.0.1:9000/ (open it in a browser)"
        );
        let line = built.startup_line("[::]:9000".parse().unwrap());
        assert!(line.contains("http://[::1]:9000/"), "{line}");
    }

    #[test]
    fn the_directory_is_escaped_in_the_build_page() {
        assert_eq!(escape_html("<a&\"b>"), "&lt;a&amp;&quot;b&gt;");
    }
}
