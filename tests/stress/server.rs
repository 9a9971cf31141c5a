//! The server role: a keyless `Control` serving `sync_ping`, `upper` and
//! `raise_ave_exception` (as the original's `MockControl`) that counts calls and shuts
//! down at its transaction limit.
//!
//! Calls 1 to limit-1 are served. The limit-th call shuts the server down with
//! `Exit('max transactions limit reached')`: its caller gets the `Exit` as its answer,
//! every other connection gets it as the server closes. Calls racing in after the limit
//! are not served: they get the same `Exit`.
//!
//! While it runs, the server samples its open descriptors (`/proc/self/fd`) and resident
//! memory (`/proc/self/status`) every 10 ms and prints progress; when it has stopped it
//! prints its result, with the kernel's peak resident memory (`VmHWM`).

use std::{
    net::{Ipv4Addr, SocketAddr},
    process::ExitCode,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use ave::{
    exceptions::AveException,
    network::{
        Control, Service,
        control::{Context, Params, Stopped, params},
    },
};
use serde_json::Value;

use crate::{
    Fault, LIMIT_MESSAGE, ServerArgs,
    report::{ServerEvent, ServerResult},
};

/// How often descriptors and memory are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// Prints one event as a JSON line on stdout.
fn emit(event: &ServerEvent) {
    let line = serde_json::to_string(event).expect("events serialize");
    println!("{line}");
}

/// The transaction counter, shared by every method.
#[derive(Debug)]
struct Gate {
    limit: u64,
    fault: Fault,
    stall: Duration,
    /// Calls that arrived, in order of arrival.
    arrived: AtomicU64,
    /// Calls served to completion.
    served: AtomicU64,
    /// Calls that arrived after the limit.
    turned_away: AtomicU64,
    /// When the limit-th call arrived (monotonic ns; 0: not yet).
    limit_at_ns: AtomicU64,
    /// Whether the `strip-recognize` fault has been injected.
    stripped: AtomicBool,
    /// What the `leak-fds` and `leak-memory` faults keep.
    leaked: Mutex<Vec<Box<dyn std::any::Any + Send>>>,
    /// Established connections now, at most, and in all.
    live: AtomicU64,
    peak_live: AtomicU64,
    connections: AtomicU64,
}

impl Gate {
    /// Admits a call: its number, or the `Exit` that answers it once the limit is reached
    /// (the limit-th call also starts the shutdown).
    fn admit(&self, ctx: &Context) -> Result<u64, AveException> {
        let n = self.arrived.fetch_add(1, Ordering::SeqCst) + 1;
        if n < self.limit || self.fault == Fault::NoLimit {
            return Ok(n);
        }
        if n == self.limit {
            let at_ns = crate::monotonic_ns();
            self.limit_at_ns.store(at_ns, Ordering::SeqCst);
            emit(&ServerEvent::Limit { at_ns });
        } else {
            self.turned_away.fetch_add(1, Ordering::SeqCst);
        }
        // Every call past the limit asks for the shutdown too, so the server stops
        // because of a shutdown whichever of them its event loop sees first.
        let exit = AveException::exit(LIMIT_MESSAGE);
        ctx.control().shutdown(Some(exit.clone()));
        Err(exit)
    }

    /// Counts a call served, injecting the fault if there is one: the `stall` fault
    /// makes the call halfway to the limit sleep, the leak faults keep a descriptor or
    /// 100 KiB of memory.
    async fn served(&self, n: u64) {
        match self.fault {
            Fault::Stall if n == self.limit / 2 => tokio::time::sleep(self.stall).await,
            Fault::LeakFds => {
                if let Ok(file) = std::fs::File::open("/dev/null") {
                    self.leak(Box::new(file));
                }
            }
            Fault::LeakMemory => self.leak(Box::new(vec![1u8; 100 << 10])),
            _ => {}
        }
        self.served.fetch_add(1, Ordering::SeqCst);
    }

    fn leak(&self, thing: Box<dyn std::any::Any + Send>) {
        self.leaked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(thing);
    }

    fn connection_opened(&self) {
        let live = self.live.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_live.fetch_max(live, Ordering::SeqCst);
        self.connections.fetch_add(1, Ordering::SeqCst);
    }

    fn connection_closed(&self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The service: the three RPCs of the original's client table, behind the gate.
fn service(gate: &Arc<Gate>) -> Service {
    let (ping, upper, raise) = (gate.clone(), gate.clone(), gate.clone());
    let (opened, closed) = (gate.clone(), gate.clone());
    Service::builder("stress")
        .rpc("sync_ping", Params::none().optional(["alt"]), move |ctx, (alt,): (Option<Value>,)| {
            let gate = ping.clone();
            async move {
                let n = gate.admit(&ctx)?;
                let answer = match alt {
                    None | Some(Value::Null) => Value::from("pong"),
                    Some(alt) => alt,
                };
                gate.served(n).await;
                Ok(answer)
            }
        })
        .rpc("upper", params(["message"]), move |ctx, (message,): (String,)| {
            let gate = upper.clone();
            async move {
                let n = gate.admit(&ctx)?;
                let answer = message.to_uppercase();
                gate.served(n).await;
                Ok(answer)
            }
        })
        .rpc(
            "raise_ave_exception",
            params(["details"]).optional(["depth"]),
            move |ctx, (mut details, _depth): (Value, Option<u32>)| {
                let gate = raise.clone();
                async move {
                    let n = gate.admit(&ctx)?;
                    if gate.fault == Fault::StripRecognize
                        && !gate.stripped.swap(true, Ordering::SeqCst)
                    {
                        if let Some(map) = details.as_object_mut() {
                            map.remove("recognize");
                        }
                    }
                    let raised = AveException::from_details_value(details)
                        .map_err(|e| AveException::custom("Exception", e.to_string()));
                    gate.served(n).await;
                    Err::<(), _>(raised.unwrap_or_else(|e| e))
                }
            },
        )
        .on_new_connection(move |_, _| opened.connection_opened())
        .on_lost_connection(move |_, _| closed.connection_closed())
        .build()
}

/// Why the server stopped, in words.
fn describe(stopped: &Stopped) -> String {
    match stopped {
        Stopped::Shutdown(Some(e)) => format!("shutdown with {}('{}')", e.type_name(), e.message()),
        Stopped::Shutdown(None) => "shutdown".to_owned(),
        Stopped::Exit(e) => format!("a call raised {}('{}')", e.type_name(), e.message()),
        Stopped::Stop => "stop".to_owned(),
        Stopped::Signal(n) => format!("signal {n}"),
        other => format!("{other:?}"),
    }
}

/// Open descriptors of this process.
fn count_fds() -> u64 {
    // The directory being listed is one of them.
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count().saturating_sub(1) as u64)
}

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Runs the server role.
pub(crate) fn run(args: &ServerArgs) -> ExitCode {
    if let Err(e) = ave::network::raise_fd_limit() {
        eprintln!("stress server: cannot raise the descriptor limit: {e}");
    }
    if args.watch_stdin {
        crate::exit_when_stdin_closes();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stress server: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("stress server: {message}");
            ExitCode::from(2)
        }
    }
}

async fn serve(args: &ServerArgs) -> Result<(), String> {
    let gate = Arc::new(Gate {
        limit: args.limit,
        fault: args.inject_fault,
        stall: args.stall,
        arrived: AtomicU64::new(0),
        served: AtomicU64::new(0),
        turned_away: AtomicU64::new(0),
        limit_at_ns: AtomicU64::new(0),
        stripped: AtomicBool::new(false),
        leaked: Mutex::new(Vec::new()),
        live: AtomicU64::new(0),
        peak_live: AtomicU64::new(0),
        connections: AtomicU64::new(0),
    });
    let listener = ave::network::connection::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .map_err(|e| format!("cannot listen: {e}"))?;
    if args.sockbuf > 0 {
        // Accepted connections inherit the listener's buffer sizes.
        ave::network::connection::set_buffer_sizes(&listener, args.sockbuf, args.sockbuf)
            .map_err(|e| format!("cannot set the socket buffer sizes: {e}"))?;
    }
    let control = Control::builder(service(&gate))
        .listener(listener)
        .authkey(None)
        .linger(args.linger)
        .build()
        .map_err(|e| format!("cannot start the server: {e}"))?;
    emit(&ServerEvent::Listening { port: control.port(), pid: std::process::id() });

    let peak_fds = Arc::new(AtomicU64::new(count_fds()));
    let sampler = tokio::spawn({
        let gate = gate.clone();
        let peak_fds = peak_fds.clone();
        let every = args.progress_every;
        async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut next = every;
            loop {
                tick.tick().await;
                let fds = count_fds();
                peak_fds.fetch_max(fds, Ordering::SeqCst);
                let served = gate.served.load(Ordering::SeqCst);
                if served >= next {
                    emit(&ServerEvent::Progress { served, fds, rss_kib: status_kib("VmRSS") });
                    next = (served / every + 1) * every;
                }
            }
        }
    });
    let stopped = control.run().await.map_err(|e| format!("the server failed: {e}"));
    sampler.abort();
    let _ = sampler.await;
    peak_fds.fetch_max(count_fds(), Ordering::SeqCst);
    let stopped = stopped?;
    let limit_at_ns = gate.limit_at_ns.load(Ordering::SeqCst);
    emit(&ServerEvent::Result(ServerResult {
        served: gate.served.load(Ordering::SeqCst),
        turned_away: gate.turned_away.load(Ordering::SeqCst),
        peak_fds: peak_fds.load(Ordering::SeqCst),
        peak_rss_kib: status_kib("VmHWM"),
        peak_connections: gate.peak_live.load(Ordering::SeqCst),
        connections: gate.connections.load(Ordering::SeqCst),
        stopped: describe(&stopped),
        limit_at_ns: (limit_at_ns != 0).then_some(limit_at_ns),
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_numbers() {
        let before = count_fds();
        let file = std::fs::File::open("/proc/self/status").unwrap();
        assert_eq!(count_fds(), before + 1);
        drop(file);
        assert!(status_kib("VmRSS") > 0);
        assert!(status_kib("VmHWM") >= status_kib("VmRSS"));
        assert_eq!(status_kib("NoSuchField"), 0);
    }
}
