//! Command lines to send: the quoted words of one command, checked against what the server
//! can read (spec/tripe-admin.md sections 1 and 2.3).

use crate::{
    error::Error,
    words::{quotify, split_words},
};

/// The longest command line the server reads whole, in bytes, not counting the newline.
///
/// The server's line buffer passes longer lines on in pieces, so the client refuses to
/// send them (spec/tripe-admin.md section 1).
pub const MAX_COMMAND_LEN: usize = 255;

/// Builds the command line for `words` (without its newline), refusing what cannot be sent.
///
/// # Errors
///
/// - [`Error::EmptyCommand`] when there are no words;
/// - [`Error::Unsendable`] when a word holds a newline or a NUL, which no quoting can
///   carry;
/// - [`Error::CommandTooLong`] when the quoted line is longer than [`MAX_COMMAND_LEN`].
///
/// # Examples
///
/// ```
/// use ave_tripe::{format_command, Error};
///
/// assert_eq!(format_command(["NOTIFY", "hello world"]).unwrap(), r#"NOTIFY "hello world""#);
/// assert!(matches!(format_command(["NOTIFY", "a\nb"]), Err(Error::Unsendable { .. })));
/// ```
pub fn format_command<I, S>(words: I) -> Result<String, Error>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut line = String::new();
    let mut count = 0;
    for (index, word) in words.into_iter().enumerate() {
        let word = word.as_ref();
        if let Some(what) = unsendable(word) {
            return Err(Error::Unsendable { index, what });
        }
        if index > 0 {
            line.push(' ');
        }
        line.push_str(&quotify(word));
        count += 1;
    }
    if count == 0 {
        return Err(Error::EmptyCommand);
    }
    check_line(&line)?;
    Ok(line)
}

/// Checks an already quoted command line before it is sent.
pub(crate) fn check_line(line: &str) -> Result<(), Error> {
    if let Some(what) = unsendable(line) {
        return Err(Error::Unsendable { index: 0, what });
    }
    if split_words(line).is_empty() {
        return Err(Error::EmptyCommand);
    }
    if line.len() > MAX_COMMAND_LEN {
        return Err(Error::CommandTooLong { len: line.len(), max: MAX_COMMAND_LEN });
    }
    Ok(())
}

fn unsendable(text: &str) -> Option<&'static str> {
    if text.contains('\n') {
        Some("newline")
    } else if text.contains('\0') {
        Some("NUL byte")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsendable_commands_are_refused() {
        assert!(matches!(format_command(Vec::<String>::new()), Err(Error::EmptyCommand)));
        assert!(matches!(
            format_command(["WARN", "a\0b"]),
            Err(Error::Unsendable { index: 1, what: "NUL byte" })
        ));
        let long = "x".repeat(MAX_COMMAND_LEN);
        assert!(matches!(
            format_command(["NOTIFY", &long]),
            Err(Error::CommandTooLong { len, max: MAX_COMMAND_LEN }) if len == MAX_COMMAND_LEN + 7
        ));
        let fits = "x".repeat(MAX_COMMAND_LEN - 7);
        assert_eq!(format_command(["NOTIFY", &fits]).unwrap().len(), MAX_COMMAND_LEN);
        assert!(matches!(check_line("  "), Err(Error::EmptyCommand)));
    }
}
