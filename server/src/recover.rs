//! `bourse recover`: runs start-up recovery on a data directory and reports what it found.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// `bourse recover`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct RecoverArgs {
    /// The data directory to recover (it holds journal/ and snapshots/)
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Cut the journal at damage instead of refusing it, saying how much was dropped
    #[arg(long)]
    pub repair: bool,
}

/// `bourse recover`: opens a data directory as start-up does and reports.
pub fn main(args: RecoverArgs) -> Result<()> {
    let RecoverArgs { data_dir, repair } = args;
    let mut config = bourse_store::StoreConfig::new(&data_dir);
    if repair {
        config.journal.recovery = bourse_journal::RecoveryMode::Repair;
    }
    let recovered =
        bourse_store::Store::open(&config, &mut bourse_store::ConsoleProgress::stderr())
            .with_context(|| format!("recovering {}", data_dir.display()))?;
    let engine = &recovered.engine;
    println!("{}", recovered.report);
    for skipped in &recovered.report.skipped_snapshots {
        println!("skipped {}: {}", skipped.path.display(), skipped.error);
    }
    println!(
        "state: {} accounts, {} products, {} open orders, event seq {}, state hash {}",
        engine.n_accounts(),
        engine.n_products(),
        engine.n_open_orders(),
        engine.event_seq(),
        engine.state_hash()
    );
    Ok(())
}
