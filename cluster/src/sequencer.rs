//! A node's one way to have a command applied, whichever way the node runs: the local
//! pipeline (one node: its journal is the log) or the shard's Kafka log (a cluster: the
//! command is appended, and answered when this node's replica applies it).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bourse_engine::CommandKind;
use bourse_pipeline::{Handle, Outcome};

use crate::{Freshness, ProposeError, Proposer, Stale};

/// A command's outcome, to await.
pub type Pending = Pin<Box<dyn Future<Output = Result<Outcome, ProposeError>> + Send>>;

/// The cluster side of a node: its proposer and what it knows of the log.
#[derive(Debug)]
pub struct LogPath {
    proposer: Proposer,
    freshness: Freshness,
}

impl LogPath {
    /// Commands go through `proposer`, and only while `freshness` says this node has the log.
    pub fn new(proposer: Proposer, freshness: Freshness) -> LogPath {
        LogPath {
            proposer,
            freshness,
        }
    }

    /// Where the commands this node proposed spent their time.
    pub fn times(&self) -> &crate::ProposeTimes {
        self.proposer.times()
    }

    /// What this node knows of the log.
    pub fn freshness(&self) -> &Freshness {
        &self.freshness
    }

    /// Stops the probe thread.
    pub fn stop(self) {
        self.freshness.stop();
    }
}

/// Where a node's commands go (see the module docs). Cheap to clone.
#[derive(Clone, Debug)]
pub enum Sequencer {
    /// One node: straight into the local pipeline.
    Local(Handle),
    /// A cluster: through the shard's log.
    Log(Arc<LogPath>),
}

impl Sequencer {
    /// Hands `kind` over now (commands sent one after another by one caller are applied in
    /// that order); await the result for its outcome. A full ring, a log that does not take
    /// the command, or a stale node answer at once.
    pub fn send(&mut self, kind: CommandKind) -> Result<Pending, ProposeError> {
        match self {
            Sequencer::Local(handle) => {
                let ticket = handle.try_submit(kind).map_err(ProposeError::Pipeline)?;
                Ok(Box::pin(async move {
                    ticket.await.map_err(ProposeError::Pipeline)
                }))
            }
            Sequencer::Log(path) => {
                path.freshness.check().map_err(ProposeError::Stale)?;
                let proposed = path.proposer.send(kind)?;
                Ok(Box::pin(proposed.outcome()))
            }
        }
    }

    /// Sends `kind` and awaits its outcome.
    pub async fn submit(&mut self, kind: CommandKind) -> Result<Outcome, ProposeError> {
        self.send(kind)?.await
    }

    /// Sends `kind` and waits for its outcome on this thread (not inside an async task).
    pub fn submit_blocking(&mut self, kind: CommandKind) -> Result<Outcome, ProposeError> {
        bourse_feed::block_on(self.send(kind)?)
    }

    /// `Err` when this node may be behind the log by more than its bound: its reads would be
    /// older than promised. Always `Ok` on one node.
    pub fn fresh(&self) -> Result<(), Stale> {
        match self {
            Sequencer::Local(_) => Ok(()),
            Sequencer::Log(path) => path.freshness.check(),
        }
    }

    /// The cluster side, if this node is in one.
    pub fn log_path(&self) -> Option<&LogPath> {
        match self {
            Sequencer::Local(_) => None,
            Sequencer::Log(path) => Some(path),
        }
    }
}
