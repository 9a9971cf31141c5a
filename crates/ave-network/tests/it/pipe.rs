//! `Pipe` (the original's pipe t01, and the read-loop bugs of spec 13.17): framed JSON
//! over a real pipe, between threads and with an independent Python 3 peer. Nothing here
//! forks.

use std::{
    os::fd::OwnedFd,
    process::Stdio,
    time::{Duration, Instant},
};

use ave_network::{Error, process::Pipe};
use serde_json::{Value, json};

use crate::{T, python3};

fn raw_write(pipe: &Pipe, bytes: &[u8]) {
    let writer = pipe.writer_fd().expect("a write end");
    let mut sent = 0;
    while sent < bytes.len() {
        sent += nix::unistd::write(writer, &bytes[sent..]).expect("write");
    }
}

#[test]
fn a_frame_is_read_at_once_and_then_the_pipe_times_out_at_once() {
    // pipe t01.
    let mut pipe = Pipe::new().unwrap();
    pipe.put(&"hello").unwrap();
    assert!(!pipe.empty());
    assert_eq!(pipe.get(Some(Duration::ZERO)).unwrap(), "hello");
    assert!(pipe.empty());
    let started = Instant::now();
    let e = pipe.get(Some(Duration::ZERO)).unwrap_err();
    assert!(e.is_timeout(), "{e:?}");
    assert_eq!(e.to_string(), "timed out");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn reads_never_eat_into_the_next_frame() {
    let mut pipe = Pipe::new().unwrap();
    // Two frames in one write.
    let mut bytes = Vec::new();
    for payload in [&b"\"first\""[..], b"[2]"] {
        bytes.extend((payload.len() as u32).to_be_bytes());
        bytes.extend(payload);
    }
    raw_write(&pipe, &bytes);
    assert_eq!(pipe.get(T).unwrap(), "first");
    assert!(!pipe.empty(), "the second frame was consumed with the first");
    assert_eq!(pipe.get(T).unwrap(), json!([2]));
}

#[test]
fn a_partial_frame_survives_a_timeout() {
    let mut pipe = Pipe::new().unwrap();
    let payload = br#"{"key": "value"}"#;
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend(payload);
    // Half a header, then half the body: each get times out and keeps what arrived.
    raw_write(&pipe, &frame[..2]);
    assert!(pipe.get(Some(Duration::from_millis(10))).unwrap_err().is_timeout());
    raw_write(&pipe, &frame[2..10]);
    assert!(pipe.get(Some(Duration::ZERO)).unwrap_err().is_timeout());
    raw_write(&pipe, &frame[10..]);
    assert_eq!(pipe.get(Some(Duration::ZERO)).unwrap(), json!({"key": "value"}));
}

#[test]
fn frames_larger_than_the_pipe_buffer_go_through_whole() {
    let (mut reader, writer) = Pipe::new().unwrap().split();
    let big: String = (0..(3 << 20)).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let sent = big.clone();
    let thread = std::thread::spawn(move || {
        writer.put(&sent).unwrap();
        for i in 0..1000 {
            writer.put(&i).unwrap();
        }
    });
    assert_eq!(reader.get(T).unwrap(), Value::String(big));
    for i in 0..1000 {
        assert_eq!(reader.get(T).unwrap(), i);
    }
    thread.join().unwrap();
    // The writer is gone: the end of the stream.
    let e = reader.get(T).unwrap_err();
    assert!(e.is_closed(), "{e:?}");
    assert_eq!(e.to_string(), "connection closed");
}

#[test]
fn data_still_in_the_pipe_is_delivered_after_a_hang_up() {
    let (mut reader, writer) = Pipe::new().unwrap().split();
    for i in 0..3 {
        writer.put(&json!({"n": i})).unwrap();
    }
    drop(writer);
    for i in 0..3 {
        assert_eq!(reader.get(Some(Duration::ZERO)).unwrap(), json!({"n": i}));
    }
    assert!(reader.get(Some(Duration::ZERO)).unwrap_err().is_closed());
}

#[test]
fn oversized_frames_and_garbage_are_errors() {
    let mut pipe = Pipe::new().unwrap();
    pipe.set_max_frame(10);
    raw_write(&pipe, &[0, 0, 0, 100]);
    let e = pipe.get(T).unwrap_err();
    assert!(matches!(e, Error::FrameTooLarge { len: 100, max: 10 }), "{e:?}");

    let mut pipe = Pipe::new().unwrap();
    raw_write(&pipe, &[0, 0, 0, 3, b'{', b'{', b'{']);
    let e = pipe.get(T).unwrap_err();
    assert!(e.to_string().starts_with("the pipe carried invalid JSON"), "{e}");
}

#[test]
fn writing_to_a_pipe_nobody_reads_is_connection_closed() {
    let (reader, writer) = Pipe::new().unwrap().split();
    drop(reader);
    assert!(writer.put(&1).unwrap_err().is_closed());
    let mut pipe = Pipe::new().unwrap();
    pipe.close_writer();
    assert!(pipe.put(&1).unwrap_err().is_closed());
    pipe.close_reader();
    assert!(pipe.get(T).unwrap_err().is_closed());
    assert!(pipe.empty());
}

#[test]
fn a_python_peer_reads_our_frames_and_writes_its_own() {
    // The original's framing, written from the spec by an independent peer: it echoes
    // each frame it reads with the JSON value wrapped in a list.
    let peer = r#"
import json, struct, sys
inp, out = sys.stdin.buffer, sys.stdout.buffer
while True:
    header = inp.read(4)
    if len(header) < 4:
        break
    body = inp.read(struct.unpack('>I', header)[0])
    reply = json.dumps([json.loads(body)]).encode()
    out.write(struct.pack('>I', len(reply)) + reply)
    out.flush()
"#;
    let mut child = python3()
        .args(["-c", peer])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the Python peer");
    let to_peer = Pipe::from_fds(None, Some(OwnedFd::from(child.stdin.take().unwrap())));
    let mut from_peer = Pipe::from_fds(Some(OwnedFd::from(child.stdout.take().unwrap())), None);
    let values = [json!("hello"), json!({"ü": [1, 2.5, null, true]}), json!("x".repeat(200_000))];
    for value in &values {
        to_peer.put(value).unwrap();
        assert_eq!(from_peer.get(T).unwrap(), json!([value]));
    }
    drop(to_peer);
    assert!(from_peer.get(T).unwrap_err().is_closed());
    assert!(child.wait().unwrap().success());
}
