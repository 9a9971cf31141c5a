//! The connection: losing it with commands pending, hostile lines from the server,
//! commands that cannot be sent, and the one-command-at-a-time rule.

use std::{sync::Arc, time::Duration};

use ave_tripe::{Client, Disconnect, Error, ServiceProvider};
use tokio::io::AsyncWriteExt;

use crate::{LIMIT, connect, sim::Sim, within};

fn lost(result: Result<impl std::fmt::Debug, Error>) -> Arc<Disconnect> {
    match result {
        Err(Error::ConnectionLost(reason)) => reason,
        other => panic!("expected a lost connection, got {other:?}"),
    }
}

#[tokio::test]
async fn every_pending_command_fails_when_the_connection_drops() {
    let sim = Sim::start();
    sim.add_peer("alice", &["INET", "10.0.0.1", "4070"]);
    sim.add_peer("bob", &["INET", "10.0.0.2", "4070"]);
    sim.hold_pings("alice");
    sim.hold_pings("bob");
    let client = connect(&sim).await;
    let mut events = client.events();
    let mut messages = client.take_service_messages().unwrap();

    let job = client.command_background(["PING", "bob"]).unwrap();
    let foreground = client.command(["PING", "alice"]).unwrap();
    let queued = [client.command(["LIST"]).unwrap(), client.command(["VERSION"]).unwrap()];
    assert!(
        sim.wait_until(LIMIT, |s| s.waiting_pings("alice") == 1 && s.background_jobs() == 1).await
    );

    sim.drop_connections();
    assert!(matches!(*lost(within(foreground.collect()).await), Disconnect::Eof));
    assert!(matches!(*lost(within(job.collect()).await), Disconnect::Eof));
    for reply in queued {
        lost(within(reply.collect()).await);
    }
    // The connection is now closed for good, and its streams end.
    assert!(client.is_closed());
    assert!(matches!(client.command(["LIST"]), Err(Error::Closed)));
    assert_eq!(within(events.recv()).await, None);
    assert_eq!(within(messages.recv()).await, None);
    assert!(matches!(ServiceProvider::new(client.clone()), Err(Error::ProviderExists)));
}

#[tokio::test]
async fn hostile_lines_are_read_without_harm() {
    let sim = Sim::start();
    sim.script(
        "HOSTILE",
        &[
            b"INFO 'unterminated quote",
            b"INFO \"unterminated double",
            b"INFO trailing\\",
            b"INFO \xff\xfe bin\x00ary \xc3\xa9t\xc3\xa9",
            b"INFO with-cr\r",
            b"",
            b"   ",
            b"BGOK",
            b"BGINFO",
            b"BGOK no-such-job",
            b"SVCJOB",
            b"INFO a\\ b 'c d'e \"\"",
            b"OK",
        ],
    );
    let client = connect(&sim).await;
    let lines = within(client.command(["HOSTILE"]).unwrap().collect()).await.unwrap();
    assert_eq!(
        lines,
        vec![
            vec!["unterminated quote".to_owned()],
            vec!["unterminated double".to_owned()],
            vec!["trailing".to_owned()],
            vec!["\u{fffd}\u{fffd}".to_owned(), "bin\0ary".to_owned(), "\u{e9}t\u{e9}".to_owned()],
            vec!["with-cr".to_owned()],
            vec!["a b".to_owned(), "c de".to_owned(), String::new()],
        ]
    );
    // Stray answers with no command in flight are ignored; the connection carries on.
    // (A broadcast after them tells when the client has read them all.)
    let mut events = client.events();
    sim.send_raw(b"OK");
    sim.send_raw(b"FAIL nobody-asked");
    sim.send_raw(b"INFO nobody-asked");
    sim.send_raw(b"BGDETACH J99999");
    sim.send_raw(b"NOTE USER read-them-all");
    assert_eq!(within(events.recv()).await.unwrap().to_string(), "NOTE USER read-them-all");
    assert_eq!(within(client.version()).await.unwrap().name, "ave-tripe-sim");
}

