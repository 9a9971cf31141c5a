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

#![allow(clippy::print_stderr)]

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::{Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{UnixListener, UnixStream},
    sync::{Notify, mpsc, oneshot, watch},
    task::AbortHandle,
};

/// The watch bits.
pub const WATCH_WARN: u8 = 1;
/// NOTE lines.
pub const WATCH_NOTE: u8 = 2;
/// TRACE lines.
pub const WATCH_TRACE: u8 = 4;

/// The longest line the server's line buffer holds; longer ones come in pieces.
const LINE_PIECE: usize = 255;
/// How many jobs one provider may have before `provider-overloaded`.
const MAX_PROVIDER_JOBS: usize = 64;
const VERSION: &str = "1.0.0";
const IMPLEMENTATION: &str = "ave-tripe-sim";

/// The running simulator; dropping it stops the server and removes its directory.
pub struct Sim {
    dir: PathBuf,
    socket: PathBuf,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    stop: Notify,
}

#[derive(Default)]
struct State {
    next_conn: u64,
    conns: BTreeMap<u64, Conn>,
    peers: BTreeMap<String, Peer>,
    next_ifindex: u32,
    services: BTreeMap<String, SvcEntry>,
    svc_jobs: HashMap<String, SvcJob>,
    next_jobid: u64,
    challenges: HashSet<String>,
    next_chal: u64,
    daemon: bool,
    trace_mask: u32,
    log: Vec<(u64, String)>,
    violations: Vec<(u64, String)>,
    scripts: HashMap<String, Vec<Vec<u8>>>,
    streams: HashMap<String, Vec<u8>>,
    quitting: bool,
}

struct Conn {
    out: mpsc::UnboundedSender<Out>,
    watch: u8,
    jobs: BTreeMap<String, BgJob>,
    closed: Arc<watch::Sender<bool>>,
    reader: Option<AbortHandle>,
}

enum Out {
    Line(Vec<u8>),
    /// Bytes written as they are (no newline added).
    Raw(Vec<u8>),
    /// Answered once everything before it is written.
    Flushed(oneshot::Sender<()>),
    Close,
}

struct BgJob {
    abort: Option<AbortHandle>,
    svc_jobid: Option<String>,
}

#[derive(Clone)]
struct Peer {
    addr: Vec<String>,
    ifname: String,
    tunnel: String,
    keepalive: u64,
    key: String,
    private_key: String,
    corked: bool,
    mobile: bool,
    knock: Option<String>,
    ephemeral: bool,
    keyed: bool,
    hold_pings: bool,
    rtt_ms: f64,
    packets_out: u64,
    waiting: Vec<Arc<PingWait>>,
}

/// One ping waiting for the peer.
struct PingWait {
    outcome: Mutex<Option<oneshot::Sender<PingEnd>>>,
}

#[derive(Debug, Clone, Copy)]
enum PingEnd {
    Reply(f64),
    PeerDied,
}

struct SvcEntry {
    name: String,
    version: String,
    provider: u64,
}

struct SvcJob {
    provider: u64,
    submitter: u64,
    relay: mpsc::UnboundedSender<Relay>,
}

enum Relay {
    Info(Vec<String>),
    Ok,
    Fail(Vec<String>),
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

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn touch(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    /// Closes one connection from the server's side, after what is already queued for it.
    fn kill(&self, id: u64) {
        let state = self.lock();
        if let Some(conn) = state.conns.get(&id) {
            let _ = conn.out.send(Out::Close);
            let _ = conn.closed.send(true);
            if let Some(reader) = &conn.reader {
                reader.abort();
            }
        }
    }
}

impl PingWait {
    fn finish(&self, end: PingEnd) {
        if let Some(tx) =
            self.outcome.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
        {
            let _ = tx.send(end);
        }
    }
}

impl State {
    fn new_peer(&mut self, name: &str, addr: Vec<String>) -> Peer {
        let ifname = format!("tun{}", self.next_ifindex);
        self.next_ifindex += 1;
        Peer {
            addr,
            ifname,
            tunnel: "linux".into(),
            keepalive: 0,
            key: name.to_owned(),
            private_key: "tripe".into(),
            corked: false,
            mobile: false,
            knock: None,
            ephemeral: false,
            keyed: true,
            hold_pings: false,
            rtt_ms: 0.25,
            packets_out: 0,
            waiting: Vec::new(),
        }
    }

    fn send(&self, conn: u64, line: &str) {
        if let Some(c) = self.conns.get(&conn) {
            let _ = c.out.send(Out::Line(line.as_bytes().to_vec()));
        }
    }

    fn broadcast(&self, bit: u8, line: &str) {
        for conn in self.conns.values().filter(|c| c.watch & bit != 0) {
            let _ = conn.out.send(Out::Line(line.as_bytes().to_vec()));
        }
    }
}

// --- Words: mLib's `str_qword` and the server's `u_quotify`, written from the spec. ---

fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// Splits a line into words with mLib's quoting rules.
pub fn qwords(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| is_c_space(*c)) {
            chars.next();
        }
        if chars.peek().is_none() {
            return words;
        }
        let mut word = String::new();
        let mut open: Option<char> = None;
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            } else if let Some(q) = open {
                if c == q {
                    open = None;
                } else {
                    word.push(c);
                }
            } else if c == '\'' || c == '"' {
                open = Some(c);
            } else if is_c_space(c) {
                break;
            } else {
                word.push(c);
            }
        }
        words.push(word);
    }
}

