//! Unit tests of how `ave call` reads its arguments.

use serde_json::json;

use crate::call::*;

fn check(text: &str, expected: Result<Value, &str>) {
    match (argument(text, false), expected) {
        (Ok(value), Ok(expected)) => assert_eq!(value, expected, "{text:?}"),
        (Err(e), Err(pointer)) => assert_eq!(e.pointer, pointer, "{text:?}: {}", e.reason),
        (got, expected) => panic!("{text:?}: got {got:?}, expected {expected:?}"),
    }
}

#[test]
fn arguments_that_start_like_json_must_be_json() {
    check("12", Ok(json!(12)));
    check("-1.5", Ok(json!(-1.5)));
    check("true", Ok(json!(true)));
    check("null", Ok(json!(null)));
    check("\"quoted\"", Ok(json!("quoted")));
    check("[1, \"a\"]", Ok(json!([1, "a"])));
    check(" {\"k\": 1}", Ok(json!({"k": 1})));
    check("hello world", Ok(json!("hello world")));
    check("", Ok(json!("")));
    check("trueish", Ok(json!("trueish")));
    check("åäö", Ok(json!("åäö")));
    check("3 apples", Err("    3 apples\n      ^"));
    check("[1, 2", Err("    [1, 2\n        ^"));
    check("{'k': 1}", Err("    {'k': 1}\n     ^"));
    check("-x", Err("    -x\n     ^"));
    check("\"åäö", Err("    \"åäö\n       ^"));
}

#[test]
fn strings_mode_takes_text_as_it_is() {
    assert_eq!(argument("12", true).unwrap(), json!("12"));
    assert_eq!(argument("[1, 2", true).unwrap(), json!("[1, 2"));
}
