//! Parsers for the human units on the command line: sizes, durations, mixes.

use std::time::Duration;

/// `256MiB`, `16M`, `1.5GiB`, `4096`, `10MB`. Bare `K`/`M`/`G` are binary,
/// as load-test sizes nearly always are; `kB`/`MB`/`GB` are decimal.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| format!("bad size {s:?}: expected e.g. 256MiB, 16M or 4096"))?;
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
        other => return Err(format!("bad size unit {other:?} in {s:?}")),
    };
    let bytes = num * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("size {s:?} out of range"));
    }
    Ok(bytes.round() as u64)
}

/// `30s`, `500ms`, `2m`, `1h`, `1.5s`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?}: expected e.g. 30s, 500ms, 2m"))?;
    let secs = match unit.trim() {
        "" | "s" => num,
        "ms" => num / 1e3,
        "m" | "min" => num * 60.0,
        "h" => num * 3600.0,
        other => return Err(format!("bad duration unit {other:?} in {s:?}")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("duration {s:?} out of range"))
}

/// `metadata=4,list=3,download=2,upload=1` into (name, weight) pairs; names
/// are checked by the caller, which knows the scenarios.
pub fn parse_mix(s: &str) -> Result<Vec<(String, u32)>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|part| {
            let (name, w) = part
                .split_once('=')
                .ok_or_else(|| format!("bad mix entry {part:?}: expected NAME=WEIGHT"))?;
            let w: u32 = w
                .trim()
                .parse()
                .map_err(|_| format!("bad weight in mix entry {part:?}"))?;
            Ok((name.trim().to_string(), w))
        })
        .collect()
}

/// Bytes as a short human string for the table and progress line.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("16MiB").unwrap(), 16 << 20);
        assert_eq!(parse_size("16M").unwrap(), 16 << 20);
        assert_eq!(parse_size("256mib").unwrap(), 256 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("512KiB").unwrap(), 512 << 10);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_size("0").unwrap(), 0);
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("-1M").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("5 fortnights").is_err());
    }

    #[test]
    fn mixes() {
        let m = parse_mix("metadata=4, list=3,download=0").unwrap();
        assert_eq!(
            m,
            vec![
                ("metadata".to_string(), 4),
                ("list".to_string(), 3),
                ("download".to_string(), 0)
            ]
        );
        assert!(parse_mix("metadata").is_err());
        assert!(parse_mix("metadata=x").is_err());
    }

    #[test]
    fn human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(16 << 20), "16.0 MiB");
    }
}
