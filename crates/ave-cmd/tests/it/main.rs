//! Integration tests of `ave-cmd`: real ptys, real processes, real signals.
//!
//! Modules:
//! - `original`: every scenario of the original's cmd tests (t1 to t8);
//! - `status`: exit statuses, signal deaths and failures to start;
//! - `options`: working directory, environment, sinks, debug trace, window size;
//! - `child`: what the child gets (terminal, session, descriptors, signals);
//! - `session`: timeouts and the end of a run end the whole session; daemons survive;
//! - `background`: `run_bg` and `Background`;
//! - `asynchronous`: the async API inside tokio;
//! - `input`: forwarding input to the command's terminal;
//! - `guard`: the guard process's preconditions;
//! - `leaks`: no descriptor, pty or zombie is left behind.
//!
//! Tests that count this process's descriptors or children take [`exclusive`]; every
//! other test that starts processes takes [`shared`], so the counts are exact under
//! `cargo test` threads too (nextest runs each test in its own process anyway).

mod asynchronous;
mod background;
mod child;
mod guard;
mod input;
mod leaks;
mod options;
mod original;
mod session;
mod status;

use std::{
    collections::BTreeSet,
    fs,
    sync::{RwLock, RwLockReadGuard, RwLockWriteGuard},
};

pub(crate) use ave_test_support::TempDir;

static PROCESSES: RwLock<()> = RwLock::new(());

/// For tests that start processes.
fn shared() -> RwLockReadGuard<'static, ()> {
    PROCESSES.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// For tests that count this process's descriptors or children.
fn exclusive() -> RwLockWriteGuard<'static, ()> {
    PROCESSES.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The descriptors open in this process.
fn open_fds() -> BTreeSet<String> {
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

/// The children of this process (any state, zombies included).
fn children() -> Vec<i32> {
    let mut pids = Vec::new();
    for task in fs::read_dir("/proc/self/task").unwrap() {
        let path = task.unwrap().path().join("children");
        let text = fs::read_to_string(path).unwrap_or_default();
        pids.extend(text.split_whitespace().map(|p| p.parse::<i32>().unwrap()));
    }
    pids
}

/// A field of `/proc/<pid>/stat` after the command name: 0 is the state, 3 the session.
fn stat_field(pid: i32, index: usize) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_whitespace().nth(index).map(str::to_owned)
}

/// The live (not zombie) processes of session `sid`, read from `/proc` independently of
/// the library.
fn live_in_session(sid: i32) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").unwrap() {
        let Ok(pid) = entry.unwrap().file_name().into_string().unwrap().parse::<i32>() else {
            continue;
        };
        let state = stat_field(pid, 0);
        let session = stat_field(pid, 3);
        if session.as_deref() == Some(&sid.to_string())
            && !matches!(state.as_deref(), Some("Z" | "X") | None)
        {
            pids.push(pid);
        }
    }
    pids
}

/// Whether a process exists and is not a zombie.
fn alive(pid: i32) -> bool {
    !matches!(stat_field(pid, 0).as_deref(), Some("Z" | "X") | None)
}

/// The output as text with the terminal's `\r\n` turned into `\n`.
fn lines(output: &[u8]) -> String {
    String::from_utf8_lossy(output).replace("\r\n", "\n")
}

/// The first line of output, parsed as a number (scripts print `$$` first).
fn first_number(output: &[u8]) -> i32 {
    lines(output).lines().next().unwrap().trim().parse().unwrap()
}
