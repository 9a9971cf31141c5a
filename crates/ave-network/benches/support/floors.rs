//! The baselines the RPC benches measure our `Control` against, shared by the round-trip
//! and the throughput bench:
//!
//! - the bare echo: a tokio server that reads a length-prefixed frame and writes it back,
//!   the floor of any framed protocol;
//! - the JSON floor: a tokio server that does only what the protocol itself forces, that
//!   is reads a length-prefixed frame, parses it with serde_json into a `Value`, looks up
//!   `method`, serializes `{"result": "pong"}` and writes one frame.
//!
//! Both are written the way a careful minimal server would be: one buffered read per
//! frame when the frame has arrived whole, buffers kept between frames, one write per
//! reply.

use serde::Serialize;
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// Which baseline a server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Floor {
    /// The bare length-prefixed echo.
    Echo,
    /// The JSON floor.
    Json,
}

/// Accepts connections and serves each on its own task until its peer goes away.
pub(crate) async fn serve(listener: TcpListener, floor: Floor) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { return };
        stream.set_nodelay(true).unwrap();
        tokio::spawn(serve_connection(stream, floor));
    }
}

/// The reply of the JSON floor.
#[derive(Serialize)]
struct Reply<'a> {
    result: &'a str,
}

async fn serve_connection(mut stream: TcpStream, floor: Floor) {
    let mut input: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut output: Vec<u8> = Vec::with_capacity(256);
    loop {
        // Every complete frame buffered, then one read for more.
        let mut start = 0;
        while let Some(len) = complete_frame(&input[start..]) {
            let payload = &input[start + 4..start + 4 + len];
            start += 4 + len;
            output.clear();
            match floor {
                Floor::Echo => {
                    output.extend_from_slice(&(len as u32).to_be_bytes());
                    output.extend_from_slice(payload);
                }
                Floor::Json => {
                    let Ok(request) = serde_json::from_slice::<Value>(payload) else { return };
                    let result = match request.get("method").and_then(Value::as_str) {
                        Some("sync_ping") => "pong",
                        _ => "no such RPC",
                    };
                    output.extend_from_slice(&[0; 4]);
                    serde_json::to_writer(&mut output, &Reply { result }).unwrap();
                    let len = (output.len() - 4) as u32;
                    output[..4].copy_from_slice(&len.to_be_bytes());
                }
            }
            if stream.write_all(&output).await.is_err() {
                return;
            }
        }
        input.drain(..start);
        if input.capacity() - input.len() < 4096 {
            input.reserve(16 * 1024);
        }
        match stream.read_buf(&mut input).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// The payload length of the frame at the start of `buf`, if the whole frame is there.
fn complete_frame(buf: &[u8]) -> Option<usize> {
    let header: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    let len = u32::from_be_bytes(header) as usize;
    (buf.len() >= 4 + len).then_some(len)
}
