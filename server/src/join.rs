//! `join-from`: a node with an empty data directory starts from a peer's newest snapshot
//! instead of replaying the whole command log (which retention may no longer hold).
//!
//! The peer's `GET /api/v1/admin/snapshot` (the cluster's admin token) answers the snapshot
//! file with its sequence number and state hash. The file is decoded here (its header and
//! CRC checked, the archive validated, the engine built) and its state hash compared with the
//! peer's before it is written into `snapshots/`; recovery then starts from it and the
//! replica resumes the log at the offset it was taken after. A data directory that holds
//! anything of its own is never replaced.

use std::path::Path;
use std::time::Duration;

use crate::settings::ServeConfig;

/// How long the whole fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(300);

/// Fetches and installs the peer's snapshot if the data directory is empty; the sequence
/// number installed, or `None` when the directory has its own state.
pub(crate) fn join_from_peer(config: &ServeConfig, peer: &str) -> Result<Option<u64>, String> {
    let store = config.store();
    if has_state(&store.dir)? {
        tracing::info!(
            "join-from {peer}: {} already holds a journal or snapshots; recovering from them",
            store.dir.display()
        );
        return Ok(None);
    }
    let token = config.admin_token.as_deref().ok_or(
        "join-from needs admin-token (the cluster's admin token, to read a peer's snapshot)",
    )?;
    tracing::info!("join-from {peer}: fetching the newest snapshot");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let (seq, hash, bytes) = runtime
        .block_on(async { tokio::time::timeout(FETCH_TIMEOUT, fetch(peer, token)).await })
        .map_err(|_| {
            format!(
                "join-from {peer}: no snapshot within {} s",
                FETCH_TIMEOUT.as_secs()
            )
        })??;
    let (decoded_seq, engine) = bourse_snapshots::decode_unaligned(&bytes)
        .map_err(|e| format!("join-from {peer}: the snapshot does not decode: {e}"))?;
    let decoded_hash = engine.state_hash().to_string();
    if decoded_seq != seq || decoded_hash != hash {
        return Err(format!(
            "join-from {peer}: the snapshot is of seq {decoded_seq} with state hash \
             {decoded_hash}, the peer said seq {seq} with {hash}"
        ));
    }
    let dir = store.snapshots_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    bourse_snapshots::write_file_bytes(&dir, seq, &bytes, store.snapshots_kept)
        .map_err(|e| format!("cannot write the peer's snapshot: {e}"))?;
    tracing::info!(
        "join-from {peer}: installed its snapshot at seq {seq} (state hash {hash}, {} bytes); \
         the log resumes at offset {seq}",
        bytes.len()
    );
    Ok(Some(seq))
}

/// Whether the data directory holds a journal segment or a snapshot.
fn has_state(dir: &Path) -> Result<bool, String> {
    let non_empty = |sub: &str| -> Result<bool, String> {
        let path = dir.join(sub);
        match std::fs::read_dir(&path) {
            Ok(mut entries) => Ok(entries.next().is_some()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    };
    Ok(non_empty("journal")? || non_empty("snapshots")?)
}

/// The peer's answer: sequence number, state hash, file bytes.
async fn fetch(peer: &str, token: &str) -> Result<(u64, String, Vec<u8>), String> {
    let answer = bourse_gateway::peer::get(peer, "/api/v1/admin/snapshot", Some(token), usize::MAX)
        .await
        .map_err(|e| format!("join-from {peer}: {e}"))?;
    if !answer.status.is_success() {
        return Err(format!(
            "join-from {peer}: answered {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        ));
    }
    let header = |name: &str| answer.headers.get(name).and_then(|v| v.to_str().ok());
    let seq = header("x-snapshot-seq")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("join-from {peer}: no X-Snapshot-Seq"))?;
    let hash = header("x-state-hash")
        .ok_or_else(|| format!("join-from {peer}: no X-State-Hash"))?
        .to_owned();
    Ok((seq, hash, answer.body.to_vec()))
}
