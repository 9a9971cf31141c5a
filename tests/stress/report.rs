//! What the roles tell each other: the server's events and result, a client's report, and
//! the harness's full report. All travel as one JSON object per line.

use serde::{Deserialize, Serialize};

use crate::Kind;

/// A line of the server's stdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum ServerEvent {
    /// The server accepts connections on this port.
    Listening {
        /// The port on 127.0.0.1.
        port: u16,
        /// The server's process id.
        pid: u32,
    },
    /// Calls served so far, and the current descriptor count and resident memory.
    Progress {
        /// Calls served.
        served: u64,
        /// Open descriptors.
        fds: u64,
        /// Resident memory in KiB.
        rss_kib: u64,
    },
    /// The limit-th call arrived; the shutdown begins.
    Limit {
        /// When, on the monotonic clock (ns).
        at_ns: u64,
    },
    /// The server has stopped.
    Result(ServerResult),
}

/// What the server did, once it has stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ServerResult {
    /// Calls served (answered with their method's result or exception).
    pub(crate) served: u64,
    /// Calls that arrived after the limit and were answered with the `Exit` instead.
    pub(crate) turned_away: u64,
    /// The most descriptors open at once (sampled every 10 ms).
    pub(crate) peak_fds: u64,
    /// The peak resident memory in KiB (the kernel's `VmHWM`).
    pub(crate) peak_rss_kib: u64,
    /// The most established connections at once (counted by the connection hooks).
    pub(crate) peak_connections: u64,
    /// Connections established in all.
    pub(crate) connections: u64,
    /// Why the server stopped.
    pub(crate) stopped: String,
    /// When the limit-th call arrived (monotonic ns), if it did.
    pub(crate) limit_at_ns: Option<u64>,
}

/// How a client ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum End {
    /// The server's `Exit` arrived (exit status 0).
    Exit,
    /// The server was gone when the client reconnected (exit status 3).
    Gone,
    /// An exception reply lacked `recognize` (exit status 2).
    MissingRecognize,
    /// Anything else: a timeout, a protocol error, a wrong result (exit status 1).
    Failed,
}

impl End {
    /// The client's exit status for this ending.
    pub(crate) fn code(self) -> u8 {
        match self {
            End::Exit => 0,
            End::Failed => 1,
            End::MissingRecognize => 2,
            End::Gone => 3,
        }
    }
}

/// A client's report, printed as its last line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ClientReport {
    /// What it called.
    pub(crate) kind: Kind,
    /// Calls attempted, the last one included.
    pub(crate) calls: u64,
    /// Calls answered as expected.
    pub(crate) answered: u64,
    /// Connections replaced by new ones before a call.
    pub(crate) reconnects: u64,
    /// The longest call, connecting included, in microseconds.
    pub(crate) slowest_call_us: u64,
    /// How it ended.
    pub(crate) end: End,
    /// The `Exit` message, when it ended on one.
    pub(crate) exit_message: Option<String>,
    /// What went wrong or what ended it, in words.
    pub(crate) detail: String,
    /// When it ended, on the monotonic clock (ns).
    pub(crate) at_ns: u64,
}

/// One client process, as the harness saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClientOutcome {
    /// Its number, from 0.
    pub(crate) index: usize,
    /// What it called.
    pub(crate) kind: Kind,
    /// Its process id.
    pub(crate) pid: u32,
    /// Its exit status, if it exited.
    pub(crate) exit_code: Option<i32>,
    /// The signal that ended it, if one did.
    pub(crate) signal: Option<i32>,
    /// Its report, if it printed one.
    pub(crate) report: Option<ClientReport>,
}

/// One check of the verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Check {
    /// What is checked.
    pub(crate) name: String,
    /// Whether it holds.
    pub(crate) ok: bool,
    /// The numbers behind it.
    pub(crate) detail: String,
}

/// The totals of one kind of client.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct KindTotals {
    /// Clients of this kind.
    pub(crate) clients: u64,
    /// Calls attempted.
    pub(crate) calls: u64,
    /// Calls answered as expected.
    pub(crate) answered: u64,
    /// Reconnects.
    pub(crate) reconnects: u64,
    /// Clients that exited 0 (the `Exit`).
    pub(crate) exit_0: u64,
    /// Clients that exited 3 (the server was gone).
    pub(crate) exit_3: u64,
    /// Clients that ended any other way.
    pub(crate) other: u64,
    /// The longest call, in microseconds.
    pub(crate) slowest_call_us: u64,
}

/// The harness's full report (`--report FILE`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HarnessReport {
    /// The parameters of the run.
    pub(crate) parameters: serde_json::Value,
    /// The server's process id.
    pub(crate) server_pid: Option<u32>,
    /// The server's exit status, if it exited.
    pub(crate) server_exit_code: Option<i32>,
    /// The server's result, if it printed one.
    pub(crate) server: Option<ServerResult>,
    /// Every client.
    pub(crate) clients: Vec<ClientOutcome>,
    /// Totals per kind.
    pub(crate) totals: std::collections::BTreeMap<String, KindTotals>,
    /// From the first client's start to the last process's end, in seconds.
    pub(crate) duration_s: f64,
    /// Whether the overall bound ran out (everything was killed).
    pub(crate) deadline_exceeded: bool,
    /// The checks of the verdict.
    pub(crate) checks: Vec<Check>,
    /// Whether every check holds.
    pub(crate) pass: bool,
}
