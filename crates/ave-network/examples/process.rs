//! A process that synchronizes and is joined: a worker forked from this program reports
//! that it is initialized, sends its results through a `Pipe`, and ends; then a `Control`
//! serving in a child process of its own, called and stopped with SIGTERM.
//!
//! Run it with `cargo run -p ave-network --example process`. It ends by itself.
//!
//! `fork` is only sound while the process has one thread, so `main` is synchronous and
//! builds no runtime: every process is started before any thread exists.

// An example program reports on stdout.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use ave_network::{
    client::BlockingRemoteControl,
    connection::Address,
    control::{Control, Params, Service},
    process::{ExitStatus, FdSet, Pipe, Process},
};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let wait = Some(Duration::from_secs(10));

    // A worker: `start(false, true)` returns once the child has set up its signal
    // handling and name and said so (synchronize), with its pid.
    let (mut results, writer) = Pipe::new()?.split();
    // The child closes every descriptor it is not told to keep.
    let keep = FdSet::new().with(writer.writer_fd().ok_or("the pipe has no write end")?);
    let mut worker = Process::from_fn(move |child| {
        child.log("counting");
        let total: u64 = (1..=100).sum();
        writer.put(&json!({"total": total}))?;
        Ok(())
    })
    .name("ave-example-worker")
    .keep_fds(&keep);
    let pid = worker.start(false, true)?;
    println!("worker {pid} is initialized");
    let message = results.get(wait)?;
    println!("worker {pid} says {message}");
    assert_eq!(message["total"], 5050);
    let status = worker.join(wait)?;
    println!("worker {pid} joined: {status}");
    assert_eq!(status, ExitStatus::Exited(0));

    // A server in a child process: the port is bound here, before the fork, so it is known
    // at once; the child builds its own runtime and serves.
    let service = Service::builder("example")
        .rpc("pid", Params::none(), |_, ()| async { Ok(std::process::id()) })
        .build();
    let control = Control::builder(service).build()?;
    let address = Address::new("127.0.0.1", control.port());
    let mut server = control.into_process();
    let server_pid = server.start(false, true)?;
    let client = BlockingRemoteControl::new(address, None).with_timeout(wait);
    let answered = client.call("pid", ())?;
    println!("the server in process {server_pid} answered from pid {answered}");
    assert_eq!(answered, server_pid.get());
    server.terminate()?; // SIGTERM: a clean shutdown
    let status = server.join(wait)?;
    println!("server {server_pid} joined: {status}");
    Ok(())
}
