//! Words on the admin socket: mLib's word splitter (`str_qword` with quoting) and the
//! client's quoting of command words.
//!
//! Reading follows spec/tripe-admin.md section 2.1: whitespace (C's `isspace`) separates
//! words, `\` escapes any next character, and `'` or `"` open a section that the same
//! character closes. Sections join: `ab'c d'e` is the one word `abc de`. A trailing
//! backslash is dropped and an unterminated quote runs to the end of the line; nothing
//! fails. Writing follows section 2.3: a word is sent bare when it is non-empty and free
//! of whitespace, backslashes and quotes, and otherwise in double quotes with `\` and `"`
//! escaped, which every TrIPE reader parses back to the same word.
//!
//! This module is a leaf: it knows nothing of errors or connections (building a command
//! line that can be sent, with its checks, is `format.rs`).

use std::borrow::Cow;

/// Whether `c` is whitespace to C's `isspace` in the C locale.
pub(crate) fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// Splits the first word off `text`, as mLib's `str_qword` does with quoting enabled.
///
/// Returns the word and the rest of the text, whose leading whitespace is already skipped,
/// or `None` when `text` holds nothing but whitespace.
///
/// # Examples
///
/// ```
/// use ave_tripe::next_word;
///
/// assert_eq!(next_word("  INFO 'a b' c"), Some(("INFO".to_owned(), "'a b' c")));
/// assert_eq!(next_word(" \t "), None);
/// ```
pub fn next_word(text: &str) -> Option<(String, &str)> {
    let text = text.trim_start_matches(is_space);
    if text.is_empty() {
        return None;
    }
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut end = text.len();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match (quote, c) {
            // An escape copies the next character whatever it is; at the very end there is
            // nothing to copy and the backslash is dropped.
            (_, '\\') => {
                if let Some((_, escaped)) = chars.next() {
                    word.push(escaped);
                }
            }
            (None, c) if is_space(c) => {
                end = at;
                break;
            }
            (None, '\'' | '"') => quote = Some(c),
            (Some(open), c) if c == open => quote = None,
            (_, c) => word.push(c),
        }
    }
    Some((word, text[end..].trim_start_matches(is_space)))
}

/// Splits `text` into words, as mLib's `split` does with quoting enabled.
///
/// # Examples
///
/// ```
/// use ave_tripe::split_words;
///
/// assert_eq!(split_words(r#"a\ b "c d" e'f g'h '' \n"#), ["a b", "c d", "ef gh", "", "n"]);
/// assert_eq!(split_words("'unterminated quote"), ["unterminated quote"]);
/// ```
pub fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = text;
    while let Some((word, tail)) = next_word(rest) {
        words.push(word);
        rest = tail;
    }
    words
}

/// Quotes one word so that the server reads it back unchanged.
///
/// A word that is non-empty and free of whitespace, backslashes and quotes is returned as
/// it is; any other word is wrapped in double quotes, with a backslash before each `\`
/// and `"`. (A word holding a newline or a NUL cannot be sent at all;
/// [`format_command`](crate::format_command) refuses it.)
///
/// # Examples
///
/// ```
/// use ave_tripe::quotify;
///
/// assert_eq!(quotify("alice"), "alice");
/// assert_eq!(quotify(""), r#""""#);
/// assert_eq!(quotify(r#"say "hi"\"#), r#""say \"hi\"\\""#);
/// ```
pub fn quotify(word: &str) -> Cow<'_, str> {
    let bare =
        !word.is_empty() && !word.chars().any(|c| is_space(c) || matches!(c, '\\' | '\'' | '"'));
    if bare {
        return Cow::Borrowed(word);
    }
    let mut quoted = String::with_capacity(word.len() + 2);
    quoted.push('"');
    for c in word.chars() {
        if matches!(c, '\\' | '"') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    Cow::Owned(quoted)
}

/// Joins words into one line, each quoted with [`quotify`] and separated by one space.
///
/// This is for display (the `ave tripe` output); it does not check that the line could be
/// sent. Use [`format_command`](crate::format_command) for that.
pub fn join_words<I, S>(words: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut line = String::new();
    for (i, word) in words.into_iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        line.push_str(&quotify(word.as_ref()));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(line: &str, expected: &[&str]) {
        assert_eq!(split_words(line), expected, "splitting {line:?}");
    }

    #[test]
    fn splitting_follows_str_qword() {
        check("", &[]);
        check("   ", &[]);
        check("OK", &["OK"]);
        check("  INFO  a   b ", &["INFO", "a", "b"]);
        check("a\tb\x0bc\x0cd\re\nf", &["a", "b", "c", "d", "e", "f"]);
        check(r#"ab'c d'e"#, &["abc de"]);
        check("''", &[""]);
        check(r#""""#, &[""]);
        check(r#"'it"s' "it's""#, &["it\"s", "it's"]);
        check(r"a\ b", &["a b"]);
        check(r"\n\t", &["nt"]);
        check(r"trailing\", &["trailing"]);
        check(r"'in quote \' still'", &["in quote ' still"]);
        check("'unterminated   quote", &["unterminated   quote"]);
        check("\"open", &["open"]);
        check("x \u{a0}y", &["x", "\u{a0}y"]);
    }

    #[test]
    fn next_word_returns_the_rest_without_leading_space() {
        assert_eq!(next_word("TRACE   some  text "), Some(("TRACE".to_owned(), "some  text ")));
        assert_eq!(next_word("TRACE"), Some(("TRACE".to_owned(), "")));
    }

    #[test]
    fn quoting() {
        assert_eq!(quotify("plain-word_1.2"), "plain-word_1.2");
        assert_eq!(quotify("a b"), "\"a b\"");
        assert_eq!(quotify("it's"), "\"it's\"");
        assert_eq!(quotify("back\\slash"), "\"back\\\\slash\"");
        assert_eq!(quotify("cr\r"), "\"cr\r\"");
        assert_eq!(join_words(["INFO", "", "x y"]), "INFO \"\" \"x y\"");
    }
}
