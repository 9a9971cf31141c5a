//! `ave call`: one RPC to any AVE service.
//!
//! Prints the result as one line of JSON. Exit codes: 0 on success; 1 if the service
//! raised an exception (the exception object as JSON on stderr); 2 on usage errors; 3 if
//! the service cannot be reached, the connection fails (refused, timed out, closed) or the
//! server refuses the key.
//!
//! Options are options anywhere before `--`. An ARG (or a `--kw` value) that starts like
//! JSON must be JSON; other text is sent as a string.
//!
//! `ave call ADDR --list` prints the methods of an `ave` service (its
//! `ave.list_methods`, see `ave::network::control::LIST_METHODS`); an original Python
//! server answers that with `no such RPC`, and `ave call` says the server does not list
//! its methods. A call of a method the service does not have gets a did-you-mean from the
//! same list, when the service has one.

use std::{fmt, path::PathBuf, process::ExitCode, time::Duration};

use ave::network::{
    Address, BlockingRemoteControl, Error,
    client::Call,
    control::{LIST_METHODS, MethodInfo},
};
use serde_json::Value;

use crate::{address, duration, methods, secrets};

/// The exit codes, for `ave call --help`.
const EXIT_CODES: &str = "\
Exit status:
  0  the call returned; its result is on stdout as one line of JSON
  1  the service raised an exception; the exception object is on stderr as JSON
  2  usage error (unknown option, an ARG that starts like JSON but is not, ...)
  3  the service cannot be reached, the connection failed (refused, timed out, closed)
     or the server refused the key";

/// Arguments of `ave call`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXIT_CODES)]
#[command(group = clap::ArgGroup::new("key").args(["authkey", "authkey_file", "key_name"]))]
pub(crate) struct Args {
    /// The key to authenticate with (other users see it in `ps`: prefer --authkey-file,
    /// --key-name or AVE_AUTHKEY).
    #[arg(long, value_name = "KEY")]
    authkey: Option<String>,
    /// Read the key from this file (its first line); the file must not be readable by
    /// group or others.
    #[arg(long, value_name = "PATH")]
    authkey_file: Option<PathBuf>,
    /// Use the key of this account in the home's `.ave/config/authkeys.json`.
    #[arg(long, value_name = "NAME")]
    key_name: Option<String>,
    /// The home directory whose authkeys.json --key-name reads (default: yours).
    #[arg(long, value_name = "DIR", requires = "key_name")]
    home: Option<PathBuf>,
    /// Make the call even if the server refuses the key (it runs without an identity).
    #[arg(long)]
    allow_unauthenticated: bool,
    /// Give up on the call after this long (e.g. 1.5, 500ms, 2m; 0: wait forever).
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = duration::parse_duration)]
    timeout: Duration,
    /// Give up connecting (and authenticating) after this long (0: wait forever).
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = duration::parse_duration)]
    connect_timeout: Duration,
    /// Make a one-way call: send it and do not wait for an answer.
    #[arg(long = "async")]
    async_: bool,
    /// The resource profile to send with the call, as a JSON object.
    #[arg(long, value_name = "JSON")]
    resource: Option<String>,
    /// A keyword argument (repeatable); the value is read as an ARG is.
    #[arg(long = "kw", value_name = "NAME=VALUE")]
    kwargs: Vec<String>,
    /// Send every ARG and --kw value as a string, even if it looks like JSON.
    #[arg(short, long)]
    string: bool,
    /// The service's address: HOST:PORT, where HOST may be a name (`localhost:4000`).
    #[arg(value_name = "HOST:PORT", value_parser = address::parse_address)]
    address: Address,
    /// The method to call.
    #[arg(value_name = "METHOD", required_unless_present = "list")]
    method: Option<String>,
    /// Print the service's methods, their parameters and who may call them, instead of
    /// calling one.
    #[arg(long, conflicts_with_all = ["method", "async_", "kwargs", "resource"])]
    list: bool,
    /// Positional arguments. One that starts like JSON (`{`, `[`, `"`, a digit, `-`) or
    /// is `true`, `false` or `null` must be JSON; any other text is sent as a string.
    /// An ARG after `--` is never an option: `ave call -s ADDR m -- --text`.
    #[arg(value_name = "ARG", allow_negative_numbers = true)]
    args: Vec<String>,
}

