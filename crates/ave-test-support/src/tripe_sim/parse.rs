//! Reading a command as the server does: the command table and its usage lines, leading
//! options, time specs (`strtol` with a unit), mLib's version order, address resolution,
//! and the base64 of challenges.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, Ipv6Addr},
};

/// The command table: name, usage, and the bounds on positional arguments.
pub(super) const COMMANDS: &[(&str, &str, usize, usize)] = &[
    ("add", "[OPTIONS] PEER ADDR ...", 2, usize::MAX),
    ("addr", "PEER", 1, 1),
    ("algs", "[PEER]", 0, 1),
    ("bgcancel", "TAG", 1, 1),
    ("checkchal", "CHAL", 1, 1),
    ("daemon", "", 0, 0),
    ("eping", "[OPTIONS] PEER", 1, 1),
    ("forcekx", "PEER", 1, 1),
    ("getchal", "", 0, 0),
    ("greet", "PEER CHAL", 2, 2),
    ("help", "", 0, 0),
    ("ifname", "PEER", 1, 1),
    ("jobs", "", 0, 0),
    ("kill", "PEER", 1, 1),
    ("list", "", 0, 0),
    ("notify", "MESSAGE ...", 1, usize::MAX),
    ("peerinfo", "PEER", 1, 1),
    ("ping", "[OPTIONS] PEER", 1, 1),
    ("port", "[FAMILY]", 0, 1),
    ("quit", "", 0, 0),
    ("reload", "", 0, 0),
    ("servinfo", "", 0, 0),
    ("setifname", "PEER NEW-NAME", 2, 2),
    ("stats", "PEER", 1, 1),
    ("svcclaim", "SERVICE VERSION", 2, 2),
    ("svcensure", "SERVICE [VERSION]", 1, 2),
    ("svcfail", "JOBID TOKENS ...", 1, usize::MAX),
    ("svcinfo", "JOBID TOKENS ...", 1, usize::MAX),
    ("svclist", "", 0, 0),
    ("svcok", "JOBID", 1, 1),
    ("svcquery", "SERVICE", 1, 1),
    ("svcrelease", "SERVICE", 1, 1),
    ("svcsubmit", "[OPTIONS] SERVICE ARGS ...", 1, usize::MAX),
    ("trace", "[OPTIONS]", 0, 1),
    ("tunnels", "", 0, 0),
    ("version", "", 0, 0),
    ("warn", "MESSAGE ...", 1, usize::MAX),
    ("watch", "[OPTIONS]", 0, 1),
];

/// The options each background-capable command takes: name and whether it has a value.
fn options_of(name: &str) -> &'static [(&'static str, bool)] {
    match name {
        "add" => &[
            ("-background", true),
            ("-tunnel", true),
            ("-keepalive", true),
            ("-key", true),
            ("-priv", true),
            ("-cork", false),
            ("-mobile", false),
            ("-knock", true),
            ("-ephemeral", false),
        ],
        "ping" | "eping" => &[("-background", true), ("-timeout", true)],
        "svcsubmit" => &[("-background", true), ("-version", true)],
        _ => &[],
    }
}

pub(super) fn bad_syntax(name: &str) -> Vec<String> {
    let usage = COMMANDS.iter().find(|c| c.0 == name).map_or("", |c| c.1);
    std::iter::once("bad-syntax".to_owned())
        .chain(std::iter::once(name.to_owned()))
        .chain(usage.split_whitespace().map(str::to_owned))
        .collect()
}

