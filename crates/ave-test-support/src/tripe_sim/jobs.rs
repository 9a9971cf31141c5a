//! The commands that can run as background jobs (`-background TAG`): ADD, PING and EPING
//! (which a test can hold until it releases them), and SVCSUBMIT, relayed to the
//! service's provider.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::{mpsc, oneshot};

use crate::tripe_sim::{
    parse::{resolve, tagged, time_spec, version_cmp},
    state::{BgJob, Ctx, PingEnd, PingWait, Relay, SvcJob, WATCH_NOTE},
    words::{line_of, server_quote},
};

/// How many jobs one provider may have before `provider-overloaded`.
const MAX_PROVIDER_JOBS: usize = 64;

pub(super) fn add(
    ctx: &Ctx,
    options: &HashMap<&'static str, Option<String>>,
    args: &[String],
    tag: Option<String>,
) {
    let opt = |name: &str| options.get(name).cloned().flatten();
    let mut state = ctx.state();
    let tunnel = opt("-tunnel").unwrap_or_else(|| "linux".into());
    if !["linux", "slip"].contains(&tunnel.as_str()) {
        drop(state);
        return ctx.fail(&["unknown-tunnel", tunnel.as_str()]);
    }
    let keepalive = match opt("-keepalive") {
        None => 0,
        Some(spec) => match time_spec(&spec) {
            Some(secs) => secs,
            None => {
                drop(state);
                return ctx.fail(&["bad-time-spec", spec.as_str()]);
            }
        },
    };
    let name = args[0].clone();
    if state.peers.contains_key(&name) {
        drop(state);
        return ctx.fail(&["peer-exists", name.as_str()]);
    }
    // Resolution happens in the background part of the command.
    if let Some(tag) = &tag {
        ctx.detach(tag);
    }
    let finish = |tokens: Option<Vec<String>>| match (&tag, tokens) {
        (Some(tag), None) => ctx.write(&format!("BGOK {}", server_quote(tag))),
        (Some(tag), Some(tokens)) => ctx.write(&line_of("BGFAIL", &tagged(tag, &tokens))),
        (None, None) => ctx.ok(),
        (None, Some(tokens)) => ctx.fail(&tokens),
    };
    let addr = match resolve(&args[1..]) {
        Ok(addr) => addr,
        Err(tokens) => return finish(Some(tokens)),
    };
    if state.peers.values().any(|p| p.addr == addr) {
        return finish(Some([&["peer-addr-exists".to_owned()], &addr[..]].concat()));
    }
    let mut peer = state.new_peer(&name, addr.clone());
    peer.tunnel = tunnel;
    peer.keepalive = keepalive;
    if let Some(key) = opt("-key") {
        peer.key = key;
    }
    if let Some(private_key) = opt("-priv") {
        peer.private_key = private_key;
    }
    peer.corked = options.contains_key("-cork");
    peer.keyed = !peer.corked;
    peer.mobile = options.contains_key("-mobile");
    peer.knock = opt("-knock");
    peer.ephemeral = options.contains_key("-ephemeral");
    let ifname = peer.ifname.clone();
    let corked = peer.corked;
    state.peers.insert(name.clone(), peer);
    let mut note = vec!["ADD".to_owned(), name.clone(), ifname];
    note.extend(addr);
    state.broadcast(WATCH_NOTE, &line_of("NOTE", &note));
    if !corked {
        state.broadcast(WATCH_NOTE, &line_of("NOTE", &["KXSTART", name.as_str()]));
    }
    drop(state);
    finish(None);
}

