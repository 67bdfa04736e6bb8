//! The settings' value parsers. Each says what is wrong with the text; the caller (clap, with
//! the setting's name) names the flag, variable or file key.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::PathBuf;

use bourse_pipeline::RING_SIZE_MIN;
use bourse_store::Retention;
use clap::builder::{PossibleValue, TypedValueParser};
use clap::{Arg, Command};

use super::AckLog;

/// `off`, or what `parse` makes of the text.
pub(super) fn off_or<T>(
    parse: fn(&str) -> Result<T, String>,
) -> impl Fn(&str) -> Result<Option<T>, String> + Clone + Send + Sync + 'static
where
    T: Clone + Send + Sync + 'static,
{
    move |text| match text {
        "off" => Ok(None),
        text => parse(text).map(Some),
    }
}

/// `auto`, or what `parse` makes of the text.
pub(super) fn auto_or<T>(
    parse: fn(&str) -> Result<T, String>,
) -> impl Fn(&str) -> Result<Option<T>, String> + Clone + Send + Sync + 'static
where
    T: Clone + Send + Sync + 'static,
{
    move |text| match text {
        "auto" => Ok(None),
        text => parse(text).map(Some),
    }
}

/// The tick feed's partitioner (`bourse_marketdata::placement::Partitioner`).
pub(super) fn partitioner(text: &str) -> Result<bourse_marketdata::placement::Partitioner, String> {
    text.parse()
}

/// A whole number from `min` to `max` (`_` separators allowed) that fits a `T`.
pub(super) fn whole<T>(
    min: u64,
    max: u64,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
{
    move |text| {
        let n: u64 = text
            .replace('_', "")
            .parse()
            .map_err(|_| "not a whole number".to_string())?;
        if n < min {
            return Err(format!("must be at least {min}"));
        }
        if n > max {
            return Err(format!("must be at most {max}"));
        }
        T::try_from(n).map_err(|_| "too large".to_string())
    }
}

/// One of a fixed list of names, each standing for a value; `--help` lists the names.
#[derive(Clone)]
pub(super) struct OneOf<T: 'static>(pub(super) &'static [(&'static str, T)]);

impl<T: Copy + Send + Sync + 'static> TypedValueParser for OneOf<T> {
    type Value = T;

    fn parse_ref(&self, cmd: &Command, arg: Option<&Arg>, value: &OsStr) -> Result<T, clap::Error> {
        let table = self.0;
        let lookup = move |text: &str| match table.iter().find(|(name, _)| *name == text) {
            Some((_, value)) => Ok(*value),
            None => {
                let names: Vec<&str> = table.iter().map(|(name, _)| *name).collect();
                Err(format!("not one of {}", names.join(", ")))
            }
        };
        // The closure's parser builds the error with the flag and the value as context.
        lookup.parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            self.0.iter().map(|(name, _)| PossibleValue::new(*name)),
        ))
    }
}

pub(super) fn path(text: &str) -> Result<PathBuf, String> {
    match text {
        "" => Err("empty".into()),
        text => Ok(PathBuf::from(text)),
    }
}

pub(super) fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|e| format!("not HOST:PORT ({e})"))
}

pub(super) fn boolean(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err("not a boolean (true or false)".into()),
    }
}

pub(super) fn admin_token(text: &str) -> Result<String, String> {
    if text.len() >= 16 && text.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(text.to_string())
    } else {
        Err("at least 16 printable characters without spaces, or off".into())
    }
}

pub(super) fn brokers(text: &str) -> Result<String, String> {
    if !text.is_empty() && text.split(',').all(|broker| broker.contains(':')) {
        Ok(text.to_string())
    } else {
        Err("not HOST:PORT[,HOST:PORT...] or off".into())
    }
}

/// Peers' HTTP base addresses, `http://HOST:PORT[,...]`.
pub(super) fn peers(text: &str) -> Result<super::Peers, String> {
    text.split(',')
        .map(|url| {
            let rest = url
                .strip_prefix("http://")
                .ok_or_else(|| format!("{url:?} does not start with http://"))?;
            let host_port = rest.trim_end_matches('/');
            if host_port.contains(':') && !host_port.contains('/') {
                Ok(format!("http://{host_port}"))
            } else {
                Err(format!("{url:?} is not http://HOST:PORT"))
            }
        })
        .collect::<Result<_, _>>()
        .map(super::Peers)
}

/// Exchange-rate symbols (`EURUSD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatePairs(pub Vec<String>);

/// Exchange-rate symbols: two three-letter currency codes each (`EURUSD`), comma-separated.
pub(super) fn rate_pairs(text: &str) -> Result<RatePairs, String> {
    text.split(',')
        .map(|pair| {
            if pair.len() == 6 && pair.bytes().all(|b| b.is_ascii_uppercase()) {
                Ok(pair.to_string())
            } else {
                Err(format!("{pair:?} is not a pair of currency codes (EURUSD)"))
            }
        })
        .collect::<Result<_, _>>()
        .map(RatePairs)
}

/// One peer's HTTP base address, `http://HOST:PORT`.
pub(super) fn peer(text: &str) -> Result<String, String> {
    let mut peers = peers(text)?.0;
    match (peers.pop(), peers.is_empty()) {
        (Some(peer), true) => Ok(peer),
        _ => Err("one http://HOST:PORT".into()),
    }
}

/// A Kafka topic or group name.
pub(super) fn kafka_name(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 249
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if valid {
        Ok(text.to_string())
    } else {
        Err("not 1 to 249 of A-Z a-z 0-9 . _ -".into())
    }
}

pub(super) fn ring_size(text: &str) -> Result<usize, String> {
    match whole::<usize>(0, u64::MAX)(text)? {
        n if n.is_power_of_two() && n >= RING_SIZE_MIN => Ok(n),
        _ => Err(format!("not a power of two of at least {RING_SIZE_MIN}")),
    }
}

pub(super) fn retention(text: &str) -> Result<Retention, String> {
    match text {
        "keep" => Ok(Retention::Keep),
        "delete" => Ok(Retention::Delete),
        _ => match text.strip_prefix("archive:") {
            Some(dir) if !dir.is_empty() => Ok(Retention::Archive(PathBuf::from(dir))),
            Some(_) => Err("archive: needs a directory".into()),
            None => Err("not keep, delete or archive:DIR".into()),
        },
    }
}

pub(super) fn ack_log(text: &str) -> Result<AckLog, String> {
    match text {
        "-" => Ok(AckLog::Stdout),
        path => Ok(AckLog::File(self::path(path)?)),
    }
}
