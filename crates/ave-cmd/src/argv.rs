//! `Argv`: the command to run, as a list of arguments.

use std::fmt;

/// A command: the program and its arguments, with no shell involved.
///
/// Build it from a list (`["ls", "-l"]`, a `Vec<String>`, a slice) used as is, or from a
/// string, which is split on runs of whitespace with no quoting (so `"echo a > f"` passes
/// `>` and `f` to `echo` as arguments), as the original `ave.cmd` does. The program is
/// looked up in `PATH` when it has no `/`.
///
/// ```
/// use ave_cmd::Argv;
///
/// assert_eq!(Argv::from("sleep    10").as_slice(), ["sleep", "10"]);
/// assert_eq!(Argv::from(["echo", "a b"]).as_slice(), ["echo", "a b"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Argv(Vec<String>);

impl Argv {
    /// A command from its arguments, used as they are.
    pub fn new<I, S>(args: I) -> Argv
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Argv(args.into_iter().map(Into::into).collect())
    }

    /// A command from a string split on runs of whitespace (no shell quoting).
    pub fn split(command: &str) -> Argv {
        Argv::new(command.split_whitespace())
    }

    /// The arguments, the program first.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// The program (the first argument), if there is one.
    pub fn program(&self) -> Option<&str> {
        self.0.first().map(String::as_str)
    }

    /// Whether there are no arguments at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The arguments, the program first.
    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

/// The arguments joined by single spaces, as the original's debug output shows them.
impl fmt::Display for Argv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

impl From<&str> for Argv {
    fn from(command: &str) -> Argv {
        Argv::split(command)
    }
}

impl From<String> for Argv {
    fn from(command: String) -> Argv {
        Argv::split(&command)
    }
}

impl From<&String> for Argv {
    fn from(command: &String) -> Argv {
        Argv::split(command)
    }
}

impl From<Vec<String>> for Argv {
    fn from(args: Vec<String>) -> Argv {
        Argv(args)
    }
}

impl From<Vec<&str>> for Argv {
    fn from(args: Vec<&str>) -> Argv {
        Argv::new(args)
    }
}

impl From<&[String]> for Argv {
    fn from(args: &[String]) -> Argv {
        Argv(args.to_vec())
    }
}

impl From<&[&str]> for Argv {
    fn from(args: &[&str]) -> Argv {
        Argv::new(args.iter().copied())
    }
}

impl<const N: usize> From<[&str; N]> for Argv {
    fn from(args: [&str; N]) -> Argv {
        Argv::new(args)
    }
}

impl<const N: usize> From<&[&str; N]> for Argv {
    fn from(args: &[&str; N]) -> Argv {
        Argv::new(args.iter().copied())
    }
}

impl From<&Argv> for Argv {
    fn from(argv: &Argv) -> Argv {
        argv.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(argv: impl Into<Argv>, expected: &[&str]) {
        assert_eq!(argv.into().as_slice(), expected);
    }

    #[test]
    fn strings_split_on_runs_of_whitespace_without_quoting() {
        check("sleep    10", &["sleep", "10"]);
        check("  echo\thello >  f\n", &["echo", "hello", ">", "f"]);
        check("echo 'a b'", &["echo", "'a", "b'"]);
        check(String::from("ls -l"), &["ls", "-l"]);
        check("", &[]);
    }

    #[test]
    fn lists_are_used_as_they_are() {
        check(["echo", "a  b", ""], &["echo", "a  b", ""]);
        check(vec!["x".to_owned(), " y".to_owned()], &["x", " y"]);
        check(&["a", "b"][..], &["a", "b"]);
        check(vec!["a"], &["a"]);
    }

    #[test]
    fn display_joins_with_spaces() {
        assert_eq!(Argv::from(["echo", "-n", "hello"]).to_string(), "echo -n hello");
        assert_eq!(Argv::from(["ls"]).program(), Some("ls"));
        assert!(Argv::from("").is_empty());
    }
}
