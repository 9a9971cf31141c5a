//! The JSON dialect of the wire: what Python 2's `json` module writes and reads.
//!
//! Python 2 peers send ASCII JSON with `\uXXXX` escapes (lone surrogates included), the
//! bare tokens `NaN`, `Infinity` and `-Infinity`, and integers of any size. [`parse`]
//! accepts all of it: non-finite numbers (and numbers Python 2 reads as infinity, such as
//! `1e999`) become `null` (a JSON value cannot hold them),
//! lone surrogates become U+FFFD, and integers beyond 64 bits are read as the nearest
//! float. Standard JSON takes the fast path; only input that fails it is rewritten.
//!
//! [`to_vec`] and [`encode_frame`] write what Python 2's `json.loads` reads: ASCII only,
//! every other character escaped, with Python's `", "` and `": "` separators.

use std::{borrow::Cow, io};

use serde::Serialize;
use serde_json::Value;

use crate::{Error, wire::frame};

/// Parses a payload in the wire's JSON dialect.
///
/// # Errors
///
/// The parser's error when the payload is not JSON even after the Python-2 tokens are
/// translated.
pub fn parse(payload: &[u8]) -> Result<Value, serde_json::Error> {
    match serde_json::from_slice(payload) {
        Ok(value) => Ok(value),
        Err(first) => match translate_python(payload) {
            Some(fixed) => serde_json::from_slice(&fixed),
            None => Err(first),
        },
    }
}

/// Rewrites the parts of Python 2's JSON that standard JSON lacks; `None` if there are
/// none (so the original parse error stands).
fn translate_python(input: &[u8]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    let mut in_string = false;
    // Copies input[from..i] unchanged when the output is in use.
    let push = |out: &mut Option<Vec<u8>>, bytes: &[u8]| {
        if let Some(o) = out.as_mut() {
            o.extend_from_slice(bytes);
        }
    };
    let start_output = |out: &mut Option<Vec<u8>>, upto: usize| {
        if out.is_none() {
            let mut o = Vec::with_capacity(input.len());
            o.extend_from_slice(&input[..upto]);
            *out = Some(o);
        }
    };
    while i < input.len() {
        let b = input[i];
        if in_string {
            match b {
                b'"' => {
                    in_string = false;
                    push(&mut out, &[b]);
                    i += 1;
                }
                b'\\' if input.get(i + 1) == Some(&b'u') => {
                    let unit = hex4(input.get(i + 2..i + 6));
                    match unit {
                        Some(0xD800..=0xDBFF) => {
                            let low = (input.get(i + 6) == Some(&b'\\')
                                && input.get(i + 7) == Some(&b'u'))
                            .then(|| hex4(input.get(i + 8..i + 12)))
                            .flatten();
                            if matches!(low, Some(0xDC00..=0xDFFF)) {
                                push(&mut out, &input[i..i + 12]);
                                i += 12;
                            } else {
                                start_output(&mut out, i);
                                push(&mut out, b"\\ufffd");
                                i += 6;
                            }
                        }
                        Some(0xDC00..=0xDFFF) => {
                            start_output(&mut out, i);
                            push(&mut out, b"\\ufffd");
                            i += 6;
                        }
                        _ => {
                            let end = (i + 6).min(input.len());
                            push(&mut out, &input[i..end]);
                            i = end;
                        }
                    }
                }
                b'\\' => {
                    let end = (i + 2).min(input.len());
                    push(&mut out, &input[i..end]);
                    i = end;
                }
                _ => {
                    push(&mut out, &[b]);
                    i += 1;
                }
            }
            continue;
        }
        let rest = &input[i..];
        let token: Option<&[u8]> = [&b"-Infinity"[..], b"Infinity", b"NaN"]
            .into_iter()
            .find(|t| rest.starts_with(t) && !is_ident(rest.get(t.len()).copied()));
        if let Some(t) = token.filter(|_| !is_ident(i.checked_sub(1).map(|p| input[p]))) {
            start_output(&mut out, i);
            push(&mut out, b"null");
            i += t.len();
            continue;
        }
        // A number Python 2 reads as infinity (`1e999`, `-1e999`): null, as `Infinity` is.
        if (b == b'-' || b.is_ascii_digit()) && !is_ident(i.checked_sub(1).map(|p| input[p])) {
            let len = rest
                .iter()
                .position(|c| !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                .unwrap_or(rest.len());
            let literal = &rest[..len];
            let infinite = std::str::from_utf8(literal)
                .ok()
                .and_then(|t| t.parse::<f64>().ok())
                .is_some_and(f64::is_infinite);
            if infinite {
                start_output(&mut out, i);
                push(&mut out, b"null");
            } else {
                push(&mut out, literal);
            }
            i += len.max(1);
            continue;
        }
        if b == b'"' {
            in_string = true;
        }
        push(&mut out, &[b]);
        i += 1;
    }
    out
}

fn is_ident(b: Option<u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

fn hex4(digits: Option<&[u8]>) -> Option<u32> {
    let digits = std::str::from_utf8(digits?).ok()?;
    u32::from_str_radix(digits, 16).ok()
}

/// Serializes a value as the wire's JSON: ASCII only, Python's separators.
///
/// # Errors
///
/// The serializer's error (a map with keys that are not strings, for example).
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(64);
    write(&mut out, value)?;
    Ok(out)
}

/// Serializes a value as the wire's JSON into a string.
///
/// # Errors
///
/// The serializer's error.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    let bytes = to_vec(value)?;
    // The formatter writes ASCII only.
    Ok(String::from_utf8(bytes).unwrap_or_default())
}

fn write<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), serde_json::Error> {
    let mut ser = serde_json::Serializer::with_formatter(out, PythonFormatter);
    value.serialize(&mut ser)
}

