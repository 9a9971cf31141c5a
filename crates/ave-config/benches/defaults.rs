//! Benchmark of `create_default` against a Python 3 port of the original's
//! `ave.config.create_default` (stdlib only, written from the specification, section 8.1),
//! both writing the eight files into fresh homes under the same temporary folder.
//!
//! The peer writes each file in place with `json.dump(indent=4)`; ours writes a temporary
//! file, flushes it to disk, links it into place and flushes the folder, so a crash never
//! leaves a half-written file that a later run would skip. That durability is most of the
//! difference, so this figure has no target: it shows the price.
//!
//! Each figure is the median of several rounds, rounds alternating between ours and the
//! peer; Python times itself (no start-up counted). Prints `BENCH` lines for
//! `cargo xtask bench`.

// A bench program reports on stdout.
#![allow(clippy::print_stdout)]

use std::{path::Path, process::Command, time::Instant};

use ave_config::create_default;
use ave_test_support::TempDir;

const ROUNDS: usize = 7;
const HOMES_PER_ROUND: usize = 20;

const PEER: &str = r#"
import json, os, random, socket, sys, time

def rand_authkey():
    return ''.join(random.choice('0123456789') for _ in range(10))

def create_default(home):
    path = os.path.join(home, '.ave', 'config')
    try:
        os.makedirs(path)
    except OSError:
        pass
    host = socket.gethostname()
    files = [
        ('broker.json', {'host': host, 'port': 4000, 'stacks': [], 'remote': {}}),
        ('usbrel64.json', None),
        ('authkeys.json', {'admin': rand_authkey(), 'share': rand_authkey()}),
        ('jenkins.json', {'auth': {'<jenkins host>': {'method': None}}}),
        ('workspace.json', {'pretty': host, 'root': '~/.ave', 'jenkins': '', 'tools': {},
            'flocker': {'enable': False, 'host': '',
                'ftp': {'port': None, 'user': '', 'password': '', 'timeout': 30, 'store': ''},
                'http': {'port': None, 'doc-root': ''}},
            'proxy': '', 'wlan': {'ssid': '', 'auth': ''}, 'wifi-capable': False}),
        ('gerrit.json', {'host': '', 'port': 29418,
            'user': 'REPLACE THIS WITH THE NAME PART OF YOUR EMAIL ADDRESS'}),
        ('panotti.json', {'enabled': False, 'host': '<UPDATE>', 'port': 5984, 'db': 'panotti'}),
        ('handset.json', {'handsets': [{'model': None, 'pretty': None, 'variant': None,
            'shutdown': 0, 'boot_to_service': None, 'magic': []}]}),
    ]
    created, skipped = [], []
    for name, value in files:
        p = os.path.join(path, name)
        if os.path.exists(p):
            skipped.append(p)
            continue
        with open(p, 'w') as f:
            if value is None:
                f.write('{}')
            else:
                json.dump(value, f, indent=4)
        created.append(p)
    return created, skipped

root, rounds, per_round = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for r in range(rounds):
    t = time.perf_counter()
    for i in range(per_round):
        c, s = create_default(os.path.join(root, 'peer-%d-%d' % (r, i)))
        assert len(c) == 8
    print((time.perf_counter() - t) * 1e6 / per_round)
"#;

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn ours_round(root: &Path, round: usize) -> f64 {
    let start = Instant::now();
    for i in 0..HOMES_PER_ROUND {
        let (created, _) =
            create_default(&root.join(format!("ours-{round}-{i}"))).expect("create_default");
        assert_eq!(created.len(), 8);
    }
    start.elapsed().as_secs_f64() * 1e6 / HOMES_PER_ROUND as f64
}

fn main() {
    let dir = TempDir::new("config-bench");
    let root = dir.path();
    ours_round(root, 999);
    let ours_before: Vec<f64> = (0..ROUNDS / 2 + 1).map(|r| ours_round(root, r)).collect();
    let out = Command::new("python3")
        .args(["-c", PEER])
        .arg(root)
        .args([ROUNDS.to_string(), HOMES_PER_ROUND.to_string()])
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ours_after: Vec<f64> = (ROUNDS / 2 + 1..ROUNDS).map(|r| ours_round(root, r)).collect();
    let peer: Vec<f64> = String::from_utf8(out.stdout)
        .expect("numbers")
        .lines()
        .map(|l| l.trim().parse().expect("a number"))
        .collect();
    drop(dir);
    println!(
        "BENCH name=ave-config create_default (8 files, durable)|ours={:.0}|peer=python3 port of the original create_default (no fsync)|peer_value={:.0}|unit=us|better=lower",
        median(ours_before.into_iter().chain(ours_after).collect()),
        median(peer),
    );
}
