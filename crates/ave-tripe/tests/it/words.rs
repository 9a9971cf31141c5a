//! The word splitter and the quoting: round-trip properties, and agreement with two
//! independent implementations of mLib's rules (the simulator's and a Python 3 peer's).

use ave_tripe::{format_command, join_words, quotify, split_words};
use proptest::prelude::*;

use crate::{python, sim};

/// Words a command may carry: anything but LF and NUL, including quotes, backslashes,
/// whitespace of every kind, and non-ASCII text.
fn word() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just(' '),
            Just('\t'),
            Just('\r'),
            Just('\x0b'),
            Just('\x0c'),
            Just('\''),
            Just('"'),
            Just('\\'),
            Just('-'),
            prop::char::range('a', 'z'),
            any::<char>().prop_filter("no LF or NUL", |c| *c != '\n' && *c != '\0'),
        ],
        0..12,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// Arbitrary text, as a hostile server might send.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just(' '),
            Just('\''),
            Just('"'),
            Just('\\'),
            Just('\t'),
            prop::char::range('a', 'e'),
            any::<char>(),
        ],
        0..40,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn quoted_words_split_back_to_themselves(words in prop::collection::vec(word(), 0..8)) {
        prop_assert_eq!(split_words(&join_words(&words)), words.clone());
        // What can be sent reads back the same way.
        if let Ok(line) = format_command(&words) {
            prop_assert_eq!(split_words(&line), words);
        }
    }

    #[test]
    fn the_server_reads_our_quoting_the_same_way(words in prop::collection::vec(word(), 1..8)) {
        // The simulator's splitter is an independent implementation of the same rules.
        prop_assert_eq!(sim::qwords(&join_words(&words)), words);
    }

    #[test]
    fn splitting_any_text_agrees_with_the_simulator(line in text()) {
        prop_assert_eq!(split_words(&line), sim::qwords(&line));
    }

    #[test]
    fn server_quoting_reads_back_except_for_its_known_warts(word in word()) {
        // u_quotify leaves backslashes, CR and FF bare (spec section 2.2); anything else
        // reads back unchanged.
        let word: String = word.chars().filter(|c| !matches!(c, '\\' | '\r' | '\x0c')).collect();
        prop_assert_eq!(split_words(&sim::server_quote(&word)), vec![word]);
    }
}

#[test]
fn quotify_leaves_plain_words_alone() {
    for w in ["alice", "INET", "10.0.0.1", "-background", "J00000", "ping-ok", "a=b"] {
        assert_eq!(quotify(w), w);
    }
}

/// Fixed hostile inputs plus pseudo-random ones, from a seeded generator.
fn corpus() -> Vec<String> {
    let mut lines: Vec<String> = [
        "",
        "   ",
        "OK",
        "INFO a b",
        "INFO 'unterminated quote",
        "INFO \"unterminated double",
        "INFO trailing\\",
        "INFO \\",
        "INFO ''",
        "INFO '' \"\" x",
        "INFO ab'c d'e",
        "INFO 'it\"s' \"it's\"",
        "INFO 'a\\'b' \"c\\\"d\"",
        "INFO \\n\\t\\\\",
        "INFO\ttab\x0bvt\x0cff\rcr",
        "INFO caf\u{e9} \u{2603} \u{a0}nbsp",
        "INFO \u{fffd}\u{fffd}",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let alphabet: Vec<char> = " \t'\"\\abcxyz=-\u{e9}\u{2028}".chars().collect();
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..400 {
        let mut line = String::new();
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = (state % 30) as usize;
        for _ in 0..len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            line.push(alphabet[(state % alphabet.len() as u64) as usize]);
        }
        lines.push(line);
    }
    lines
}

#[test]
fn splitting_agrees_with_an_independent_python_peer() {
    let lines = corpus();
    let input: String =
        lines.iter().map(|l| serde_json::Value::from(l.as_str()).to_string() + "\n").collect();
    let output = python(&["split"], &input);
    let theirs: Vec<Vec<String>> =
        output.lines().map(|l| serde_json::from_str(l).expect("python's words")).collect();
    assert_eq!(theirs.len(), lines.len());
    for (line, theirs) in lines.iter().zip(theirs) {
        assert_eq!(split_words(line), theirs, "splitting {line:?}");
    }
}

#[test]
fn quoting_interoperates_with_tripe_py_both_ways() {
    let lists: Vec<Vec<String>> = corpus()
        .into_iter()
        .map(|line| line.split('x').map(str::to_owned).collect())
        .chain([vec![String::new()], vec!["a b".into(), "'\"\\".into(), String::new()]])
        .collect();
    let input: String =
        lists.iter().map(|words| serde_json::to_string(words).unwrap() + "\n").collect();
    // tripe.py's single-quote style reads back through our splitter...
    let output = python(&["quote"], &input);
    for (line, words) in output.lines().zip(&lists) {
        let line: String = serde_json::from_str(line).unwrap();
        assert_eq!(&split_words(&line), words, "python's line {line:?}");
    }
    // ...and our double-quote style through the Python splitter.
    let ours: String = lists
        .iter()
        .map(|words| serde_json::Value::from(join_words(words)).to_string() + "\n")
        .collect();
    let output = python(&["split"], &ours);
    for (line, words) in output.lines().zip(&lists) {
        let theirs: Vec<String> = serde_json::from_str(line).unwrap();
        assert_eq!(&theirs, words);
    }
}
