//! The web terminal end to end: `bourse serve` with its embedded simulator and liquidity
//! provider serves the built terminal (`web/dist`, setting `web-dir`), and
//! `web/e2e/terminal.mjs` drives it in headless Chromium (Debian's `chromium`, through
//! `playwright-core`) at a desktop and a phone size: create an account, deposit by card, open
//! AAPL and see candles drawn, buy at market, see the fill and the balance change in the
//! portfolio, cancel a limit order, bookmark a product and see it first. Any console error in
//! the page fails it. The screenshots of each main screen are kept in the target directory's
//! `web-screenshots/` (`target/web-screenshots/` by default). The terminal's API types come
//! from the document that `bourse openapi` prints, which is the one the server serves.
//!
//! Needs what `scripts/test.sh` installs: `node`, `chromium` and the terminal built
//! (`npm --prefix web ci && npm --prefix web run build`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use bourse_tests::client::{http_get, http_with_head};
use bourse_tests::process::lines_of;
use bourse_tests::server::{Server, http_addr};

/// The bound on the browser run (the script has its own, shorter one).
const E2E_TIMEOUT: Duration = Duration::from_secs(420);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository")
        .to_path_buf()
}

/// `<target>/web-screenshots`, the target directory being the one this test runs from.
fn screenshots_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the test executable lives in <target>/<profile>/deps");
    target.join("web-screenshots")
}

fn require(what: &Path, how: &str) {
    assert!(
        what.exists(),
        "{} is missing: {how} (scripts/test.sh does it)",
        what.display()
    );
}

#[test]
fn a_newcomer_trades_through_the_web_terminal_at_desktop_and_phone_sizes() {
    let root = repo_root();
    let dist = root.join("web/dist");
    require(
        &dist.join("index.html"),
        "build the terminal with `npm --prefix web ci && npm --prefix web run build`",
    );
    require(
        &root.join("web/node_modules/playwright-core"),
        "install the terminal's packages with `npm --prefix web ci`",
    );
    let chromium =
        std::env::var("BOURSE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string());
    require(Path::new(&chromium), "`apt-get install chromium`");

    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start_with_market(
        data.path(),
        &["--web-dir", dist.to_str().expect("a UTF-8 path")],
    );
    let addr = http_addr(&mut server);
    let line = server
        .report()
        .web
        .clone()
        .expect("the web terminal's start-up line");
    assert!(line.contains("web terminal on"), "{line}");
    assert!(line.contains(&format!("http://{addr}/")), "{line}");

    // The terminal's pages and the API side by side: a page path is the app, an unknown API
    // path is still the API's 404.
    let (status, head, page) = http_with_head(&addr, "GET", "/product/AAPL", &[], "");
    assert_eq!(status, 200, "{head}");
    assert!(page.contains("<div id=\"app\">"), "{page}");
    let (status, body) = http_get(&addr, "/api/v1/nowhere");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("\"not_found\""), "{body}");

    let out = screenshots_dir();
    let _ = std::fs::remove_dir_all(&out);
    let mut child = Command::new("node")
        .arg(root.join("web/e2e/terminal.mjs"))
        .arg("--base")
        .arg(format!("http://{addr}"))
        .arg("--out")
        .arg(&out)
        .arg("--chromium")
        .arg(&chromium)
        .current_dir(root.join("web"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node (apt-get install nodejs, or any Node 20 or later)");
    let stdout = lines_of(child.stdout.take().unwrap());
    let stderr = lines_of(child.stderr.take().unwrap());
    let deadline = Instant::now() + E2E_TIMEOUT;
    let mut output = Vec::new();
    // Both pipes close when node exits.
    for pipe in [&stdout, &stderr] {
        loop {
            match pipe.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => output.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "the browser run did not end within {E2E_TIMEOUT:?}:\n{}",
                        output.join("\n")
                    );
                }
            }
        }
    }
    let status = child.wait().expect("wait for node");
    let output = output.join("\n");
    let _ = std::fs::write(out.join("e2e.log"), &output);
    assert!(
        status.success(),
        "the web terminal's end-to-end run failed ({status}); screenshots in {}:\n{output}",
        out.display(),
    );
    for size in ["desktop", "phone"] {
        for screen in ["markets", "product", "portfolio", "funds", "account"] {
            let shot = out.join(format!("{size}-{screen}.png"));
            let bytes = std::fs::metadata(&shot)
                .unwrap_or_else(|e| panic!("no screenshot {}: {e}\n{output}", shot.display()))
                .len();
            assert!(bytes > 10_000, "{} is nearly empty", shot.display());
        }
    }
    println!("{output}\nscreenshots: {}", out.display());
    server.stop();
}

