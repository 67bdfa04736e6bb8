//! Progress of a long recovery: an `indicatif` bar on a terminal, a log line a second
//! otherwise. The start and summary lines of a long replay are logged either way (`tracing`,
//! so they reach whatever subscriber the binary set up).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Receives the progress of a replay.
pub trait Progress {
    /// Replay of `total` records starts.
    fn start(&mut self, total: u64);
    /// `done` of the `total` records are applied.
    fn advance(&mut self, done: u64);
    /// The replay ended (with `done` records applied).
    fn finish(&mut self, done: u64);
}

/// Reports nothing (tests, embedding).
#[derive(Debug, Default)]
pub struct Silent;

impl Progress for Silent {
    fn start(&mut self, _total: u64) {}
    fn advance(&mut self, _done: u64) {}
    fn finish(&mut self, _done: u64) {}
}

/// Replays shorter than this say nothing but their summary line.
const QUIET_BELOW: u64 = 100_000;
/// A log line (when there is no bar) is written at most this often.
const LINE_EVERY: Duration = Duration::from_secs(1);
/// The bar is redrawn at most this many times a second.
const BAR_HZ: u8 = 10;
const BAR_TEMPLATE: &str =
    "replay [{bar:30}] {percent:>3}% {pos} of {len} commands, {per_sec}, {eta} left";

/// Where the bar goes, if there is one.
#[derive(Debug)]
enum Bar {
    /// No bar: a log line a second.
    Lines,
    /// A bar drawn on this target (standard error, or hidden in tests).
    Drawn(fn() -> ProgressDrawTarget),
}

/// Replay progress: an `indicatif` bar redrawn in place when standard error is a terminal,
/// one log line a second otherwise (logs, CI). Both show records done, total, rate and time
/// left.
#[derive(Debug)]
pub struct ConsoleProgress {
    bar_to: Bar,
    /// The bar of the replay under way (only with [`Bar::Drawn`] and a long replay).
    bar: Option<ProgressBar>,
    total: u64,
    started: Instant,
    last_line: Option<Instant>,
}

impl ConsoleProgress {
    /// Progress on standard error, as a bar if it is a terminal.
    pub fn stderr() -> Self {
        if std::io::stderr().is_terminal() {
            ConsoleProgress::new(Bar::Drawn(|| ProgressDrawTarget::stderr_with_hz(BAR_HZ)))
        } else {
            ConsoleProgress::new(Bar::Lines)
        }
    }

    fn new(bar_to: Bar) -> Self {
        ConsoleProgress {
            bar_to,
            bar: None,
            total: 0,
            started: Instant::now(),
            last_line: None,
        }
    }

    fn new_bar(&self, target: ProgressDrawTarget) -> ProgressBar {
        let style = ProgressStyle::with_template(BAR_TEMPLATE)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("## ");
        ProgressBar::with_draw_target(Some(self.total), target).with_style(style)
    }

    /// The log line for `done` records (when there is no bar).
    fn line(&self, done: u64) -> String {
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 {
            done as f64 / elapsed
        } else {
            0.0
        };
        let percent = if self.total == 0 {
            100.0
        } else {
            done as f64 * 100.0 / self.total as f64
        };
        let left = if rate > 0.0 {
            format!(
                "{:.1} s left",
                self.total.saturating_sub(done) as f64 / rate
            )
        } else {
            "time left unknown".to_string()
        };
        format!(
            "{percent:5.1}% {done} of {} commands, {:.2} M/s, {left}",
            self.total,
            rate / 1e6
        )
    }
}

impl Progress for ConsoleProgress {
    fn start(&mut self, total: u64) {
        self.total = total;
        self.started = Instant::now();
        self.last_line = None;
        self.bar = None;
        if total >= QUIET_BELOW {
            tracing::info!("recovery: replaying {total} journal records");
            if let Bar::Drawn(target) = self.bar_to {
                self.bar = Some(self.new_bar(target()));
            }
        }
    }

    fn advance(&mut self, done: u64) {
        if self.total < QUIET_BELOW {
            return;
        }
        if let Some(bar) = &self.bar {
            // indicatif redraws at most BAR_HZ times a second.
            bar.set_position(done);
            return;
        }
        let now = Instant::now();
        let since = self.last_line.unwrap_or(self.started);
        if now.duration_since(since) < LINE_EVERY {
            return;
        }
        self.last_line = Some(now);
        tracing::info!("recovery: replay {}", self.line(done));
    }

    fn finish(&mut self, done: u64) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.total >= QUIET_BELOW {
            let secs = self.started.elapsed().as_secs_f64();
            tracing::info!(
                "recovery: replayed {done} records in {secs:.2} s ({:.2} M/s)",
                if secs > 0.0 {
                    done as f64 / secs / 1e6
                } else {
                    0.0
                }
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What `run` logged, one string.
    fn logged(run: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, run);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn short_replays_stay_quiet() {
        let text = logged(|| {
            let mut progress = ConsoleProgress::new(Bar::Lines);
            progress.start(10);
            progress.advance(5);
            progress.finish(10);
        });
        assert!(text.is_empty(), "{text}");
    }

    #[test]
    fn log_lines_name_the_totals_and_come_at_most_once_a_second() {
        let text = logged(|| {
            let mut progress = ConsoleProgress::new(Bar::Lines);
            progress.start(1_000_000);
            // Pretend the first line is due; the second call comes too soon after it.
            progress.started -= LINE_EVERY * 2;
            progress.advance(500_000);
            progress.advance(600_000);
            progress.finish(1_000_000);
        });
        assert!(text.contains("replaying 1000000 journal records"), "{text}");
        assert_eq!(text.matches("recovery: replay ").count(), 1, "{text}");
        assert!(text.contains(" 50.0% 500000 of 1000000 commands"), "{text}");
        assert!(text.contains("replayed 1000000 records"), "{text}");
    }

    #[test]
    fn on_a_terminal_the_bar_follows_the_replay_and_no_lines_are_logged() {
        let mut progress = ConsoleProgress::new(Bar::Drawn(ProgressDrawTarget::hidden));
        let text = logged(|| {
            progress.start(1_000_000);
            progress.started -= LINE_EVERY * 2;
            progress.advance(500_000);
        });
        let bar = progress.bar.as_ref().unwrap();
        assert_eq!((bar.position(), bar.length()), (500_000, Some(1_000_000)));
        assert!(!text.contains("recovery: replay "), "{text}");
        progress.finish(1_000_000);
        assert!(progress.bar.is_none());
    }

    #[test]
    fn a_short_replay_has_no_bar() {
        let mut progress = ConsoleProgress::new(Bar::Drawn(ProgressDrawTarget::hidden));
        progress.start(10);
        progress.advance(5);
        assert!(progress.bar.is_none());
    }
}
