//! Integration tests of `ave-cmd`: real ptys, real processes.

#[test]
fn runs_a_command() {
    let out = ave_cmd::run("echo hello", &ave_cmd::Options::new()).unwrap();
    assert_eq!(out.output, b"hello\r\n");
}
