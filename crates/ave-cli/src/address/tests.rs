//! Unit tests of the address and port parsers.

use crate::address::*;

#[test]
fn ports_have_one_message() {
    assert_eq!(parse_port("4000"), Ok(4000));
    assert_eq!(parse_port("0"), Ok(0));
    assert_eq!(parse_port("70000"), Err("port 70000 is out of range (0-65535)".to_owned()));
    assert_eq!(
        parse_address("localhost:70000").unwrap_err(),
        "port 70000 is out of range (0-65535)"
    );
    assert!(parse_port("-1").unwrap_err().contains("not a number"));
    assert!(parse_port("").unwrap_err().contains("not a number"));
}

#[test]
fn addresses_take_names_and_brackets() {
    assert_eq!(parse_address("localhost:4000"), Ok(Address::new("localhost", 4000)));
    assert_eq!(parse_address("[::1]:4000"), Ok(Address::new("::1", 4000)));
    assert_eq!(parse_address(":4000"), Ok(Address::new("", 4000)));
    assert!(parse_address("nohost").unwrap_err().contains("no port"));
    assert!(parse_address("::1:4000").unwrap_err().contains("brackets"));
    assert!(parse_address("[::1:4000").unwrap_err().contains("unclosed"));
}

#[test]
fn bind_resolves_names() {
    assert!(resolve_bind("localhost", 0).unwrap().ip().is_loopback());
    assert_eq!(resolve_bind("127.0.0.1", 5).unwrap(), "127.0.0.1:5".parse().unwrap());
    assert_eq!(resolve_bind("[::1]", 5).unwrap(), "[::1]:5".parse().unwrap());
}
