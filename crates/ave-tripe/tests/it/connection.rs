//! The connection: losing it with commands pending, hostile lines from the server,
//! commands that cannot be sent, and the one-command-at-a-time rule.

use std::{sync::Arc, time::Duration};

use ave_tripe::{Client, Disconnect, Error, Event, Service, ServiceProvider};
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

#[tokio::test]
async fn disconnect_fails_every_pending_command_with_the_reason() {
    let sim = Sim::start();
    sim.add_peer("alice", &["INET", "10.0.0.1", "4070"]);
    sim.hold_pings("alice");
    let client = connect(&sim).await;
    let background = client.command_background(["PING", "alice"]).unwrap();
    let in_flight = client.command(["PING", "alice"]).unwrap();
    let queued = client.command(["VERSION"]).unwrap();
    assert!(sim.wait_until(LIMIT, |s| s.waiting_pings("alice") == 2).await);

    client.disconnect("operator asked");
    for reply in [background, in_flight, queued] {
        let error = within(reply.collect()).await.unwrap_err();
        let Error::ConnectionLost(reason) = &error else { panic!("{error:?}") };
        assert!(matches!(&**reason, Disconnect::Requested(r) if r == "operator asked"));
        let chain = std::error::Error::source(&error).map(ToString::to_string);
        assert_eq!(chain.as_deref(), Some("disconnected by the client: operator asked"));
    }
    assert!(sim.wait_until(LIMIT, |s| s.connections() == 0).await);
    assert!(client.is_closed());
    assert!(matches!(client.command(["VERSION"]), Err(Error::Closed)));

    // The same client connects again.
    within(client.reconnect()).await.unwrap();
    assert!(!client.is_closed());
    assert_eq!(within(client.version()).await.unwrap().name, "ave-tripe-sim");
}

#[tokio::test]
async fn the_client_outlives_a_server_restart() {
    let sim = Sim::start();
    let dir = sim.dir().to_path_buf();
    let client = connect(&sim).await;
    let provider_client = connect(&sim).await;
    sim.add_peer("alice", &["INET", "10.0.0.1", "4070"]);
    sim.hold_pings("alice");
    let pending = client.command(["PING", "alice"]).unwrap();
    assert!(sim.wait_until(LIMIT, |s| s.waiting_pings("alice") == 1).await);

    // The server goes away: the pending command fails clearly, nothing hangs.
    drop(sim);
    let error = within(pending.collect()).await.unwrap_err();
    assert!(error.is_connection_error(), "{error:?}");
    assert!(matches!(client.version().await, Err(Error::Closed | Error::ConnectionLost(_))));
    // While it is down, reconnecting fails and can be tried again.
    assert!(matches!(within(client.reconnect()).await, Err(Error::Connect { .. })));

    // A new server on the same socket: the same client (and its clones) carry on.
    let sim = Sim::start_in(&dir);
    let clone = client.clone();
    within(client.reconnect()).await.unwrap();
    assert_eq!(within(clone.version()).await.unwrap().name, "ave-tripe-sim");
    let mut events = client.events();
    within(client.watch(&["+n"])).await.unwrap();
    sim.note(&["KXDONE", "bob"]);
    assert!(matches!(within(events.recv()).await, Some(Event::Note(_))));

    // A provider claims its services again on the new connection.
    within(provider_client.reconnect()).await.unwrap();
    let mut provider = ServiceProvider::new(provider_client.clone()).unwrap();
    within(provider.claim(Service::new("again", "1.0"))).await.unwrap();
    assert_eq!(sim.services(), [("again".to_owned(), "1.0".to_owned())]);

    // A client made from a stream has nowhere to reconnect to.
    let (ours, _theirs) = tokio::net::UnixStream::pair().unwrap();
    let streamed = Client::builder().from_stream(ours);
    assert!(matches!(streamed.reconnect().await, Err(Error::NoSocketPath)));
}

#[tokio::test]
async fn unknown_codes_go_to_their_handlers_and_every_line_to_the_hook() {
    let sim = Sim::start();
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let (newer_tx, mut newer) = tokio::sync::mpsc::unbounded_channel();
    let client = within(
        Client::builder()
            .on_line(move |line| {
                let _ = lines_tx.send(String::from_utf8_lossy(line).into_owned());
            })
            .on_code("newthing", move |args| {
                let _ = newer_tx.send(args.to_vec());
            })
            .on_code("OK", |_| panic!("a handler for a known code is never called"))
            .connect(sim.path()),
    )
    .await
    .unwrap();
    let mut events = client.events();
    within(client.version()).await.unwrap();
    assert_eq!(within(lines.recv()).await.unwrap(), "INFO ave-tripe-sim 1.0.0");
    assert_eq!(within(lines.recv()).await.unwrap(), "OK");

    sim.send_raw(b"NEWTHING a 'b c'");
    sim.send_raw(b"OTHERTHING x");
    assert_eq!(within(newer.recv()).await.unwrap(), ["a", "b c"]);
    assert_eq!(within(lines.recv()).await.unwrap(), "NEWTHING a 'b c'");
    assert_eq!(within(lines.recv()).await.unwrap(), "OTHERTHING x");
    // Without a handler, an unknown code is still an event; with one, it is not.
    assert_eq!(
        within(events.recv()).await,
        Some(Event::Unknown { code: "OTHERTHING".into(), args: vec!["x".into()] })
    );
}