/// A usage error: the message on stderr, exit 2.
fn usage(message: impl fmt::Display) -> ExitCode {
    eprintln!("ave call: error: {message}");
    ExitCode::from(2)
}

/// A connection failure or a refused key: the message on stderr, exit 3.
fn unreachable(address: &Address, message: impl fmt::Display) -> ExitCode {
    eprintln!("ave call: error: {address}: {message}");
    ExitCode::from(3)
}

/// Text that is not the JSON it starts like.
#[derive(Debug, PartialEq)]
struct NotJson {
    /// serde_json's reason, with its line and column.
    reason: String,
    /// The line of the text the error is on, and the caret under the column.
    pointer: String,
}

/// Whether text must be JSON: it starts like a JSON value other than a string of letters.
fn looks_like_json(text: &str) -> bool {
    let text = text.trim_start();
    match text.as_bytes().first() {
        Some(b'{' | b'[' | b'"' | b'-' | b'0'..=b'9') => true,
        _ => matches!(text.trim_end(), "true" | "false" | "null"),
    }
}

/// An ARG or `--kw` value as JSON: parsed if it starts like JSON, a string otherwise (or
/// always with `strings`).
fn argument(text: &str, strings: bool) -> Result<Value, NotJson> {
    if strings || !looks_like_json(text) {
        return Ok(Value::String(text.to_owned()));
    }
    serde_json::from_str(text).map_err(|e| NotJson {
        reason: e.to_string(),
        pointer: pointer(text, e.line(), e.column()),
    })
}

/// The line `line` (1-based) of `text`, and a caret under its byte column `column`.
fn pointer(text: &str, line: usize, column: usize) -> String {
    let shown = text.lines().nth(line.saturating_sub(1)).unwrap_or_default();
    let mut at = column.saturating_sub(1).min(shown.len());
    while !shown.is_char_boundary(at) {
        at -= 1;
    }
    let indent = shown[..at].chars().count();
    format!("    {shown}\n    {}^", " ".repeat(indent))
}

/// The key to send, from the flag, the file, authkeys.json or the environment.
fn authkey(args: &Args) -> Result<Option<String>, String> {
    if let Some(key) = &args.authkey {
        return Ok(Some(key.clone()));
    }
    if let Some(path) = &args.authkey_file {
        return secrets::read_key_file(path).map(Some).map_err(|e| e.to_string());
    }
    if let Some(name) = &args.key_name {
        let home = match &args.home {
            Some(home) => home.clone(),
            None => ave::persona::current_user()
                .map(|u| u.home)
                .map_err(|e| format!("--key-name: find your home directory: {e}"))?,
        };
        let file = ave::config::config_dir(&home).join("authkeys.json");
        let keys = ave::config::load_authkeys(&home)
            .map_err(|e| format!("--key-name: {}", crate::config::explain(&e)))?;
        return match keys.get(name) {
            Some(key) => Ok(Some(key.to_owned())),
            None if keys.contains(name) => {
                Err(format!("--key-name {name}: the account has no key in {}", file.display()))
            }
            None => {
                let names: Vec<&str> = keys.iter().map(|(n, _)| n).collect();
                Err(format!(
                    "--key-name {name}: no such account in {} (accounts: {})",
                    file.display(),
                    names.join(", ")
                ))
            }
        };
    }
    Ok(secrets::env_authkey())
}

