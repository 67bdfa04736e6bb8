//! Command-line flags as the binaries take them: `--flag value` pairs and a few switches,
//! `--help` (or `-h`) for the usage, and every error message followed by the usage.
//!
//! ```no_run
//! use bourse_benches::args::Flags;
//!
//! const USAGE: &str = "usage: example [--reps N (3)] [--cold]";
//! let (mut reps, mut cold) = (3, false);
//! let mut flags = Flags::from_env(USAGE);
//! let parsed: Result<(), String> = (|| {
//!     while let Some(flag) = flags.next_flag()? {
//!         if flag == "--cold" {
//!             cold = true;
//!             continue;
//!         }
//!         let value = flags.value(&flag)?;
//!         match flag.as_str() {
//!             "--reps" => reps = value.number()?.max(1),
//!             _ => return Err(flags.unknown(&flag)),
//!         }
//!     }
//!     Ok(())
//! })();
//! let () = bourse_benches::args::or_exit(parsed);
//! ```

use std::path::PathBuf;

/// The flags left to read, and the usage that goes with every error.
pub struct Flags {
    rest: std::vec::IntoIter<String>,
    usage: &'static str,
}

impl Flags {
    /// The process's arguments after the program name.
    pub fn from_env(usage: &'static str) -> Flags {
        Flags::new(std::env::args().skip(1).collect(), usage)
    }

    pub fn new(args: Vec<String>, usage: &'static str) -> Flags {
        Flags {
            rest: args.into_iter(),
            usage,
        }
    }

    /// The next flag, `None` at the end; `--help` or `-h` is an error: the usage.
    pub fn next_flag(&mut self) -> Result<Option<String>, String> {
        match self.rest.next() {
            Some(flag) if flag == "--help" || flag == "-h" => Err(self.usage.to_string()),
            next => Ok(next),
        }
    }

    /// The value after `flag`.
    pub fn value(&mut self, flag: &str) -> Result<Value, String> {
        let text = self
            .rest
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{}", self.usage))?;
        Ok(Value {
            flag: flag.to_string(),
            text,
            usage: self.usage,
        })
    }

    /// The error for a flag no binary takes.
    pub fn unknown(&self, flag: &str) -> String {
        self.error(&format!("unknown flag {flag}"))
    }

    /// `message`, then the usage.
    pub fn error(&self, message: &str) -> String {
        format!("{message}\n{}", self.usage)
    }
}

/// A flag's value.
pub struct Value {
    flag: String,
    text: String,
    usage: &'static str,
}

impl Value {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn into_string(self) -> String {
        self.text
    }

    pub fn into_path(self) -> PathBuf {
        PathBuf::from(self.text)
    }

    /// A whole number; `_` may separate digits (`5_000_000`).
    pub fn number(&self) -> Result<u64, String> {
        self.text
            .replace('_', "")
            .parse::<u64>()
            .map_err(|e| format!("{} {}: {e}", self.flag, self.text))
    }

    /// Seconds, more than zero.
    pub fn positive_seconds(&self) -> Result<f64, String> {
        self.text
            .parse::<f64>()
            .ok()
            .filter(|s| *s > 0.0)
            .ok_or_else(|| {
                format!(
                    "{} {}: not a positive number of seconds",
                    self.flag, self.text
                )
            })
    }

    /// Seconds, zero or more.
    pub fn seconds(&self) -> Result<f64, String> {
        self.text
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| format!("{} {}: not a number of seconds", self.flag, self.text))
    }

    /// A comma-separated list of whole numbers; empty items are skipped, so an empty text is an
    /// empty list (which a binary may take to mean "skip that part").
    pub fn numbers(&self) -> Result<Vec<u64>, String> {
        self.text
            .split(',')
            .filter(|n| !n.trim().is_empty())
            .map(|n| {
                n.trim()
                    .replace('_', "")
                    .parse::<u64>()
                    .map_err(|_| format!("{} {}: {n:?} is not a number", self.flag, self.text))
            })
            .collect()
    }

    /// A comma-separated list, each item through `parse`.
    pub fn list<T>(&self, parse: impl FnMut(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
        self.text.split(',').map(parse).collect()
    }

    /// The value named by the text among `choices`; else "unknown `what` text" and the usage.
    pub fn one_of<T: Copy>(&self, what: &str, choices: &[(&str, T)]) -> Result<T, String> {
        choices
            .iter()
            .find(|(name, _)| *name == self.text)
            .map(|&(_, value)| value)
            .ok_or_else(|| self.unknown(what, &self.text))
    }

    /// "unknown `what` `name`", then the usage.
    pub fn unknown(&self, what: &str, name: &str) -> String {
        format!("unknown {what} {name}\n{}", self.usage)
    }
}

