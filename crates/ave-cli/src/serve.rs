//! `ave serve`: the diagnostic AVE service.
//!
//! Serves the RPCs of the original's test server (see `ave::network::diagnostic`) until
//! it is stopped: by SIGTERM, by a `stop` call, or by an RPC that raises `Exit`. Each of
//! these is a clean shutdown (exit 0). Usage errors exit 2, other failures 1.
//!
//! Every instance listens on the handover socket of its home
//! (`<home>/.ave/handover/ave-serve.sock`, see `ave::network::handover`) unless another
//! live instance already does. `--replace` connects there, takes over the listener and
//! every live connection, rewrites the port file and serves on; the old instance exits 0
//! ("replaced by pid N"). With nothing to take over, `--replace` says so and exits 1.
//!
//! Policy (on top of the diagnostic service, whose library form keeps the original's open
//! rules for tests; see [`guarded`]): `run_external` is refused unless `--allow-run` is
//! given, and then serves authenticated clients only; `stop`, `raise_exit`,
//! `stop_listening` and `sleep` need an authenticated client whenever the server has a
//! key; a server without any key binds loopback addresses only, unless `--insecure`.
//!
//! A replaced instance keeps only the connections with a call in flight, finishes those
//! calls within `--drain` (default 30 s; a call still running then is answered with an
//! `Exit` exception, a call whose client left is cancelled), then exits 0.
//!
//! Test hooks (for the handover tests only): with `AVE_TEST_HANDOVER_ABORT` set in its
//! environment, `ave serve --replace` aborts (SIGABRT) right after receiving the
//! descriptors, before it says it is ready, as a successor that crashes mid-handover; with
//! `AVE_TEST_HANDOVER_HOLD` set, it says `holding before the commit` at that point and
//! waits for a line (or the end) on its stdin before it goes on.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::Context as _;
use ave::network::{
    Control, Service,
    control::{ControlBuilder, RpcResult, ServiceBuilder, Stopped},
    diagnostic,
    handover::{self, HandoverOptions, HandoverSocket},
    wire::handshake::DigestPolicy,
};

use crate::{
    address, duration,
    logging::LIFECYCLE,
    secrets,
    systemd::{Manager, Start},
};

/// The server's name, which also names its handover socket.
const NAME: &str = "ave-serve";

/// How long `--replace` waits to receive everything from the old instance.
const TAKE_OVER_TIMEOUT: Duration = Duration::from_secs(10);

/// The environment variable that makes `--replace` crash mid-handover (tests only).
const TEST_ABORT: &str = "AVE_TEST_HANDOVER_ABORT";

/// The environment variable that makes `--replace` wait on stdin mid-handover (tests only).
const TEST_HOLD: &str = "AVE_TEST_HANDOVER_HOLD";

/// The exit codes, for `ave serve --help`.
const EXIT_CODES: &str = "\
Exit status:
  0  a clean stop: SIGTERM, a `stop` call, an RPC that raised Exit, or replaced by a new
     instance (--replace)
  1  the server could not start or failed (cannot bind, nothing to take over, ...)
  2  usage error (unknown option, a bad value, a key file others can read)";

/// Adds the diagnostic service's methods, their parameters and who may call them, to
/// `ave serve --help`.
pub(crate) fn with_method_help(command: clap::Command) -> clap::Command {
    // As a server started without a key or --allow-run serves them.
    let methods = service(false, false).methods();
    command.after_long_help(format!(
        "Methods (`ave call ADDR --list` asks a running server; `ave call ADDR METHOD [ARG]...` \
         calls one; [name]: optional):\n{}\n\
         With a key, stop, raise_exit, stop_listening and sleep need an authenticated caller; \
         run_external is refused unless --allow-run, and then needs one too.\n{EXIT_CODES}",
        crate::methods::table(&methods, "  ")
    ))
}