/// A command's options (name to value) and its other arguments.
pub(super) type Parsed = (HashMap<&'static str, Option<String>>, Vec<String>);

/// A tag followed by words.
pub(super) fn tagged(tag: &str, words: &[String]) -> Vec<String> {
    std::iter::once(tag.to_owned()).chain(words.iter().cloned()).collect()
}

/// Splits leading options off the arguments (up to the first non-option word or `--`).
pub(super) fn parse_options(name: &str, args: &[String]) -> Result<Parsed, Vec<String>> {
    let known = options_of(name);
    let mut options = HashMap::new();
    // Only the commands that take options parse them (`WATCH -A+w` is an argument).
    if known.is_empty() {
        return Ok((options, args.to_vec()));
    }
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') && args[i].len() > 1 {
        if args[i] == "--" {
            i += 1;
            break;
        }
        let Some(&(option, valued)) = known.iter().find(|(o, _)| *o == args[i]) else {
            return Err(bad_syntax(name));
        };
        if valued {
            let Some(value) = args.get(i + 1) else { return Err(bad_syntax(name)) };
            options.insert(option, Some(value.clone()));
            i += 2;
        } else {
            options.insert(option, None);
            i += 1;
        }
    }
    Ok((options, args[i..].to_vec()))
}

/// A time spec as the server reads it: `strtol(..., 0)` and an optional unit.
pub(super) fn time_spec(spec: &str) -> Option<u64> {
    let (number, unit) = match spec.chars().last()? {
        's' => (&spec[..spec.len() - 1], 1),
        'm' => (&spec[..spec.len() - 1], 60),
        'h' => (&spec[..spec.len() - 1], 3600),
        'd' => (&spec[..spec.len() - 1], 86_400),
        _ => (spec, 1),
    };
    let value = if let Some(hex) = number.strip_prefix("0x").or_else(|| number.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()?
    } else if number.len() > 1 && number.starts_with('0') {
        u64::from_str_radix(&number[1..], 8).ok()?
    } else {
        number.parse().ok()?
    };
    value.checked_mul(unit)
}

/// mLib's `versioncmp`: digit runs compare as numbers, other runs as text.
pub(super) fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn runs(s: &str) -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let digit = c.is_ascii_digit();
            match out.last_mut() {
                Some((d, run)) if *d == digit => run.push(c),
                _ => out.push((digit, c.to_string())),
            }
        }
        out
    }
    let (ra, rb) = (runs(a), runs(b));
    for (x, y) in ra.iter().zip(rb.iter()) {
        let ord = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if ord.is_ne() {
            return ord;
        }
    }
    ra.len().cmp(&rb.len())
}

/// Resolves address words: `[INET|INET6] HOST PORT`; only numeric hosts and `localhost`.
pub(super) fn resolve(words: &[String]) -> Result<Vec<String>, Vec<String>> {
    let (family, rest) = match words.first().map(String::as_str) {
        Some("INET") => ("INET", &words[1..]),
        Some("INET6") => ("INET6", &words[1..]),
        _ => ("INET", words),
    };
    let [host, port] = rest else {
        return Err(vec!["bad-addr-syntax".into(), "wrong-number-of-words".into()]);
    };
    let host = match (family, host.as_str()) {
        ("INET", "localhost") => "127.0.0.1".to_owned(),
        ("INET6", "localhost") => "::1".to_owned(),
        ("INET", h) if h.parse::<Ipv4Addr>().is_ok() => h.to_owned(),
        ("INET6", h) if h.parse::<Ipv6Addr>().is_ok() => h.to_owned(),
        _ => return Err(vec!["resolve-error".into(), host.clone()]),
    };
    let port = match port.as_str() {
        "tripe" => 4070,
        p => p.parse::<u16>().map_err(|_| vec!["invalid-port".to_owned(), p.to_owned()])?,
    };
    Ok(vec![family.to_owned(), host, port.to_string()])
}

pub(super) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_versions_and_base64_read_as_the_server_reads_them() {
        assert_eq!(time_spec("0x10"), Some(16));
        assert_eq!(time_spec("010"), Some(8));
        assert_eq!(time_spec("2m"), Some(120));
        assert_eq!(time_spec("x"), None);
        assert!(version_cmp("1.10", "1.9").is_gt());
        assert!(version_cmp("1.0", "1.0.1").is_lt());
        assert!(version_cmp("2.0", "2.0").is_eq());
        assert_eq!(base64(b"chal0001"), "Y2hhbDAwMDE=");
    }
}
