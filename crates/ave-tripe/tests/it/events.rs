//! Broadcasts: WATCH masks per connection, typed events, unknown codes, and subscribers
//! that fall behind.

use ave_tripe::{Client, Event, Note, WarnCategory, Warning};

use crate::{connect, sim::Sim, within};

#[tokio::test]
async fn each_connection_gets_what_it_watches() {
    let sim = Sim::start();
    let notes = connect(&sim).await;
    let rest = connect(&sim).await;
    let none = connect(&sim).await;
    within(notes.watch(&["-A+n"])).await.unwrap();
    within(rest.watch(&["-A+wt"])).await.unwrap();
    let (mut notes_events, mut rest_events) = (notes.events(), rest.events());
    let mut none_events = none.events();

    sim.note(&["KXDONE", "alice"]);
    sim.warn(&["KX", "alice", "decrypt-failed", "reply"]);
    sim.trace("keyexch: 'unparsed' \"text\" \\ kept");
    sim.note(&["USER", "end"]);
    sim.warn(&["USER", "end"]);

    assert_eq!(
        within(notes_events.recv()).await,
        Some(Event::Note(Note::KxDone { peer: "alice".into() }))
    );
    assert_eq!(
        within(notes_events.recv()).await,
        Some(Event::Note(Note::User(vec!["end".into()])))
    );

    let Some(Event::Warn(warning)) = within(rest_events.recv()).await else { panic!("a warning") };
    assert_eq!(warning.category, WarnCategory::Kx);
    assert_eq!(warning.peer(), Some("alice"));
    assert_eq!(warning.args, ["alice", "decrypt-failed", "reply"]);
    assert_eq!(
        within(rest_events.recv()).await,
        Some(Event::Trace("keyexch: 'unparsed' \"text\" \\ kept".into()))
    );
    assert_eq!(
        within(rest_events.recv()).await,
        Some(Event::Warn(Warning { category: WarnCategory::User, args: vec!["end".into()] }))
    );

    // The connection that watches nothing got nothing: its next event is one sent to all.
    sim.send_raw(b"NOTE USER raw-to-all");
    assert_eq!(within(none_events.recv()).await.unwrap().to_string(), "NOTE USER raw-to-all");
}

#[tokio::test]
async fn notify_and_warn_reach_every_watcher_quoted() {
    let sim = Sim::start();
    let watcher = connect(&sim).await;
    let speaker = connect(&sim).await;
    within(watcher.watch(&["-A+wn"])).await.unwrap();
    let mut events = watcher.events();
    within(speaker.notify(["svc-quit", "hello world", ""])).await.unwrap();
    within(speaker.warn(["disk", "it's \"full\""])).await.unwrap();
    let note = within(events.recv()).await.unwrap();
    assert_eq!(
        note,
        Event::Note(Note::User(vec!["svc-quit".into(), "hello world".into(), String::new()]))
    );
    assert_eq!(note.to_string(), "NOTE USER svc-quit \"hello world\" \"\"");
    let warning = within(events.recv()).await.unwrap();
    assert_eq!(warning.to_words(), ["WARN", "USER", "disk", "it's \"full\""]);
}

#[tokio::test]
async fn typed_notes_and_unknown_codes() {
    let sim = Sim::start();
    let client = connect(&sim).await;
    within(client.watch(&["A"])).await.unwrap();
    let mut events = client.events();
    within(client.add("bob", &["10.0.0.2", "4070"], &Default::default())).await.unwrap();
    assert_eq!(
        within(events.recv()).await,
        Some(Event::Note(Note::Add {
            peer: "bob".into(),
            ifname: "tun0".into(),
            addr: vec!["INET".into(), "10.0.0.2".into(), "4070".into()],
        }))
    );
    assert_eq!(
        within(events.recv()).await,
        Some(Event::Note(Note::KxStart { peer: "bob".into() }))
    );
    within(client.setifname("bob", "vpn0")).await.unwrap();
    assert_eq!(
        within(events.recv()).await,
        Some(Event::Note(Note::NewIfname {
            peer: "bob".into(),
            old: "tun0".into(),
            new: "vpn0".into()
        }))
    );
    within(client.kill("bob")).await.unwrap();
    assert_eq!(within(events.recv()).await, Some(Event::Note(Note::Kill { peer: "bob".into() })));

    sim.send_raw(b"FLUX capacitor 'at 88'");
    sim.send_raw(b"NOTE BRAND-NEW a b");
    sim.send_raw(b"NOTE KILL");
    assert_eq!(
        within(events.recv()).await,
        Some(Event::Unknown {
            code: "FLUX".into(),
            args: vec!["capacitor".into(), "at 88".into()]
        })
    );
    assert_eq!(
        within(events.recv()).await,
        Some(Event::Note(Note::Other {
            code: "BRAND-NEW".into(),
            args: vec!["a".into(), "b".into()]
        }))
    );
    assert_eq!(
        within(events.recv()).await,
        Some(Event::Note(Note::Other { code: "KILL".into(), args: vec![] }))
    );
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_is_told_what_it_missed() {
    let sim = Sim::start();
    let client = Client::builder().event_capacity(4).connect(sim.path()).await.unwrap();
    within(client.watch(&["-A+n"])).await.unwrap();
    let mut events = client.events();
    for i in 0..10 {
        sim.note(&["USER", &i.to_string()]);
    }
    // A command's answer comes after the notes on the same connection: once it is here,
    // the client has seen them all.
    within(client.version()).await.unwrap();
    assert_eq!(within(events.recv()).await, Some(Event::Missed { count: 6 }));
    for i in 6..10 {
        assert_eq!(within(events.recv()).await, Some(Event::Note(Note::User(vec![i.to_string()]))));
    }
    // Commands never waited for the slow subscriber.
    assert_eq!(within(client.list()).await.unwrap(), Vec::<String>::new());
}