pub(super) async fn ping(
    ctx: &Ctx,
    name: &str,
    options: &HashMap<&'static str, Option<String>>,
    args: &[String],
    tag: Option<String>,
) {
    let timeout = match options.get("-timeout").cloned().flatten() {
        None => 5,
        Some(spec) => match time_spec(&spec) {
            Some(secs) => secs,
            None => return ctx.fail(&["bad-time-spec", spec.as_str()]),
        },
    };
    let peer = args[0].clone();
    let (hold, rtt, wait) = {
        let mut state = ctx.state();
        let Some(p) = state.peers.get_mut(&peer) else {
            drop(state);
            return ctx.fail(&["unknown-peer", peer.as_str()]);
        };
        if name == "eping" && !p.keyed {
            drop(state);
            return ctx.fail(&["ping-send-failed"]);
        }
        p.packets_out += 1;
        let (tx, rx) = oneshot::channel();
        let wait = Arc::new(PingWait { outcome: Mutex::new(Some(tx)) });
        if p.hold_pings && timeout > 0 {
            p.waiting.push(wait.clone());
        }
        // An encrypted ping costs a little more than a plain one.
        let rtt = if name == "eping" { p.rtt_ms * 2.0 } else { p.rtt_ms };
        (p.hold_pings, rtt, (wait, rx))
    };
    ctx.shared.touch();
    let (wait, rx) = wait;
    let outcome = async move {
        if timeout == 0 {
            return vec!["ping-timeout".to_owned()];
        }
        if !hold {
            return vec!["ping-ok".to_owned(), rtt.to_string()];
        }
        match tokio::time::timeout(Duration::from_secs(timeout), rx).await {
            Ok(Ok(PingEnd::Reply(ms))) => vec!["ping-ok".to_owned(), ms.to_string()],
            Ok(Ok(PingEnd::PeerDied)) => vec!["ping-peer-died".to_owned()],
            _ => vec!["ping-timeout".to_owned()],
        }
    };
    match tag {
        None => {
            tokio::select! {
                words = outcome => {
                    ctx.info(&words);
                    ctx.ok();
                }
                () = ctx.closed() => {}
            }
            forget_ping(ctx, &peer, &wait);
        }
        Some(tag) => {
            ctx.detach(&tag);
            let shared = ctx.shared.clone();
            let id = ctx.id;
            let task_tag = tag.clone();
            let mut state = ctx.state();
            let task = tokio::spawn(async move {
                let words = outcome.await;
                let mut state = shared.lock();
                if let Some(p) = state.peers.get_mut(&peer) {
                    p.waiting.retain(|w| !Arc::ptr_eq(w, &wait));
                }
                let live =
                    state.conns.get_mut(&id).and_then(|c| c.jobs.remove(&task_tag)).is_some();
                if live {
                    let mut info = vec![task_tag.clone()];
                    info.extend(words);
                    state.send(id, &line_of("BGINFO", &info));
                    state.send(id, &format!("BGOK {}", server_quote(&task_tag)));
                }
                drop(state);
                shared.touch();
            });
            if let Some(conn) = state.conns.get_mut(&ctx.id) {
                conn.jobs.insert(tag, BgJob { abort: Some(task.abort_handle()), svc_jobid: None });
            }
        }
    }
}

fn forget_ping(ctx: &Ctx, peer: &str, wait: &Arc<PingWait>) {
    if let Some(p) = ctx.state().peers.get_mut(peer) {
        p.waiting.retain(|w| !Arc::ptr_eq(w, wait));
    }
}

pub(super) async fn svcsubmit(
    ctx: &Ctx,
    options: &HashMap<&'static str, Option<String>>,
    args: &[String],
    tag: Option<String>,
) {
    let (jid, mut relay) = {
        let mut state = ctx.state();
        let key = args[0].to_lowercase();
        let Some(svc) = state.services.get(&key) else {
            drop(state);
            return ctx.fail(&["unknown-service", args[0].as_str()]);
        };
        if let Some(wanted) = options.get("-version").cloned().flatten() {
            if version_cmp(&svc.version, &wanted).is_lt() {
                let tokens = ["service-too-old".to_owned(), svc.name.clone(), svc.version.clone()];
                drop(state);
                return ctx.fail(&tokens);
            }
        }
        let provider = svc.provider;
        let name = svc.name.clone();
        if state.svc_jobs.values().filter(|j| j.provider == provider).count() >= MAX_PROVIDER_JOBS {
            drop(state);
            return ctx.fail(&["provider-overloaded"]);
        }
        state.next_jobid += 1;
        let jid = format!("j{}", state.next_jobid);
        let (tx, rx) = mpsc::unbounded_channel();
        state.svc_jobs.insert(jid.clone(), SvcJob { provider, submitter: ctx.id, relay: tx });
        let mut job = vec![jid.clone(), name];
        job.extend(args[1..].iter().cloned());
        state.send(provider, &line_of("SVCJOB", &job));
        (jid, rx)
    };
    ctx.shared.touch();
    match tag {
        None => loop {
            tokio::select! {
                relayed = relay.recv() => match relayed {
                    Some(Relay::Info(words)) => ctx.info(&words),
                    Some(Relay::Ok) => break ctx.ok(),
                    Some(Relay::Fail(tokens)) => break ctx.fail(&tokens),
                    None => break ctx.fail(&["provider-failed"]),
                },
                () = ctx.closed() => break,
            }
        },
        Some(tag) => {
            ctx.detach(&tag);
            let shared = ctx.shared.clone();
            let id = ctx.id;
            let task_tag = tag.clone();
            let mut state = ctx.state();
            let task = tokio::spawn(async move {
                let q = server_quote(&task_tag);
                while let Some(relayed) = relay.recv().await {
                    let mut state = shared.lock();
                    let live = state.conns.get(&id).is_some_and(|c| c.jobs.contains_key(&task_tag));
                    if !live {
                        return;
                    }
                    match relayed {
                        Relay::Info(words) => {
                            state.send(id, &line_of("BGINFO", &tagged(&task_tag, &words)));
                            continue;
                        }
                        Relay::Ok => state.send(id, &format!("BGOK {q}")),
                        Relay::Fail(tokens) => {
                            state.send(id, &line_of("BGFAIL", &tagged(&task_tag, &tokens)));
                        }
                    }
                    if let Some(conn) = state.conns.get_mut(&id) {
                        conn.jobs.remove(&task_tag);
                    }
                    drop(state);
                    shared.touch();
                    return;
                }
            });
            if let Some(conn) = state.conns.get_mut(&ctx.id) {
                conn.jobs
                    .insert(tag, BgJob { abort: Some(task.abort_handle()), svc_jobid: Some(jid) });
            }
        }
    }
}
