//! `X-Log-Offset`: the answer to a request that had a command applied says where that
//! command is in the log.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

/// The response header that carries the log offset of the command a request had applied:
/// the shard's Kafka offset in a cluster, the journal sequence number minus one on a single
/// node (the same numbering: offset `o` is command `o + 1`).
pub const OFFSET_HEADER: &str = "x-log-offset";

tokio::task_local! {
    /// The sequence number of the last command the request being answered had applied.
    static APPLIED: std::cell::Cell<Option<u64>>;
}

/// Records that the request being answered had command `seq` applied (outside a request:
/// nothing).
pub(crate) fn note_offset(seq: u64) {
    let _ = APPLIED.try_with(|applied| applied.set(Some(seq)));
}

/// Adds [`OFFSET_HEADER`] to the answer of a request that had a command applied.
pub(crate) async fn offset_header(request: Request, next: Next) -> Response {
    let (mut response, applied) = APPLIED
        .scope(std::cell::Cell::new(None), async {
            let response = next.run(request).await;
            (response, APPLIED.with(std::cell::Cell::get))
        })
        .await;
    if let Some(seq) = applied {
        response.headers_mut().insert(
            OFFSET_HEADER,
            axum::http::HeaderValue::from(seq.saturating_sub(1)),
        );
    }
    response
}