/// Quotes a word as the server's `u_quotify` does (backslashes stay bare: upstream's wart).
pub fn server_quote(word: &str) -> String {
    let bare = !word.is_empty()
        && !word.chars().any(|c| matches!(c, '"' | '\'' | ' ' | '\t' | '\n' | '\x0b'));
    if bare {
        return word.to_owned();
    }
    let mut out = String::from("\"");
    for c in word.chars() {
        if c == '\\' || c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn quote_words<S: AsRef<str>>(words: &[S]) -> String {
    words.iter().map(|w| server_quote(w.as_ref())).collect::<Vec<_>>().join(" ")
}

fn line_of<S: AsRef<str>>(code: &str, words: &[S]) -> String {
    if words.is_empty() { code.to_owned() } else { format!("{code} {}", quote_words(words)) }
}

// --- The server. ---

async fn serve(shared: Arc<Shared>, listener: std::os::unix::net::UnixListener, socket: PathBuf) {
    let listener = UnixListener::from_std(listener).expect("register the listener");
    let quit = Arc::new(Notify::new());
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(connection(shared.clone(), stream, quit.clone()));
                }
                Err(error) => eprintln!("tripe-sim: accept failed: {error}"),
            },
            () = shared.stop.notified() => break,
            () = quit.notified() => break,
        }
    }
    drop(listener);
    let _ = std::fs::remove_file(&socket);
    let ids: Vec<u64> = shared.lock().conns.keys().copied().collect();
    for id in ids {
        shared.kill(id);
    }
    // Let the writers flush what is queued (they exit at their `Close`).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut changes = shared.changed.subscribe();
    while !shared.lock().conns.is_empty() {
        if tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
            break;
        }
    }
}

/// What a command handler needs to answer on its connection.
struct Ctx {
    shared: Arc<Shared>,
    id: u64,
    out: mpsc::UnboundedSender<Out>,
    busy: Arc<AtomicBool>,
    closed: watch::Receiver<bool>,
    quit: Arc<Notify>,
}

impl Ctx {
    fn write(&self, line: &str) {
        let _ = self.out.send(Out::Line(line.as_bytes().to_vec()));
    }

    fn info<S: AsRef<str>>(&self, words: &[S]) {
        self.write(&line_of("INFO", words));
    }

    /// The command is answered: the client may send the next one.
    fn release(&self) {
        self.busy.store(false, Ordering::SeqCst);
    }

    fn ok(&self) {
        self.release();
        self.write("OK");
    }

    fn fail<S: AsRef<str>>(&self, tokens: &[S]) {
        self.release();
        self.write(&line_of("FAIL", tokens));
    }

    fn detach(&self, tag: &str) {
        self.release();
        self.write(&format!("BGDETACH {}", server_quote(tag)));
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Waits until the connection closes.
    async fn closed(&self) {
        let mut closed = self.closed.clone();
        let _ = closed.wait_for(|c| *c).await;
    }
}

async fn connection(shared: Arc<Shared>, stream: UnixStream, quit: Arc<Notify>) {
    let (read, write) = stream.into_split();
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (lines_tx, mut lines_rx) = mpsc::unbounded_channel::<String>();
    let (closed_tx, closed_rx) = watch::channel(false);
    let closed_tx = Arc::new(closed_tx);
    let busy = Arc::new(AtomicBool::new(false));
    let id = {
        let mut state = shared.lock();
        let id = state.next_conn;
        state.next_conn += 1;
        state.conns.insert(
            id,
            Conn {
                out: out_tx.clone(),
                watch: 0,
                jobs: BTreeMap::new(),
                closed: closed_tx.clone(),
                reader: None,
            },
        );
        id
    };
    let writer = tokio::spawn(writer(write, out_rx));
    let reader = tokio::spawn(reader(read, lines_tx, busy.clone(), shared.clone(), id, closed_tx));
    if let Some(conn) = shared.lock().conns.get_mut(&id) {
        conn.reader = Some(reader.abort_handle());
    }
    shared.touch();
    let ctx = Ctx { shared: shared.clone(), id, out: out_tx, busy, closed: closed_rx, quit };
    while let Some(line) = lines_rx.recv().await {
        if *ctx.closed.borrow() {
            break;
        }
        command(&ctx, &line).await;
        shared.touch();
    }
    cleanup(&shared, id);
    drop(ctx);
    let _ = writer.await;
    shared.lock().conns.remove(&id);
    shared.touch();
}

async fn writer(
    mut write: tokio::net::unix::OwnedWriteHalf,
    mut out: mpsc::UnboundedReceiver<Out>,
) {
    // Everything queued when the writer wakes goes out in one write, as the server's
    // buffered output would (one syscall, one wake-up of the client, per batch).
    let mut buf = Vec::new();
    let mut items = Vec::new();
    'serve: while out.recv_many(&mut items, 256).await > 0 {
        for item in items.drain(..) {
            match item {
                Out::Line(bytes) => {
                    buf.extend_from_slice(&bytes);
                    buf.push(b'\n');
                }
                Out::Raw(bytes) => buf.extend_from_slice(&bytes),
                Out::Flushed(done) => {
                    if write.write_all(&buf).await.is_err() {
                        break 'serve;
                    }
                    buf.clear();
                    let _ = done.send(());
                }
                Out::Close => {
                    let _ = write.write_all(&buf).await;
                    buf.clear();
                    break 'serve;
                }
            }
        }
        if write.write_all(&buf).await.is_err() {
            break;
        }
        buf.clear();
    }
    let _ = write.shutdown().await;
}

