//! Running one command line: test-only scripted and streaming commands first, then the
//! table's syntax checks, then the command itself. The commands that answer at once are
//! here (with TRACE and WATCH selectors); the ones that can run in the background are in
//! `jobs.rs`.

use tokio::sync::oneshot;

use crate::tripe_sim::{
    jobs::{add, ping, svcsubmit},
    parse::{COMMANDS, bad_syntax, base64, parse_options, version_cmp},
    state::{
        Ctx, Out, PingEnd, Relay, SvcEntry, WATCH_NOTE, WATCH_TRACE, WATCH_WARN, bool_word,
        peer_info_lines,
    },
    words::{line_of, qwords, server_quote},
};

const VERSION: &str = "1.0.0";
const IMPLEMENTATION: &str = "ave-tripe-sim";

const TRACE_SELECTORS: &[(char, &str)] = &[
    ('t', "tunnel events"),
    ('r', "peer events"),
    ('a', "admin interface"),
    ('s', "symmetric keyset management"),
    ('x', "key exchange"),
    ('m', "key management"),
    ('l', "challenge management"),
    ('p', "packet contents"),
    ('c', "crypto details"),
];

const WATCH_SELECTORS: &[(char, &str)] =
    &[('t', "trace messages"), ('n', "notifications"), ('w', "warnings")];

fn watch_bit(c: char) -> u32 {
    match c {
        't' => u32::from(WATCH_TRACE),
        'n' => u32::from(WATCH_NOTE),
        _ => u32::from(WATCH_WARN),
    }
}

/// Applies a selector spec (`-A+wn`, `xm`, ...) to a mask: letters set or clear according
/// to the last sign; letters before any sign replace the mask.
fn apply_selectors(
    spec: &str,
    table: &[(char, &str)],
    bit: impl Fn(char, usize) -> u32,
    mask: u32,
) -> Result<u32, char> {
    let all: u32 = table.iter().enumerate().fold(0, |m, (i, (c, _))| m | bit(*c, i));
    let mut set = 0u32;
    let mut clear = 0u32;
    let mut sense: Option<bool> = None;
    for c in spec.chars() {
        match c {
            '+' => sense = Some(true),
            '-' => sense = Some(false),
            _ => {
                let bits = if c == 'A' {
                    all
                } else {
                    let i = table.iter().position(|(t, _)| *t == c).ok_or(c)?;
                    bit(c, i)
                };
                match sense {
                    None => {
                        clear = all;
                        set |= bits;
                        sense = Some(true);
                    }
                    Some(true) => {
                        set |= bits;
                        clear &= !bits;
                    }
                    Some(false) => {
                        clear |= bits;
                        set &= !bits;
                    }
                }
            }
        }
    }
    Ok((mask & !clear) | set)
}

fn selector_listing(
    table: &[(char, &str)],
    bit: impl Fn(char, usize) -> u32,
    mask: u32,
) -> Vec<Vec<String>> {
    table
        .iter()
        .enumerate()
        .map(|(i, (c, desc))| {
            let status = if mask & bit(*c, i) != 0 { "+" } else { "" };
            std::iter::once(format!("{c}{status}"))
                .chain(desc.split(' ').map(str::to_owned))
                .collect()
        })
        .collect()
}

/// Processes one command line.
pub(super) async fn command(ctx: &Ctx, line: &str) {
    let words = qwords(line);
    let Some(keyword) = words.first() else {
        ctx.release();
        return;
    };
    let upper = keyword.to_ascii_uppercase();
    let (script, stream) = {
        let mut state = ctx.state();
        state.log.push((ctx.id, line.to_owned()));
        (state.scripts.get(&upper).cloned(), state.streams.get(&upper).cloned())
    };
    if let Some(lines) = script {
        ctx.release();
        for bytes in lines {
            let _ = ctx.out.send(Out::Line(bytes));
        }
        return;
    }
    if let Some(line) = stream {
        return endless(ctx, line).await;
    }
    let name = keyword.to_ascii_lowercase();
    let Some(&(_, _, min, max)) = COMMANDS.iter().find(|c| c.0 == name) else {
        ctx.fail(&["unknown-command", keyword.as_str()]);
        return;
    };
    let (options, args) = match parse_options(&name, &words[1..]) {
        Ok(parsed) => parsed,
        Err(tokens) => return ctx.fail(&tokens),
    };
    if args.len() < min || args.len() > max {
        return ctx.fail(&bad_syntax(&name));
    }
    let tag = options.get("-background").cloned().flatten();
    if let Some(tag) = &tag {
        let exists = ctx.state().conns.get(&ctx.id).is_some_and(|c| c.jobs.contains_key(tag));
        if exists {
            return ctx.fail(&["tag-exists", tag.as_str()]);
        }
    }
    match name.as_str() {
        "add" => add(ctx, &options, &args, tag),
        "ping" | "eping" => ping(ctx, &name, &options, &args, tag).await,
        "svcsubmit" => svcsubmit(ctx, &options, &args, tag).await,
        "quit" => {
            ctx.ok();
            let mut state = ctx.state();
            state.quitting = true;
            state.broadcast(WATCH_WARN, "WARN SERVER quit admin-request");
            drop(state);
            ctx.quit.notify_one();
        }
        _ => match simple(ctx, &name, &args) {
            Ok(lines) => {
                for line in &lines {
                    ctx.info(line);
                }
                ctx.ok();
            }
            Err(tokens) => ctx.fail(&tokens),
        },
    }
}

