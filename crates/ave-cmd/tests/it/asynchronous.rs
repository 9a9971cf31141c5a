//! The async API inside tokio: the runtime is never blocked, dropping ends the session.

use std::{
    future::Future,
    io::{self, Write},
    sync::mpsc,
    time::Duration,
};

use ave_cmd::{Error, ExitStatus, Options, run_async, run_bg};

use crate::{TempDir, alive, first_number, lines, live_in_session, shared};

fn runtime(threads: usize) -> tokio::runtime::Runtime {
    if threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .unwrap()
    }
}

#[test]
fn run_async_gives_the_same_results_as_run() {
    let _guard = shared();
    runtime(1).block_on(async {
        let out = run_async(["sh", "-c", "echo out; echo err >&2; exit 3"], &Options::new())
            .await
            .unwrap();
        assert_eq!(out.status, ExitStatus::Exited(3));
        assert_eq!(out.output, b"out\r\nerr\r\n");
        let error = run_async("this-program-does-not-exist", &Options::new()).await.unwrap_err();
        assert!(error.is_not_found());
    });
}

/// Many commands at once on a single-threaded runtime. None of them can finish before
/// all of them have delivered their first line to their sinks, because the test creates
/// the file they wait for only then: if collecting one command blocked the runtime, the
/// others could not deliver, and the runs would end in timeouts instead.
#[test]
fn commands_run_concurrently_without_blocking_the_runtime() {
    let _guard = shared();
    let dir = TempDir::new("cmd");
    let go = dir.path().join("go");
    let script =
        format!("echo $$; while [ ! -e {} ]; do sleep 0.01; done; echo done", go.display());
    runtime(1).block_on(async {
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let options = Options::new().timeout(Duration::from_secs(20)).output(Chunks(tx));
        let runs: Vec<_> =
            (0..20).map(|_| tokio::spawn(run_async(["sh", "-c", &script], &options))).collect();
        drop(options);
        tokio::task::spawn_blocking(move || {
            let mut newlines = 0;
            while newlines < 20 {
                newlines += rx.recv().unwrap().iter().filter(|&&b| b == b'\n').count();
            }
        })
        .await
        .unwrap();
        std::fs::write(&go, "").unwrap();
        for run in runs {
            let out = run.await.unwrap().unwrap();
            assert_eq!(out.status, ExitStatus::Exited(0));
            assert!(lines(&out.output).ends_with("\ndone\n"), "{:?}", out.text());
        }
    });
}

#[test]
fn async_timeout_ends_the_session() {
    let _guard = shared();
    runtime(2).block_on(async {
        let options = Options::new().timeout(Duration::from_millis(300));
        let mut bg = run_bg(["sh", "-c", "echo $$; sleep 1000 & sleep 1000"], &options).unwrap();
        // The session id, read before the timeout is waited for.
        let mut first = Vec::new();
        let mut buf = [0; 64];
        while !first.contains(&b'\n') {
            let n = bg.read_async(&mut buf).await.unwrap();
            assert!(n > 0);
            first.extend_from_slice(&buf[..n]);
        }
        let sid = first_number(&first);
        let error = bg.output_async().await.unwrap_err();
        let Error::Timeout { status, .. } = &error else { panic!("{error:?}") };
        assert_eq!(*status, ExitStatus::Signaled(libc::SIGTERM));
        assert_eq!(live_in_session(sid), Vec::<i32>::new());
    });
}

/// A writer that sends every chunk over a channel.
struct Chunks(mpsc::Sender<Vec<u8>>);

impl Write for Chunks {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let _ = self.0.send(data.to_vec());
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn dropping_the_future_kills_the_session() {
    let _guard = shared();
    runtime(2).block_on(async {
        let (tx, rx) = mpsc::channel();
        let options = Options::new().output(Chunks(tx));
        let script = "sleep 1000 & echo $$; exec sleep 1000";
        let task = tokio::spawn(run_async(["sh", "-c", script], &options));
        let first = tokio::task::spawn_blocking(move || rx.recv().unwrap()).await.unwrap();
        let sid = first_number(&first);
        assert_eq!(live_in_session(sid).len(), 2);
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        assert_eq!(live_in_session(sid), Vec::<i32>::new());
        assert!(!alive(sid));
    });
}

#[test]
fn background_reads_writes_and_waits_asynchronously() {
    let _guard = shared();
    runtime(1).block_on(async {
        let mut bg = run_bg("head -n 1", &Options::new()).unwrap();
        assert_eq!(bg.write_async(b"ping\n").await.unwrap(), 5);
        let mut text = Vec::new();
        let mut buf = [0; 64];
        loop {
            let n = bg.read_async(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            text.extend_from_slice(&buf[..n]);
        }
        assert_eq!(text, b"ping\r\nping\r\n");
        assert_eq!(bg.wait_async().await.unwrap(), ExitStatus::Exited(0));

        let mut bg = run_bg(["sh", "-c", "sleep 1000 & sleep 1000"], &Options::new()).unwrap();
        let sid = bg.pid().as_u32() as i32;
        assert_eq!(bg.kill_async().await.unwrap(), ExitStatus::Signaled(libc::SIGTERM));
        assert_eq!(live_in_session(sid), Vec::<i32>::new());

        let bg = run_bg(["sh", "-c", "echo async; exit 9"], &Options::new()).unwrap();
        let out = bg.output_async().await.unwrap();
        assert_eq!((out.status, out.output), (ExitStatus::Exited(9), b"async\r\n".to_vec()));
    });
}

#[test]
fn the_async_api_outside_a_runtime_is_an_error_not_a_panic() {
    let _guard = shared();
    let mut bg = run_bg("cat", &Options::new()).unwrap();
    // Polling a future by hand, with no runtime around.
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut buf = [0; 8];
    let mut read = std::pin::pin!(bg.read_async(&mut buf));
    match read.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Err(error)) => assert!(error.to_string().contains("tokio")),
        other => panic!("{other:?}"),
    }
}

/// The async loop too: a flooded terminal hides neither the timeout nor the exit.
#[test]
fn flooding_output_does_not_hide_the_timeout_or_the_exit_async() {
    let _guard = shared();
    runtime(1).block_on(async {
        let options = Options::new().keep_output(false).timeout(Duration::from_millis(200));
        assert!(matches!(run_async("yes", &options).await, Err(Error::Timeout { .. })));
        let options = Options::new().keep_output(false).timeout(Duration::from_secs(30));
        let out = run_async(["sh", "-c", "trap '' HUP; yes & exit 6"], &options).await.unwrap();
        assert_eq!(out.status, ExitStatus::Exited(6));
    });
}
