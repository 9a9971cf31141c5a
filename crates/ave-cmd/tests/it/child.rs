//! What the child gets: a new session with the pty as its controlling terminal and as
//! stdin, stdout and stderr; no descriptor of ours; default signal dispositions and an
//! empty signal mask.

use std::{
    fs,
    os::fd::{AsFd, AsRawFd},
};

use ave_cmd::{Options, run, run_bg};
use nix::{
    fcntl::{FcntlArg, FdFlag, fcntl},
    sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask},
};

use crate::{lines, shared};

#[test]
fn the_child_leads_a_new_session_on_the_pty() {
    let _guard = shared();
    // `$$` is the shell's pid; `ps`-free: the session and the process group come from
    // /proc; `/dev/tty` opens only for a process with a controlling terminal.
    let script = "echo $$; cut -d' ' -f6,7 /proc/$$/stat; tty; \
                  test -t 0 && test -t 1 && test -t 2 && echo tty012; \
                  exec 3</dev/tty && echo ctty";
    let bg = run_bg(["sh", "-c", script], &Options::new()).unwrap();
    let pid = bg.pid().as_u32();
    let out = lines(&bg.output().unwrap().output);
    let mut got = out.lines();
    assert_eq!(got.next().unwrap(), pid.to_string());
    // Fields 6 and 7 of stat are the session and the terminal's device number; the
    // process group (field 5) is not printed, the session equals the pid.
    let session = got.next().unwrap().split(' ').next().unwrap().to_owned();
    assert_eq!(session, pid.to_string());
    assert!(got.next().unwrap().starts_with("/dev/pts/"), "{out}");
    assert_eq!(got.next(), Some("tty012"));
    assert_eq!(got.next(), Some("ctty"));
}

#[test]
fn no_descriptor_of_the_caller_leaks_into_the_child() {
    let _guard = shared();
    // A descriptor without close-on-exec, as a careless library would open one.
    let file = fs::File::open("/proc/self/status").unwrap();
    let inheritable = nix::unistd::dup(file.as_fd()).unwrap();
    fcntl(inheritable.as_fd(), FcntlArg::F_SETFD(FdFlag::empty())).unwrap();
    let number = inheritable.as_raw_fd().to_string();
    // `ls` lists its own descriptor for the directory too (3).
    let out = run("ls /proc/self/fd", &Options::new()).unwrap();
    let fds: Vec<String> = lines(&out.output).split_whitespace().map(str::to_owned).collect();
    assert!(!fds.contains(&number), "descriptor {number} leaked: {fds:?}");
    assert_eq!(fds, ["0", "1", "2", "3"]);
}

#[test]
fn signal_dispositions_and_mask_are_reset() {
    let _guard = shared();
    // The Rust runtime ignores SIGPIPE in this process; block SIGUSR1 in this thread too.
    let mut blocked = SigSet::empty();
    blocked.add(Signal::SIGUSR1);
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&blocked), None).unwrap();
    let out = run(["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"], &Options::new());
    pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&blocked), None).unwrap();
    let text = lines(&out.unwrap().output);
    assert!(text.contains("SigBlk:\t0000000000000000"), "{text}");
    assert!(text.contains("SigIgn:\t0000000000000000"), "{text}");
}
