//! Python's `repr` of JSON values, as embedded in some of the original's error texts.

use serde_json::Value;

/// Renders a JSON value the way Python 3's `repr` renders the decoded object.
///
/// `RunError`'s text starts with the command in this form (`['no_such_exe']`). Strings use
/// single quotes unless they contain a single quote and no double quote; printable
/// non-ASCII characters are kept.
///
/// ```
/// use ave_exceptions::python_repr;
/// use serde_json::json;
///
/// assert_eq!(python_repr(&json!(["ls", "-l"])), "['ls', '-l']");
/// assert_eq!(python_repr(&json!({"a": null, "b": true})), "{'a': None, 'b': True}");
/// ```
pub fn python_repr(value: &Value) -> String {
    let mut out = String::new();
    write_repr(&mut out, value, Dialect::Python3);
    out
}

/// Renders a JSON value the way Python 2's `repr` renders the object `json.loads` returns:
/// strings are `unicode` (`u'...'`) and non-ASCII characters are escaped.
///
/// The original embeds this form in validation errors such as
/// `not an RPC: {u'method': u'x', ...}`. Clients only display it.
///
/// ```
/// use ave_exceptions::python2_repr;
/// use serde_json::json;
///
/// assert_eq!(python2_repr(&json!({"vargs": []})), "{u'vargs': []}");
/// assert_eq!(python2_repr(&json!("åäö")), "u'\\xe5\\xe4\\xf6'");
/// ```
pub fn python2_repr(value: &Value) -> String {
    let mut out = String::new();
    write_repr(&mut out, value, Dialect::Python2);
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Python2,
    Python3,
}

fn write_repr(out: &mut String, value: &Value, dialect: Dialect) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                out.push_str(&float_repr(f));
            } else {
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => write_str_repr(out, s, dialect),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, item, dialect);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str_repr(out, key, dialect);
                out.push_str(": ");
                write_repr(out, item, dialect);
            }
            out.push('}');
        }
    }
}

fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".to_owned() } else { "-inf".to_owned() };
    }
    // Rust's `{:e}` gives the shortest round-trip digits, as Python's repr does; Python then
    // uses positional notation for exponents from -4 to 15 and `e+XX` otherwise.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` has an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` exponent is an integer");
    if (-4..16).contains(&exp) {
        let text = format!("{f}");
        if text.contains('.') { text } else { format!("{text}.0") }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

fn write_str_repr(out: &mut String, s: &str, dialect: Dialect) {
    if dialect == Dialect::Python2 {
        out.push('u');
    }
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_ascii() => out.push(c),
            c if dialect == Dialect::Python3 && !c.is_control() => out.push(c),
            c => {
                let code = c as u32;
                if code < 0x100 {
                    out.push_str(&format!("\\x{code:02x}"));
                } else if code < 0x10000 {
                    out.push_str(&format!("\\u{code:04x}"));
                } else {
                    out.push_str(&format!("\\U{code:08x}"));
                }
            }
        }
    }
    out.push(quote);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn scalars() {
        assert_eq!(python_repr(&json!(null)), "None");
        assert_eq!(python_repr(&json!(false)), "False");
        assert_eq!(python_repr(&json!(3)), "3");
        assert_eq!(python_repr(&json!(-3)), "-3");
        assert_eq!(python_repr(&json!(1.5)), "1.5");
        assert_eq!(python_repr(&json!(2.0)), "2.0");
        assert_eq!(python_repr(&json!(1e300)), "1e+300");
        assert_eq!(python_repr(&json!(1.5e16)), "1.5e+16");
        assert_eq!(python_repr(&json!(0.0001)), "0.0001");
        assert_eq!(python_repr(&json!(0.00001)), "1e-05");
        assert_eq!(python_repr(&json!(-2.5e-7)), "-2.5e-07");
        assert_eq!(python_repr(&json!(123456789012345.0)), "123456789012345.0");
    }

    #[test]
    fn strings_pick_quotes_like_python() {
        assert_eq!(python_repr(&json!("it's")), "\"it's\"");
        assert_eq!(python_repr(&json!("say \"hi\"")), "'say \"hi\"'");
        assert_eq!(python_repr(&json!("both ' and \"")), "'both \\' and \"'");
        assert_eq!(python_repr(&json!("a\nb\\c\u{1}")), "'a\\nb\\\\c\\x01'");
        assert_eq!(python_repr(&json!("åäö")), "'åäö'");
        assert_eq!(python2_repr(&json!("€𝄞")), "u'\\u20ac\\U0001d11e'");
    }

    #[test]
    fn transcript_rendering() {
        // The shape of the "malformed arguments" text of control-transcript.json.
        assert_eq!(python2_repr(&json!({"vargs": []})), "{u'vargs': []}");
        assert_eq!(python2_repr(&json!({"async": "yes"})), "{u'async': u'yes'}");
    }
}
