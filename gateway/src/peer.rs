//! Asking another node of the cluster over HTTP: its status (`GET /cluster`) and its newest
//! snapshot (a joining node, `bourse-server`'s `join-from`).

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt as _;

/// A peer's answer.
#[derive(Debug)]
pub struct PeerAnswer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// `GET <base><path>` (`base` is `http://host:port`), with `Authorization: Bearer <bearer>` if
/// given; a body longer than `body_max` bytes is refused.
pub async fn get(
    base: &str,
    path: &str,
    bearer: Option<&str>,
    body_max: usize,
) -> Result<PeerAnswer, String> {
    get_with(base, path, bearer, &[], body_max).await
}

/// [`get`] with more request headers.
pub async fn get_with(
    base: &str,
    path: &str,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
    body_max: usize,
) -> Result<PeerAnswer, String> {
    let uri: axum::http::Uri = format!("{}{path}", base.trim_end_matches('/'))
        .parse()
        .map_err(|e| format!("bad peer address {base:?}: {e}"))?;
    let mut request = axum::http::Request::get(uri);
    if let Some(token) = bearer {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = client().request(request).await.map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = http_body_util::Limited::new(body, body_max)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(PeerAnswer {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Empty<Bytes>,
>;

/// The one client of the process, which keeps connections to the peers open between requests
/// (a routed read then costs no new connection).
fn client() -> &'static Client {
    static CLIENT: std::sync::OnceLock<Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(std::time::Duration::from_secs(30))
            .build_http()
    })
}
