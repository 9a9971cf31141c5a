//! Every admin command of spec section 4 through the typed methods, against the simulator:
//! the words sent, the shapes of the replies, and the failures.

use std::time::Duration;

use ave_tripe::{AddOptions, Error, FailKind, PingOptions, PingResult, parse_bool};

use crate::{
    connect,
    sim::{Sim, WATCH_TRACE, WATCH_WARN},
    within,
};

fn kind(error: &Error) -> FailKind {
    error.failure().unwrap_or_else(|| panic!("not a FAIL: {error:?}")).kind()
}

fn sent(sim: &Sim, line: &str) -> bool {
    sim.received().iter().any(|l| l == line)
}

#[tokio::test]
async fn peers_are_added_with_every_option_and_managed() {
    let sim = Sim::start();
    let client = connect(&sim).await;

    within(client.add("alice", &["INET", "10.0.0.1", "4070"], &AddOptions::default()))
        .await
        .unwrap();
    let all = AddOptions {
        tunnel: Some("slip".into()),
        keepalive: Some(Duration::from_secs(30)),
        key: Some("bob-key".into()),
        private_key: Some("ours".into()),
        cork: true,
        mobile: true,
        knock: Some("knock knock".into()),
        ephemeral: true,
    };
    within(client.add("bob", &["10.0.0.2", "4071"], &all)).await.unwrap();
    assert!(sent(&sim, "ADD -background J00000 -- alice INET 10.0.0.1 4070"));
    assert!(sent(
        &sim,
        "ADD -background J00001 -tunnel slip -keepalive 30 -key bob-key -priv ours -cork -mobile \
         -knock \"knock knock\" -ephemeral -- bob 10.0.0.2 4071"
    ));
    assert_eq!(within(client.list()).await.unwrap(), ["alice", "bob"]);

    let info = within(client.peerinfo("bob")).await.unwrap();
    assert_eq!(info["tunnel"], "slip");
    assert_eq!(info["keepalive"], "30");
    assert_eq!(info["key"], "bob-key");
    assert_eq!(info["current-private-key"], "ours");
    assert_eq!(info["knock"], "knock knock");
    for flag in ["corked", "mobile", "ephemeral"] {
        assert_eq!(parse_bool(&info[flag]), Some(true), "{flag}");
    }
    assert_eq!(parse_bool(&within(client.peerinfo("alice")).await.unwrap()["corked"]), Some(false));
    assert_eq!(Some(info), sim.peer_settings("bob"));

    let addr = within(client.addr("bob")).await.unwrap();
    assert_eq!(addr.words, ["INET", "10.0.0.2", "4071"]);
    assert_eq!((addr.host(), addr.port()), (Some("10.0.0.2"), Some(4071)));
    assert_eq!(addr.to_string(), "INET 10.0.0.2 4071");

    let ifname = within(client.ifname("bob")).await.unwrap();
    assert!(ifname.starts_with("tun"));
    within(client.setifname("bob", "vpn-bob")).await.unwrap();
    assert_eq!(within(client.ifname("bob")).await.unwrap(), "vpn-bob");

    let stats = within(client.stats("alice")).await.unwrap();
    assert_eq!(stats["last-packet-time"], "NEVER");
    assert_eq!(stats["packets-out"], "0");
    within(client.ping("alice", &PingOptions::default())).await.unwrap();
    assert_eq!(within(client.stats("alice")).await.unwrap()["packets-out"], "1");

    within(client.forcekx("bob")).await.unwrap();
    within(client.greet("alice", "Y2hhbA==")).await.unwrap();
    within(client.kill("alice")).await.unwrap();
    assert_eq!(within(client.list()).await.unwrap(), ["bob"]);
    assert_eq!(sim.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn peer_commands_fail_with_the_servers_tokens() {
    let sim = Sim::start();
    sim.add_peer("bob", &["INET", "10.0.0.2", "4071"]);
    let client = connect(&sim).await;
    let none = AddOptions::default();

    // Refused before the job detaches: a plain FAIL.
    let error = within(client.add("bob", &["10.9.9.9", "1"], &none)).await.unwrap_err();
    assert_eq!(kind(&error), FailKind::PeerExists);
    assert_eq!(error.failure().unwrap().args, ["bob"]);
    let tunnel = AddOptions { tunnel: Some("carrier-pigeon".into()), ..AddOptions::default() };
    let error = within(client.add("carol", &["10.0.0.3", "1"], &tunnel)).await.unwrap_err();
    assert_eq!(kind(&error), FailKind::UnknownTunnel);
    let error = within(
        client.command(["ADD", "-keepalive", "soon", "carol", "10.0.0.3", "1"]).unwrap().ok(),
    )
    .await
    .unwrap_err();
    assert_eq!(error.failure().unwrap().words(), ["bad-time-spec", "soon"]);

    // Refused by the resolver, after the job detached: a BGFAIL, the same to the caller.
    let error = within(client.add("carol", &["no.such.host", "4070"], &none)).await.unwrap_err();
    assert_eq!(error.failure().unwrap().words(), ["resolve-error", "no.such.host"]);
    let error = within(client.add("carol", &["10.0.0.3", "http"], &none)).await.unwrap_err();
    assert_eq!(kind(&error), FailKind::InvalidPort);
    let error =
        within(client.add("carol", &["INET", "10.0.0.2", "4071"], &none)).await.unwrap_err();
    assert_eq!(error.failure().unwrap().words(), ["peer-addr-exists", "INET", "10.0.0.2", "4071"]);
    let error = within(client.add("carol", &["a", "b", "c"], &none)).await.unwrap_err();
    assert_eq!(kind(&error), FailKind::BadAddrSyntax);

    for error in [
        within(client.kill("nobody")).await.unwrap_err(),
        within(client.addr("nobody")).await.unwrap_err(),
        within(client.ifname("nobody")).await.unwrap_err(),
        within(client.peerinfo("nobody")).await.unwrap_err(),
        within(client.stats("nobody")).await.unwrap_err(),
        within(client.forcekx("nobody")).await.unwrap_err(),
        within(client.greet("nobody", "x")).await.unwrap_err(),
        within(client.setifname("nobody", "x")).await.unwrap_err(),
        within(client.ping("nobody", &PingOptions::default())).await.unwrap_err(),
        within(client.algs(Some("nobody"))).await.unwrap_err(),
    ] {
        assert_eq!(error.failure().unwrap().words(), ["unknown-peer", "nobody"]);
    }
    assert_eq!(within(client.list()).await.unwrap(), ["bob"]);
}

#[tokio::test]
async fn ping_and_eping_send_their_own_commands() {
    let sim = Sim::start();
    sim.add_peer("alice", &["INET", "10.0.0.1", "4070"]);
    let client = connect(&sim).await;
    let default = PingOptions::default();

    let ping = within(client.ping("alice", &default)).await.unwrap();
    assert_eq!(ping, PingResult::Ok { rtt: Duration::from_micros(250) });
    let eping = within(client.eping("alice", &default)).await.unwrap();
    // The simulator answers EPING with twice the plain round trip: it really was EPING.
    assert_eq!(eping, PingResult::Ok { rtt: Duration::from_micros(500) });
    assert!(sent(&sim, "PING -background J00000 -- alice"));
    assert!(sent(&sim, "EPING -background J00001 -- alice"));

    let zero = PingOptions { timeout: Some(Duration::ZERO) };
    assert_eq!(within(client.eping("alice", &zero)).await.unwrap(), PingResult::Timeout);
    assert!(sent(&sim, "EPING -background J00002 -timeout 0 -- alice"));

    // A held ping ends when the peer is killed.
    sim.hold_pings("alice");
    let waiting = tokio::spawn({
        let client = client.clone();
        async move {
            client.ping("alice", &PingOptions { timeout: Some(Duration::from_secs(30)) }).await
        }
    });
    assert!(sim.wait_until(crate::LIMIT, |s| s.waiting_pings("alice") == 1).await);
    within(client.kill("alice")).await.unwrap();
    assert_eq!(within(waiting).await.unwrap().unwrap(), PingResult::PeerDied);

    // An encrypted ping needs keys: a corked peer has none yet.
    let corked = AddOptions { cork: true, ..AddOptions::default() };
    within(client.add("carol", &["10.0.0.3", "1"], &corked)).await.unwrap();
    let error = within(client.eping("carol", &default)).await.unwrap_err();
    assert_eq!(kind(&error), FailKind::PingSendFailed);
    assert!(matches!(within(client.ping("carol", &default)).await.unwrap(), PingResult::Ok { .. }));
    within(client.forcekx("carol")).await.unwrap();
    assert!(matches!(
        within(client.eping("carol", &default)).await.unwrap(),
        PingResult::Ok { .. }
    ));
}

#[tokio::test]
async fn challenges() {
    let sim = Sim::start();
    let client = connect(&sim).await;
    let challenge = within(client.getchal()).await.unwrap();
    assert_eq!(challenge, "Y2hhbDAwMDE=");
    within(client.checkchal(&challenge)).await.unwrap();
    let error = within(client.checkchal("bm90IG1pbmU=")).await.unwrap_err();
    assert_eq!(kind(&error), FailKind::InvalidChallenge);
    let error = within(client.checkchal("not base64!")).await.unwrap_err();
    assert_eq!(kind(&error), FailKind::BadBase64);
}

#[tokio::test]
async fn server_information_and_control() {
    let sim = Sim::start();
    sim.add_peer("alice", &["INET", "10.0.0.1", "4070"]);
    let client = connect(&sim).await;

    let help = within(client.help()).await.unwrap();
    let add = help.iter().find(|h| h.command == "add").expect("HELP lists add");
    assert_eq!(add.usage, ["[OPTIONS]", "PEER", "ADDR", "..."]);
    assert!(help.iter().any(|h| h.command == "svcsubmit"));

    let version = within(client.version()).await.unwrap();
    assert_eq!((version.name.as_str(), version.version.as_str()), ("ave-tripe-sim", "1.0.0"));

    let info = within(client.servinfo()).await.unwrap();
    assert_eq!(info["implementation"], "ave-tripe-sim");
    assert_eq!(parse_bool(&info["daemon"]), Some(false));
    within(client.daemon()).await.unwrap();
    assert_eq!(parse_bool(&within(client.servinfo()).await.unwrap()["daemon"]), Some(true));
    assert_eq!(kind(&within(client.daemon()).await.unwrap_err()), FailKind::AlreadyDaemon);

    let algs = within(client.algs(None)).await.unwrap();
    assert_eq!(algs["hash"], "sha256");
    assert_eq!(algs["mac-tagsz"], "16");
    assert_eq!(within(client.algs(Some("alice"))).await.unwrap(), algs);
    assert!(sent(&sim, "ALGS alice"));

    assert_eq!(within(client.port(None)).await.unwrap(), 4070);
    assert_eq!(within(client.port(Some("INET6"))).await.unwrap(), 4070);
    let error = within(client.port(Some("IPX"))).await.unwrap_err();
    assert_eq!(error.failure().unwrap().words(), ["unknown-family", "IPX"]);

    assert_eq!(within(client.tunnels()).await.unwrap(), ["linux", "slip"]);
    within(client.reload()).await.unwrap();

    let trace = within(client.trace(&[])).await.unwrap();
    assert_eq!(trace.len(), 9);
    assert!(trace.iter().all(|t| !t.enabled()));
    assert_eq!(trace[4].selector, 'x');
    assert_eq!(trace[4].description, "key exchange");
    assert!(within(client.trace(&["+xm"])).await.unwrap().is_empty());
    let enabled: Vec<char> = within(client.trace(&[]))
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.enabled())
        .map(|t| t.selector)
        .collect();
    assert_eq!(enabled, ['x', 'm']);
    // Letters are checked before anything is sent; the server checks them too.
    let error = within(client.trace(&["+q"])).await.unwrap_err();
    assert!(matches!(error, Error::BadSelector { letter: 'q', ref command } if command == "TRACE"));
    let error = within(client.command(["TRACE", "+q"]).unwrap().ok()).await.unwrap_err();
    assert_eq!(error.failure().unwrap().words(), ["bad-trace-option", "q"]);
    // Varargs as tripe.py's `trace(*args)`, sent as one spec word.
    assert!(within(client.trace(&["-A", "+x"])).await.unwrap().is_empty());
    assert!(sim.received().iter().any(|line| line == "TRACE -A+x"));

    let watch = within(client.watch(&[])).await.unwrap();
    assert_eq!(watch.iter().map(|w| w.selector).collect::<String>(), "tnw");
    assert!(watch.iter().all(|w| !w.enabled()));
    within(client.watch(&["-A+wn"])).await.unwrap();
    let enabled: String = within(client.watch(&[]))
        .await
        .unwrap()
        .iter()
        .filter(|w| w.enabled())
        .map(|w| w.selector)
        .collect();
    assert_eq!(enabled, "nw");
    let error = within(client.watch(&["+w", "z"])).await.unwrap_err();
    assert!(matches!(error, Error::BadSelector { letter: 'z', .. }));
    assert_eq!(error.to_string(), "WATCH has no selector 'z' (the letters are tnwA)");
    let error = within(client.command(["WATCH", "+z"]).unwrap().ok()).await.unwrap_err();
    assert_eq!(kind(&error), FailKind::BadWatchOption);
    within(client.watch(&["-A", "+t", "+w"])).await.unwrap();
    assert!(sim.received().iter().any(|line| line == "WATCH -A+t+w"));
    assert_eq!(sim.watchers(WATCH_TRACE | WATCH_WARN), 1);
}

#[tokio::test]
async fn raw_commands_keywords_and_syntax_errors() {
    let sim = Sim::start();
    let client = connect(&sim).await;
    // Keywords are case-insensitive; a pre-quoted line goes out as it is.
    let lines = within(client.command(["version"]).unwrap().collect()).await.unwrap();
    assert_eq!(lines, [["ave-tripe-sim", "1.0.0"]]);
    within(client.command_line("NOTIFY 'hello world' \"again\"").unwrap().ok()).await.unwrap();
    assert!(sent(&sim, "NOTIFY 'hello world' \"again\""));

    let error = within(client.command(["FROBNICATE", "x"]).unwrap().ok()).await.unwrap_err();
    assert_eq!(error.failure().unwrap().words(), ["unknown-command", "FROBNICATE"]);
    let error = within(client.command(["KILL"]).unwrap().ok()).await.unwrap_err();
    assert_eq!(error.failure().unwrap().words(), ["bad-syntax", "kill", "PEER"]);
    let error = within(client.command(["PING", "-bogus", "x"]).unwrap().ok()).await.unwrap_err();
    assert_eq!(kind(&error), FailKind::BadSyntax);
    // A command answered with INFO lines where a method expects none is reported.
    let error = within(client.command(["LIST"]).unwrap().single()).await.unwrap_err();
    assert!(matches!(error, Error::Unexpected { .. }), "{error:?}");
}

#[tokio::test]
async fn quit_shuts_the_server_down() {
    let sim = Sim::start();
    let client = connect(&sim).await;
    within(client.watch(&["-A+w"])).await.unwrap();
    let mut events = client.events();
    within(client.quit()).await.unwrap();
    let event = within(events.recv()).await.expect("the quit warning");
    assert_eq!(event.to_string(), "WARN SERVER quit admin-request");
    assert_eq!(within(events.recv()).await, None);
    let error = within(client.version()).await.unwrap_err();
    assert!(error.is_connection_error(), "{error:?}");
    let error = within(ave_tripe::Client::connect(sim.path())).await.unwrap_err();
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
}
