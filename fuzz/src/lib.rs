//! The bodies of the fuzz targets: one public function per target, taking the fuzzer's
//! bytes and panicking on a broken invariant.
//!
//! Each function is called by its `fuzz_target!` (`fuzz_targets/<name>.rs`, nightly, with
//! libFuzzer) and by the stable replay of the checked-in corpus (`tests/corpus.rs`, every
//! file of `corpus/<name>/`). Structured input is read with `arbitrary`, so a corpus file
//! means the same thing to both.
//!
//! | target | what it checks |
//! | --- | --- |
//! | `frame` | the frame decoder against a plain oracle, fed in arbitrary pieces; bounded reservations |
//! | `handshake` | challenges, answers and key matching never panic; the right key always matches |
//! | `json` | the Python 2 dialect parser; whatever parses is written as ASCII and reads back the same |
//! | `dispatch` | request validation (the original's order and texts) never panics; echoes stay short |
//! | `handover` | the handover channel's message parser never panics, never buffers beyond its bound |
//! | `tripe_words` | the TrIPE word splitter; quoting and splitting are inverse |
//! | `tripe_line` | the TrIPE server-line parser; `INFO` lines give back their words |

use arbitrary::Unstructured;
use ave_network::wire::{
    frame::{FrameBuffer, HEADER_LEN, encode},
    handshake::{self, DigestPolicy, Keys, SALT_LEN},
    json,
};
use ave_tripe::{ServerMessage, join_words, split_words};

/// Every target, by name, as `cargo xtask fuzz` and the replay know them.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("dispatch", dispatch),
    ("frame", frame),
    ("handshake", handshake),
    ("json", json),
    ("handover", handover),
    ("tripe_words", tripe_words),
    ("tripe_line", tripe_line),
];

/// The frame decoder: a stream of bytes, fed in pieces of arbitrary sizes (some through
/// `extend`, some through `read_target`), gives exactly the frames a plain decoder finds,
/// refuses the first header above the limit, and never reserves far beyond what arrived.
pub fn frame(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let max = usize::from(u.int_in_range(0u16..=4096).unwrap_or(64));
    let stream: Vec<u8> = u.arbitrary().unwrap_or_default();
    let expected = oracle(&stream, max);

    let mut fb = FrameBuffer::new(max);
    let mut got = Vec::new();
    let mut refused = false;
    let mut fed = 0;
    while fed < stream.len() && !refused {
        let n = usize::from(u.int_in_range(1u8..=64).unwrap_or(1)).min(stream.len() - fed);
        let piece = &stream[fed..fed + n];
        if u.arbitrary::<bool>().unwrap_or(false) {
            fb.extend(piece);
        } else {
            let target = fb.read_target();
            let spare = target.capacity() - target.len();
            // Reservations follow the data: at most a large read chunk ahead of it.
            assert!(spare <= 2 * 1024 * 1024 + HEADER_LEN, "reserved {spare} bytes ahead");
            target.extend_from_slice(piece);
        }
        fed += n;
        loop {
            match fb.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= max);
                    got.push(frame.to_vec());
                }
                Ok(None) => break,
                Err(_) => {
                    refused = true;
                    break;
                }
            }
        }
        // A connection handed over mid-stream resumes from its buffered bytes.
        if u.arbitrary::<bool>().unwrap_or(false) {
            let pending = std::mem::replace(&mut fb, FrameBuffer::new(max)).into_bytes();
            fb = FrameBuffer::from_bytes(pending, max);
        }
    }
    assert_eq!(got, expected.frames[..got.len().min(expected.frames.len())]);
    if refused {
        assert!(expected.refused, "a header within the limit was refused");
        assert_eq!(got.len(), expected.frames.len());
    } else {
        assert_eq!(got, expected.frames);
        assert!(!expected.refused || fed < stream.len());
    }
    // Encoding and decoding are inverse.
    let mut out = Vec::new();
    for frame in &got {
        encode(frame, &mut out).expect("small frames encode");
    }
    assert_eq!(oracle(&out, max).frames, got);
}

/// What a plain decoder finds in a stream: the complete frames, and whether it then meets
/// a header above the limit.
struct Decoded {
    frames: Vec<Vec<u8>>,
    refused: bool,
}

fn oracle(stream: &[u8], max: usize) -> Decoded {
    let mut frames = Vec::new();
    let mut at = 0;
    while stream.len() - at >= HEADER_LEN {
        let header: [u8; HEADER_LEN] = stream[at..at + HEADER_LEN].try_into().expect("4 bytes");
        let len = u32::from_be_bytes(header) as usize;
        if len > max {
            return Decoded { frames, refused: true };
        }
        let Some(payload) = stream.get(at + HEADER_LEN..at + HEADER_LEN + len) else { break };
        frames.push(payload.to_vec());
        at += HEADER_LEN + len;
    }
    Decoded { frames, refused: false }
}

