//! Helpers for service commands' arguments: time specs and options (tripe.py's
//! `timespec` and `OptParse`).

use std::{collections::VecDeque, time::Duration};

use crate::service::JobError;

/// Parses a time spec as tripe.py does: a non-negative decimal number, optionally followed
/// by `s`, `m`, `h` or `d` (seconds, minutes, hours, days); a bare number is seconds.
///
/// # Errors
///
/// `JobError::Fail(["bad-time-spec", SPEC])` for anything else, including overflow.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ave_tripe::timespec;
///
/// assert_eq!(timespec("90").unwrap(), Duration::from_secs(90));
/// assert_eq!(timespec("2h").unwrap(), Duration::from_secs(7200));
/// assert!(timespec("-1").is_err());
/// ```
pub fn timespec(spec: &str) -> Result<Duration, JobError> {
    let bad = || JobError::fail(["bad-time-spec", spec]);
    let (number, unit) = match spec.char_indices().last() {
        Some((at, c)) if spec.len() > 1 && matches!(c, 's' | 'm' | 'h' | 'd') => {
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                _ => 86_400,
            };
            (&spec[..at], unit)
        }
        _ => (spec, 1),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let value: u64 = number.parse().map_err(|_| bad())?;
    value.checked_mul(unit).map(Duration::from_secs).ok_or_else(bad)
}

/// Parses leading options of a command's arguments (tripe.py's `OptParse`).
///
/// An option is an argument of two or more characters starting with `-`; `--` ends the
/// options. An option not in the allowed list is a syntax error.
///
/// # Examples
///
/// ```
/// use ave_tripe::{JobError, OptionParser};
///
/// let args = ["-timeout", "5", "-quiet", "--", "-peer-", "x"].map(String::from).to_vec();
/// let mut options = OptionParser::new(args, &["-timeout", "-quiet"]);
/// let mut timeout = None;
/// while let Some(option) = options.next_option()? {
///     if option == "-timeout" {
///         timeout = Some(options.value()?);
///     }
/// }
/// assert_eq!(timeout.as_deref(), Some("5"));
/// assert_eq!(options.rest(Some(1), Some(2))?, ["-peer-", "x"]);
/// # Ok::<(), JobError>(())
/// ```
#[derive(Debug, Clone)]
pub struct OptionParser {
    args: VecDeque<String>,
    allowed: Vec<String>,
}

impl OptionParser {
    /// A parser over `args` accepting the options in `allowed` (with their `-`).
    pub fn new(args: Vec<String>, allowed: &[&str]) -> OptionParser {
        OptionParser {
            args: args.into(),
            allowed: allowed.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    /// The next option, or `None` when the options are over.
    ///
    /// # Errors
    ///
    /// [`JobError::Syntax`] for an option not allowed.
    pub fn next_option(&mut self) -> Result<Option<String>, JobError> {
        match self.args.front() {
            Some(arg) if arg.len() >= 2 && arg.starts_with('-') => {}
            _ => return Ok(None),
        }
        let option = self.args.pop_front().unwrap_or_default();
        if option == "--" {
            return Ok(None);
        }
        if !self.allowed.contains(&option) {
            return Err(JobError::Syntax);
        }
        Ok(Some(option))
    }

    /// The value of the option just returned (the next argument).
    ///
    /// # Errors
    ///
    /// [`JobError::Syntax`] when no argument is left.
    pub fn value(&mut self) -> Result<String, JobError> {
        self.args.pop_front().ok_or(JobError::Syntax)
    }

    /// The arguments after the options, checked to number at least `min` and at most
    /// `max` (`None`: no bound).
    ///
    /// # Errors
    ///
    /// [`JobError::Syntax`] for a count out of bounds.
    pub fn rest(self, min: Option<usize>, max: Option<usize>) -> Result<Vec<String>, JobError> {
        let n = self.args.len();
        if min.is_some_and(|min| n < min) || max.is_some_and(|max| n > max) {
            return Err(JobError::Syntax);
        }
        Ok(self.args.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_specs() {
        for (spec, secs) in
            [("0", 0), ("7", 7), ("7s", 7), ("3m", 180), ("1d", 86_400), ("010", 10)]
        {
            assert_eq!(timespec(spec).unwrap(), Duration::from_secs(secs), "{spec}");
        }
        for spec in [
            "",
            "s",
            "-1",
            "1.5",
            "x",
            "1w",
            "0x10",
            " 1",
            "99999999999999999999",
            "999999999999999999d",
        ] {
            assert_eq!(timespec(spec), Err(JobError::fail(["bad-time-spec", spec])), "{spec:?}");
        }
    }

    #[test]
    fn options() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let mut p = OptionParser::new(args(&["-a", "-", "x"]), &["-a"]);
        assert_eq!(p.next_option().unwrap().as_deref(), Some("-a"));
        // A lone `-` is an argument, not an option.
        assert_eq!(p.next_option().unwrap(), None);
        assert_eq!(p.rest(None, None).unwrap(), ["-", "x"]);

        let mut p = OptionParser::new(args(&["-b"]), &["-a"]);
        assert_eq!(p.next_option(), Err(JobError::Syntax));
        let mut p = OptionParser::new(args(&["-a"]), &["-a"]);
        p.next_option().unwrap();
        assert_eq!(p.value(), Err(JobError::Syntax));
        assert_eq!(OptionParser::new(args(&["x"]), &[]).rest(Some(2), None), Err(JobError::Syntax));
        assert_eq!(
            OptionParser::new(args(&["x", "y"]), &[]).rest(None, Some(1)),
            Err(JobError::Syntax)
        );
    }
}
