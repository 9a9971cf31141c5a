//! Service methods as a person reads them: `ave call ADDR --list`, the method list of
//! `ave serve --help`, and the did-you-mean of a misspelt method.

use std::fmt::Write as _;

use ave::network::control::MethodInfo;

/// One line per method: its signature (optional parameters in brackets) and who may call
/// it, aligned.
pub(crate) fn table(methods: &[MethodInfo], indent: &str) -> String {
    let rows: Vec<(String, String)> = methods.iter().map(|m| (signature(m), access(m))).collect();
    let width = rows.iter().map(|(s, _)| s.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (signature, access) in rows {
        let _ = writeln!(out, "{indent}{signature:<width$}  {access}");
    }
    out
}

/// `name(required, [optional])`, or `name(...)` when the method takes any arguments.
fn signature(method: &MethodInfo) -> String {
    let params = match &method.params {
        None => "...".to_owned(),
        Some(names) => names
            .iter()
            .enumerate()
            .map(|(i, n)| if i < method.required { n.clone() } else { format!("[{n}]") })
            .collect::<Vec<_>>()
            .join(", "),
    };
    format!("{}({params})", method.name)
}

/// Who may call the method.
fn access(method: &MethodInfo) -> String {
    match (&method.preauth, method.auth) {
        (Some(accounts), _) => format!("the keys of {}", accounts.join(", ")),
        (None, true) => "authenticated callers".to_owned(),
        (None, false) => "everyone".to_owned(),
    }
}

/// The listed method closest to a misspelt `name`, if one is close enough to be meant.
pub(crate) fn closest<'a>(name: &str, methods: &'a [MethodInfo]) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(2);
    methods
        .iter()
        .map(|m| (distance(&name.to_lowercase(), &m.name.to_lowercase()), m.name.as_str()))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, n)| n)
}

/// The Levenshtein distance between two strings, in characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests;
