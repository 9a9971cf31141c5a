//! The exception vectors of `handshake-and-exceptions.json` and the exception responses
//! of `control-transcript.json`.

use ave_exceptions::{AveException, Kind};
use serde_json::{Value, json};

use crate::vector;

/// Builds the exception the way the recorded Python class constructor was called.
fn construct(class: &str, ctor_arg: &Value) -> AveException {
    let kind = Kind::from_type_name(class);
    match (kind, ctor_arg) {
        (Kind::RunError, Value::Object(args)) => {
            let cmd: Vec<String> = args["cmd"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            AveException::run_error(
                cmd,
                args["out"].as_str().unwrap(),
                args["message"].as_str().unwrap(),
            )
        }
        (_, Value::String(message)) => AveException::new(kind, message.clone()),
        (_, Value::Object(details)) => {
            AveException::from_details_as(kind, details.clone()).unwrap()
        }
        other => panic!("unexpected constructor argument {other:?}"),
    }
}

#[test]
fn every_recorded_class_gives_the_recorded_details_and_text() {
    let vectors = vector("handshake-and-exceptions.json");
    let cases = vectors["exceptions"].as_array().unwrap();
    assert_eq!(cases.len(), 8, "the vector file lists eight classes");
    for case in cases {
        let class = case["class"].as_str().unwrap();
        let e = construct(class, &case["ctor_arg"]);
        assert_eq!(e.to_wire(), case["details"], "details of {class}");
        assert_eq!(e.to_string(), case["str"].as_str().unwrap(), "str() of {class}");
        assert_eq!(e.type_name(), class);

        // The client rebuilds the same exception from the wire.
        let rebuilt = AveException::from_wire(&case["details"]);
        assert_eq!(rebuilt.to_wire(), case["details"], "factory of {class}");
        assert_eq!(rebuilt.kind(), Kind::from_type_name(class));
        assert_eq!(rebuilt.to_string(), case["str"].as_str().unwrap());
    }
}

/// Every `exception` value in a response of the transcript, with the row's note.
fn transcript_exceptions() -> Vec<(String, Value)> {
    let rows = vector("control-transcript.json");
    let mut out = Vec::new();
    for row in rows.as_array().unwrap() {
        let note = row["note"].as_str().unwrap_or("").to_owned();
        let responses = match &row["response"] {
            Value::Array(list) => list.clone(),
            other => vec![other.clone()],
        };
        for response in responses {
            let Some(text) = response.as_str() else { continue };
            let Ok(parsed) = serde_json::from_str::<Value>(text) else { continue };
            if let Some(exception) = parsed.get("exception") {
                out.push((note.clone(), exception.clone()));
            }
        }
    }
    out
}

#[test]
fn transcript_exceptions_are_rebuilt_as_the_original_client_does() {
    let exceptions = transcript_exceptions();
    assert!(exceptions.len() >= 15, "found {} exception responses", exceptions.len());
    for (note, value) in &exceptions {
        let e = AveException::from_wire(value);
        match value {
            Value::String(text) => {
                assert_eq!(e.type_name(), "Exception", "{note}");
                assert_eq!(e.message(), text.as_str(), "{note}");
                assert!(!e.has_trace(), "{note}");
            }
            Value::Object(details) => {
                let type_name = details["type"].as_str().unwrap();
                assert_eq!(e.type_name(), type_name, "{note}");
                assert_eq!(e.message(), details["message"].as_str().unwrap(), "{note}");
                if type_name == "OverflowError" {
                    assert_eq!(
                        e.to_wire(),
                        json!({"message": details["message"], "type": "OverflowError"})
                    );
                } else {
                    // Every field survives, extra ones included.
                    assert_eq!(&e.to_wire(), value, "{note}");
                }
            }
            other => panic!("{note}: unexpected exception value {other}"),
        }
    }
}

#[test]
fn transcript_specific_shapes() {
    let exceptions = transcript_exceptions();
    let find = |note: &str| {
        exceptions
            .iter()
            .find(|(n, _)| n == note)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{note}"))
    };

    // An AveException keeps its extra keys and its trace.
    let extra = AveException::from_wire(&find("AveException keeps extra keys"));
    assert_eq!(extra.kind(), Kind::AveException);
    assert_eq!(extra.field("extra"), Some(&json!(42)));
    let trace = extra.trace().unwrap();
    assert_eq!(trace[0].function, "raise_ave_exception");
    assert!(extra.to_string().starts_with("custom\nServer side traceback:\n  File \"transcript.py\", line 17, in raise_ave_exception\n    def raise_ave_exception"));

    // A Timeout from ave.cmd carries cmd and out, and a two-frame trace.
    let timeout = AveException::from_wire(&find("Timeout from ave.cmd.run"));
    assert_eq!(timeout.kind(), Kind::Timeout);
    assert_eq!(timeout.cmd(), Some(&json!(["sleep", "10"])));
    assert_eq!(timeout.out(), Some(""));
    assert_eq!(timeout.trace().unwrap().len(), 2);
    assert_eq!(timeout.format_trace().lines().count(), 4);

    // An explicit type wins over the class.
    let typed = AveException::from_wire(&find("AveException with explicit type"));
    assert_eq!(typed.kind(), Kind::Offline);

    // Python's own exceptions keep their type name; an arity error has an empty trace.
    let arity = AveException::from_wire(&find("wrong argument count"));
    assert_eq!(arity.type_name(), "TypeError");
    assert_eq!(arity.kind(), Kind::Other);
    assert!(arity.has_trace());
    assert_eq!(arity.format_trace(), "");

    // Exit is recognised so a client can tell the service went away on purpose.
    let exit = AveException::from_wire(&find("Exit: message then server shuts down"));
    assert_eq!(exit.kind(), Kind::Exit);
    assert_eq!(exit.to_string(), "bye");
}
