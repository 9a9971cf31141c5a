//! The facade exposes every crate under its module name.

use ave::exceptions::{AveException, Kind};

#[test]
fn exceptions_from_the_recorded_transcript_through_the_facade() {
    let text = std::fs::read_to_string(tests::vector_path("control-transcript.json")).unwrap();
    let rows: serde_json::Value = serde_json::from_str(&text).unwrap();
    let exit_row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["note"] == "Exit: message then server shuts down")
        .unwrap();
    let response: serde_json::Value =
        serde_json::from_str(exit_row["response"].as_str().unwrap()).unwrap();
    let e = AveException::from_wire(&response["exception"]);
    assert_eq!(e.kind(), Kind::Exit);
    assert_eq!(e.message(), "bye");
}
