//! The demo's first server: the diagnostic service in a synchronized child process,
//! replaceable the way `ave serve` is, so that `ave serve --replace` can take it over.
//!
//! The listener is bound here, before the fork, so the port is known at once and clients
//! may connect as soon as `start` returns. The child keeps it, builds its own
//! current-thread runtime, listens on the home's handover socket (`ave-serve`, the name
//! `ave serve` uses), and only then reports that it is initialized. It serves until it is
//! replaced, stopped by the `stop` RPC, or asked to end with SIGTERM (also its parent-death
//! signal), and writes how it ended to a [`Pipe`] before it exits.

use std::{
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use ave::network::{
    Control, Process,
    connection::LOCALHOST,
    control::Params,
    diagnostic,
    handover::{self, HandoverOptions, HandoverSocket},
    process::{ChildContext, FdSet, Pipe, Target, TargetError, Termination},
    wire::handshake::DigestPolicy,
};
use serde_json::{Value, json};
use tokio::runtime::Runtime;

/// The server's name: its kernel name, and the name of its handover socket, which must be
/// `ave serve`'s for `ave serve --replace` to find it.
pub(super) const NAME: &str = "ave-serve";

/// How long `start` waits for the child to report that it is initialized.
const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// A server prepared in this process, to be started with `process.start(false, true)`.
pub(super) struct Prepared {
    /// The child to start.
    pub(super) process: Process,
    /// The port it serves on (bound already).
    pub(super) port: u16,
    /// Where the child writes how it ended, one JSON value.
    pub(super) reports: Pipe,
    /// Its handover socket.
    pub(super) socket: PathBuf,
}

/// Binds a free loopback port and prepares the child that will serve on it with the
/// accounts of `authkeys.json` (like `ave serve --authkeys`).
///
/// # Errors
///
/// If the port cannot be bound or the pipe cannot be created.
pub(super) fn prepare(home: &Path, keys: &ave::config::Authkeys) -> anyhow::Result<Prepared> {
    let listener = ave::network::connection::bind(SocketAddr::new(LOCALHOST, 0))?;
    let port = listener.local_addr().context("the listener has no address")?.port();
    let (reports, writer) = Pipe::new()?.split();
    let mut keep = FdSet::new().with(&listener);
    keep.insert(writer.writer_fd().context("the report pipe has no write end")?);
    let accounts =
        keys.iter().map(|(name, key)| (name.to_owned(), key.map(str::to_owned))).collect();
    let target = Server {
        listener: Some(listener),
        home: home.to_owned(),
        accounts,
        report: writer,
        termination: None,
        runtime: None,
        socket: None,
    };
    let process = Process::new(target).name(NAME).keep_fds(&keep).sync_timeout(SYNC_TIMEOUT);
    Ok(Prepared { process, port, reports, socket: handover::socket_path(home, NAME) })
}

/// The child's side.
struct Server {
    listener: Option<TcpListener>,
    home: PathBuf,
    accounts: Vec<(String, Option<String>)>,
    report: Pipe,
    termination: Option<Termination>,
    runtime: Option<Runtime>,
    socket: Option<HandoverSocket>,
}

impl Target for Server {
    fn initialize(&mut self, child: &mut ChildContext) -> Result<(), TargetError> {
        // Signal handling, the parent-death signal (SIGTERM) and the kernel name; SIGTERM
        // then asks the server to stop rather than exiting on the spot.
        child.initialize()?;
        self.termination = Some(child.termination());
        self.runtime = Some(tokio::runtime::Builder::new_current_thread().enable_all().build()?);
        self.socket = Some(HandoverSocket::bind(&handover::socket_path(&self.home, NAME))?);
        Ok(())
    }

    fn run(&mut self, _child: &mut ChildContext) -> Result<(), TargetError> {
        let listener = self.listener.take().ok_or("the listener is gone")?;
        let runtime = self.runtime.as_ref().ok_or("the runtime was not built")?;
        let socket = self.socket.take().ok_or("the handover socket is gone")?;
        let termination = self.termination.take().ok_or("no termination handle")?;

        let mut builder = Control::builder(service())
            .listener(listener)
            .digest(DigestPolicy::Any)
            .home(&self.home)
            .name(NAME);
        for (name, key) in &self.accounts {
            builder = builder.account(name, key.as_deref());
        }
        let control = builder.build()?;
        let handle = control.handle();
        std::thread::Builder::new().name("ave-demo-term".to_owned()).spawn(move || {
            if termination.wait(None) {
                handle.stop();
            }
        })?;
        let (stopped, successor) = runtime.block_on(handover::run_replaceable(
            control,
            socket,
            HandoverOptions::default(),
        ))?;
        let successor = successor.map(|s| {
            json!({
                "pid": s.pid,
                "connections": s.connections,
                "listener": s.listener,
                "elapsed_ms": s.elapsed.as_secs_f64() * 1e3,
            })
        });
        let stopped = match stopped {
            ave::network::control::Stopped::Replaced => "replaced".to_owned(),
            other => format!("{other:?}"),
        };
        self.report.put(&json!({ "stopped": stopped, "successor": successor }))?;
        Ok(())
    }
}

/// The diagnostic service, plus `pongs()`: how many `async_ping` calls arrived, so the
/// demo can show that a one-way call, which gets no answer, was served.
fn service() -> ave::network::Service {
    let pongs = Arc::new(AtomicU64::new(0));
    let counter = pongs.clone();
    let options = diagnostic::Options::new().events(move |event| {
        if matches!(event, diagnostic::Event::Pong) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    diagnostic::builder(options)
        .rpc("pongs", Params::none(), move |_, ()| {
            let count = pongs.load(Ordering::Relaxed);
            async move { Ok(Value::from(count)) }
        })
        .build()
}