#[tokio::test]
async fn long_lines_are_read_up_to_the_limit() {
    let sim = Sim::start();
    let big = [b"INFO ".as_slice(), &vec![b'x'; 300_000]].concat();
    sim.script("BIG", &[&big, b"OK"]);
    let client = connect(&sim).await;
    let lines = within(client.command(["BIG"]).unwrap().collect()).await.unwrap();
    assert_eq!(lines[0][0].len(), 300_000);

    // Past the limit, the connection ends rather than buffering without bound.
    let client = Client::builder().max_line_len(4096).connect(sim.path()).await.unwrap();
    let huge = client.command(["BIG"]).unwrap();
    let after = client.command(["VERSION"]).unwrap();
    assert!(matches!(*lost(within(huge.collect()).await), Disconnect::LineTooLong { max: 4096 }));
    assert!(matches!(*lost(within(after.collect()).await), Disconnect::LineTooLong { .. }));
}

#[tokio::test]
async fn unsendable_commands_are_refused_before_anything_is_sent() {
    let sim = Sim::start();
    let client = connect(&sim).await;
    assert!(matches!(
        client.command(["NOTIFY", "two\nlines"]),
        Err(Error::Unsendable { index: 1, .. })
    ));
    assert!(matches!(client.command(["NOTIFY", "nul\0byte"]), Err(Error::Unsendable { .. })));
    assert!(matches!(client.command(Vec::<String>::new()), Err(Error::EmptyCommand)));
    assert!(matches!(client.command_line("  \t "), Err(Error::EmptyCommand)));
    assert!(matches!(client.command_line("LIST\nKILL alice"), Err(Error::Unsendable { .. })));
    let long = "x".repeat(300);
    let error = client.command(["NOTIFY", &long]).unwrap_err();
    assert!(matches!(error, Error::CommandTooLong { len: 307, max: 255 }), "{error:?}");
    assert_eq!(error.to_string(), "command line is 307 bytes long; the server reads at most 255");
    assert!(matches!(client.command_background(Vec::<String>::new()), Err(Error::EmptyCommand)));
    // Nothing reached the server, and the connection still works.
    within(client.notify(["fits"])).await.unwrap();
    assert_eq!(sim.received(), ["NOTIFY fits"]);
}

#[tokio::test]
async fn many_tasks_share_a_connection_one_command_at_a_time() {
    let sim = Sim::start();
    let client = connect(&sim).await;
    let mut tasks = Vec::new();
    for task in 0..8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                client.notify([format!("t{task}"), format!("n{i}")]).await?;
                assert_eq!(client.version().await?.version, "1.0.0");
            }
            Ok::<(), Error>(())
        }));
    }
    for task in tasks {
        within(task).await.unwrap().unwrap();
    }
    assert_eq!(sim.received().len(), 400);
    assert_eq!(sim.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn the_simulator_catches_a_client_that_pipelines() {
    // The check above can fail: a raw client that sends two lines at once is caught.
    let sim = Sim::start();
    let mut raw = tokio::net::UnixStream::connect(sim.path()).await.unwrap();
    raw.write_all(b"VERSION\nLIST\n").await.unwrap();
    assert!(sim.wait_until(LIMIT, |s| s.received().len() == 2).await);
    assert_eq!(sim.violations(), ["LIST"]);
}

#[tokio::test]
async fn connecting_to_nothing_is_a_connect_error() {
    let sim = Sim::start();
    let missing = sim.dir().join("no-such-socket");
    let error = within(Client::connect(&missing)).await.unwrap_err();
    assert!(error.is_connection_error());
    assert!(error.to_string().contains("no-such-socket"), "{error}");
    assert!(std::error::Error::source(&error).is_some());
}

#[tokio::test]
async fn dropping_every_handle_closes_the_connection() {
    let sim = Sim::start();
    let client = connect(&sim).await;
    within(client.version()).await.unwrap();
    assert_eq!(sim.connections(), 1);
    let mut events = client.events();
    drop(client);
    // The subscription keeps it open (broadcasts still arrive); dropping it too closes it.
    sim.send_raw(b"NOTE USER still-here");
    assert_eq!(within(events.recv()).await.unwrap().to_string(), "NOTE USER still-here");
    assert_eq!(sim.connections(), 1);
    drop(events);
    assert!(sim.wait_until(Duration::from_secs(10), |s| s.connections() == 0).await);
}
