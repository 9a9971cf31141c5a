//! The fork lock: forking is sound only while no other thread of this process can hold a
//! lock, so every fork takes this lock and checks the process's threads first.

use std::{
    io,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// What the fork lock protects: threads of this crate that are parked without holding
/// any lock (a child's signal thread, the thread a child's steps were moved off), which
/// therefore do not make a fork unsound.
#[derive(Debug, Default)]
pub(crate) struct ForkState {
    parked: Vec<i32>,
}

impl ForkState {
    pub(crate) fn park(&mut self, tid: i32) {
        self.parked.push(tid);
    }
}

static FORK: Mutex<ForkState> = Mutex::new(ForkState { parked: Vec::new() });

/// Whether this process is a child started by [`Process::start`](crate::process::Process::start).
pub(crate) static FORKED: AtomicBool = AtomicBool::new(false);

/// Taken around every fork, and by parked threads whenever they do anything.
pub(crate) fn fork_lock() -> MutexGuard<'static, ForkState> {
    crate::sync::lock(&FORK)
}

/// Whether this process is a child started by [`Process::start`](crate::process::Process::start) (its inherited runtime
/// state, such as tokio's signal handling, is not usable).
pub(crate) fn is_forked_child() -> bool {
    FORKED.load(Ordering::Relaxed)
}

/// The other threads of this process, giving threads that are ending (just joined, say)
/// a moment to be gone.
pub(crate) fn running_threads(state: &ForkState) -> io::Result<Vec<i32>> {
    let deadline = Instant::now() + Duration::from_millis(20);
    loop {
        let others = other_threads(state)?;
        if others.is_empty() || Instant::now() >= deadline {
            return Ok(others);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn other_threads(state: &ForkState) -> io::Result<Vec<i32>> {
    let me = nix::unistd::gettid().as_raw();
    let mut others = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task")? {
        let Some(tid) = entry?.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if tid == me || state.parked.contains(&tid) {
            continue;
        }
        // A thread that has ended but not been released yet does not count.
        let stat =
            std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
        let state = stat.rfind(')').and_then(|i| stat.get(i + 2..i + 3));
        if matches!(state, Some("R" | "S" | "D" | "T" | "t" | "I" | "W" | "P")) {
            others.push(tid);
        }
    }
    Ok(others)
}
