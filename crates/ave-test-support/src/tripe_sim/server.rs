//! The server: the accept loop on the admin socket, and for each connection a reader (mLib's
//! line buffer: lines over 255 bytes in pieces, the one-command-at-a-time rule checked), a
//! writer (what is queued goes out in one write), the commands run in order, and the
//! cleanup when the connection ends.

#![allow(clippy::print_stderr)]

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{UnixListener, UnixStream},
    sync::{Notify, mpsc, watch},
};

use crate::tripe_sim::{
    commands::command,
    state::{Conn, Ctx, Out, Relay, Shared, WATCH_NOTE},
    words::{is_c_space, line_of, server_quote},
};

/// The longest line the server's line buffer holds; longer ones come in pieces.
const LINE_PIECE: usize = 255;

pub(super) async fn serve(
    shared: Arc<Shared>,
    listener: std::os::unix::net::UnixListener,
    socket: PathBuf,
) {
    let listener = UnixListener::from_std(listener).expect("register the listener");
    let quit = Arc::new(Notify::new());
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(connection(shared.clone(), stream, quit.clone()));
                }
                Err(error) => eprintln!("tripe-sim: accept failed: {error}"),
            },
            () = shared.stop.notified() => break,
            () = quit.notified() => break,
        }
    }
    drop(listener);
    let _ = std::fs::remove_file(&socket);
    let ids: Vec<u64> = shared.lock().conns.keys().copied().collect();
    for id in ids {
        shared.kill(id);
    }
    // Let the writers flush what is queued (they exit at their `Close`).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut changes = shared.changed.subscribe();
    while !shared.lock().conns.is_empty() {
        if tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
            break;
        }
    }
}

async fn connection(shared: Arc<Shared>, stream: UnixStream, quit: Arc<Notify>) {
    let (read, write) = stream.into_split();
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (lines_tx, mut lines_rx) = mpsc::unbounded_channel::<String>();
    let (closed_tx, closed_rx) = watch::channel(false);
    let closed_tx = Arc::new(closed_tx);
    let busy = Arc::new(AtomicBool::new(false));
    let id = {
        let mut state = shared.lock();
        let id = state.next_conn;
        state.next_conn += 1;
        state.conns.insert(
            id,
            Conn {
                out: out_tx.clone(),
                watch: 0,
                jobs: BTreeMap::new(),
                closed: closed_tx.clone(),
                reader: None,
            },
        );
        id
    };
    let writer = tokio::spawn(writer(write, out_rx));
    let reader = tokio::spawn(reader(read, lines_tx, busy.clone(), shared.clone(), id, closed_tx));
    if let Some(conn) = shared.lock().conns.get_mut(&id) {
        conn.reader = Some(reader.abort_handle());
    }
    shared.touch();
    let ctx = Ctx { shared: shared.clone(), id, out: out_tx, busy, closed: closed_rx, quit };
    while let Some(line) = lines_rx.recv().await {
        if *ctx.closed.borrow() {
            break;
        }
        command(&ctx, &line).await;
        shared.touch();
    }
    cleanup(&shared, id);
    drop(ctx);
    let _ = writer.await;
    shared.lock().conns.remove(&id);
    shared.touch();
}

async fn writer(
    mut write: tokio::net::unix::OwnedWriteHalf,
    mut out: mpsc::UnboundedReceiver<Out>,
) {
    // Everything queued when the writer wakes goes out in one write, as the server's
    // buffered output would (one syscall, one wake-up of the client, per batch).
    let mut buf = Vec::new();
    let mut items = Vec::new();
    'serve: while out.recv_many(&mut items, 256).await > 0 {
        for item in items.drain(..) {
            match item {
                Out::Line(bytes) => {
                    buf.extend_from_slice(&bytes);
                    buf.push(b'\n');
                }
                Out::Raw(bytes) => buf.extend_from_slice(&bytes),
                Out::Flushed(done) => {
                    if write.write_all(&buf).await.is_err() {
                        break 'serve;
                    }
                    buf.clear();
                    let _ = done.send(());
                }
                Out::Close => {
                    let _ = write.write_all(&buf).await;
                    buf.clear();
                    break 'serve;
                }
            }
        }
        if write.write_all(&buf).await.is_err() {
            break;
        }
        buf.clear();
    }
    let _ = write.shutdown().await;
}

async fn reader(
    mut read: tokio::net::unix::OwnedReadHalf,
    lines: mpsc::UnboundedSender<String>,
    busy: Arc<AtomicBool>,
    shared: Arc<Shared>,
    id: u64,
    closed: Arc<watch::Sender<bool>>,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    let deliver = |piece: &[u8]| {
        let piece = piece.strip_suffix(b"\r").unwrap_or(piece);
        let text = String::from_utf8_lossy(piece).into_owned();
        if text.chars().all(is_c_space) {
            return;
        }
        if busy.swap(true, Ordering::SeqCst) {
            shared.lock().violations.push((id, text.clone()));
        }
        let _ = lines.send(text);
    };
    loop {
        let n = match read.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            for piece in line[..line.len() - 1].chunks(LINE_PIECE) {
                deliver(piece);
            }
        }
        while buf.len() > LINE_PIECE {
            let piece: Vec<u8> = buf.drain(..LINE_PIECE).collect();
            deliver(&piece);
        }
    }
    let _ = closed.send(true);
}

/// The server forgets a connection: its jobs are cancelled, its services released, and the
/// jobs it provided fail for their submitters.
fn cleanup(shared: &Shared, id: u64) {
    let mut state = shared.lock();
    let Some(conn) = state.conns.get_mut(&id) else { return };
    let jobs = std::mem::take(&mut conn.jobs);
    for job in jobs.values() {
        if let Some(abort) = &job.abort {
            abort.abort();
        }
    }
    let submitted: Vec<String> = state
        .svc_jobs
        .iter()
        .filter(|(_, j)| j.submitter == id)
        .map(|(jid, _)| jid.clone())
        .collect();
    for jid in submitted {
        if let Some(job) = state.svc_jobs.remove(&jid) {
            state.send(job.provider, &format!("SVCCANCEL {}", server_quote(&jid)));
        }
    }
    let provided: Vec<String> = state
        .svc_jobs
        .iter()
        .filter(|(_, j)| j.provider == id)
        .map(|(jid, _)| jid.clone())
        .collect();
    for jid in provided {
        if let Some(job) = state.svc_jobs.remove(&jid) {
            let _ = job.relay.send(Relay::Fail(vec!["provider-failed".into()]));
        }
    }
    let services: Vec<String> =
        state.services.iter().filter(|(_, s)| s.provider == id).map(|(k, _)| k.clone()).collect();
    for key in services {
        if let Some(svc) = state.services.remove(&key) {
            state.broadcast(WATCH_NOTE, &line_of("NOTE", &["SVCRELEASE", svc.name.as_str()]));
        }
    }
    if let Some(conn) = state.conns.get_mut(&id) {
        conn.watch = 0;
        // The writer flushes what is queued, then closes the socket.
        let _ = conn.out.send(Out::Close);
        if let Some(reader) = &conn.reader {
            reader.abort();
        }
    }
}
