//! The simulated server's state (peers, services, jobs, connections; one lock for all of
//! it), what a command handler works with on its connection ([`Ctx`]), and the watch
//! bits of the broadcasts.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::{
    sync::{Notify, mpsc, oneshot, watch},
    task::AbortHandle,
};

use crate::tripe_sim::words::{line_of, server_quote};

/// The watch bits.
pub const WATCH_WARN: u8 = 1;
/// NOTE lines.
pub const WATCH_NOTE: u8 = 2;
/// TRACE lines.
pub const WATCH_TRACE: u8 = 4;

pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    pub(super) changed: watch::Sender<u64>,
    pub(super) stop: Notify,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) next_conn: u64,
    pub(super) conns: BTreeMap<u64, Conn>,
    pub(super) peers: BTreeMap<String, Peer>,
    pub(super) next_ifindex: u32,
    pub(super) services: BTreeMap<String, SvcEntry>,
    pub(super) svc_jobs: HashMap<String, SvcJob>,
    pub(super) next_jobid: u64,
    pub(super) challenges: HashSet<String>,
    pub(super) next_chal: u64,
    pub(super) daemon: bool,
    pub(super) trace_mask: u32,
    pub(super) log: Vec<(u64, String)>,
    pub(super) violations: Vec<(u64, String)>,
    pub(super) scripts: HashMap<String, Vec<Vec<u8>>>,
    pub(super) streams: HashMap<String, Vec<u8>>,
    pub(super) quitting: bool,
}

pub(super) struct Conn {
    pub(super) out: mpsc::UnboundedSender<Out>,
    pub(super) watch: u8,
    pub(super) jobs: BTreeMap<String, BgJob>,
    pub(super) closed: Arc<watch::Sender<bool>>,
    pub(super) reader: Option<AbortHandle>,
}

pub(super) enum Out {
    Line(Vec<u8>),
    /// Bytes written as they are (no newline added).
    Raw(Vec<u8>),
    /// Answered once everything before it is written.
    Flushed(oneshot::Sender<()>),
    Close,
}

pub(super) struct BgJob {
    pub(super) abort: Option<AbortHandle>,
    pub(super) svc_jobid: Option<String>,
}

#[derive(Clone)]
pub(super) struct Peer {
    pub(super) addr: Vec<String>,
    pub(super) ifname: String,
    pub(super) tunnel: String,
    pub(super) keepalive: u64,
    pub(super) key: String,
    pub(super) private_key: String,
    pub(super) corked: bool,
    pub(super) mobile: bool,
    pub(super) knock: Option<String>,
    pub(super) ephemeral: bool,
    pub(super) keyed: bool,
    pub(super) hold_pings: bool,
    pub(super) rtt_ms: f64,
    pub(super) packets_out: u64,
    pub(super) waiting: Vec<Arc<PingWait>>,
}

/// One ping waiting for the peer.
pub(super) struct PingWait {
    pub(super) outcome: Mutex<Option<oneshot::Sender<PingEnd>>>,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum PingEnd {
    Reply(f64),
    PeerDied,
}

pub(super) struct SvcEntry {
    pub(super) name: String,
    pub(super) version: String,
    pub(super) provider: u64,
}

pub(super) struct SvcJob {
    pub(super) provider: u64,
    pub(super) submitter: u64,
    pub(super) relay: mpsc::UnboundedSender<Relay>,
}

pub(super) enum Relay {
    Info(Vec<String>),
    Ok,
    Fail(Vec<String>),
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn touch(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    /// Closes one connection from the server's side, after what is already queued for it.
    pub(super) fn kill(&self, id: u64) {
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
    pub(super) fn finish(&self, end: PingEnd) {
        if let Some(tx) =
            self.outcome.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
        {
            let _ = tx.send(end);
        }
    }
}

impl State {
    pub(super) fn new_peer(&mut self, name: &str, addr: Vec<String>) -> Peer {
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

    pub(super) fn send(&self, conn: u64, line: &str) {
        if let Some(c) = self.conns.get(&conn) {
            let _ = c.out.send(Out::Line(line.as_bytes().to_vec()));
        }
    }

    pub(super) fn broadcast(&self, bit: u8, line: &str) {
        for conn in self.conns.values().filter(|c| c.watch & bit != 0) {
            let _ = conn.out.send(Out::Line(line.as_bytes().to_vec()));
        }
    }
}

/// What a command handler needs to answer on its connection.
pub(super) struct Ctx {
    pub(super) shared: Arc<Shared>,
    pub(super) id: u64,
    pub(super) out: mpsc::UnboundedSender<Out>,
    pub(super) busy: Arc<AtomicBool>,
    pub(super) closed: watch::Receiver<bool>,
    pub(super) quit: Arc<Notify>,
}

impl Ctx {
    pub(super) fn write(&self, line: &str) {
        let _ = self.out.send(Out::Line(line.as_bytes().to_vec()));
    }

    pub(super) fn info<S: AsRef<str>>(&self, words: &[S]) {
        self.write(&line_of("INFO", words));
    }

    /// The command is answered: the client may send the next one.
    pub(super) fn release(&self) {
        self.busy.store(false, Ordering::SeqCst);
    }

    pub(super) fn ok(&self) {
        self.release();
        self.write("OK");
    }

    pub(super) fn fail<S: AsRef<str>>(&self, tokens: &[S]) {
        self.release();
        self.write(&line_of("FAIL", tokens));
    }

    pub(super) fn detach(&self, tag: &str) {
        self.release();
        self.write(&format!("BGDETACH {}", server_quote(tag)));
    }

    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Waits until the connection closes.
    pub(super) async fn closed(&self) {
        let mut closed = self.closed.clone();
        let _ = closed.wait_for(|c| *c).await;
    }
}

pub(super) fn bool_word(b: bool) -> &'static str {
    if b { "t" } else { "nil" }
}

pub(super) fn peer_info_lines(p: &Peer) -> Vec<Vec<String>> {
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

pub(super) fn peer_info_map(p: &Peer) -> BTreeMap<String, String> {
    peer_info_lines(p)
        .into_iter()
        .flatten()
        .filter_map(|w| w.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}
