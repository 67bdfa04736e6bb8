//! Progress of a long recovery: a bar on a terminal, log lines otherwise.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

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
/// A terminal bar is redrawn at most this often.
const BAR_EVERY: Duration = Duration::from_millis(100);
/// A log line is written at most this often.
const LINE_EVERY: Duration = Duration::from_secs(1);
const BAR_WIDTH: usize = 30;

/// Writes progress to a [`Write`]: a bar redrawn in place when it is a terminal, one line a
/// second otherwise (logs, CI). Both show records done, total, rate and time left.
pub struct ConsoleProgress<W: Write> {
    out: W,
    terminal: bool,
    total: u64,
    started: Instant,
    last_draw: Option<Instant>,
}

impl ConsoleProgress<std::io::Stderr> {
    /// Progress on standard error, as a bar if it is a terminal.
    pub fn stderr() -> Self {
        let out = std::io::stderr();
        let terminal = out.is_terminal();
        ConsoleProgress::new(out, terminal)
    }
}

impl<W: Write> ConsoleProgress<W> {
    /// Progress on `out`; `terminal` chooses the bar over log lines.
    pub fn new(out: W, terminal: bool) -> Self {
        ConsoleProgress {
            out,
            terminal,
            total: 0,
            started: Instant::now(),
            last_draw: None,
        }
    }

    /// The writer (tests read what was written).
    pub fn into_inner(self) -> W {
        self.out
    }

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

impl<W: Write> Progress for ConsoleProgress<W> {
    fn start(&mut self, total: u64) {
        self.total = total;
        self.started = Instant::now();
        self.last_draw = None;
        if total >= QUIET_BELOW {
            // Progress is best effort: a closed stderr must not stop recovery.
            let _ = writeln!(self.out, "recovery: replaying {total} journal records");
        }
    }

    fn advance(&mut self, done: u64) {
        if self.total < QUIET_BELOW {
            return;
        }
        let now = Instant::now();
        let every = if self.terminal { BAR_EVERY } else { LINE_EVERY };
        let since = self.last_draw.unwrap_or(self.started);
        if now.duration_since(since) < every {
            return;
        }
        self.last_draw = Some(now);
        let line = self.line(done);
        let _ = if self.terminal {
            let filled = (done.min(self.total) as u128 * BAR_WIDTH as u128
                / self.total.max(1) as u128) as usize;
            write!(
                self.out,
                "\rreplay [{}{}] {line}\x1b[K",
                "#".repeat(filled),
                " ".repeat(BAR_WIDTH - filled)
            )
        } else {
            writeln!(self.out, "recovery: replay {line}")
        };
        let _ = self.out.flush();
    }

    fn finish(&mut self, done: u64) {
        if self.terminal && self.last_draw.is_some() {
            let _ = write!(self.out, "\r\x1b[K");
        }
        if self.total >= QUIET_BELOW {
            let secs = self.started.elapsed().as_secs_f64();
            let _ = writeln!(
                self.out,
                "recovery: replayed {done} records in {secs:.2} s ({:.2} M/s)",
                if secs > 0.0 {
                    done as f64 / secs / 1e6
                } else {
                    0.0
                }
            );
        }
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_replays_stay_quiet() {
        let mut progress = ConsoleProgress::new(Vec::new(), false);
        progress.start(10);
        progress.advance(5);
        progress.finish(10);
        assert!(progress.into_inner().is_empty());
    }

    #[test]
    fn log_lines_name_the_totals() {
        let mut progress = ConsoleProgress::new(Vec::new(), false);
        progress.start(1_000_000);
        progress.finish(1_000_000);
        let text = String::from_utf8(progress.into_inner()).unwrap();
        assert!(text.contains("replaying 1000000 journal records"), "{text}");
        assert!(text.contains("replayed 1000000 records"), "{text}");
    }

    #[test]
    fn the_bar_is_drawn_in_place() {
        let mut progress = ConsoleProgress::new(Vec::new(), true);
        progress.start(1_000_000);
        // Pretend the first draw is due.
        progress.started -= BAR_EVERY * 2;
        progress.advance(500_000);
        let text = String::from_utf8(progress.into_inner()).unwrap();
        assert!(text.contains("\rreplay ["), "{text}");
        assert!(
            text.contains(&format!("[{}{}]", "#".repeat(15), " ".repeat(15))),
            "{text}"
        );
    }
}