/// The handshake: arbitrary challenges and answers never panic, an answer never matches a
/// key it was not computed with by chance of length, and the right key always matches.
pub fn handshake(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let policy = match u.int_in_range(0u8..=2).unwrap_or(0) {
        0 => DigestPolicy::Md5,
        1 => DigestPolicy::Any,
        _ => DigestPolicy::Sha256,
    };
    let key: Option<String> = u.arbitrary().unwrap_or_default();
    let other: Option<String> = u.arbitrary().unwrap_or_default();
    let salt: [u8; SALT_LEN] = u.arbitrary().unwrap_or_default();
    let garbage: Vec<u8> = u.arbitrary().unwrap_or_default();
    let raw_challenge: Vec<u8> = u.arbitrary().unwrap_or_default();

    let keys = Keys::new(key.as_deref()).with_account("other", other.as_deref());
    let challenge = handshake::challenge_with_salt(&salt, policy);
    let answer = handshake::respond(&challenge, key.as_deref()).expect("our own challenge");
    let matched = keys.verify(&challenge, &answer, policy);
    match (&key, &other) {
        (Some(k), _) => assert_eq!(matched.as_deref(), Some(k.as_str())),
        (None, Some(o)) if o.is_empty() => assert_eq!(matched.as_deref(), Some("")),
        (None, _) => assert_eq!(matched, None),
    }
    // Garbage of a wrong length never matches; any answer to any challenge is checked
    // without a panic.
    if garbage.len() != handshake::MD5_LEN && garbage.len() != handshake::SHA256_LEN {
        assert_eq!(keys.verify(&challenge, &garbage, policy), None);
    }
    let _ = keys.verify(&raw_challenge, &garbage, policy);
    if let Ok(answer) = handshake::respond(&raw_challenge, key.as_deref()) {
        assert!(answer.len() == handshake::MD5_LEN || answer.len() == handshake::SHA256_LEN);
        let _ = keys.verify(&raw_challenge, &answer, policy);
    }
}

/// The Python 2 JSON dialect: parsing never panics; a parsed value is written as ASCII
/// and reads back equal.
pub fn json(data: &[u8]) {
    let Ok(value) = json::parse(data) else { return };
    let text = json::to_vec(&value).expect("a parsed value encodes");
    assert!(text.is_ascii(), "non-ASCII output for {value}");
    let back = json::parse(&text).expect("our own output parses");
    assert_eq!(back, value, "{}", String::from_utf8_lossy(&text));
}

/// The TrIPE word splitter: splitting never panics, and quoting then splitting gives the
/// words back, for split text and for arbitrary words.
pub fn tripe_words(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let words = split_words(&text);
    assert_eq!(split_words(&join_words(&words)), words);
    let mut u = Unstructured::new(data);
    let words: Vec<String> = u.arbitrary().unwrap_or_default();
    assert_eq!(split_words(&join_words(&words)), words);
}

/// The TrIPE server-line parser: any line parses without a panic, and an `INFO` line made
/// from arbitrary words gives those words back.
pub fn tripe_line(data: &[u8]) {
    let _ = ServerMessage::parse(data);
    let mut u = Unstructured::new(data);
    let words: Vec<String> = u.arbitrary().unwrap_or_default();
    let line = format!("INFO {}", join_words(&words));
    assert_eq!(ServerMessage::parse(line.as_bytes()), ServerMessage::Info(words));
}

/// The handover channel's message parser: bytes a peer of the handover socket could send,
/// in pieces, never make it panic or keep more than one bounded message; a message made
/// by the same rules as the real sender parses back.
pub fn handover(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let max_body = usize::from(u.int_in_range(0u16..=1024).unwrap_or(0));
    let mut pieces = Vec::new();
    while let Ok(piece) = u.arbitrary::<&[u8]>() {
        if piece.is_empty() && u.is_empty() {
            break;
        }
        pieces.push(piece);
    }
    let _ = ave_network::handover::fuzz_parse(&pieces, max_body);
    let ready = br#"{"type":"ready"}"#;
    let mut message = (ready.len() as u32).to_be_bytes().to_vec();
    message.extend_from_slice(&0u64.to_be_bytes());
    message.extend_from_slice(ready);
    assert_eq!(ave_network::handover::fuzz_parse(&[&message], max_body).ok(), Some(1));
}

/// Request validation: any payload gets an answer without a panic, and a refusal that
/// quotes the request stays short: the fixed text, at most `max_echo` bytes of what was
/// sent (6 bytes each once escaped), and the size.
pub fn dispatch(data: &[u8]) {
    let (max_echo, payload) = match data.split_first() {
        Some((first, rest)) => (usize::from(*first) * 4, rest),
        None => (0, data),
    };
    let text = ave_network::control::fuzz_prepare(payload, max_echo);
    assert!(text.len() <= 128 + 4 * max_echo, "a refusal of {} bytes", text.len());
}
