//! `cargo xtask bench`: runs every bench target of the workspace and prints one table.
//!
//! Bench targets are `harness = false` programs under a crate's `benches/`. Each one runs
//! our code and its peer side by side in the same run and prints one line per result:
//!
//! ```text
//! BENCH name=<what>|ours=<number>|peer=<peer name>|peer_value=<number>|unit=<unit>|better=<lower|higher>|target=<ratio>
//! ```
//!
//! `peer`, `peer_value` and `target` may be left out for a measurement with no peer (a
//! memory figure, say). The ratio is `ours / peer_value`; a target is met when the ratio
//! is at most the target for `better=lower` and at least the target for `better=higher`.
//! Every other line of the bench's output is shown as it comes. The task fails (exits
//! non-zero) when any row misses its target, after printing the whole table.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
};

use crate::{Result, cargo_path, target_dir};

/// One result line of a bench.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    name: String,
    ours: f64,
    peer: Option<(String, f64)>,
    unit: String,
    lower_is_better: bool,
    target: Option<f64>,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        self.peer.as_ref().map(|(_, value)| self.ours / value)
    }

    fn verdict(&self) -> &'static str {
        match (self.ratio(), self.target) {
            (Some(ratio), Some(target)) => {
                let met = if self.lower_is_better { ratio <= target } else { ratio >= target };
                if met { "met" } else { "MISSED" }
            }
            _ => "-",
        }
    }
}

/// Parses a `BENCH ...` line; `None` for any other line.
fn parse_line(line: &str) -> Option<std::result::Result<Row, String>> {
    let body = line.strip_prefix("BENCH ")?;
    Some(parse_body(body).map_err(|e| format!("bad bench line `{line}`: {e}")))
}

fn parse_body(body: &str) -> std::result::Result<Row, String> {
    let mut name = None;
    let mut ours = None;
    let mut peer = None;
    let mut peer_value = None;
    let mut unit = String::new();
    let mut lower_is_better = true;
    let mut target = None;
    for field in body.split('|') {
        let (key, value) =
            field.split_once('=').ok_or_else(|| format!("field `{field}` has no `=`"))?;
        let number = || value.trim().parse::<f64>().map_err(|e| format!("{key}: {e}"));
        match key.trim() {
            "name" => name = Some(value.trim().to_owned()),
            "ours" => ours = Some(number()?),
            "peer" => peer = Some(value.trim().to_owned()),
            "peer_value" => peer_value = Some(number()?),
            "unit" => unit = value.trim().to_owned(),
            "better" => {
                lower_is_better = match value.trim() {
                    "lower" => true,
                    "higher" => false,
                    other => return Err(format!("better must be lower or higher, not {other}")),
                }
            }
            "target" => target = Some(number()?),
            other => return Err(format!("unknown field `{other}`")),
        }
    }
    Ok(Row {
        name: name.ok_or("no name")?,
        ours: ours.ok_or("no ours")?,
        peer: match (peer, peer_value) {
            (Some(p), Some(v)) => Some((p, v)),
            (None, None) => None,
            _ => return Err("peer and peer_value go together".to_owned()),
        },
        unit,
        lower_is_better,
        target,
    })
}

pub(crate) fn run(root: &Path, rest: &[String]) -> Result {
    let mut args: Vec<String> =
        // `--bench '*'` selects the bench targets only; `--benches` would also run every
        // library's unit tests in bench mode.
        ["bench", "--workspace", "--bench", "*"].iter().map(|s| (*s).to_owned()).collect();
    if !rest.is_empty() {
        args.push("--".to_owned());
        args.extend(rest.iter().cloned());
    }
    println!("$ cargo {}", args.join(" "));
    let mut child = Command::new(cargo_path())
        .args(&args)
        .current_dir(root)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("reading bench output: {e}"))?;
        match parse_line(&line) {
            Some(Ok(row)) => {
                println!("  result: {}", row.name);
                rows.push(row);
            }
            Some(Err(e)) => bad.push(e),
            None => println!("{line}"),
        }
    }
    let status = child.wait().map_err(|e| format!("waiting for cargo: {e}"))?;
    let table = render(&rows);
    println!("\n{table}");
    let report = target_dir().join("bench-report.md");
    if let Err(e) = std::fs::write(&report, &table) {
        eprintln!("could not write {}: {e}", report.display());
    } else {
        println!("report: {}", report.display());
    }
    if !bad.is_empty() {
        return Err(bad.join("\n"));
    }
    if !status.success() {
        return Err(format!("`cargo {}` failed ({status})", args.join(" ")));
    }
    let missed = missed(&rows);
    if !missed.is_empty() {
        return Err(format!(
            "{} of {} results missed their target: {}",
            missed.len(),
            rows.len(),
            missed.join(", ")
        ));
    }
    Ok(())
}

/// The names of the rows that missed their target.
fn missed(rows: &[Row]) -> Vec<&str> {
    rows.iter().filter(|r| r.verdict() == "MISSED").map(|r| r.name.as_str()).collect()
}

fn render(rows: &[Row]) -> String {
    let mut out = String::from(
        "| benchmark | ours | peer | peer's | ratio (ours/peer) | target | verdict |\n\
         | --- | ---: | --- | ---: | ---: | --- | --- |\n",
    );
    if rows.is_empty() {
        out.push_str("| (no benchmarks defined yet) | | | | | | |\n");
    }
    for row in rows {
        let (peer, peer_value) = match &row.peer {
            Some((name, value)) => (name.clone(), format!("{} {}", number(*value), row.unit)),
            None => ("-".to_owned(), "-".to_owned()),
        };
        let ratio = row.ratio().map_or_else(|| "-".to_owned(), |r| format!("{r:.3}x"));
        let target = row.target.map_or_else(
            || "-".to_owned(),
            |t| format!("{} {t}x", if row.lower_is_better { "<=" } else { ">=" }),
        );
        out.push_str(&format!(
            "| {} | {} {} | {peer} | {peer_value} | {ratio} | {target} | {} |\n",
            row.name,
            number(row.ours),
            row.unit,
            row.verdict()
        ));
    }
    out
}

fn number(value: f64) -> String {
    if value.abs() >= 100.0 { format!("{value:.0}") } else { format!("{value:.3}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_and_bare_lines() {
        let row = parse_line(
            "BENCH name=rtt|ours=12.5|peer=echo|peer_value=10|unit=us|better=lower|target=1.3",
        )
        .unwrap()
        .unwrap();
        assert_eq!(row.ratio(), Some(1.25));
        assert_eq!(row.verdict(), "met");
        let row = parse_line("BENCH name=mem|ours=3|unit=KiB").unwrap().unwrap();
        assert_eq!(row.verdict(), "-");
        assert!(parse_line("plain output").is_none());
        assert!(parse_line("BENCH name=x|ours=abc").unwrap().is_err());
        assert!(parse_line("BENCH name=x|ours=1|peer=y").unwrap().is_err());
    }

    #[test]
    fn higher_is_better_targets() {
        let row =
            parse_body("name=tput|ours=30|peer=py|peer_value=1|better=higher|target=20").unwrap();
        assert_eq!(row.verdict(), "met");
        let row =
            parse_body("name=tput|ours=10|peer=py|peer_value=1|better=higher|target=20").unwrap();
        assert_eq!(row.verdict(), "MISSED");
        assert!(render(std::slice::from_ref(&row)).contains("MISSED"));
        let met = parse_body("name=rtt|ours=1|peer=echo|peer_value=1|target=1.3").unwrap();
        assert_eq!(missed(&[met.clone(), row]), ["tput"]);
        assert!(missed(&[met]).is_empty());
    }
}