/// Appends one frame holding the JSON of `value` to `out`, serializing straight into
/// place.
///
/// # Errors
///
/// [`Error::Encode`] if the value cannot be serialized, [`Error::FrameTooLarge`] if the
/// result does not fit a frame. `out` is left as it was.
pub fn encode_frame<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), Error> {
    let begin = out.len();
    out.extend_from_slice(&[0; frame::HEADER_LEN]);
    if let Err(e) = write(out, value) {
        out.truncate(begin);
        return Err(Error::Encode(e));
    }
    let len = out.len() - begin - frame::HEADER_LEN;
    match frame::header(len) {
        Ok(h) => {
            out[begin..begin + frame::HEADER_LEN].copy_from_slice(&h);
            Ok(())
        }
        Err(e) => {
            out.truncate(begin);
            Err(e)
        }
    }
}

/// The object `{key: value}`, serialized without building it.
pub(crate) struct Entry<'a, T: ?Sized> {
    pub(crate) key: &'a str,
    pub(crate) value: &'a T,
}

impl<T: Serialize + ?Sized> Serialize for Entry<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.key, self.value)?;
        map.end()
    }
}

/// Python 2's `json.dumps` layout: `", "`, `": "`, and `\uXXXX` for every non-ASCII
/// character.
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if fragment.is_ascii() {
            return w.write_all(fragment.as_bytes());
        }
        let bytes = fragment.as_bytes();
        let mut from = 0;
        for (at, ch) in fragment.char_indices() {
            if ch.is_ascii() {
                continue;
            }
            w.write_all(&bytes[from..at])?;
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                write!(w, "\\u{unit:04x}")?;
            }
            from = at + ch.len_utf8();
        }
        w.write_all(&bytes[from..])
    }
}

/// The text of a payload for an error message: UTF-8 where it is, U+FFFD elsewhere.
pub(crate) fn lossy(payload: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(payload)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn output_is_python2_style_ascii() {
        let v = json!({"result": ["pong", [1, "x"], {"a": 1}]});
        assert_eq!(to_string(&v).unwrap(), r#"{"result": ["pong", [1, "x"], {"a": 1}]}"#);
        assert_eq!(
            to_string(&json!("åäö €𝄞")).unwrap(),
            r#""\u00e5\u00e4\u00f6 \u20ac\ud834\udd1e""#
        );
        assert_eq!(to_string(&json!("\u{1}\n\"")).unwrap(), r#""\u0001\n\"""#);
        assert_eq!(
            to_string(&json!({"authenticated": true})).unwrap(),
            r#"{"authenticated": true}"#
        );
    }

    #[test]
    fn output_round_trips() {
        let v = json!({"a": ["åäö", 1.5, null, {"b": "\u{ffff}\u{10000}"}], "c": -7});
        assert_eq!(parse(&to_vec(&v).unwrap()).unwrap(), v);
    }

    #[test]
    fn numbers_python_reads_as_infinity_are_null() {
        assert_eq!(
            parse(b"[1e999, -1e999, 1.5e3, -2, 10, \"1e999\"]").unwrap(),
            json!([null, null, 1500.0, -2, 10, "1e999"])
        );
        assert_eq!(parse(b"{\"a\": 1E400}").unwrap(), json!({"a": null}));
        assert!(parse(b"[1e999x]").is_err());
    }

    #[test]
    fn python_tokens_are_accepted() {
        let v =
            parse(br#"{"result": NaN, "a": [Infinity, -Infinity], "s": "NaN Infinity"}"#).unwrap();
        assert_eq!(v, json!({"result": null, "a": [null, null], "s": "NaN Infinity"}));
        let v = parse(br#"{"s": "a\"NaN\\", "n": NaN}"#).unwrap();
        assert_eq!(v, json!({"s": "a\"NaN\\", "n": null}));
    }

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        let v = parse(br#"["\ud800", "\udc00x", "\ud834\udd1e", "\ud800\u0041"]"#).unwrap();
        assert_eq!(v, json!(["\u{fffd}", "\u{fffd}x", "𝄞", "\u{fffd}A"]));
    }

    #[test]
    fn big_integers_and_garbage() {
        let v = parse(b"[1180591620717411303424]").unwrap();
        assert_eq!(v[0].as_f64(), Some(1_180_591_620_717_411_303_424.0));
        assert!(parse(b"{not json").is_err());
        assert!(parse(b"").is_err());
        assert!(parse(b"NaNa").is_err());
        assert!(parse(b"[1, 2").is_err());
    }

    #[test]
    fn an_entry_is_written_as_its_one_key_object() {
        for value in [json!("pong"), json!({"type": "Exit", "message": "\u{e5}"}), json!(null)] {
            let mut direct = Vec::new();
            encode_frame(&Entry { key: "result", value: &value }, &mut direct).unwrap();
            let mut built = Vec::new();
            encode_frame(&json!({ "result": value }), &mut built).unwrap();
            assert_eq!(direct, built);
        }
    }

    #[test]
    fn frames_are_serialized_in_place() {
        let mut out = b"xx".to_vec();
        encode_frame(&json!({"result": "pong"}), &mut out).unwrap();
        assert_eq!(&out[..2], b"xx");
        assert_eq!(&out[2..6], &[0, 0, 0, 18]);
        assert_eq!(&out[6..], br#"{"result": "pong"}"#);
        let mut bad = std::collections::BTreeMap::new();
        bad.insert(vec![1u8], 1);
        let mut out = b"keep".to_vec();
        assert!(matches!(encode_frame(&bad, &mut out), Err(Error::Encode(_))));
        assert_eq!(out, b"keep");
    }
}