/// The service `ave serve` serves: the one place that declares it, so that `--help` lists
/// what a running server answers to `ave call ADDR --list`.
fn service(allow_run: bool, keyed: bool) -> Service {
    guarded(diagnostic::builder(diagnostic::Options::new().events(log_event)), allow_run, keyed)
        .build()
}

/// Arguments of `ave serve`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXIT_CODES)]
pub(crate) struct Args {
    /// Address or host name to listen on (`localhost`, `0.0.0.0`, `::1`).
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    bind: String,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value = "0", value_name = "N", value_parser = address::parse_port)]
    port: u16,
    /// Write the port number to this file once connections are accepted.
    #[arg(long, value_name = "PATH")]
    port_file: Option<PathBuf>,
    /// The primary authentication key (other users see it in `ps`: prefer
    /// --authkey-file or AVE_AUTHKEY, which is read when no key flag is given).
    #[arg(long, value_name = "KEY", conflicts_with = "authkey_file")]
    authkey: Option<String>,
    /// Read the primary key from this file (its first line); the file must not be
    /// readable by group or others.
    #[arg(long, value_name = "PATH")]
    authkey_file: Option<PathBuf>,
    /// An alternate key for an account, such as `admin=secret` (repeatable); `admin=`
    /// declares the account without a key, which opens its `preauth` methods to everyone.
    #[arg(long = "alt-key", value_name = "NAME=KEY")]
    alt_keys: Vec<String>,
    /// An alternate key read from a file, such as `admin=/etc/ave/admin.key`
    /// (repeatable); the file must not be readable by group or others.
    #[arg(long = "alt-key-file", value_name = "NAME=PATH")]
    alt_key_files: Vec<String>,
    /// Add the keys of `<home>/.ave/config/authkeys.json` as alternate keys.
    #[arg(long)]
    authkeys: bool,
    /// The AVE home directory (config, hickup dumps, the handover socket); default: `$HOME`,
    /// or your home directory in the user database.
    #[arg(long, value_name = "DIR")]
    home: Option<PathBuf>,
    /// Call the service's idle hook after this long without a call (e.g. 1.5, 500ms, 2m).
    #[arg(long, value_name = "DUR", value_parser = duration::parse_duration)]
    interval: Option<Duration>,
    /// Which handshake digests to accept: `md5` (the original's handshake byte for byte),
    /// `sha256` (offer HMAC-SHA256 and require it), or `any` (offer it, accept both).
    #[arg(long, default_value = "any", value_parser = ["md5", "sha256", "any"])]
    digest: String,
    /// Take over the listener and every live connection of the instance serving the same
    /// home; it exits and no client notices.
    #[arg(long)]
    replace: bool,
    /// Once replaced, how long to finish the calls in flight (e.g. 30, 500ms, 2m): a call
    /// still running then is answered with an Exit exception.
    #[arg(long, value_name = "DUR", default_value = "30", value_parser = duration::parse_duration)]
    drain: Duration,
    /// Serve `run_external` (to authenticated clients only): it runs any command as this
    /// server's user.
    #[arg(long)]
    allow_run: bool,
    /// Allow a server without any key on an address other than loopback, where anyone who
    /// can reach it may call it (and, without a key, stop it).
    #[arg(long)]
    insecure: bool,
}

/// The methods that stop or pin the service, and so need a key when the server has one.
const GUARDED: [&str; 4] = ["stop", "raise_exit", "stop_listening", "sleep"];

/// `ave serve`'s policy on the diagnostic service: `run_external` refused unless
/// `allow_run` (then authenticated callers only), and [`GUARDED`] methods for
/// authenticated callers only when the server has a key (`keyed`).
fn guarded(builder: ServiceBuilder, allow_run: bool, keyed: bool) -> ServiceBuilder {
    let builder = if allow_run {
        builder.require_auth(["run_external"])
    } else {
        builder.rpc(
            "run_external",
            ave::network::control::params(["cmd"]),
            |_, (_cmd,): (serde_json::Value,)| async {
                let refused: RpcResult<()> = Err(ave::exceptions::AveException::custom(
                    "Exception",
                    "run_external is disabled: start ave serve with --allow-run",
                ));
                refused
            },
        )
    };
    if keyed { builder.require_auth(GUARDED) } else { builder }
}

