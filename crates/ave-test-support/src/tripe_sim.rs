//! A simulator of the TrIPE server's admin socket, for tests and benches, built from
//! spec/tripe-admin.md (the real server is not available on these machines; section 9).
//!
//! It listens on a real Unix socket in a fresh temporary directory and runs on its own
//! thread with its own tokio runtime, so both async tests and tests that run the `ave`
//! binary can use it. It keeps the server's rules rather than scripting answers:
//!
//! - words are read with mLib's `str_qword` rules and written with the server's
//!   `u_quotify` (its own implementations, independent of the client's);
//! - lines longer than 255 bytes reach the command parser in pieces, as with mLib's line
//!   buffer;
//! - one foreground command at a time per connection: a line that arrives while the
//!   previous command is unanswered is recorded as a violation (see [`Sim::violations`]);
//! - `-background TAG` jobs (ADD, PING, EPING, SVCSUBMIT) with `BGDETACH`, `BGINFO`,
//!   `BGOK`, `BGFAIL`, `BGCANCEL` and `JOBS`;
//! - peers (ADD with every option, KILL, LIST, ADDR, IFNAME, SETIFNAME, PEERINFO, STATS,
//!   FORCEKX, PING, EPING, GREET, GETCHAL, CHECKCHAL) and the server commands (HELP,
//!   VERSION, SERVINFO, ALGS, PORT, TUNNELS, DAEMON, RELOAD, QUIT, TRACE, WATCH, NOTIFY,
//!   WARN);
//! - services relayed between a submitting and a providing connection (SVCCLAIM with
//!   version takeover, SVCRELEASE, SVCENSURE, SVCQUERY, SVCLIST, SVCSUBMIT, SVCJOB,
//!   SVCINFO, SVCOK, SVCFAIL, SVCCANCEL, `provider-failed` when a provider disconnects);
//! - broadcasts filtered by each connection's WATCH mask (empty for a new connection).
//!
//! Tests play the rest of the world through the control methods: peers answering or not
//! answering pings ([`Sim::hold_pings`], [`Sim::release_pings`]), broadcasts, dropped
//! connections, and test-only scripted commands that send hostile lines
//! ([`Sim::script`]). Every wait is bounded ([`Sim::wait_until`]).
//!
//! This file holds [`Sim`], the handle tests use; `server.rs` the accept loop and the
//! connections, `commands.rs` the commands that answer at once, `jobs.rs` those that can
//! run in the background, `state.rs` the server's state and a connection's context,
//! `parse.rs` how the server reads arguments, and `words.rs` its quoting. A file imports
//! only from files named after it, so `words.rs` is a leaf and none imports this one.

mod commands;
mod jobs;
mod parse;
mod server;
mod state;
mod words;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::{Notify, watch};

use crate::tripe_sim::{
    server::serve,
    state::{Out, PingEnd, Shared, State, peer_info_map},
    words::quote_words,
};
pub use crate::tripe_sim::{
    state::{WATCH_NOTE, WATCH_TRACE, WATCH_WARN},
    words::{qwords, server_quote},
};

/// The running simulator; dropping it stops the server and removes its directory.
pub struct Sim {
    dir: PathBuf,
    socket: PathBuf,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sim {
    /// Starts a simulator on `<fresh temp dir>/tripesock`.
    pub fn start() -> Sim {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ave-tripe-sim-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Sim::start_in(&dir)
    }

    /// Starts a simulator on `dir/tripesock`, creating `dir` (which dropping the simulator
    /// removes): a fresh server on the socket path of one that was dropped, as after a
    /// restart.
    pub fn start_in(dir: &Path) -> Sim {
        let dir = dir.to_path_buf();
        std::fs::create_dir_all(&dir).expect("create the simulator's directory");
        let socket = dir.join("tripesock");
        // Bound here, so that the socket exists when `start` returns.
        let listener =
            std::os::unix::net::UnixListener::bind(&socket).expect("bind the admin socket");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let (changed, _) = watch::channel(0);
        let shared =
            Arc::new(Shared { state: Mutex::new(State::default()), changed, stop: Notify::new() });
        let server = shared.clone();
        let socket_path = socket.clone();
        let thread = std::thread::Builder::new()
            .name("tripe-sim".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("simulator runtime");
                runtime.block_on(serve(server, listener, socket_path));
            })
            .expect("start the simulator thread");
        Sim { dir, socket, shared, thread: Some(thread) }
    }

    /// The admin socket.
    pub fn path(&self) -> &Path {
        &self.socket
    }

    /// The directory holding the socket (a TrIPE directory, for `--dir`/`TRIPEDIR`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Adds a peer directly, as if configured before the test (no broadcast).
    pub fn add_peer(&self, name: &str, addr: &[&str]) {
        let mut state = self.state();
        let peer = state.new_peer(name, addr.iter().map(|s| (*s).to_owned()).collect());
        state.peers.insert(name.to_owned(), peer);
        drop(state);
        self.shared.touch();
    }

    /// The peers' names.
    pub fn peers(&self) -> Vec<String> {
        self.state().peers.keys().cloned().collect()
    }

