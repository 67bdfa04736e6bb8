//! `bourse recover`: runs start-up recovery on a data directory and reports what it found.

use anyhow::{Context, Result, bail};

/// `bourse recover`: opens a data directory as start-up does and reports.
pub fn main(mut args: impl Iterator<Item = String>) -> Result<()> {
    let mut data_dir = None;
    let mut repair = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--data-dir" => data_dir = Some(args.next().context("--data-dir needs a directory")?),
            "--repair" => repair = true,
            other => bail!("unknown argument {other:?} to `bourse recover`"),
        }
    }
    let data_dir = data_dir.context("`bourse recover` needs --data-dir DIR")?;
    let mut config = bourse_store::StoreConfig::new(&data_dir);
    if repair {
        config.journal.recovery = bourse_journal::RecoveryMode::Repair;
    }
    let recovered =
        bourse_store::Store::open(&config, &mut bourse_store::ConsoleProgress::stderr())
            .with_context(|| format!("recovering {data_dir}"))?;
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
