//! The throughput benchmark's Bourse commands as a stream: what [`BourseVenue`] gives its
//! engine, built one command at a time against a live engine (an accepted `PlaceOrder` gets
//! the next engine order id, which later cancels and moves name). `replay_bench` journals
//! them; `latency` submits them to the pipeline.

use bourse_engine::{Command, CommandKind, Engine, Limits, OrderId};
use bourse_store::replay::DiscardEvents;

use crate::mix::Op;
#[cfg(doc)]
use crate::venues::BourseVenue;
use crate::venues::{EngineIds, bourse_command, bourse_op, bourse_setup};

/// Builds the throughput benchmark's Bourse commands one at a time, applying each to a live
/// engine (an accepted `PlaceOrder` gets the next engine order id, which later cancels and
/// moves name), and hands each to `out`.
pub struct Live {
    pub engine: Engine,
    sink: DiscardEvents,
    /// The sequence number of the last command built.
    pub seq: u64,
    /// Engine order ids by generator id.
    ids: EngineIds,
    /// Commands the live engine rejected.
    pub rejected: u64,
}

impl Default for Live {
    fn default() -> Self {
        Live::new()
    }
}

impl Live {
    pub fn new() -> Self {
        Live {
            engine: Engine::new(Limits::default()),
            sink: DiscardEvents,
            seq: 0,
            ids: EngineIds::default(),
            rejected: 0,
        }
    }

    /// Applies the next command; `true` if the engine accepted it.
    pub fn command(&mut self, kind: CommandKind, out: &mut impl FnMut(&Command)) -> bool {
        self.seq += 1;
        // As in `BourseVenue`: one command per microsecond of engine time.
        let command = bourse_command(self.seq, kind);
        out(&command);
        let accepted = self.engine.apply(&command, &mut self.sink).is_ok();
        self.rejected += u64::from(!accepted);
        accepted
    }

    /// The setup: two assets, one product, then per user an account and two deposits (as
    /// `BourseVenue::new` applies it).
    pub fn setup(&mut self, users: u32, out: &mut impl FnMut(&Command)) {
        bourse_setup(users, |kind| {
            assert!(self.command(kind, out), "setup command rejected");
        });
    }

    pub fn engine_id(&self, id: u32) -> OrderId {
        self.ids.get(id)
    }

    /// The op as `BourseVenue::apply` turns it into a command.
    pub fn op(&mut self, op: &Op, out: &mut impl FnMut(&Command)) {
        let kind = bourse_op(op, &self.ids);
        if self.command(kind, out) {
            self.ids.accepted(op);
        }
    }
}
