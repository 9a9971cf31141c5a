//! The original's `connection` tests (t01-t10) on `BlockingConnection`, and the
//! cancellation safety of the async `Connection`.

use std::{
    net::SocketAddr,
    sync::mpsc,
    time::{Duration, Instant},
};

use ave_network::{
    Address,
    connection::{
        BlockingConnection, Connection, LOCALHOST, Readiness, bind, find_free_port,
        set_buffer_sizes,
    },
};

use crate::T;

fn listener() -> (std::net::TcpListener, Address) {
    let listener = bind(SocketAddr::new(LOCALHOST, 0)).unwrap();
    let address = Address::from(listener.local_addr().unwrap());
    (listener, address)
}

#[test]
fn t01_refused_without_optimism() {
    let bound = find_free_port(LOCALHOST, false).unwrap();
    let address = Address::new("127.0.0.1", bound.port());
    let err = BlockingConnection::connect(&address, None, false).unwrap_err();
    assert!(err.is_refused(), "{err}");
    assert_eq!(err.to_string(), "connection refused");
}

#[test]
fn t02_optimist_times_out() {
    let bound = find_free_port(LOCALHOST, false).unwrap();
    let address = Address::new("127.0.0.1", bound.port());
    let started = Instant::now();
    let err =
        BlockingConnection::connect(&address, Some(Duration::from_millis(500)), true).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.to_string(), "connection attempt timed out");
    // It retried until the deadline instead of failing at the first refusal.
    assert!(started.elapsed() >= Duration::from_millis(450), "{:?}", started.elapsed());
}

#[test]
fn t03_message_survives_the_peer_closing() {
    let (listener, address) = listener();
    let peer = std::thread::spawn(move || {
        let mut conn = BlockingConnection::accept(&listener, Some(Duration::from_secs(2))).unwrap();
        conn.put(b"test the connection", T).unwrap();
        conn.close();
    });
    let mut conn = BlockingConnection::connect(&address, T, false).unwrap();
    peer.join().unwrap();
    assert_eq!(conn.get(Some(Duration::from_secs(1))).unwrap(), b"test the connection");
}

#[test]
fn t04_optimist_waits_for_a_late_listener() {
    let bound = find_free_port(LOCALHOST, false).unwrap();
    let address = Address::new("127.0.0.1", bound.port());
    let (started_tx, started_rx) = mpsc::channel();
    let client = std::thread::spawn(move || {
        started_tx.send(()).unwrap();
        let mut conn = BlockingConnection::connect(&address, Some(Duration::from_secs(3)), true)?;
        conn.get(Some(Duration::from_secs(1)))
    });
    started_rx.recv().unwrap();
    // The scenario is a peer that starts listening late: this pause is the lateness, not a
    // synchronisation (the client retries on its own).
    std::thread::sleep(Duration::from_millis(300));
    let listener = bound.into_listener().unwrap();
    let mut conn = BlockingConnection::accept(&listener, T).unwrap();
    conn.put(b"test the connection", T).unwrap();
    assert_eq!(client.join().unwrap().unwrap(), b"test the connection");
}

#[test]
fn t05_nothing_to_accept() {
    let (listener, _) = listener();
    let err = BlockingConnection::accept(&listener, Some(Duration::from_millis(300))).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.to_string(), "nothing to accept");
}

#[test]
fn t06_accept_a_connection() {
    let (listener, address) = listener();
    let client = std::thread::spawn(move || {
        let mut conn = BlockingConnection::connect(&address, T, false).unwrap();
        conn.put(b"test the connection", T).unwrap();
        conn
    });
    let mut conn = BlockingConnection::accept(&listener, Some(Duration::from_secs(3))).unwrap();
    assert_eq!(conn.get(Some(Duration::from_secs(1))).unwrap(), b"test the connection");
    drop(client.join().unwrap());
}

#[test]
fn t07_write_timeout_keeps_the_stream_in_step() {
    let (listener, address) = listener();
    set_buffer_sizes(&listener, 16 * 1024, 16 * 1024).unwrap();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        let mut conn = BlockingConnection::accept(&listener, T).unwrap();
        let head = conn.read(104, T).unwrap();
        // Wait until the client's put has timed out, then answer with what was read.
        done_rx.recv().unwrap();
        conn.put(&head[4..], T).unwrap();
        conn
    });
    let mut conn = BlockingConnection::connect(&address, T, false).unwrap();
    set_buffer_sizes(conn.stream(), 16 * 1024, 16 * 1024).unwrap();
    let payload = vec![b'x'; 10_000_000];
    let err = conn.put(&payload, Some(Duration::from_millis(50))).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.to_string(), "write attempt timed out");
    done_tx.send(()).unwrap();
    assert_eq!(conn.get(T).unwrap(), vec![b'x'; 100]);
    drop(peer.join().unwrap());
}

#[test]
fn t08_puts_to_a_peer_that_never_accepts() {
    // The original accepts either outcome: a timeout once the buffers are full, or none
    // (Linux keeps queueing small segments for a connection that is not accepted yet).
    // Any other error fails, and no put may outlast its own deadline.
    let (_listener, address) = listener();
    let mut conn = BlockingConnection::connect(&address, T, false).unwrap();
    set_buffer_sizes(conn.stream(), 4096, 4096).unwrap();
    let timeout = Duration::from_millis(200);
    let started = Instant::now();
    for _ in 0..100_000 {
        let put = Instant::now();
        match conn.put(b"message is hello", Some(timeout)) {
            Ok(()) => {}
            Err(e) => {
                assert!(e.is_timeout(), "{e}");
                break;
            }
        }
        assert!(put.elapsed() < timeout + Duration::from_millis(300), "{:?}", put.elapsed());
        if started.elapsed() > Duration::from_secs(2) {
            break;
        }
    }
}

