//! Memory per authenticated idle connection: a `Control` in a child process holds 10,000
//! connections that finished their handshake; the server's resident memory before and
//! after, divided by the number of connections. Prints one BENCH line (no peer); bounded
//! to a few seconds.

// A benchmark prints its results.
#![allow(clippy::print_stdout)]

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    time::Duration,
};

use ave_network::{
    Address, BlockingRemoteControl, Control, connection::BlockingConnection, diagnostic,
    wire::handshake,
};

const CONNECTIONS: usize = 10_000;
const ROLE: &str = "AVE_BENCH_IDLE_MEMORY_ROLE";

/// The resident and peak resident memory of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The child: a server that prints its port and serves until its stdin closes.
fn serve() {
    ave_network::raise_fd_limit().unwrap();
    let control = Control::builder(diagnostic::service(diagnostic::Options::new()))
        .authkey(Some("bench"))
        .build()
        .unwrap();
    println!("{}", control.port());
    std::io::stdout().flush().unwrap();
    let handle = control.handle();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        handle.stop();
    });
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(control.run()).unwrap();
}

fn main() {
    if std::env::var_os(ROLE).is_some() {
        serve();
        return;
    }
    let limit = ave_network::raise_fd_limit().unwrap();
    assert!(limit as usize > CONNECTIONS + 100, "the descriptor limit {limit} is too low");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(ROLE, "server")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port: u16 = line.trim().parse().unwrap();
    let address = Address::new("127.0.0.1", port);

    // One call first, so every code path of a connection has run once.
    let probe = BlockingRemoteControl::new(address.clone(), Some("bench"));
    assert_eq!(probe.call("sync_ping", ()).unwrap(), "pong");
    drop(probe);
    let (before, _) = memory_kib(child.id());

    let timeout = Some(Duration::from_secs(10));
    let mut conns = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let mut conn = BlockingConnection::connect(&address, timeout, false).unwrap();
        let challenge = conn.get(timeout).unwrap();
        conn.put(&handshake::respond(&challenge, Some("bench")).unwrap(), timeout).unwrap();
        assert_eq!(conn.get(timeout).unwrap(), br#"{"authenticated": true}"#);
        conns.push(conn);
    }
    // Every connection is established and idle; the server still answers.
    let check = BlockingRemoteControl::new(address, Some("bench"));
    assert_eq!(check.call("whoami", ()).unwrap(), "bench");
    let (after, peak) = memory_kib(child.id());
    let per_connection = (after.saturating_sub(before)) as f64 / CONNECTIONS as f64;
    let peak_per_connection = (peak.saturating_sub(before)) as f64 / CONNECTIONS as f64;

    drop(child.stdin.take());
    drop(conns);
    child.wait().unwrap();
    println!(
        "BENCH name=idle_connection_memory|ours={per_connection:.2}|unit=KiB/connection|better=lower"
    );
    println!(
        "BENCH name=idle_connection_memory_peak|ours={peak_per_connection:.2}|unit=KiB/connection|better=lower"
    );
}
