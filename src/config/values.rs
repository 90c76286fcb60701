//! Parsers for the values flags take: durations, sizes, intervals that may be off, and the
//! user to run as.

use std::time::Duration;

/// Parses a duration: seconds, or a number with s, m, h or d.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 90s, 15m or 2h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use s, m, h or d)"
            ))
        }
    };
    Ok(Duration::from_secs(secs))
}

/// The unprivileged user and group a process started as root works as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

/// Parses `UID:GID`; either side may be a name from the system's user or group database
/// (`shoebox:shoebox`). Root on either side is refused: it would drop nothing.
pub fn parse_run_as(s: &str) -> Result<RunAs, String> {
    let (user, group) = s
        .trim()
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not USER:GROUP such as 10001:10001 or shoebox:shoebox"))?;
    use nix::unistd::{Group, User};
    let uid = numeric_id(user, "user", |n| {
        Some(User::from_name(n).ok()??.uid.as_raw())
    })?;
    let gid = numeric_id(group, "group", |n| {
        Some(Group::from_name(n).ok()??.gid.as_raw())
    })?;
    // u32::MAX is -1 to the kernel: "leave unchanged".
    if [uid, gid].iter().any(|id| *id == 0 || *id == u32::MAX) {
        return Err(format!(
            "{s:?}: run as an unprivileged user and group, not root (e.g. 10001:10001)"
        ));
    }
    Ok(RunAs { uid, gid })
}

/// A number, or a name the system's user or group database knows.
fn numeric_id(s: &str, what: &str, by_name: impl Fn(&str) -> Option<u32>) -> Result<u32, String> {
    let s = s.trim();
    s.parse()
        .ok()
        .or_else(|| by_name(s))
        .ok_or_else(|| format!("no {what} named {s:?} (use a number, e.g. 10001)"))
}

/// Parses a byte count: a plain number, or a number with a binary (KiB, MiB, GiB, TiB) or
/// decimal (KB, MB, GB, TB) unit. Single letters (K, M, G, T) are binary.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 1048576, 500MiB or 2GB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use KiB, MiB, GiB, KB, MB or GB)"
            ))
        }
    };
    num.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// A duration that may be switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval(pub Option<Duration>);

/// Parses a duration (see [`parse_duration`]), or `off` (also `0`) for none.
pub fn parse_interval(s: &str) -> Result<Interval, String> {
    match s.trim() {
        "off" | "0" | "" => Ok(Interval(None)),
        other => parse_duration(other).map(|d| Interval(Some(d))),
    }
}