pub(crate) fn main(args: Args) -> anyhow::Result<ExitCode> {
    let resource = match args.resource.as_deref().map(serde_json::from_str::<Value>) {
        None => Value::Null,
        Some(Ok(value @ (Value::Object(_) | Value::Null))) => value,
        Some(Ok(other)) => {
            return Ok(usage(format!("--resource must be a JSON object, not {other}")));
        }
        Some(Err(e)) => return Ok(usage(format!("--resource is not JSON: {e}"))),
    };
    let method = args.method.clone().unwrap_or_else(|| LIST_METHODS.to_owned());
    let mut call = Call::new(&method).one_way(args.async_);
    for (n, arg) in args.args.iter().enumerate() {
        match argument(arg, args.string) {
            Ok(value) => call = call.arg(value),
            Err(e) => return Ok(not_json(&format!("ARG {}", n + 1), &e)),
        }
    }
    for spec in &args.kwargs {
        let (name, text) = match secrets::split_named("--kw", "NAME=VALUE", spec) {
            Ok(pair) => pair,
            Err(e) => return Ok(usage(e)),
        };
        match argument(text, args.string) {
            Ok(value) => call = call.kwarg(name, value),
            Err(e) => return Ok(not_json(&format!("--kw {name}"), &e)),
        }
    }
    let key = match authkey(&args) {
        Ok(key) => key,
        Err(e) => return Ok(usage(e)),
    };

    let address = &args.address;
    let remote = BlockingRemoteControl::new(address.clone(), key.as_deref())
        .with_timeout(duration::nonzero(args.timeout))
        .with_optimist(false)
        .with_resource(resource);
    // Connect (and authenticate) first, within the connect timeout, so that a refused key
    // is known before anything is called.
    if let Err(e) = remote.connect(duration::nonzero(args.connect_timeout)) {
        return Ok(match e {
            Error::Remote(exception) => unreachable(address, exception.message()),
            e if is_timeout(&e) => unreachable(
                address,
                format_args!(
                    "could not connect within {} (--connect-timeout)",
                    show(args.connect_timeout)
                ),
            ),
            e => unreachable(address, crate::chain(&e)),
        });
    }
    if key.is_some() && remote.authenticated() == Some(false) {
        if !args.allow_unauthenticated {
            return Ok(unreachable(
                address,
                "the server refused the key; nothing was called \
                 (--allow-unauthenticated calls without an identity)",
            ));
        }
        eprintln!(
            "ave call: warning: {address}: the server refused the key; calling without an identity"
        );
    }
    match remote.invoke(&call) {
        Ok(result) if args.list => {
            let listed = result.and_then(|r| serde_json::from_value::<Vec<MethodInfo>>(r).ok());
            match listed {
                Some(listed) => {
                    print!("{}", methods::table(&listed, ""));
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!("ave call: error: {address}: {LIST_METHODS} did not answer a list");
                    Ok(ExitCode::from(1))
                }
            }
        }
        Ok(result) => {
            println!("{}", serde_json::to_string(&result.unwrap_or(Value::Null))?);
            Ok(ExitCode::SUCCESS)
        }
        Err(Error::Remote(exception)) if args.list && is_no_such_rpc(&exception, LIST_METHODS) => {
            eprintln!(
                "ave call: error: {address}: the server does not list its methods (it is not an \
                 ave service, or an older one)"
            );
            Ok(ExitCode::from(1))
        }
        Err(Error::Remote(exception)) => {
            eprintln!("{}", serde_json::to_string(&exception.to_wire())?);
            if is_no_such_rpc(&exception, &method) {
                if let Some(meant) = did_you_mean(&remote, &method) {
                    eprintln!("ave call: hint: did you mean {meant}? (--list shows every method)");
                }
            }
            Ok(ExitCode::from(1))
        }
        Err(Error::Encode(e)) => Ok(usage(e)),
        Err(e) if is_timeout(&e) => Ok(unreachable(
            address,
            format_args!("no answer within {} (--timeout)", show(args.timeout)),
        )),
        Err(e) => Ok(unreachable(address, crate::chain(&e))),
    }
}

/// The usage error of text that starts like JSON but is not.
fn not_json(what: &str, e: &NotJson) -> ExitCode {
    usage(format_args!(
        "{what} starts like JSON but is not: {}\n{}\n    \
         (send it as a string with --string, or write it as a JSON string)",
        e.reason, e.pointer
    ))
}

/// Whether the service answered that it has no method of that name.
fn is_no_such_rpc(exception: &ave::exceptions::AveException, method: &str) -> bool {
    exception.message() == format!("no such RPC: {method}")
}

/// The listed method that a misspelt `method` probably meant, if the service lists its
/// methods (asked on the same connection).
fn did_you_mean(remote: &BlockingRemoteControl, method: &str) -> Option<String> {
    let listed = remote.call(LIST_METHODS, ()).ok()?;
    let listed: Vec<MethodInfo> = serde_json::from_value(listed).ok()?;
    methods::closest(method, &listed).map(str::to_owned)
}

/// Whether a call failed because a timeout expired.
fn is_timeout(e: &Error) -> bool {
    matches!(e, Error::Network(ave::exceptions::NetworkError::Timeout(_)) | Error::Timeout(_))
}

/// A duration as a person writes it: `10 s`, `1.5 s`, `500 ms`.
fn show(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests;