#[test]
fn without_a_built_terminal_the_page_says_how_to_build_it_and_the_api_works() {
    let data = tempfile::tempdir().unwrap();
    let missing = data.path().join("no-dist");
    let mut server = Server::start(data.path(), &["--web-dir", missing.to_str().unwrap()]);
    let addr = http_addr(&mut server);
    let line = server
        .report()
        .web
        .clone()
        .expect("the web terminal's start-up line");
    assert!(line.contains("the web terminal is not built"), "{line}");
    assert!(
        line.contains("npm --prefix web ci && npm --prefix web run build"),
        "{line}"
    );

    let (status, head, page) = http_with_head(&addr, "GET", "/", &[], "");
    assert_eq!(status, 503, "{head}");
    assert!(
        bourse_tests::client::header(&head, "content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        page.contains("npm --prefix web ci &amp;&amp; npm --prefix web run build"),
        "{page}"
    );
    let (status, body) = http_get(&addr, "/api/v1/products");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(&addr, "/api/v1/no-such-thing");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("\"not_found\""), "{body}");
    server.stop();
}

#[test]
fn files_pages_and_api_paths_are_told_apart() {
    let data = tempfile::tempdir().unwrap();
    let site = data.path().join("site");
    std::fs::create_dir_all(site.join("assets")).unwrap();
    std::fs::write(
        site.join("index.html"),
        "<!doctype html><title>t</title>app",
    )
    .unwrap();
    std::fs::write(site.join("assets/app-1234.js"), "console.log(1)").unwrap();
    let mut server = Server::start(
        &data.path().join("data"),
        &["--web-dir", site.to_str().unwrap()],
    );
    let addr = http_addr(&mut server);

    // A page of the app, at any depth: index.html, not cached.
    for path in ["/", "/markets", "/product/AAPL", "/portfolio/"] {
        let (status, head, body) = http_with_head(&addr, "GET", path, &[], "");
        assert_eq!(status, 200, "{path}: {head}");
        assert!(body.ends_with("app"), "{path}: {body}");
        assert_eq!(
            bourse_tests::client::header(&head, "cache-control"),
            Some("no-cache"),
            "{path}"
        );
    }
    // A file: its content type, cached for good under assets/ (names carry a hash).
    let (status, head, body) = http_with_head(&addr, "GET", "/assets/app-1234.js", &[], "");
    assert_eq!(status, 200, "{head}");
    assert_eq!(body, "console.log(1)");
    assert!(
        bourse_tests::client::header(&head, "content-type")
            .unwrap()
            .contains("javascript"),
        "{head}"
    );
    assert!(
        bourse_tests::client::header(&head, "cache-control")
            .unwrap()
            .contains("immutable"),
        "{head}"
    );
    // A missing file is a 404, not the app; so is anything under /api/ no route matches.
    for path in [
        "/assets/gone.js",
        "/api/v1/nowhere",
        "/api",
        "/api/v2/products",
    ] {
        let (status, body) = http_get(&addr, path);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body.contains("\"not_found\""), "{path}: {body}");
    }
    // The app's pages are read, not written.
    let (status, body) = bourse_tests::client::http(&addr, "POST", "/markets", &[], "");
    assert_eq!(status, 405, "{body}");
    assert!(body.contains("\"method_not_allowed\""), "{body}");
    // Nothing outside the directory.
    std::fs::write(data.path().join("secret.txt"), "secret").unwrap();
    for path in [
        "/../secret.txt",
        "/assets/../../secret.txt",
        "/%2e%2e/secret.txt",
    ] {
        let (status, body) = http_get(&addr, path);
        assert_eq!(status, 404, "{path}: {body}");
    }
    server.stop();
}

/// The terminal's API types (`web/src/api-schema.ts`) are generated from `bourse openapi`'s
/// document (`scripts/test.sh` fails when they are stale): it is the one the server serves,
/// byte for byte, and its operation ids are unique (the generator keys its types by them).
#[test]
fn the_document_the_terminal_types_come_from_is_the_one_served() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path(), &[]);
    let addr = http_addr(&mut server);
    let (status, served) = http_get(&addr, "/api/v1/openapi.json");
    assert_eq!(status, 200, "{served}");
    let printed = bourse_server::openapi_json().unwrap();
    assert!(
        served == printed,
        "GET /api/v1/openapi.json differs from `bourse openapi`"
    );

    let doc = bourse_tests::client::json(&printed);
    let mut ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    let count = ids.len();
    assert!(count > 20, "{ids:?}");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "an operation id is used twice");
    server.stop();
}
