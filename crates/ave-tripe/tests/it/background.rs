//! Background jobs: tags, interleaving with foreground commands and broadcasts,
//! cancellation, and many jobs at once on one connection.

use std::time::Duration;

use ave_tripe::{Error, Event, FailKind, Note, PingOptions, PingResult};

use crate::{LIMIT, connect, sim::Sim, within};

#[tokio::test]
async fn jobs_interleave_with_foreground_commands_and_broadcasts() {
    let sim = Sim::start();
    sim.add_peer("alice", &["INET", "10.0.0.1", "4070"]);
    sim.add_peer("bob", &["INET", "10.0.0.2", "4070"]);
    sim.hold_pings("alice");
    sim.hold_pings("bob");
    let client = connect(&sim).await;
    within(client.watch(&["-A+n"])).await.unwrap();
    let mut events = client.events();

    let a = client.command_background(["PING", "alice"]).unwrap();
    let mut b = client.command_background(["PING", "-timeout", "30", "bob"]).unwrap();
    assert_eq!((a.tag(), b.tag()), (Some("J00000"), Some("J00001")));

    // Both jobs are out; the connection keeps serving foreground commands.
    assert_eq!(within(client.jobs()).await.unwrap(), ["J00000", "J00001"]);
    assert_eq!(within(client.list()).await.unwrap(), ["alice", "bob"]);
    sim.note(&["USER", "between", "jobs"]);
    let event = within(events.recv()).await.unwrap();
    assert_eq!(event, Event::Note(Note::User(vec!["between".into(), "jobs".into()])));

    // They finish in the other order, each with its own answer.
    assert_eq!(sim.release_pings("bob", 7.5), 1);
    assert_eq!(within(b.next_info()).await.unwrap().unwrap(), ["ping-ok", "7.5"]);
    assert!(b.is_detached());
    assert_eq!(within(b.next_info()).await.unwrap(), None);
    assert_eq!(within(client.jobs()).await.unwrap(), ["J00000"]);
    assert_eq!(sim.release_pings("alice", 1.25), 1);
    assert_eq!(within(a.collect()).await.unwrap(), [["ping-ok", "1.25"]]);
    assert_eq!(within(client.jobs()).await.unwrap(), Vec::<String>::new());
    assert_eq!(sim.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_slow_foreground_command_queues_the_others_behind_it() {
    let sim = Sim::start();
    sim.add_peer("alice", &["INET", "10.0.0.1", "4070"]);
    sim.hold_pings("alice");
    let client = connect(&sim).await;

    // A foreground PING (no -background): the server reads nothing more until it ends.
    let ping = client.command(["PING", "alice"]).unwrap();
    let list = client.command(["LIST"]).unwrap();
    let version = client.command(["VERSION"]).unwrap();
    assert!(sim.wait_until(LIMIT, |s| s.waiting_pings("alice") == 1).await);
    // The queued commands are still in the client, not on the wire.
    assert_eq!(sim.received(), ["PING alice"]);
    sim.release_pings("alice", 2.0);
    assert_eq!(within(ping.single()).await.unwrap(), ["ping-ok", "2"]);
    assert_eq!(within(list.collect()).await.unwrap(), [["alice"]]);
    assert_eq!(within(version.single()).await.unwrap(), ["ave-tripe-sim", "1.0.0"]);
    assert_eq!(sim.received(), ["PING alice", "LIST", "VERSION"]);
    assert_eq!(sim.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn jobs_are_cancelled() {
    let sim = Sim::start();
    sim.add_peer("alice", &["INET", "10.0.0.1", "4070"]);
    sim.hold_pings("alice");
    let client = connect(&sim).await;

    // Through the reply...
    let mut first = client.command_background(["PING", "alice"]).unwrap();
    within(first.cancel()).await.unwrap();
    let error = within(first.next_info()).await.unwrap_err();
    assert!(matches!(&error, Error::Cancelled { tag } if tag == "J00000"), "{error:?}");
    assert_eq!(within(first.next_info()).await.unwrap(), None, "a finished reply stays finished");

    // ...and through BGCANCEL, typed or raw.
    let mut second = client.command_background(["PING", "alice"]).unwrap();
    let mut third = client.command_background(["EPING", "alice"]).unwrap();
    assert_eq!(within(client.jobs()).await.unwrap(), ["J00001", "J00002"]);
    within(client.bgcancel("J00001")).await.unwrap();
    within(client.command(["bgcancel", "J00002"]).unwrap().ok()).await.unwrap();
    assert!(matches!(within(second.next_info()).await, Err(Error::Cancelled { .. })));
    assert!(matches!(within(third.next_info()).await, Err(Error::Cancelled { .. })));
    assert_eq!(within(client.jobs()).await.unwrap(), Vec::<String>::new());

    // Cancelling what is gone is the server's `unknown-tag`.
    let error = within(client.bgcancel("J00001")).await.unwrap_err();
    assert_eq!(error.failure().unwrap().kind(), FailKind::UnknownTag);
    // A foreground command cannot be cancelled.
    let version = client.command(["VERSION"]).unwrap();
    assert!(matches!(within(version.cancel()).await, Err(Error::Unexpected { .. })));
}

#[tokio::test]
async fn a_tag_in_use_is_refused() {
    let sim = Sim::start();
    sim.add_peer("alice", &["INET", "10.0.0.1", "4070"]);
    sim.hold_pings("alice");
    let client = connect(&sim).await;
    let mut mine = client.command(["PING", "-background", "T1", "alice"]).unwrap();
    let error = within(client.command(["PING", "-background", "T1", "alice"]).unwrap().ok())
        .await
        .unwrap_err();
    assert_eq!(error.failure().unwrap().words(), ["tag-exists", "T1"]);
    // The first job, tagged by hand, is still routed by the tag from BGDETACH.
    sim.release_pings("alice", 3.0);
    assert_eq!(within(mine.next_info()).await.unwrap().unwrap(), ["ping-ok", "3"]);
    assert_eq!(mine.tag(), Some("T1"));
}

#[tokio::test]
async fn a_hundred_jobs_at_once_from_many_tasks() {
    let sim = Sim::start();
    for i in 0..10 {
        sim.add_peer(&format!("peer{i}"), &["INET", &format!("10.0.1.{i}"), "4070"]);
        sim.hold_pings(&format!("peer{i}"));
    }
    let client = connect(&sim).await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let peer = format!("peer{}", i % 10);
            let timeout = PingOptions { timeout: Some(Duration::from_secs(60)) };
            client.ping(&peer, &timeout).await
        }));
    }
    assert!(sim.wait_until(LIMIT, |s| s.background_jobs() == 100).await);
    // Foreground commands still answer while a hundred jobs wait.
    assert_eq!(within(client.jobs()).await.unwrap().len(), 100);
    for i in 0..10 {
        assert_eq!(sim.release_pings(&format!("peer{i}"), f64::from(i)), 10);
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let result = within(task).await.unwrap().unwrap();
        let expected = Duration::from_millis((i % 10) as u64);
        assert_eq!(result, PingResult::Ok { rtt: expected }, "job {i}");
    }
    assert_eq!(sim.violations(), Vec::<String>::new());
}