/// A usage error: the message on stderr, exit 2.
fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("ave serve: error: {message}");
    ExitCode::from(2)
}

pub(crate) fn main(args: Args) -> anyhow::Result<ExitCode> {
    let digest: DigestPolicy = match args.digest.parse() {
        Ok(d) => d,
        Err(e) => return Ok(usage(e)),
    };
    let interval = args.interval.and_then(duration::nonzero);
    let bind = match address::resolve_bind(&args.bind, args.port) {
        Ok(bind) => bind,
        Err(e) => return Ok(usage(e)),
    };
    let authkey = match &args.authkey_file {
        Some(path) => match secrets::read_key_file(path) {
            Ok(key) => Some(key),
            Err(e) => return Ok(usage(e)),
        },
        None => args.authkey.clone().or_else(secrets::env_authkey),
    };
    let mut accounts = Vec::new();
    for spec in &args.alt_keys {
        match secrets::split_named("--alt-key", "NAME=KEY", spec) {
            Ok((name, key)) => {
                accounts.push((name.to_owned(), (!key.is_empty()).then(|| key.to_owned())));
            }
            Err(e) => return Ok(usage(e)),
        }
    }
    for spec in &args.alt_key_files {
        let key =
            secrets::split_named("--alt-key-file", "NAME=PATH", spec).and_then(|(name, path)| {
                let key = secrets::read_key_file(Path::new(path)).map_err(|e| e.to_string())?;
                Ok((name.to_owned(), Some(key)))
            });
        match key {
            Ok(account) => accounts.push(account),
            Err(e) => return Ok(usage(e)),
        }
    }
    let home = match (&args.home, std::env::var_os("HOME").filter(|h| !h.is_empty())) {
        (Some(home), _) => Ok(home.clone()),
        (None, Some(env_home)) => Ok(PathBuf::from(env_home)),
        (None, None) => ave::persona::current_user().map(|u| u.home),
    };
    if args.authkeys {
        let home = home.as_ref().map_err(|e| anyhow::anyhow!("find your home directory: {e}"))?;
        let keys = ave::config::load_authkeys(home)
            .map_err(|e| anyhow::anyhow!("--authkeys: {}", crate::config::explain(&e)))?;
        for (name, key) in keys.iter() {
            accounts.push((name.to_owned(), key.map(str::to_owned)));
        }
    }

    let keyed = authkey.is_some() || accounts.iter().any(|(_, key)| key.is_some());
    if !args.replace && !keyed && !bind.ip().is_loopback() && !args.insecure {
        return Ok(usage(format!(
            "refusing to serve on {} without a key: anyone who can reach it could call and \
             stop it (give --authkey, or --insecure)",
            bind.ip()
        )));
    }
    let service = service(args.allow_run, keyed);
    let mut builder = Control::builder(service)
        .authkey(authkey.as_deref())
        .digest(digest)
        .interval(interval)
        .drain(args.drain)
        .handle_signals(true)
        .name(NAME);
    for (name, key) in &accounts {
        builder = builder.account(name, key.as_deref());
    }
    // SIGUSR1 writes a hickup dump into <home>/.ave/hickup.
    if let Ok(home) = &home {
        builder = builder.home(home);
    }
    // Socket activation or the descriptor store: taken while the process has one thread.
    let inherited = crate::systemd::inherited_listener()?;
    if let Err(e) = ave::network::raise_fd_limit() {
        tracing::warn!(error = %e, "cannot raise the descriptor limit");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    if args.replace {
        let home = home.map_err(|e| anyhow::anyhow!("find your home directory: {e}"))?;
        return runtime.block_on(replace(&args, builder, &home));
    }
    let (listener, how) = match inherited {
        Some(inherited) => (inherited.listener, " (from the service manager)"),
        None => (ave::network::connection::bind(bind)?, ""),
    };
    let store = how.is_empty().then(|| listener.try_clone()).transpose()?;
    let control = builder.listener(listener).build()?;
    let addr = control.local_addr().context("the listener has no address")?;
    runtime.block_on(async {
        // Replaceable from now on, unless another live instance serves the same home.
        let socket = home
            .map_err(|e| anyhow::anyhow!("find your home directory: {e}"))
            .and_then(|home| Ok(HandoverSocket::bind(&handover::socket_path(&home, NAME))?));
        // Signals are handled before anyone learns where we listen.
        control.install_signal_handling()?;
        // The listener is bound and listening: connections are accepted from now on.
        if let Some(path) = &args.port_file {
            write_atomically(path, &format!("{}\n", addr.port()))?;
        }
        tracing::info!(target: LIFECYCLE, "listening on {addr}{how}");
        let start = store.as_ref().map_or(Start::Inherited, Start::Bound);
        let manager = Manager::ready(&control, start);
        // Only the control may hold the listener (`stop_listening` must close it).
        drop(store);
        match socket {
            Ok(socket) => replaceable(control, socket, manager).await,
            Err(e) => {
                tracing::warn!("this instance cannot be replaced with --replace: {e:#}");
                let stopped = control.run().await?;
                stopped_for(&stopped, manager);
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

/// `--replace`: takes over the instance serving `home`, then serves on.
async fn replace(args: &Args, builder: ControlBuilder, home: &Path) -> anyhow::Result<ExitCode> {
    let path = handover::socket_path(home, NAME);
    let inheritance = handover::take_over(&path, TAKE_OVER_TIMEOUT)
        .await
        .with_context(|| format!("--replace: nothing taken over in {}", home.display()))?;
    if std::env::var_os(TEST_ABORT).is_some() {
        // A successor that crashes holding every descriptor: the old instance must notice
        // and serve on.
        std::process::abort();
    }
    if std::env::var_os(TEST_HOLD).is_some() {
        // A successor caught between receiving everything and committing.
        tracing::info!(target: LIFECYCLE, "holding before the commit (test hook)");
        let _ = tokio::task::spawn_blocking(|| {
            let _ = std::io::stdin().read_line(&mut String::new());
        })
        .await;
    }
    let (old, count, kept) =
        (inheritance.pid(), inheritance.connections().len(), inheritance.kept());
    // Prepared before the commit, so a failure here leaves the old instance serving.
    let mut socket = HandoverSocket::bind_successor(&path)?;
    let inherited = inheritance.commit().await.with_context(|| {
        format!("--replace: pid {old} did not confirm the handover and serves on")
    })?;
    let control = inherited.into_control(builder)?;
    control.install_signal_handling()?;
    let addr = control.local_addr();
    if let Err(e) = socket.install() {
        tracing::warn!("this instance cannot be replaced with --replace: {e:#}");
    }
    if let (Some(addr), true) = (addr, args.port != 0) {
        if addr.port() != args.port {
            tracing::warn!(
                port = args.port,
                inherited = addr.port(),
                "--port ignored with --replace"
            );
        }
    }
    if let (Some(path), Some(addr)) = (&args.port_file, addr) {
        write_atomically(path, &format!("{}\n", addr.port()))?;
    }
    match addr {
        Some(addr) => tracing::info!(target: LIFECYCLE, "listening on {addr}"),
        None => tracing::info!(target: LIFECYCLE, "serving without a listener"),
    }
    let plural = if count == 1 { "" } else { "s" };
    if kept == 0 {
        tracing::info!(target: LIFECYCLE, "took over {count} connection{plural} from pid {old}");
    } else {
        tracing::info!(
            target: LIFECYCLE,
            "took over {count} connection{plural} from pid {old}; {kept} more follow as their calls end"
        );
    }
    let manager = Manager::ready(&control, Start::TookOver { count, pid: old });
    replaceable(control, socket, manager).await
}

/// Runs the server to its end, replaceable meanwhile; says so when a successor replaced it,
/// and while it drains the calls it kept.
async fn replaceable(
    control: Control,
    socket: HandoverSocket,
    manager: Option<Manager>,
) -> anyhow::Result<ExitCode> {
    let drain = control.handle().limits().drain;
    let mut offer = tokio::spawn(socket.serve(control.handle(), HandoverOptions::default()));
    let run = control.run();
    tokio::pin!(run);
    let mut said = false;
    let stopped = loop {
        tokio::select! {
            stopped = &mut run => break stopped?,
            offered = &mut offer, if !said => {
                said = true;
                replaced_by(offered, Some(drain));
            }
        }
    };
    if !said {
        // The socket's task ends with the control: with the successor, or with nothing.
        replaced_by(offer.await, None);
    }
    stopped_for(&stopped, manager);
    Ok(ExitCode::SUCCESS)
}

/// The lifecycle lines of a handover to a successor (`drain`: while this instance still
/// runs its kept calls).
fn replaced_by(
    offered: Result<
        Result<Option<handover::Successor>, ave::network::Error>,
        tokio::task::JoinError,
    >,
    drain: Option<Duration>,
) {
    let successor = match offered {
        Ok(Ok(Some(successor))) => successor,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::warn!(error = %ave::exceptions::error_chain(&e), "the handover socket failed");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "the handover socket's task failed");
            return;
        }
    };
    tracing::info!(
        target: LIFECYCLE,
        "replaced by pid {}; {} connections handed over in {:.1} ms",
        successor.pid,
        successor.connections,
        successor.elapsed.as_secs_f64() * 1e3
    );
    if let (Some(drain), kept @ 1..) = (drain, successor.kept) {
        let plural = if kept == 1 { "" } else { "s" };
        tracing::info!(
            target: LIFECYCLE,
            "draining: {kept} call{plural} in flight, up to {} s",
            drain.as_secs_f64()
        );
    }
}

/// The last lifecycle line, and `STOPPING=1` for the service manager.
fn stopped_for(stopped: &Stopped, manager: Option<Manager>) {
    let why = why(stopped);
    tracing::info!(target: LIFECYCLE, "stopped: {why}");
    if let Some(manager) = manager {
        manager.stopped(stopped, &why);
    }
}

/// Why the server stopped, for the last lifecycle line.
fn why(stopped: &Stopped) -> String {
    match stopped {
        Stopped::Stop => "stop() was called".to_owned(),
        Stopped::Exit(e) => format!("a call raised Exit ({})", e.message()),
        Stopped::Shutdown(_) => "shut down".to_owned(),
        Stopped::Signal(n) => match nix::sys::signal::Signal::try_from(*n) {
            Ok(signal) => signal.as_str().to_owned(),
            Err(_) => format!("signal {n}"),
        },
        Stopped::Replaced => "replaced".to_owned(),
        other => format!("{other:?}"),
    }
}

/// Writes a file so that readers see either nothing or the whole content.
fn write_atomically(path: &Path, content: &str) -> anyhow::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().context("the port file has no file name")?;
    let temp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    std::fs::write(&temp, content).with_context(|| format!("write {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| format!("rename to {}", path.display()))?;
    Ok(())
}

fn log_event(event: diagnostic::Event) {
    use diagnostic::Event;
    match event {
        Event::Pong => tracing::info!("pong"),
        Event::Idle => tracing::debug!("idle"),
        Event::NewConnection(info) => {
            tracing::info!(conn = %info.id, peer = %info.address, identity = info.identity.is_some(), "new connection");
        }
        Event::LostConnection(info) => {
            tracing::info!(conn = %info.id, peer = %info.address, "lost connection");
        }
        Event::Shutdown(stopped) => tracing::info!(?stopped, "shutdown"),
        other => tracing::debug!(?other, "event"),
    }
}
