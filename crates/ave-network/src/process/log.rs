//! The log helpers a child's log lines and hickup dumps share: the original's line format
//! and its C `asctime` clock, and the list of this process's threads.

use std::{
    fmt,
    fmt::Write as _,
    fs,
    time::{SystemTime, UNIX_EPOCH},
};

use crate::{process::Pid, sys::process as sys};

/// A log line in the original's format: `<ctime> <name> <pid> -- <message>\n`, with the C
/// `asctime` layout in local time (`Sun Nov 22 00:23:30 2026`).
pub(crate) fn log_line(name: &str, message: &dyn fmt::Display) -> String {
    format!("{} {name} {} -- {message}\n", ctime(now_secs()), Pid::this())
}

pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `asctime` of a local time: `Sun Nov 22 00:23:30 2026`.
pub(crate) fn ctime(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    match sys::local_time(secs) {
        Ok(t) => format!(
            "{} {} {:>2} {:02}:{:02}:{:02} {}",
            DAYS[t.weekday as usize % 7],
            MONTHS[(t.month as usize + 11) % 12],
            t.day,
            t.hour,
            t.minute,
            t.second,
            t.year
        ),
        Err(_) => format!("@{secs}"),
    }
}

/// This process's threads: `<tid> <name> <state>` lines.
pub(crate) fn thread_list() -> String {
    let mut out = String::new();
    let Ok(tasks) = fs::read_dir("/proc/self/task") else { return out };
    let mut tids: Vec<i32> = tasks
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect();
    tids.sort_unstable();
    for tid in tids {
        let stat = fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
        let (name, state) = parse_stat(&stat).map_or(("?", "?"), |s| (s.name, s.state));
        let _ = writeln!(out, "  {tid} {name} {state} ({})", state_name(state));
    }
    out
}

pub(crate) struct Stat<'a> {
    pub(crate) name: &'a str,
    pub(crate) state: &'a str,
    pub(crate) ppid: i32,
}

/// Parses `pid (comm) state ppid ...`; the name may hold spaces and parentheses.
pub(crate) fn parse_stat(stat: &str) -> Option<Stat<'_>> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    let mut rest = stat.get(close + 1..)?.split_whitespace();
    let state = rest.next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some(Stat { name, state, ppid })
}

fn state_name(state: &str) -> &'static str {
    match state {
        "R" => "running",
        "S" => "sleeping",
        "D" => "disk sleep",
        "T" => "stopped",
        "t" => "tracing stop",
        "Z" => "zombie",
        "X" => "dead",
        "I" => "idle",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_have_the_original_layout() {
        let line = log_line("ave-S", &"start PID=8138");
        // `Sun Nov 22 00:23:30 2026 ave-S <pid> -- start PID=8138`
        let (stamp, rest) = line.split_at(24);
        assert_eq!(rest, format!(" ave-S {} -- start PID=8138\n", std::process::id()));
        let words: Vec<&str> = stamp.split_whitespace().collect();
        assert_eq!(words.len(), 5, "{stamp:?}");
        assert!(["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"].contains(&words[0]));
        assert_eq!(words[3].len(), 8);
        // The day is padded with a space, not a zero.
        assert!(stamp.as_bytes()[8] == b' ' || stamp.as_bytes()[8].is_ascii_digit());
        assert_ne!(stamp.as_bytes()[8], b'0');
    }

    #[test]
    fn thread_list_names_this_thread() {
        let list = thread_list();
        assert!(list.contains(&format!("  {} ", std::process::id())), "{list}");
    }
}
