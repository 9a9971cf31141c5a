//! `Guard`: refused in a process with other threads (its `fork` would be unsound there).
//! What it does when its process dies is tested through `ave run`, a single-threaded
//! program (`ave-cli` tests `sigkill_of_ave_run_*`).

use std::sync::mpsc;

use ave_cmd::Guard;

#[test]
fn a_guard_is_refused_while_other_threads_run() {
    let (stop, wait) = mpsc::channel::<()>();
    let other = std::thread::spawn(move || wait.recv());
    let error = Guard::start().unwrap_err();
    assert!(error.to_string().contains("one thread"), "{error}");
    drop(stop);
    let _ = other.join();
}