async fn reader(
    mut read: tokio::net::unix::OwnedReadHalf,
    lines: mpsc::UnboundedSender<String>,
    busy: Arc<AtomicBool>,
    shared: Arc<Shared>,
    id: u64,
    closed: Arc<watch::Sender<bool>>,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    let deliver = |piece: &[u8]| {
        let piece = piece.strip_suffix(b"\r").unwrap_or(piece);
        let text = String::from_utf8_lossy(piece).into_owned();
        if text.chars().all(is_c_space) {
            return;
        }
        if busy.swap(true, Ordering::SeqCst) {
            shared.lock().violations.push((id, text.clone()));
        }
        let _ = lines.send(text);
    };
    loop {
        let n = match read.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            for piece in line[..line.len() - 1].chunks(LINE_PIECE) {
                deliver(piece);
            }
        }
        while buf.len() > LINE_PIECE {
            let piece: Vec<u8> = buf.drain(..LINE_PIECE).collect();
            deliver(&piece);
        }
    }
    let _ = closed.send(true);
}

/// The server forgets a connection: its jobs are cancelled, its services released, and the
/// jobs it provided fail for their submitters.
fn cleanup(shared: &Shared, id: u64) {
    let mut state = shared.lock();
    let Some(conn) = state.conns.get_mut(&id) else { return };
    let jobs = std::mem::take(&mut conn.jobs);
    for job in jobs.values() {
        if let Some(abort) = &job.abort {
            abort.abort();
        }
    }
    let submitted: Vec<String> = state
        .svc_jobs
        .iter()
        .filter(|(_, j)| j.submitter == id)
        .map(|(jid, _)| jid.clone())
        .collect();
    for jid in submitted {
        if let Some(job) = state.svc_jobs.remove(&jid) {
            state.send(job.provider, &format!("SVCCANCEL {}", server_quote(&jid)));
        }
    }
    let provided: Vec<String> = state
        .svc_jobs
        .iter()
        .filter(|(_, j)| j.provider == id)
        .map(|(jid, _)| jid.clone())
        .collect();
    for jid in provided {
        if let Some(job) = state.svc_jobs.remove(&jid) {
            let _ = job.relay.send(Relay::Fail(vec!["provider-failed".into()]));
        }
    }
    let services: Vec<String> =
        state.services.iter().filter(|(_, s)| s.provider == id).map(|(k, _)| k.clone()).collect();
    for key in services {
        if let Some(svc) = state.services.remove(&key) {
            state.broadcast(WATCH_NOTE, &line_of("NOTE", &["SVCRELEASE", svc.name.as_str()]));
        }
    }
    if let Some(conn) = state.conns.get_mut(&id) {
        conn.watch = 0;
        // The writer flushes what is queued, then closes the socket.
        let _ = conn.out.send(Out::Close);
        if let Some(reader) = &conn.reader {
            reader.abort();
        }
    }
}

