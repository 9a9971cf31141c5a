//! Words: mLib's `str_qword` (how the server reads a line) and the server's `u_quotify`
//! (how it writes a word), written from the spec and independent of the client's own.

pub(super) fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// Splits a line into words with mLib's quoting rules.
pub fn qwords(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| is_c_space(*c)) {
            chars.next();
        }
        if chars.peek().is_none() {
            return words;
        }
        let mut word = String::new();
        let mut open: Option<char> = None;
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            } else if let Some(q) = open {
                if c == q {
                    open = None;
                } else {
                    word.push(c);
                }
            } else if c == '\'' || c == '"' {
                open = Some(c);
            } else if is_c_space(c) {
                break;
            } else {
                word.push(c);
            }
        }
        words.push(word);
    }
}

/// Quotes a word as the server's `u_quotify` does (backslashes stay bare: upstream's wart).
pub fn server_quote(word: &str) -> String {
    let bare = !word.is_empty()
        && !word.chars().any(|c| matches!(c, '"' | '\'' | ' ' | '\t' | '\n' | '\x0b'));
    if bare {
        return word.to_owned();
    }
    let mut out = String::from("\"");
    for c in word.chars() {
        if c == '\\' || c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

pub(super) fn quote_words<S: AsRef<str>>(words: &[S]) -> String {
    words.iter().map(|w| server_quote(w.as_ref())).collect::<Vec<_>>().join(" ")
}

pub(super) fn line_of<S: AsRef<str>>(code: &str, words: &[S]) -> String {
    if words.is_empty() { code.to_owned() } else { format!("{code} {}", quote_words(words)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_and_quote_as_the_server_does() {
        assert_eq!(qwords(r#"a 'b c' d\ e "f\"g" ''"#), ["a", "b c", "d e", "f\"g", ""]);
        assert_eq!(server_quote("a b"), "\"a b\"");
        assert_eq!(server_quote("a\\b"), "a\\b");
    }
}