/// Writes `line` until the connection closes, a batch at a time (see [`Sim::stream`]).
async fn endless(ctx: &Ctx, mut line: Vec<u8>) {
    line.push(b'\n');
    let batch = line.repeat((64 * 1024 / line.len()).max(1));
    loop {
        let (done, flushed) = oneshot::channel();
        if ctx.out.send(Out::Raw(batch.clone())).is_err()
            || ctx.out.send(Out::Flushed(done)).is_err()
        {
            return;
        }
        tokio::select! {
            written = flushed => if written.is_err() { return },
            () = ctx.closed() => return,
        }
    }
}

type Answer = Result<Vec<Vec<String>>, Vec<String>>;

fn fail<S: AsRef<str>>(tokens: &[S]) -> Vec<String> {
    tokens.iter().map(|t| t.as_ref().to_owned()).collect()
}

fn one<S: AsRef<str>>(words: &[S]) -> Vec<Vec<String>> {
    vec![fail(words)]
}

/// The commands that answer at once.
fn simple(ctx: &Ctx, name: &str, args: &[String]) -> Answer {
    let mut state = ctx.state();
    let unknown_peer = |p: &str| fail(&["unknown-peer", p]);
    let arg = |i: usize| args.get(i).map_or("", String::as_str);
    match name {
        "kill" => {
            let peer = state.peers.remove(arg(0)).ok_or_else(|| unknown_peer(arg(0)))?;
            for wait in &peer.waiting {
                wait.finish(PingEnd::PeerDied);
            }
            state.broadcast(WATCH_NOTE, &line_of("NOTE", &["KILL", arg(0)]));
            Ok(vec![])
        }
        "list" => Ok(state.peers.keys().map(|p| vec![p.clone()]).collect()),
        "addr" => {
            Ok(vec![state.peers.get(arg(0)).ok_or_else(|| unknown_peer(arg(0)))?.addr.clone()])
        }
        "ifname" => {
            Ok(one(&[&state.peers.get(arg(0)).ok_or_else(|| unknown_peer(arg(0)))?.ifname]))
        }
        "setifname" => {
            let peer = state.peers.get_mut(arg(0)).ok_or_else(|| unknown_peer(arg(0)))?;
            let old = std::mem::replace(&mut peer.ifname, arg(1).to_owned());
            state.broadcast(WATCH_NOTE, &line_of("NOTE", &["NEWIFNAME", arg(0), &old, arg(1)]));
            Ok(vec![])
        }
        "peerinfo" => {
            Ok(peer_info_lines(state.peers.get(arg(0)).ok_or_else(|| unknown_peer(arg(0)))?))
        }
        "stats" => {
            let p = state.peers.get(arg(0)).ok_or_else(|| unknown_peer(arg(0)))?;
            let out = p.packets_out;
            Ok(vec![
                fail(&[
                    "start-time=2024-05-01T12:00:00",
                    "last-packet-time=NEVER",
                    "last-keyexch-time=NEVER",
                ]),
                vec![
                    "packets-in=0".into(),
                    "bytes-in=0".into(),
                    format!("packets-out={out}"),
                    format!("bytes-out={}", out * 32),
                ],
                fail(&[
                    "keyexch-packets-in=0",
                    "keyexch-bytes-in=0",
                    "keyexch-packets-out=0",
                    "keyexch-bytes-out=0",
                ]),
                fail(&["ip-packets-in=0", "ip-bytes-in=0", "ip-packets-out=0", "ip-bytes-out=0"]),
                fail(&["rejected-packets=0"]),
            ])
        }
        "forcekx" => {
            let peer = state.peers.get_mut(arg(0)).ok_or_else(|| unknown_peer(arg(0)))?;
            peer.keyed = true;
            state.broadcast(WATCH_NOTE, &line_of("NOTE", &["KXSTART", arg(0)]));
            state.broadcast(WATCH_NOTE, &line_of("NOTE", &["KXDONE", arg(0)]));
            Ok(vec![])
        }
        "greet" => {
            state.peers.get(arg(0)).ok_or_else(|| unknown_peer(arg(0)))?;
            Ok(vec![])
        }
        "getchal" => {
            state.next_chal += 1;
            let chal = base64(format!("chal{:04}", state.next_chal).as_bytes());
            state.challenges.insert(chal.clone());
            Ok(one(&[chal]))
        }
        "checkchal" => {
            let chal = arg(0);
            if !chal.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')) {
                return Err(fail(&["bad-base64", "invalid character"]));
            }
            if state.challenges.contains(chal) {
                Ok(vec![])
            } else {
                Err(fail(&["invalid-challenge"]))
            }
        }
        "help" => Ok(COMMANDS
            .iter()
            .map(|(n, usage, _, _)| {
                std::iter::once((*n).to_owned())
                    .chain(usage.split_whitespace().map(str::to_owned))
                    .collect()
            })
            .collect()),
        "version" => Ok(one(&[IMPLEMENTATION, VERSION])),
        "servinfo" => Ok(vec![
            vec![format!("implementation={IMPLEMENTATION}"), format!("version={VERSION}")],
            vec![format!("daemon={}", bool_word(state.daemon))],
        ]),
        "algs" => {
            if !args.is_empty() && !state.peers.contains_key(arg(0)) {
                return Err(unknown_peer(arg(0)));
            }
            Ok(vec![
                fail(&["kx-group=ec", "kx-group-order-bits=256", "kx-group-elt-bits=512"]),
                fail(&["hash=sha256", "mgf=sha256-mgf", "hash-sz=32"]),
                fail(&[
                    "cipher=rijndael-cbc",
                    "cipher-keysz=32",
                    "cipher-blksz=16",
                    "cipher-data-limit=67108864",
                ]),
                fail(&["mac=sha256-hmac", "mac-keysz=32", "mac-tagsz=16"]),
            ])
        }
        "port" => match args.first().map(String::as_str) {
            None | Some("INET" | "INET6") => Ok(one(&["4070"])),
            Some(family) => Err(fail(&["unknown-family", family])),
        },
        "tunnels" => Ok(vec![fail(&["linux"]), fail(&["slip"])]),
        "daemon" => {
            if state.daemon {
                return Err(fail(&["already-daemon"]));
            }
            state.daemon = true;
            state.broadcast(WATCH_NOTE, "NOTE DAEMON");
            Ok(vec![])
        }
        "reload" => Ok(vec![]),
        "trace" => {
            let bit = |_: char, i: usize| 1u32 << i;
            match args.first() {
                None => Ok(selector_listing(TRACE_SELECTORS, bit, state.trace_mask)),
                Some(spec) => {
                    state.trace_mask =
                        apply_selectors(spec, TRACE_SELECTORS, bit, state.trace_mask)
                            .map_err(|c| fail(&["bad-trace-option", &c.to_string()]))?;
                    Ok(vec![])
                }
            }
        }
        "watch" => {
            let bit = |c: char, _: usize| watch_bit(c);
            let conn = state.conns.get_mut(&ctx.id).ok_or_else(|| fail(&["connection-gone"]))?;
            match args.first() {
                None => Ok(selector_listing(WATCH_SELECTORS, bit, u32::from(conn.watch))),
                Some(spec) => {
                    let mask = apply_selectors(spec, WATCH_SELECTORS, bit, u32::from(conn.watch))
                        .map_err(|c| fail(&["bad-watch-option", &c.to_string()]))?;
                    conn.watch = u8::try_from(mask).unwrap_or(0);
                    Ok(vec![])
                }
            }
        }
        "notify" => {
            state.broadcast(WATCH_NOTE, &line_of("NOTE", &[&["USER".to_owned()], args].concat()));
            Ok(vec![])
        }
        "warn" => {
            state.broadcast(WATCH_WARN, &line_of("WARN", &[&["USER".to_owned()], args].concat()));
            Ok(vec![])
        }
        "bgcancel" => {
            let conn = state.conns.get_mut(&ctx.id).ok_or_else(|| fail(&["connection-gone"]))?;
            let job = conn.jobs.remove(arg(0)).ok_or_else(|| fail(&["unknown-tag", arg(0)]))?;
            if let Some(abort) = &job.abort {
                abort.abort();
            }
            if let Some(jid) = job.svc_jobid {
                if let Some(svc_job) = state.svc_jobs.remove(&jid) {
                    state.send(svc_job.provider, &format!("SVCCANCEL {}", server_quote(&jid)));
                }
            }
            Ok(vec![])
        }
        "jobs" => {
            let conn = state.conns.get(&ctx.id).ok_or_else(|| fail(&["connection-gone"]))?;
            Ok(conn.jobs.keys().map(|t| vec![t.clone()]).collect())
        }
        "svcclaim" => {
            let (svc, version) = (arg(0), arg(1));
            let key = svc.to_lowercase();
            if let Some(existing) = state.services.get(&key) {
                if version_cmp(&existing.version, version).is_ge() {
                    return Err(fail(&["service-exists", &existing.name, &existing.version]));
                }
                if existing.provider != ctx.id {
                    state.send(existing.provider, &line_of("SVCCLAIM", &[&existing.name, version]));
                }
            }
            state.services.insert(
                key,
                SvcEntry { name: svc.to_owned(), version: version.to_owned(), provider: ctx.id },
            );
            state.broadcast(WATCH_NOTE, &line_of("NOTE", &["SVCCLAIM", svc, version]));
            Ok(vec![])
        }
        "svcrelease" => {
            let key = arg(0).to_lowercase();
            let svc = state.services.get(&key).ok_or_else(|| fail(&["unknown-service", arg(0)]))?;
            if svc.provider != ctx.id {
                return Err(fail(&["not-service-provider", arg(0)]));
            }
            let svc = state.services.remove(&key).expect("checked above");
            state.broadcast(WATCH_NOTE, &line_of("NOTE", &["SVCRELEASE", svc.name.as_str()]));
            Ok(vec![])
        }
        "svcensure" => {
            let svc = state
                .services
                .get(&arg(0).to_lowercase())
                .ok_or_else(|| fail(&["unknown-service", arg(0)]))?;
            if args.len() == 2 && version_cmp(&svc.version, arg(1)).is_lt() {
                return Err(fail(&["service-too-old", &svc.name, &svc.version]));
            }
            Ok(vec![])
        }
        "svcquery" => {
            let svc = state
                .services
                .get(&arg(0).to_lowercase())
                .ok_or_else(|| fail(&["unknown-service", arg(0)]))?;
            Ok(vec![vec![format!("name={}", svc.name), format!("version={}", svc.version)]])
        }
        "svclist" => {
            Ok(state.services.values().map(|s| vec![s.name.clone(), s.version.clone()]).collect())
        }
        "svcinfo" | "svcok" | "svcfail" => {
            let jid = arg(0);
            let owned = state.svc_jobs.get(jid).is_some_and(|j| j.provider == ctx.id);
            if !owned {
                return Err(fail(&["unknown-jobid", jid]));
            }
            let relay = match name {
                "svcinfo" => Relay::Info(args[1..].to_vec()),
                "svcok" => Relay::Ok,
                _ => Relay::Fail(args[1..].to_vec()),
            };
            let job = if name == "svcinfo" {
                state.svc_jobs.get(jid).map(|j| j.relay.clone())
            } else {
                state.svc_jobs.remove(jid).map(|j| j.relay)
            };
            if let Some(relay_tx) = job {
                let _ = relay_tx.send(relay);
            }
            Ok(vec![])
        }
        other => Err(fail(&["unknown-command", other])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_set_and_clear_as_the_server_does() {
        assert_eq!(apply_selectors("-A+w", WATCH_SELECTORS, |c, _| watch_bit(c), 7), Ok(1));
        assert_eq!(apply_selectors("nw", WATCH_SELECTORS, |c, _| watch_bit(c), 4), Ok(3));
        assert_eq!(apply_selectors("+t", WATCH_SELECTORS, |c, _| watch_bit(c), 1), Ok(5));
        assert_eq!(apply_selectors("+q", WATCH_SELECTORS, |c, _| watch_bit(c), 1), Err('q'));
    }
}