    /// A peer's settings, as PEERINFO would list them.
    pub fn peer_settings(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.state().peers.get(name).map(peer_info_map)
    }

    /// Pings to `peer` wait from now on, until released, the peer is killed, or they time
    /// out.
    pub fn hold_pings(&self, peer: &str) {
        if let Some(p) = self.state().peers.get_mut(peer) {
            p.hold_pings = true;
        }
    }

    /// The pings waiting for `peer`.
    pub fn waiting_pings(&self, peer: &str) -> usize {
        self.state().peers.get(peer).map_or(0, |p| p.waiting.len())
    }

    /// Answers every waiting ping of `peer` after `rtt_ms`, and stops holding new ones;
    /// returns how many were waiting.
    pub fn release_pings(&self, peer: &str, rtt_ms: f64) -> usize {
        let waiting = {
            let mut state = self.state();
            let Some(p) = state.peers.get_mut(peer) else { return 0 };
            p.hold_pings = false;
            std::mem::take(&mut p.waiting)
        };
        for wait in &waiting {
            wait.finish(PingEnd::Reply(rtt_ms));
        }
        self.shared.touch();
        waiting.len()
    }

    /// Broadcasts `NOTE words...` to the connections watching notes.
    pub fn note(&self, words: &[&str]) {
        let line = format!("NOTE {}", quote_words(words));
        self.state().broadcast(WATCH_NOTE, &line);
    }

    /// Broadcasts `WARN words...` to the connections watching warnings.
    pub fn warn(&self, words: &[&str]) {
        let line = format!("WARN {}", quote_words(words));
        self.state().broadcast(WATCH_WARN, &line);
    }

    /// Broadcasts `TRACE text` (raw) to the connections watching traces.
    pub fn trace(&self, text: &str) {
        self.state().broadcast(WATCH_TRACE, &format!("TRACE {text}"));
    }

    /// Writes raw bytes (a newline is added) to every connection, whatever its mask.
    pub fn send_raw(&self, bytes: &[u8]) {
        let state = self.state();
        for conn in state.conns.values() {
            let _ = conn.out.send(Out::Line(bytes.to_vec()));
        }
    }

    /// A test-only command (not TrIPE's): when a client sends `keyword`, the server writes
    /// these raw lines (a newline is added to each) and nothing else. The lines should end
    /// with an `OK` or `FAIL` line.
    pub fn script(&self, keyword: &str, lines: &[&[u8]]) {
        let lines = lines.iter().map(|l| l.to_vec()).collect();
        self.state().scripts.insert(keyword.to_ascii_uppercase(), lines);
    }

    /// A test-only command (not TrIPE's): when a client sends `keyword`, the server writes
    /// `line` (a newline is added) over and over, as fast as the client reads, and never
    /// answers OK or FAIL; it stops when the connection closes. The server's own buffer
    /// stays bounded: it waits for the socket to take each batch before making the next.
    pub fn stream(&self, keyword: &str, line: &[u8]) {
        self.state().streams.insert(keyword.to_ascii_uppercase(), line.to_vec());
    }

    /// Closes every client connection from the server's side.
    pub fn drop_connections(&self) {
        let ids: Vec<u64> = self.state().conns.keys().copied().collect();
        for id in ids {
            self.shared.kill(id);
        }
    }

    /// Every command line received so far, in order.
    pub fn received(&self) -> Vec<String> {
        self.state().log.iter().map(|(_, line)| line.clone()).collect()
    }

    /// Lines received while the previous command on the same connection was unanswered
    /// (breaches of the one-command-at-a-time rule).
    pub fn violations(&self) -> Vec<String> {
        self.state().violations.iter().map(|(_, line)| line.clone()).collect()
    }

    /// The number of open client connections.
    pub fn connections(&self) -> usize {
        self.state().conns.len()
    }

    /// The number of connections whose watch mask has all of `bits`.
    pub fn watchers(&self, bits: u8) -> usize {
        self.state().conns.values().filter(|c| c.watch & bits == bits).count()
    }

    /// The services and their versions.
    pub fn services(&self) -> Vec<(String, String)> {
        self.state().services.values().map(|s| (s.name.clone(), s.version.clone())).collect()
    }

    /// The number of service jobs in progress.
    pub fn service_jobs(&self) -> usize {
        self.state().svc_jobs.len()
    }

    /// The number of background jobs of all connections.
    pub fn background_jobs(&self) -> usize {
        self.state().conns.values().map(|c| c.jobs.len()).sum()
    }

    /// Waits until `pred` holds, re-checking after every change; false after `timeout`.
    pub async fn wait_until(&self, timeout: Duration, pred: impl Fn(&Sim) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.shared.changed.subscribe();
        loop {
            if pred(self) {
                return true;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                _ => return pred(self),
            }
        }
    }

    /// [`Sim::wait_until`] for tests without a runtime.
    pub fn wait_until_blocking(&self, timeout: Duration, pred: impl Fn(&Sim) -> bool) -> bool {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime to wait on")
            .block_on(self.wait_until(timeout, pred))
    }
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim").field("socket", &self.socket).finish_non_exhaustive()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.shared.stop.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
