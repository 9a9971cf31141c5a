//! Server-side traces: `[file, line, function, source-or-null]` frames.

use serde_json::Value;

/// One frame of a server-side trace.
///
/// On the wire a frame is a four-element array `[file, line, function, source]`, where
/// `source` is the text of the line or `null`. The original sends Python frames; a Rust
/// service sends the source location of the error and the RPC method's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceFrame {
    /// The file name, as the raiser recorded it.
    pub file: String,
    /// The line number.
    pub line: i64,
    /// The function (or RPC method) name.
    pub function: String,
    /// The source text of the line, if known.
    pub source: Option<String>,
}

impl TraceFrame {
    /// A frame from its four parts.
    pub fn new(
        file: impl Into<String>,
        line: i64,
        function: impl Into<String>,
        source: Option<String>,
    ) -> TraceFrame {
        TraceFrame { file: file.into(), line, function: function.into(), source }
    }

    /// The frame as its wire array.
    pub fn to_wire(&self) -> Value {
        Value::Array(vec![
            Value::String(self.file.clone()),
            Value::from(self.line),
            Value::String(self.function.clone()),
            self.source.clone().map_or(Value::Null, Value::String),
        ])
    }

    /// A frame from its wire array, or `None` if the value does not have that shape.
    ///
    /// Lenient where the original is: a line number sent as a float is truncated.
    pub fn from_wire(value: &Value) -> Option<TraceFrame> {
        let [file, line, function, source] = value.as_array()?.as_slice() else {
            return None;
        };
        let line = match line {
            Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))?,
            _ => return None,
        };
        let source = match source {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            _ => return None,
        };
        Some(TraceFrame {
            file: file.as_str()?.to_owned(),
            line,
            function: function.as_str()?.to_owned(),
            source,
        })
    }
}

/// Formats trace frames as the original's `format_trace()` does.
///
/// Each frame gives `  File "<file>", line <line>, in <function>` and a newline; a
/// non-empty source adds four spaces, the stripped source and a newline. Frames that do not
/// have the wire shape are rendered with their JSON text in each slot so nothing is lost.
pub(crate) fn format_frames(frames: &[Value]) -> String {
    let mut out = String::new();
    for frame in frames {
        match TraceFrame::from_wire(frame) {
            Some(f) => {
                out.push_str(&format!(
                    "  File \"{}\", line {}, in {}\n",
                    f.file, f.line, f.function
                ));
                if let Some(source) = f.source.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                    out.push_str(&format!("    {source}\n"));
                }
            }
            None => {
                let slot = |i: usize| match frame.get(i) {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                out.push_str(&format!(
                    "  File \"{}\", line {}, in {}\n",
                    slot(0),
                    slot(1),
                    slot(2)
                ));
                if let Some(Value::String(s)) = frame.get(3) {
                    let s = s.trim();
                    if !s.is_empty() {
                        out.push_str(&format!("    {s}\n"));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn wire_shape() {
        let frame = TraceFrame::new("m.py", 3, "f", Some("x = 1".to_owned()));
        assert_eq!(frame.to_wire(), json!(["m.py", 3, "f", "x = 1"]));
        assert_eq!(TraceFrame::from_wire(&frame.to_wire()), Some(frame));
        assert_eq!(TraceFrame::from_wire(&json!(["m.py", 3, "f", null])).unwrap().source, None);
        assert_eq!(TraceFrame::from_wire(&json!(["m.py", 3, "f"])), None);
        assert_eq!(TraceFrame::from_wire(&json!({"file": "m.py"})), None);
    }

    #[test]
    fn formatting_matches_the_original() {
        let frames = vec![json!(["module1", 0, "method1", "line code"])];
        assert_eq!(
            format_frames(&frames),
            "  File \"module1\", line 0, in method1\n    line code\n"
        );
        let no_source = vec![json!(["a.py", 7, "g", null]), json!(["b.py", 8, "h", "  "])];
        assert_eq!(
            format_frames(&no_source),
            "  File \"a.py\", line 7, in g\n  File \"b.py\", line 8, in h\n"
        );
        assert_eq!(format_frames(&[]), "");
    }

    #[test]
    fn malformed_frames_are_rendered_not_dropped() {
        let frames = vec![json!([1, "two", 3, "  src  "])];
        assert_eq!(format_frames(&frames), "  File \"1\", line two, in 3\n    src\n");
    }
}
