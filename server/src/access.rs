//! What a part of the server that acts on the engine by itself (the default catalogue, the
//! liquidity provider) holds: reads from the local engine, commands through the node's
//! [`Sequencer`] (the local pipeline on a single node, the shard's log in a cluster, where
//! nothing may go into the pipeline except the log).

use bourse_cluster::{ProposeError, Sequencer};
use bourse_engine::{CommandKind, Engine};
use bourse_pipeline::{Handle, Outcome, SubmitError};

/// Reads and commands (see the module docs).
#[derive(Clone, Debug)]
pub struct Access {
    /// Reads of the local engine.
    pub handle: Handle,
    /// Where commands go.
    pub commands: Sequencer,
}

impl Access {
    /// A single node's access: both through `handle`.
    pub fn local(handle: Handle) -> Access {
        Access {
            commands: Sequencer::Local(handle.clone()),
            handle,
        }
    }

    /// Reads the local engine on this thread (not inside an async task).
    pub fn query<T, F>(&self, read: F) -> Result<T, SubmitError>
    where
        T: Send + 'static,
        F: FnOnce(&Engine) -> T + Send + 'static,
    {
        self.handle.try_query(read).and_then(|ticket| ticket.wait())
    }

    /// Sends a command and waits for its outcome on this thread.
    pub fn submit(&mut self, kind: CommandKind) -> Result<Outcome, ProposeError> {
        self.commands.submit_blocking(kind)
    }
}