/// A count per second: a number with an optional `k` (thousands) or `M` (millions) suffix,
/// `250k`, `1.5M`, `_` allowed between digits; at least 1.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let s = s.trim().replace('_', "");
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1e3),
        Some('m' | 'M') => (&s[..s.len() - 1], 1e6),
        _ => (&s[..], 1.0),
    };
    let v: f64 = num.parse().map_err(|e| format!("rate {s:?}: {e}"))?;
    let r = (v * mult).round();
    if r < 1.0 {
        return Err(format!("rate {s:?} must be at least 1/s"));
    }
    Ok(r as u64)
}

/// The parsed flags, or (for `--help` and errors) the message on stderr and exit status 2.
pub fn or_exit<T>(parsed: Result<T, String>) -> T {
    parsed.unwrap_or_else(|message| {
        eprintln!("{message}");
        std::process::exit(2);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Flags {
        Flags::new(args.iter().map(|s| s.to_string()).collect(), "usage: x")
    }

    #[test]
    fn help_values_and_errors() {
        assert_eq!(flags(&["-h"]).next_flag().unwrap_err(), "usage: x");
        assert_eq!(flags(&["--help"]).next_flag().unwrap_err(), "usage: x");
        let mut f = flags(&["--ops", "5_000", "--secs", "0", "--end"]);
        let flag = f.next_flag().unwrap().unwrap();
        assert_eq!(f.value(&flag).unwrap().number(), Ok(5_000));
        let flag = f.next_flag().unwrap().unwrap();
        let v = f.value(&flag).unwrap();
        assert_eq!(v.seconds(), Ok(0.0));
        assert_eq!(
            v.positive_seconds().unwrap_err(),
            "--secs 0: not a positive number of seconds"
        );
        let flag = f.next_flag().unwrap().unwrap();
        assert_eq!(
            f.value(&flag).err().unwrap(),
            "--end needs a value\nusage: x"
        );
        assert_eq!(f.next_flag(), Ok(None));
        assert_eq!(f.unknown("--end"), "unknown flag --end\nusage: x");
    }

    #[test]
    fn lists_choices_and_rates() {
        let mut f = flags(&["--rates", "100k,1.5M,2_000", "--mode", "spin"]);
        let flag = f.next_flag().unwrap().unwrap();
        let rates = f.value(&flag).unwrap().list(parse_rate).unwrap();
        assert_eq!(rates, [100_000, 1_500_000, 2_000]);
        let flag = f.next_flag().unwrap().unwrap();
        let v = f.value(&flag).unwrap();
        assert_eq!(v.one_of("--mode", &[("spin", 1), ("yield", 2)]), Ok(1));
        assert_eq!(
            v.one_of("mode", &[("yield", 2)]).unwrap_err(),
            "unknown mode spin\nusage: x"
        );
        let mut f = flags(&["--fanout", "1_000, 10000,", "--rates", ""]);
        let flag = f.next_flag().unwrap().unwrap();
        assert_eq!(f.value(&flag).unwrap().numbers(), Ok(vec![1_000, 10_000]));
        let flag = f.next_flag().unwrap().unwrap();
        assert_eq!(f.value(&flag).unwrap().numbers(), Ok(vec![]));
        assert!(parse_rate("0.1").is_err());
        assert!(parse_rate("x").is_err());
    }
}