/// The command table: name, usage, and the bounds on positional arguments.
const COMMANDS: &[(&str, &str, usize, usize)] = &[
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

fn bad_syntax(name: &str) -> Vec<String> {
    let usage = COMMANDS.iter().find(|c| c.0 == name).map_or("", |c| c.1);
    std::iter::once("bad-syntax".to_owned())
        .chain(std::iter::once(name.to_owned()))
        .chain(usage.split_whitespace().map(str::to_owned))
        .collect()
}

/// A command's options (name to value) and its other arguments.
type Parsed = (HashMap<&'static str, Option<String>>, Vec<String>);

/// A tag followed by words.
fn tagged(tag: &str, words: &[String]) -> Vec<String> {
    std::iter::once(tag.to_owned()).chain(words.iter().cloned()).collect()
}

/// Splits leading options off the arguments (up to the first non-option word or `--`).
fn parse_options(name: &str, args: &[String]) -> Result<Parsed, Vec<String>> {
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
fn time_spec(spec: &str) -> Option<u64> {
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
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
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
fn resolve(words: &[String]) -> Result<Vec<String>, Vec<String>> {
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

fn base64(bytes: &[u8]) -> String {
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

fn bool_word(b: bool) -> &'static str {
    if b { "t" } else { "nil" }
}

fn peer_info_lines(p: &Peer) -> Vec<Vec<String>> {
    let mut lines = vec![vec![format!("tunnel={}", p.tunnel)]];
    if let Some(knock) = &p.knock {
        lines.push(vec![format!("knock={knock}")]);
    }
    lines.push(vec![format!("key={}", p.key), format!("current-key={}", p.key)]);
    lines.push(vec![
        format!("private-key={}", p.private_key),
        format!("current-private-key={}", p.private_key),
    ]);
    lines.push(vec![format!("keepalive={}", p.keepalive)]);
    lines.push(vec![
        format!("corked={}", bool_word(p.corked)),
        format!("mobile={}", bool_word(p.mobile)),
        format!("ephemeral={}", bool_word(p.ephemeral)),
    ]);
    lines
}

fn peer_info_map(p: &Peer) -> BTreeMap<String, String> {
    peer_info_lines(p)
        .into_iter()
        .flatten()
        .filter_map(|w| w.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

const TRACE_SELECTORS: &[(char, &str)] = &[
    ('t', "tunnel events"),
    ('r', "peer events"),
    ('a', "admin interface"),
    ('s', "symmetric keyset management"),
    ('x', "key exchange"),
    ('m', "key management"),
    ('l', "challenge management"),
    ('p', "packet contents"),
    ('c', "crypto details"),
];

const WATCH_SELECTORS: &[(char, &str)] =
    &[('t', "trace messages"), ('n', "notifications"), ('w', "warnings")];

fn watch_bit(c: char) -> u32 {
    match c {
        't' => u32::from(WATCH_TRACE),
        'n' => u32::from(WATCH_NOTE),
        _ => u32::from(WATCH_WARN),
    }
}

/// Applies a selector spec (`-A+wn`, `xm`, ...) to a mask: letters set or clear according
/// to the last sign; letters before any sign replace the mask.
fn apply_selectors(
    spec: &str,
    table: &[(char, &str)],
    bit: impl Fn(char, usize) -> u32,
    mask: u32,
) -> Result<u32, char> {
    let all: u32 = table.iter().enumerate().fold(0, |m, (i, (c, _))| m | bit(*c, i));
    let mut set = 0u32;
    let mut clear = 0u32;
    let mut sense: Option<bool> = None;
    for c in spec.chars() {
        match c {
            '+' => sense = Some(true),
            '-' => sense = Some(false),
            _ => {
                let bits = if c == 'A' {
                    all
                } else {
                    let i = table.iter().position(|(t, _)| *t == c).ok_or(c)?;
                    bit(c, i)
                };
                match sense {
                    None => {
                        clear = all;
                        set |= bits;
                        sense = Some(true);
                    }
                    Some(true) => {
                        set |= bits;
                        clear &= !bits;
                    }
                    Some(false) => {
                        clear |= bits;
                        set &= !bits;
                    }
                }
            }
        }
    }
    Ok((mask & !clear) | set)
}

fn selector_listing(
    table: &[(char, &str)],
    bit: impl Fn(char, usize) -> u32,
    mask: u32,
) -> Vec<Vec<String>> {
    table
        .iter()
        .enumerate()
        .map(|(i, (c, desc))| {
            let status = if mask & bit(*c, i) != 0 { "+" } else { "" };
            std::iter::once(format!("{c}{status}"))
                .chain(desc.split(' ').map(str::to_owned))
                .collect()
        })
        .collect()
}

/// Processes one command line.
async fn command(ctx: &Ctx, line: &str) {
    let words = qwords(line);
    let Some(keyword) = words.first() else {
        ctx.release();
        return;
    };
    let upper = keyword.to_ascii_uppercase();
    let (script, stream) = {
        let mut state = ctx.state();
        state.log.push((ctx.id, line.to_owned()));
        (state.scripts.get(&upper).cloned(), state.streams.get(&upper).cloned())
    };
    if let Some(lines) = script {
        ctx.release();
        for bytes in lines {
            let _ = ctx.out.send(Out::Line(bytes));
        }
        return;
    }
    if let Some(line) = stream {
        return endless(ctx, line).await;
    }
    let name = keyword.to_ascii_lowercase();
    let Some(&(_, _, min, max)) = COMMANDS.iter().find(|c| c.0 == name) else {
        ctx.fail(&["unknown-command", keyword.as_str()]);
        return;
    };
    let (options, args) = match parse_options(&name, &words[1..]) {
        Ok(parsed) => parsed,
        Err(tokens) => return ctx.fail(&tokens),
    };
    if args.len() < min || args.len() > max {
        return ctx.fail(&bad_syntax(&name));
    }
    let tag = options.get("-background").cloned().flatten();
    if let Some(tag) = &tag {
        let exists = ctx.state().conns.get(&ctx.id).is_some_and(|c| c.jobs.contains_key(tag));
        if exists {
            return ctx.fail(&["tag-exists", tag.as_str()]);
        }
    }
    match name.as_str() {
        "add" => add(ctx, &options, &args, tag),
        "ping" | "eping" => ping(ctx, &name, &options, &args, tag).await,
        "svcsubmit" => svcsubmit(ctx, &options, &args, tag).await,
        "quit" => {
            ctx.ok();
            let mut state = ctx.state();
            state.quitting = true;
            state.broadcast(WATCH_WARN, "WARN SERVER quit admin-request");
            drop(state);
            ctx.quit.notify_one();
        }
        _ => match simple(ctx, &name, &args) {
            Ok(lines) => {
                for line in &lines {
                    ctx.info(line);
                }
                ctx.ok();
            }
            Err(tokens) => ctx.fail(&tokens),
        },
    }
}

/// Writes `line` until the connection closes, a batch at a time (see [`Sim::stream`]).
async fn endless(ctx: &Ctx, mut line: Vec<u8>) {
    line.push(b'\n');
    let batch = line.repeat((64 * 1024 / line.len()).max(1));
    loop {
        let (done, flushed) = oneshot::channel();
        if ctx.out.send(Out::Raw(batch.clone())).is_err()
            || ctx.out.send(Out::Flushed(done)).is_err()
        {
            return;
        }
        tokio::select! {
            written = flushed => if written.is_err() { return },
            () = ctx.closed() => return,
        }
    }
}

type Answer = Result<Vec<Vec<String>>, Vec<String>>;

fn fail<S: AsRef<str>>(tokens: &[S]) -> Vec<String> {
    tokens.iter().map(|t| t.as_ref().to_owned()).collect()
}

fn one<S: AsRef<str>>(words: &[S]) -> Vec<Vec<String>> {
    vec![fail(words)]
}

/// The commands that answer at once.
fn simple(ctx: &Ctx, name: &str, args: &[String]) -> Answer {
    let mut state = ctx.state();
    let unknown_peer = |p: &str| fail(&["unknown-peer", p]);
    let arg = |i: usize| args.get(i).map_or("", String::as_str);
    match name {
        "kill" => {
            let peer = state.peers.remove(arg(0)).ok_or_else(|| unknown_peer(arg(0)))?;
            for wait in &peer.waiting {
                wait.finish(PingEnd::PeerDied);
            }
            state.broadcast(WATCH_NOTE, &line_of("NOTE", &["KILL", arg(0)]));
            Ok(vec![])
        }
        "list" => Ok(state.peers.keys().map(|p| vec![p.clone()]).collect()),
        "addr" => {
            Ok(vec![state.peers.get(arg(0)).ok_or_else(|| unknown_peer(arg(0)))?.addr.clone()])
        }
        "ifname" => {
            Ok(one(&[&state.peers.get(arg(0)).ok_or_else(|| unknown_peer(arg(0)))?.ifname]))
        }
        "setifname" => {
            let peer = state.peers.get_mut(arg(0)).ok_or_else(|| unknown_peer(arg(0)))?;
            let old = std::mem::replace(&mut peer.ifname, arg(1).to_owned());
            state.broadcast(WATCH_NOTE, &line_of("NOTE", &["NEWIFNAME", arg(0), &old, arg(1)]));
            Ok(vec![])
        }
        "peerinfo" => {
            Ok(peer_info_lines(state.peers.get(arg(0)).ok_or_else(|| unknown_peer(arg(0)))?))
        }
        "stats" => {
            let p = state.peers.get(arg(0)).ok_or_else(|| unknown_peer(arg(0)))?;
            let out = p.packets_out;
            Ok(vec![
                fail(&[
                    "start-time=2024-05-01T12:00:00",
                    "last-packet-time=NEVER",
                    "last-keyexch-time=NEVER",
                ]),
                vec![
                    "packets-in=0".into(),
                    "bytes-in=0".into(),
                    format!("packets-out={out}"),
                    format!("bytes-out={}", out * 32),
                ],
                fail(&[
                    "keyexch-packets-in=0",
                    "keyexch-bytes-in=0",
                    "keyexch-packets-out=0",
                    "keyexch-bytes-out=0",
                ]),
                fail(&["ip-packets-in=0", "ip-bytes-in=0", "ip-packets-out=0", "ip-bytes-out=0"]),
                fail(&["rejected-packets=0"]),
            ])
        }
        "forcekx" => {
            let peer = state.peers.get_mut(arg(0)).ok_or_else(|| unknown_peer(arg(0)))?;
            peer.keyed = true;
            state.broadcast(WATCH_NOTE, &line_of("NOTE", &["KXSTART", arg(0)]));
            state.broadcast(WATCH_NOTE, &line_of("NOTE", &["KXDONE", arg(0)]));
            Ok(vec![])
        }
        "greet" => {
            state.peers.get(arg(0)).ok_or_else(|| unknown_peer(arg(0)))?;
            Ok(vec![])
        }
        "getchal" => {
            state.next_chal += 1;
            let chal = base64(format!("chal{:04}", state.next_chal).as_bytes());
            state.challenges.insert(chal.clone());
            Ok(one(&[chal]))
        }
        "checkchal" => {
            let chal = arg(0);
            if !chal.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')) {
                return Err(fail(&["bad-base64", "invalid character"]));
            }
            if state.challenges.contains(chal) {
                Ok(vec![])
            } else {
                Err(fail(&["invalid-challenge"]))
            }
        }
        "help" => Ok(COMMANDS
            .iter()
            .map(|(n, usage, _, _)| {
                std::iter::once((*n).to_owned())
                    .chain(usage.split_whitespace().map(str::to_owned))
                    .collect()
            })
            .collect()),
        "version" => Ok(one(&[IMPLEMENTATION, VERSION])),
        "servinfo" => Ok(vec![
            vec![format!("implementation={IMPLEMENTATION}"), format!("version={VERSION}")],
            vec![format!("daemon={}", bool_word(state.daemon))],
        ]),
        "algs" => {
            if !args.is_empty() && !state.peers.contains_key(arg(0)) {
                return Err(unknown_peer(arg(0)));
            }
            Ok(vec![
                fail(&["kx-group=ec", "kx-group-order-bits=256", "kx-group-elt-bits=512"]),
                fail(&["hash=sha256", "mgf=sha256-mgf", "hash-sz=32"]),
                fail(&[
                    "cipher=rijndael-cbc",
                    "cipher-keysz=32",
                    "cipher-blksz=16",
                    "cipher-data-limit=67108864",
                ]),
                fail(&["mac=sha256-hmac", "mac-keysz=32", "mac-tagsz=16"]),
            ])
        }
        "port" => match args.first().map(String::as_str) {
            None | Some("INET" | "INET6") => Ok(one(&["4070"])),
            Some(family) => Err(fail(&["unknown-family", family])),
        },
        "tunnels" => Ok(vec![fail(&["linux"]), fail(&["slip"])]),
        "daemon" => {
            if state.daemon {
                return Err(fail(&["already-daemon"]));
            }
            state.daemon = true;
            state.broadcast(WATCH_NOTE, "NOTE DAEMON");
            Ok(vec![])
        }
        "reload" => Ok(vec![]),
        "trace" => {
            let bit = |_: char, i: usize| 1u32 << i;
            match args.first() {
                None => Ok(selector_listing(TRACE_SELECTORS, bit, state.trace_mask)),
                Some(spec) => {
                    state.trace_mask =
                        apply_selectors(spec, TRACE_SELECTORS, bit, state.trace_mask)
                            .map_err(|c| fail(&["bad-trace-option", &c.to_string()]))?;
                    Ok(vec![])
                }
            }
        }
        "watch" => {
            let bit = |c: char, _: usize| watch_bit(c);
            let conn = state.conns.get_mut(&ctx.id).ok_or_else(|| fail(&["connection-gone"]))?;
            match args.first() {
                None => Ok(selector_listing(WATCH_SELECTORS, bit, u32::from(conn.watch))),
                Some(spec) => {
                    let mask = apply_selectors(spec, WATCH_SELECTORS, bit, u32::from(conn.watch))
                        .map_err(|c| fail(&["bad-watch-option", &c.to_string()]))?;
                    conn.watch = u8::try_from(mask).unwrap_or(0);
                    Ok(vec![])
                }
            }
        }
        "notify" => {
            state.broadcast(WATCH_NOTE, &line_of("NOTE", &[&["USER".to_owned()], args].concat()));
            Ok(vec![])
        }
        "warn" => {
            state.broadcast(WATCH_WARN, &line_of("WARN", &[&["USER".to_owned()], args].concat()));
            Ok(vec![])
        }
        "bgcancel" => {
            let conn = state.conns.get_mut(&ctx.id).ok_or_else(|| fail(&["connection-gone"]))?;
            let job = conn.jobs.remove(arg(0)).ok_or_else(|| fail(&["unknown-tag", arg(0)]))?;
            if let Some(abort) = &job.abort {
                abort.abort();
            }
            if let Some(jid) = job.svc_jobid {
                if let Some(svc_job) = state.svc_jobs.remove(&jid) {
                    state.send(svc_job.provider, &format!("SVCCANCEL {}", server_quote(&jid)));
                }
            }
            Ok(vec![])
        }
        "jobs" => {
            let conn = state.conns.get(&ctx.id).ok_or_else(|| fail(&["connection-gone"]))?;
            Ok(conn.jobs.keys().map(|t| vec![t.clone()]).collect())
        }
        "svcclaim" => {
            let (svc, version) = (arg(0), arg(1));
            let key = svc.to_lowercase();
            if let Some(existing) = state.services.get(&key) {
                if version_cmp(&existing.version, version).is_ge() {
                    return Err(fail(&["service-exists", &existing.name, &existing.version]));
                }
                if existing.provider != ctx.id {
                    state.send(existing.provider, &line_of("SVCCLAIM", &[&existing.name, version]));
                }
            }
            state.services.insert(
                key,
                SvcEntry { name: svc.to_owned(), version: version.to_owned(), provider: ctx.id },
            );
            state.broadcast(WATCH_NOTE, &line_of("NOTE", &["SVCCLAIM", svc, version]));
            Ok(vec![])
        }
        "svcrelease" => {
            let key = arg(0).to_lowercase();
            let svc = state.services.get(&key).ok_or_else(|| fail(&["unknown-service", arg(0)]))?;
            if svc.provider != ctx.id {
                return Err(fail(&["not-service-provider", arg(0)]));
            }
            let svc = state.services.remove(&key).expect("checked above");
            state.broadcast(WATCH_NOTE, &line_of("NOTE", &["SVCRELEASE", svc.name.as_str()]));
            Ok(vec![])
        }
        "svcensure" => {
            let svc = state
                .services
                .get(&arg(0).to_lowercase())
                .ok_or_else(|| fail(&["unknown-service", arg(0)]))?;
            if args.len() == 2 && version_cmp(&svc.version, arg(1)).is_lt() {
                return Err(fail(&["service-too-old", &svc.name, &svc.version]));
            }
            Ok(vec![])
        }
        "svcquery" => {
            let svc = state
                .services
                .get(&arg(0).to_lowercase())
                .ok_or_else(|| fail(&["unknown-service", arg(0)]))?;
            Ok(vec![vec![format!("name={}", svc.name), format!("version={}", svc.version)]])
        }
        "svclist" => {
            Ok(state.services.values().map(|s| vec![s.name.clone(), s.version.clone()]).collect())
        }
        "svcinfo" | "svcok" | "svcfail" => {
            let jid = arg(0);
            let owned = state.svc_jobs.get(jid).is_some_and(|j| j.provider == ctx.id);
            if !owned {
                return Err(fail(&["unknown-jobid", jid]));
            }
            let relay = match name {
                "svcinfo" => Relay::Info(args[1..].to_vec()),
                "svcok" => Relay::Ok,
                _ => Relay::Fail(args[1..].to_vec()),
            };
            let job = if name == "svcinfo" {
                state.svc_jobs.get(jid).map(|j| j.relay.clone())
            } else {
                state.svc_jobs.remove(jid).map(|j| j.relay)
            };
            if let Some(relay_tx) = job {
                let _ = relay_tx.send(relay);
            }
            Ok(vec![])
        }
        other => Err(fail(&["unknown-command", other])),
    }
}

fn add(
    ctx: &Ctx,
    options: &HashMap<&'static str, Option<String>>,
    args: &[String],
    tag: Option<String>,
) {
    let opt = |name: &str| options.get(name).cloned().flatten();
    let mut state = ctx.state();
    let tunnel = opt("-tunnel").unwrap_or_else(|| "linux".into());
    if !["linux", "slip"].contains(&tunnel.as_str()) {
        drop(state);
        return ctx.fail(&["unknown-tunnel", tunnel.as_str()]);
    }
    let keepalive = match opt("-keepalive") {
        None => 0,
        Some(spec) => match time_spec(&spec) {
            Some(secs) => secs,
            None => {
                drop(state);
                return ctx.fail(&["bad-time-spec", spec.as_str()]);
            }
        },
    };
    let name = args[0].clone();
    if state.peers.contains_key(&name) {
        drop(state);
        return ctx.fail(&["peer-exists", name.as_str()]);
    }
    // Resolution happens in the background part of the command.
    if let Some(tag) = &tag {
        ctx.detach(tag);
    }
    let finish = |tokens: Option<Vec<String>>| match (&tag, tokens) {
        (Some(tag), None) => ctx.write(&format!("BGOK {}", server_quote(tag))),
        (Some(tag), Some(tokens)) => ctx.write(&line_of("BGFAIL", &tagged(tag, &tokens))),
        (None, None) => ctx.ok(),
        (None, Some(tokens)) => ctx.fail(&tokens),
    };
    let addr = match resolve(&args[1..]) {
        Ok(addr) => addr,
        Err(tokens) => return finish(Some(tokens)),
    };
    if state.peers.values().any(|p| p.addr == addr) {
        return finish(Some([&["peer-addr-exists".to_owned()], &addr[..]].concat()));
    }
    let mut peer = state.new_peer(&name, addr.clone());
    peer.tunnel = tunnel;
    peer.keepalive = keepalive;
    if let Some(key) = opt("-key") {
        peer.key = key;
    }
    if let Some(private_key) = opt("-priv") {
        peer.private_key = private_key;
    }
    peer.corked = options.contains_key("-cork");
    peer.keyed = !peer.corked;
    peer.mobile = options.contains_key("-mobile");
    peer.knock = opt("-knock");
    peer.ephemeral = options.contains_key("-ephemeral");
    let ifname = peer.ifname.clone();
    let corked = peer.corked;
    state.peers.insert(name.clone(), peer);
    let mut note = vec!["ADD".to_owned(), name.clone(), ifname];
    note.extend(addr);
    state.broadcast(WATCH_NOTE, &line_of("NOTE", &note));
    if !corked {
        state.broadcast(WATCH_NOTE, &line_of("NOTE", &["KXSTART", name.as_str()]));
    }
    drop(state);
    finish(None);
}

async fn ping(
    ctx: &Ctx,
    name: &str,
    options: &HashMap<&'static str, Option<String>>,
    args: &[String],
    tag: Option<String>,
) {
    let timeout = match options.get("-timeout").cloned().flatten() {
        None => 5,
        Some(spec) => match time_spec(&spec) {
            Some(secs) => secs,
            None => return ctx.fail(&["bad-time-spec", spec.as_str()]),
        },
    };
    let peer = args[0].clone();
    let (hold, rtt, wait) = {
        let mut state = ctx.state();
        let Some(p) = state.peers.get_mut(&peer) else {
            drop(state);
            return ctx.fail(&["unknown-peer", peer.as_str()]);
        };
        if name == "eping" && !p.keyed {
            drop(state);
            return ctx.fail(&["ping-send-failed"]);
        }
        p.packets_out += 1;
        let (tx, rx) = oneshot::channel();
        let wait = Arc::new(PingWait { outcome: Mutex::new(Some(tx)) });
        if p.hold_pings && timeout > 0 {
            p.waiting.push(wait.clone());
        }
        // An encrypted ping costs a little more than a plain one.
        let rtt = if name == "eping" { p.rtt_ms * 2.0 } else { p.rtt_ms };
        (p.hold_pings, rtt, (wait, rx))
    };
    ctx.shared.touch();
    let (wait, rx) = wait;
    let outcome = async move {
        if timeout == 0 {
            return vec!["ping-timeout".to_owned()];
        }
        if !hold {
            return vec!["ping-ok".to_owned(), rtt.to_string()];
        }
        match tokio::time::timeout(Duration::from_secs(timeout), rx).await {
            Ok(Ok(PingEnd::Reply(ms))) => vec!["ping-ok".to_owned(), ms.to_string()],
            Ok(Ok(PingEnd::PeerDied)) => vec!["ping-peer-died".to_owned()],
            _ => vec!["ping-timeout".to_owned()],
        }
    };
    match tag {
        None => {
            tokio::select! {
                words = outcome => {
                    ctx.info(&words);
                    ctx.ok();
                }
                () = ctx.closed() => {}
            }
            forget_ping(ctx, &peer, &wait);
        }
        Some(tag) => {
            ctx.detach(&tag);
            let shared = ctx.shared.clone();
            let id = ctx.id;
            let task_tag = tag.clone();
            let mut state = ctx.state();
            let task = tokio::spawn(async move {
                let words = outcome.await;
                let mut state = shared.lock();
                if let Some(p) = state.peers.get_mut(&peer) {
                    p.waiting.retain(|w| !Arc::ptr_eq(w, &wait));
                }
                let live =
                    state.conns.get_mut(&id).and_then(|c| c.jobs.remove(&task_tag)).is_some();
                if live {
                    let mut info = vec![task_tag.clone()];
                    info.extend(words);
                    state.send(id, &line_of("BGINFO", &info));
                    state.send(id, &format!("BGOK {}", server_quote(&task_tag)));
                }
                drop(state);
                shared.touch();
            });
            if let Some(conn) = state.conns.get_mut(&ctx.id) {
                conn.jobs.insert(tag, BgJob { abort: Some(task.abort_handle()), svc_jobid: None });
            }
        }
    }
}

fn forget_ping(ctx: &Ctx, peer: &str, wait: &Arc<PingWait>) {
    if let Some(p) = ctx.state().peers.get_mut(peer) {
        p.waiting.retain(|w| !Arc::ptr_eq(w, wait));
    }
}

async fn svcsubmit(
    ctx: &Ctx,
    options: &HashMap<&'static str, Option<String>>,
    args: &[String],
    tag: Option<String>,
) {
    let (jid, mut relay) = {
        let mut state = ctx.state();
        let key = args[0].to_lowercase();
        let Some(svc) = state.services.get(&key) else {
            drop(state);
            return ctx.fail(&["unknown-service", args[0].as_str()]);
        };
        if let Some(wanted) = options.get("-version").cloned().flatten() {
            if version_cmp(&svc.version, &wanted).is_lt() {
                let tokens = ["service-too-old".to_owned(), svc.name.clone(), svc.version.clone()];
                drop(state);
                return ctx.fail(&tokens);
            }
        }
        let provider = svc.provider;
        let name = svc.name.clone();
        if state.svc_jobs.values().filter(|j| j.provider == provider).count() >= MAX_PROVIDER_JOBS {
            drop(state);
            return ctx.fail(&["provider-overloaded"]);
        }
        state.next_jobid += 1;
        let jid = format!("j{}", state.next_jobid);
        let (tx, rx) = mpsc::unbounded_channel();
        state.svc_jobs.insert(jid.clone(), SvcJob { provider, submitter: ctx.id, relay: tx });
        let mut job = vec![jid.clone(), name];
        job.extend(args[1..].iter().cloned());
        state.send(provider, &line_of("SVCJOB", &job));
        (jid, rx)
    };
    ctx.shared.touch();
    match tag {
        None => loop {
            tokio::select! {
                relayed = relay.recv() => match relayed {
                    Some(Relay::Info(words)) => ctx.info(&words),
                    Some(Relay::Ok) => break ctx.ok(),
                    Some(Relay::Fail(tokens)) => break ctx.fail(&tokens),
                    None => break ctx.fail(&["provider-failed"]),
                },
                () = ctx.closed() => break,
            }
        },
        Some(tag) => {
            ctx.detach(&tag);
            let shared = ctx.shared.clone();
            let id = ctx.id;
            let task_tag = tag.clone();
            let mut state = ctx.state();
            let task = tokio::spawn(async move {
                let q = server_quote(&task_tag);
                while let Some(relayed) = relay.recv().await {
                    let mut state = shared.lock();
                    let live = state.conns.get(&id).is_some_and(|c| c.jobs.contains_key(&task_tag));
                    if !live {
                        return;
                    }
                    match relayed {
                        Relay::Info(words) => {
                            state.send(id, &line_of("BGINFO", &tagged(&task_tag, &words)));
                            continue;
                        }
                        Relay::Ok => state.send(id, &format!("BGOK {q}")),
                        Relay::Fail(tokens) => {
                            state.send(id, &line_of("BGFAIL", &tagged(&task_tag, &tokens)));
                        }
                    }
                    if let Some(conn) = state.conns.get_mut(&id) {
                        conn.jobs.remove(&task_tag);
                    }
                    drop(state);
                    shared.touch();
                    return;
                }
            });
            if let Some(conn) = state.conns.get_mut(&ctx.id) {
                conn.jobs
                    .insert(tag, BgJob { abort: Some(task.abort_handle()), svc_jobid: Some(jid) });
            }
        }
    }
}

#[cfg(test)]
mod self_tests {
    #[test]
    fn sim_helpers() {
        // Imported here: a bench without the test harness drops the test, not the module.
        use super::*;
        assert_eq!(qwords(r#"a 'b c' d\ e "f\"g" ''"#), ["a", "b c", "d e", "f\"g", ""]);
        assert_eq!(server_quote("a b"), "\"a b\"");
        assert_eq!(server_quote("a\\b"), "a\\b");
        assert_eq!(time_spec("0x10"), Some(16));
        assert_eq!(time_spec("010"), Some(8));
        assert_eq!(time_spec("2m"), Some(120));
        assert_eq!(time_spec("x"), None);
        assert!(version_cmp("1.10", "1.9").is_gt());
        assert!(version_cmp("1.0", "1.0.1").is_lt());
        assert!(version_cmp("2.0", "2.0").is_eq());
        assert_eq!(base64(b"chal0001"), "Y2hhbDAwMDE=");
        assert_eq!(apply_selectors("-A+w", WATCH_SELECTORS, |c, _| watch_bit(c), 7), Ok(1));
        assert_eq!(apply_selectors("nw", WATCH_SELECTORS, |c, _| watch_bit(c), 4), Ok(3));
        assert_eq!(apply_selectors("+t", WATCH_SELECTORS, |c, _| watch_bit(c), 1), Ok(5));
        assert_eq!(apply_selectors("+q", WATCH_SELECTORS, |c, _| watch_bit(c), 1), Err('q'));
    }
}
