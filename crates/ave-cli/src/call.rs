//! `ave call`: one RPC to any AVE service.
//!
//! Prints the result as one line of JSON. Exit codes: 0 on success; 1 if the service
//! raised an exception (the exception object as JSON on stderr); 2 on usage errors; 3 if
//! the service cannot be reached or the connection fails (refused, timed out, closed).

use std::{process::ExitCode, time::Duration};

use ave::network::{Address, BlockingRemoteControl, Call, Error};
use serde_json::Value;

/// Arguments of `ave call`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The key to authenticate with.
    #[arg(long, value_name = "KEY")]
    authkey: Option<String>,
    /// Give up after this many seconds (0: no timeout).
    #[arg(long, value_name = "SECS")]
    timeout: Option<f64>,
    /// Make a one-way call: send it and do not wait for an answer.
    #[arg(long = "async")]
    async_: bool,
    /// The resource profile to send with the call, as a JSON object.
    #[arg(long, value_name = "JSON")]
    resource: Option<String>,
    /// A keyword argument (repeatable); the value is JSON, or a string if it is not JSON.
    #[arg(long = "kw", value_name = "NAME=JSON")]
    kwargs: Vec<String>,
    /// The service's address.
    #[arg(value_name = "HOST:PORT")]
    address: String,
    /// The method to call.
    #[arg(value_name = "METHOD")]
    method: String,
    /// Positional arguments; each is JSON, or a string if it is not JSON.
    #[arg(value_name = "ARG", allow_hyphen_values = true)]
    args: Vec<String>,
}

/// A usage error: the message on stderr, exit 2.
fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("ave call: {message}");
    ExitCode::from(2)
}

/// An argument as JSON, or as a string if it is not JSON.
fn argument(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

pub(crate) fn main(args: Args) -> anyhow::Result<ExitCode> {
    let address: Address = match args.address.parse() {
        Ok(address) => address,
        Err(e) => return Ok(usage(e)),
    };
    let timeout = match args.timeout {
        None => None,
        Some(secs) => match Duration::try_from_secs_f64(secs) {
            Ok(d) => Some(d),
            Err(_) => return Ok(usage(format!("--timeout {secs}: not a number of seconds"))),
        },
    };
    let resource = match args.resource.as_deref().map(serde_json::from_str::<Value>) {
        None => Value::Null,
        Some(Ok(value @ (Value::Object(_) | Value::Null))) => value,
        Some(Ok(other)) => {
            return Ok(usage(format!("--resource must be a JSON object, not {other}")));
        }
        Some(Err(e)) => return Ok(usage(format!("--resource is not JSON: {e}"))),
    };
    let mut call = Call::new(args.method).one_way(args.async_);
    for arg in &args.args {
        call = call.arg(argument(arg));
    }
    for spec in &args.kwargs {
        match spec.split_once('=') {
            Some((name, value)) if !name.is_empty() => call = call.kwarg(name, argument(value)),
            _ => return Ok(usage(format!("--kw {spec:?}: expected NAME=JSON"))),
        }
    }

    let remote = BlockingRemoteControl::new(address.clone(), args.authkey.as_deref())
        .with_timeout(timeout)
        .with_optimist(false)
        .with_resource(resource);
    match remote.invoke(&call) {
        Ok(result) => {
            if args.authkey.is_some() && remote.authenticated() == Some(false) {
                eprintln!(
                    "ave call: warning: authentication failed; the call was made without an identity"
                );
            }
            println!("{}", serde_json::to_string(&result.unwrap_or(Value::Null))?);
            Ok(ExitCode::SUCCESS)
        }
        Err(Error::Remote(exception)) => {
            eprintln!("{}", serde_json::to_string(&exception.to_wire())?);
            Ok(ExitCode::from(1))
        }
        Err(Error::Encode(e)) => Ok(usage(e)),
        Err(e) => {
            eprintln!("ave call: {address}: {:#}", anyhow::Error::from(e));
            Ok(ExitCode::from(3))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn arguments_are_json_or_strings() {
        assert_eq!(argument("12"), json!(12));
        assert_eq!(argument("true"), json!(true));
        assert_eq!(argument("\"quoted\""), json!("quoted"));
        assert_eq!(argument("[1, \"a\"]"), json!([1, "a"]));
        assert_eq!(argument("hello world"), json!("hello world"));
        assert_eq!(argument(""), json!(""));
    }
}