fn raw_peer(close: bool) -> (Address, mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (listener, address) = listener();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        let mut conn = BlockingConnection::accept(&listener, T).unwrap();
        conn.write(&[7u8; 100], T).unwrap();
        if close {
            conn.close();
        } else {
            let _ = release_rx.recv();
        }
    });
    (address, release_tx, peer)
}

#[test]
fn t09_short_read_times_out_on_an_open_connection() {
    let (address, release, peer) = raw_peer(false);
    let mut conn = BlockingConnection::connect(&address, T, false).unwrap();
    let err = conn.read(101, Some(Duration::from_millis(500))).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // Nothing was lost: the 100 bytes are still there.
    assert_eq!(conn.read(100, T).unwrap(), vec![7u8; 100]);
    release.send(()).unwrap();
    peer.join().unwrap();
}

#[test]
fn t10_short_read_on_a_closed_connection() {
    let (address, _release, peer) = raw_peer(true);
    let mut conn = BlockingConnection::connect(&address, T, false).unwrap();
    peer.join().unwrap();
    let err = conn.read(101, Some(Duration::from_secs(1))).unwrap_err();
    assert!(err.is_closed(), "{err}");
}

#[test]
fn a_get_that_times_out_mid_frame_resumes() {
    let (listener, address) = listener();
    let (next_tx, next_rx) = mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        let mut conn = BlockingConnection::accept(&listener, T).unwrap();
        conn.write(b"\0\0\0\x05he", T).unwrap();
        next_rx.recv().unwrap();
        conn.write(b"llo", T).unwrap();
        conn
    });
    let mut conn = BlockingConnection::connect(&address, T, false).unwrap();
    assert!(conn.get(Some(Duration::from_millis(200))).unwrap_err().is_timeout());
    next_tx.send(()).unwrap();
    assert_eq!(conn.get(T).unwrap(), b"hello");
    drop(peer.join().unwrap());
}

#[tokio::test]
async fn async_reads_are_cancellation_safe() {
    let listener = tokio::net::TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let address = Address::from(listener.local_addr().unwrap());
    let (next_tx, mut next_rx) = tokio::sync::mpsc::channel::<()>(1);
    let peer = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut conn = Connection::from_tokio(stream).unwrap();
        conn.queue(b"first").unwrap();
        let mut bytes = Vec::new();
        ave_network::wire::frame::encode(b"second", &mut bytes).unwrap();
        // Half of the second frame now, the rest later.
        conn.flush().await.unwrap();
        use tokio::io::AsyncWriteExt;
        let (head, tail) = bytes.split_at(5);
        let mut parts = conn.into_parts().unwrap();
        std::io::Write::write_all(&mut parts.stream, head).unwrap();
        next_rx.recv().await.unwrap();
        let mut stream = tokio::net::TcpStream::from_std(parts.stream).unwrap();
        stream.write_all(tail).await.unwrap();
        stream
    });
    let mut conn = Connection::connect(&address, T, false).await.unwrap();
    assert_eq!(conn.read_frame().await.unwrap(), b"first");
    let early = tokio::time::timeout(Duration::from_millis(200), conn.read_frame()).await;
    assert!(early.is_err(), "the second frame cannot be complete yet");
    next_tx.send(()).await.unwrap();
    assert_eq!(conn.read_frame().await.unwrap(), b"second");
    drop(peer.await.unwrap());
}

#[tokio::test]
async fn async_connect_refused_and_optimist() {
    let bound = find_free_port(LOCALHOST, false).unwrap();
    let address = Address::new("", bound.port());
    let err = Connection::connect(&address, None, false).await.unwrap_err();
    assert!(err.is_refused(), "{err}");
    let err =
        Connection::connect(&address, Some(Duration::from_millis(300)), true).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
}

#[test]
fn poll_waits_for_input_and_reports_it() {
    let (listener, address) = listener();
    let (tx, rx) = mpsc::channel();
    let peer = std::thread::spawn(move || {
        let mut conn = BlockingConnection::accept(&listener, T).unwrap();
        // Two frames in one write: the second stays buffered in the client after a get.
        conn.write(b"\0\0\0\x01a\0\0\0\x01b", T).unwrap();
        rx.recv().unwrap();
        conn.close();
    });
    let mut conn = BlockingConnection::connect(&address, T, false).unwrap();
    assert_eq!(conn.get(T).unwrap(), b"a");
    // Nothing on the socket, but a whole frame in the connection: readable at once.
    let ready = conn.poll(Readiness::READ, Some(Duration::ZERO)).unwrap();
    assert_eq!(ready, Some(Readiness::READ));
    assert_eq!(conn.get(T).unwrap(), b"b");
    // Now nothing at all: the wait runs out and says so.
    assert_eq!(conn.poll(Readiness::READ, Some(Duration::from_millis(50))).unwrap(), None);
    // Writing is possible at once.
    let ready = conn.poll(Readiness::WRITE, T).unwrap().unwrap();
    assert!(ready.writable && !ready.readable, "{ready:?}");
    // The peer closes: readable, and the next read says it is closed.
    tx.send(()).unwrap();
    let ready = conn.poll(Readiness::READ, T).unwrap().unwrap();
    assert!(ready.readable, "{ready:?}");
    assert!(conn.get(T).unwrap_err().is_closed());
    peer.join().unwrap();
}
