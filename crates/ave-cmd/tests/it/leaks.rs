//! Every way a run can end leaves no descriptor, pty or zombie behind.

use std::{io::Read, time::Duration};

use ave_cmd::{Options, run, run_async, run_bg};

use crate::{children, exclusive, open_fds};

#[test]
fn no_way_of_ending_a_run_leaks() {
    let _guard = exclusive();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // The runtime's own descriptors are counted in the baseline.
    let fds = open_fds();
    let quick = Options::new().timeout(Duration::from_millis(50)).kill_grace(Duration::ZERO);
    for _ in 0..20 {
        // Timeouts, blocking and async.
        run("sleep 10", &quick).unwrap_err();
        rt.block_on(run_async("sleep 10", &quick)).unwrap_err();
        // Kill, wait, drop while running, drop after reading everything.
        run_bg("sleep 10", &Options::new()).unwrap().kill().unwrap();
        run_bg("true", &Options::new()).unwrap().wait().unwrap();
        drop(run_bg("sleep 10", &Options::new()).unwrap());
        let mut bg = run_bg("echo x", &Options::new()).unwrap();
        bg.read_to_end(&mut Vec::new()).unwrap();
        drop(bg);
        // Async reads register the descriptors with the runtime; dropping deregisters.
        rt.block_on(async {
            let mut bg = run_bg("echo y", &Options::new()).unwrap();
            while bg.read_async(&mut [0; 64]).await.unwrap() > 0 {}
            bg.wait_async().await.unwrap();
        });
        // A sink that fails.
        let _ = run(
            "yes",
            &Options::new()
                .output(std::io::sink())
                .keep_output(false)
                .timeout(Duration::from_millis(20)),
        );
    }
    assert_eq!(open_fds(), fds);
    assert_eq!(children(), Vec::<i32>::new());
}
