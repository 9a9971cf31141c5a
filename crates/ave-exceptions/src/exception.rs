//! `AveException`: an exception and its wire details.

use std::{fmt, panic::Location};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::{DetailsError, Kind, TraceFrame, repr::python_repr, trace::format_frames};

/// The details of an exception: a JSON object with at least `message` and `type`.
pub type Details = Map<String, Value>;

/// An AVE exception: the error a service reports to its clients.
///
/// It is a thin shell around its *details*, the JSON object that travels on the wire, so
/// every field survives any number of hops unchanged (a `Control` relaying an exception
/// from a downstream service keeps the deepest trace). The [`Kind`] is derived from the
/// `type` field.
///
/// Build one with a constructor named after its class ([`AveException::timeout`],
/// [`AveException::run_error`], ...), from details with [`AveException::from_details`], or
/// from an RPC response with [`AveException::from_wire`]. Constructors record the caller's
/// source location, which a server can turn into a trace frame with
/// [`AveException::ensure_trace`].
///
/// `Display` gives the original's `str()`: the message, followed by
/// `Server side traceback:` and the formatted trace when there is one; for `RunError`, the
/// command, the message and the output.
///
/// Only an `Exit` made by code ([`AveException::exit`], or [`AveException::new`] with
/// [`Kind::Exit`]) asks a server to stop ([`AveException::stops_service`]); one rebuilt from
/// details or from the wire is an ordinary exception, whatever its `type`, so a client
/// cannot forge one.
#[derive(Clone)]
pub struct AveException {
    details: Details,
    location: Option<&'static Location<'static>>,
    /// Made by this process's code as a request to stop the service (an `Exit`).
    stop: bool,
}

impl AveException {
    /// An exception of a known kind with a message.
    ///
    /// [`Kind::Other`] has no type name of its own and gives the type `Exception`; use
    /// [`AveException::custom`] to choose one.
    ///
    /// An [`Kind::Exit`] made here asks the server whose method returns it to stop (see
    /// [`AveException::stops_service`]).
    #[track_caller]
    pub fn new(kind: Kind, message: impl Into<String>) -> AveException {
        let mut e = AveException::custom(kind.type_name().unwrap_or("Exception"), message);
        e.stop = kind == Kind::Exit;
        e
    }

    /// An exception with any type name, such as a service's own `Busy` or `NoSuch`.
    #[track_caller]
    pub fn custom(type_name: impl Into<String>, message: impl Into<String>) -> AveException {
        let mut details = Details::new();
        details.insert("message".to_owned(), Value::String(message.into()));
        details.insert("type".to_owned(), Value::String(type_name.into()));
        AveException { details, location: Some(Location::caller()), stop: false }
    }

    /// A plain `AveException` (the base class).
    #[track_caller]
    pub fn generic(message: impl Into<String>) -> AveException {
        AveException::new(Kind::AveException, message)
    }

    /// A `Timeout`.
    #[track_caller]
    pub fn timeout(message: impl Into<String>) -> AveException {
        AveException::new(Kind::Timeout, message)
    }

    /// An `Exit`. A `Control` method that returns it answers the call, then shuts the
    /// service down ([`AveException::stops_service`] is true).
    #[track_caller]
    pub fn exit(message: impl Into<String>) -> AveException {
        AveException::new(Kind::Exit, message)
    }

    /// An `AuthError`.
    #[track_caller]
    pub fn auth_error(message: impl Into<String>) -> AveException {
        AveException::new(Kind::AuthError, message)
    }

    /// A `Restarting`.
    #[track_caller]
    pub fn restarting(message: impl Into<String>) -> AveException {
        AveException::new(Kind::Restarting, message)
    }

    /// A `Terminated`.
    #[track_caller]
    pub fn terminated(message: impl Into<String>) -> AveException {
        AveException::new(Kind::Terminated, message)
    }

    /// An `Offline`.
    #[track_caller]
    pub fn offline(message: impl Into<String>) -> AveException {
        AveException::new(Kind::Offline, message)
    }

    /// A `RunError` for a command, its output so far, and a message.
    ///
    /// The details are `cmd`, `out`, `ptyout` (the deprecated alias of `out`, kept for old
    /// clients), `message` and `type`, as the original's `RunError(cmd, out, message)`.
    #[track_caller]
    pub fn run_error<I, S>(
        cmd: I,
        out: impl Into<String>,
        message: impl Into<String>,
    ) -> AveException
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let cmd = Value::Array(cmd.into_iter().map(|s| Value::String(s.into())).collect());
        AveException::run_error_from_values(cmd, Value::String(out.into()), message.into())
    }

    #[track_caller]
    fn run_error_from_values(cmd: Value, out: Value, message: String) -> AveException {
        // The original replaces falsy values with ''.
        let falsy_to_empty = |v: Value| if is_falsy(&v) { Value::String(String::new()) } else { v };
        let cmd = falsy_to_empty(cmd);
        let out = falsy_to_empty(out);
        let mut e = AveException::new(Kind::RunError, message);
        e.details.insert("cmd".to_owned(), cmd);
        e.details.insert("ptyout".to_owned(), out.clone());
        e.details.insert("out".to_owned(), out);
        e
    }

    /// An exception from its details, as the original's `AveException(details)`: `message`
    /// is required and a missing `type` becomes `AveException`.
    ///
    /// # Errors
    ///
    /// [`DetailsError::MissingMessage`] if the details have no `message`.
    #[track_caller]
    pub fn from_details(details: Details) -> Result<AveException, DetailsError> {
        AveException::from_details_as(Kind::AveException, details)
    }

    /// An exception from its details, as the constructor of the class of `kind` would build
    /// it: a missing `type` becomes that class's name (`Exception` for [`Kind::Other`]).
    ///
    /// # Errors
    ///
    /// [`DetailsError::MissingMessage`] if the details have no `message`.
    #[track_caller]
    pub fn from_details_as(kind: Kind, mut details: Details) -> Result<AveException, DetailsError> {
        if !details.contains_key("message") {
            return Err(DetailsError::MissingMessage);
        }
        if !details.contains_key("type") {
            let name = kind.type_name().unwrap_or("Exception");
            details.insert("type".to_owned(), Value::String(name.to_owned()));
        }
        Ok(AveException { details, location: Some(Location::caller()), stop: false })
    }

    /// An exception from a JSON value that must be a details object.
    ///
    /// # Errors
    ///
    /// [`DetailsError::NotAnObject`] for anything but an object,
    /// [`DetailsError::MissingMessage`] if it has no `message`.
    #[track_caller]
    pub fn from_details_value(details: Value) -> Result<AveException, DetailsError> {
        match details {
            Value::Object(map) => AveException::from_details(map),
            _ => Err(DetailsError::NotAnObject),
        }
    }

    /// Rebuilds an exception from the `exception` value of an RPC response, exactly as the
    /// original client's `exception_factory` does:
    ///
    /// - a value that is not an object (the bare-string validation errors) becomes a
    ///   generic exception of type `Exception` with that value as its message;
    /// - an object without `type` gets the type `Exception`;
    /// - `RunError` is rebuilt from `cmd`, `out` and `message`, which drops its trace and
    ///   any other field (if `cmd` or `out` is missing, where the original would fail with
    ///   a `KeyError`, the details are kept as they are);
    /// - `OverflowError` keeps only its message (the original raises Python's builtin);
    /// - every other type keeps all of its fields, whether or not its kind is known.
    ///
    /// An object without `message`, which the original cannot rebuild at all, gives an
    /// `Exception` whose message says so and carries the received JSON text, so nothing is
    /// lost.
    pub fn from_wire(value: &Value) -> AveException {
        let mut details = match value {
            Value::Object(map) => map.clone(),
            Value::String(s) => single("message", Value::String(s.clone())),
            other => single("message", other.clone()),
        };
        if !details.contains_key("type") {
            details.insert("type".to_owned(), Value::String("Exception".to_owned()));
        }
        if !details.contains_key("message") {
            let text = Value::Object(details).to_string();
            return AveException {
                details: single_typed(
                    "Exception",
                    format!("AveException details must have message field: {text}"),
                ),
                location: None,
                stop: false,
            };
        }
        let kind =
            details.get("type").and_then(Value::as_str).map_or(Kind::Other, Kind::from_type_name);
        match kind {
            Kind::RunError if details.contains_key("cmd") && details.contains_key("out") => {
                let message = match details.get("message") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                let mut e = AveException::run_error_from_values(
                    details["cmd"].clone(),
                    details["out"].clone(),
                    message,
                );
                e.location = None;
                e
            }
            Kind::OverflowError => {
                let message = details.get("message").cloned().unwrap_or(Value::Null);
                let mut d = single("message", message);
                d.insert("type".to_owned(), Value::String("OverflowError".to_owned()));
                AveException { details: d, location: None, stop: false }
            }
            _ => AveException { details, location: None, stop: false },
        }
    }

    /// The details as the JSON value sent on the wire (the value of `exception` in a
    /// response).
    pub fn to_wire(&self) -> Value {
        Value::Object(self.details.clone())
    }

    /// Whether a server whose method returns this exception stops: true only for an `Exit`
    /// made by this process's code ([`AveException::exit`], [`AveException::new`] with
    /// [`Kind::Exit`], or [`AveException::into_stop_request`]) and still of type `Exit`.
    /// An `Exit` rebuilt from details or from the wire ([`AveException::from_details`],
    /// [`AveException::from_wire`], deserialization) is answered like any other exception:
    /// data a client sent never carries control-flow meaning.
    pub fn stops_service(&self) -> bool {
        self.stop && self.kind() == Kind::Exit
    }

    /// Makes an `Exit` built from details stop the service that returns it, for service
    /// code that decides to stop with details of its own (never details from a client).
    /// Has no effect on other types.
    #[must_use]
    pub fn into_stop_request(mut self) -> AveException {
        self.stop = true;
        self
    }

    /// The kind, derived from the `type` field.
    pub fn kind(&self) -> Kind {
        Kind::from_type_name(self.type_name())
    }

    /// The `type` field (empty if it was set to something that is not a string).
    pub fn type_name(&self) -> &str {
        self.details.get("type").and_then(Value::as_str).unwrap_or("")
    }

    /// The `message` field. A message that is not a string is rendered as JSON text.
    pub fn message(&self) -> std::borrow::Cow<'_, str> {
        match self.details.get("message") {
            Some(Value::String(s)) => s.as_str().into(),
            Some(other) => other.to_string().into(),
            None => "".into(),
        }
    }

    /// The whole details object.
    pub fn details(&self) -> &Details {
        &self.details
    }

    /// The details object, taken out of the exception.
    pub fn into_details(self) -> Details {
        self.details
    }

    /// One field of the details (`cmd`, `out`, or any extra field).
    pub fn field(&self, key: &str) -> Option<&Value> {
        self.details.get(key)
    }

    /// Adds or replaces a field of the details, builder style.
    ///
    /// Setting `type` changes the kind; setting `message` changes the message.
    #[must_use]
    pub fn with_field(mut self, key: impl Into<String>, value: Value) -> AveException {
        self.details.insert(key.into(), value);
        self
    }

    /// Adds or replaces a field of the details.
    pub fn set_field(&mut self, key: impl Into<String>, value: Value) {
        self.details.insert(key.into(), value);
    }

    /// For `RunError`: the command that failed.
    pub fn cmd(&self) -> Option<&Value> {
        self.details.get("cmd")
    }

    /// For `RunError` and `Timeout`: the output of the command so far.
    pub fn out(&self) -> Option<&str> {
        self.details.get("out").and_then(Value::as_str)
    }

    /// Whether the details carry a trace (a `trace` field that is not `null`).
    pub fn has_trace(&self) -> bool {
        !matches!(self.details.get("trace"), None | Some(Value::Null))
    }

    /// The trace frames that have the wire shape, outermost first. `None` without a trace.
    pub fn trace(&self) -> Option<Vec<TraceFrame>> {
        match self.details.get("trace") {
            Some(Value::Array(frames)) => {
                Some(frames.iter().filter_map(TraceFrame::from_wire).collect())
            }
            _ => None,
        }
    }

    /// Sets the trace, builder style.
    #[must_use]
    pub fn with_trace(mut self, frames: Vec<TraceFrame>) -> AveException {
        self.set_trace(frames);
        self
    }

    /// Sets the trace.
    pub fn set_trace(&mut self, frames: Vec<TraceFrame>) {
        let frames = frames.iter().map(TraceFrame::to_wire).collect();
        self.details.insert("trace".to_owned(), Value::Array(frames));
    }

    /// The source location where this exception was constructed in this process, if it
    /// was (exceptions rebuilt from the wire have none).
    pub fn location(&self) -> Option<&'static Location<'static>> {
        self.location
    }

    /// Gives the exception a trace if it has none, as a `Control` does before sending it:
    /// one frame with the construction site and `function` (the RPC method), or an empty
    /// trace when the site is unknown. An exception that already has a trace, such as one
    /// relayed from a downstream service, keeps it.
    pub fn ensure_trace(&mut self, function: &str) {
        if self.details.contains_key("trace") {
            return;
        }
        let frames = match self.location {
            Some(loc) => vec![TraceFrame::new(loc.file(), i64::from(loc.line()), function, None)],
            None => Vec::new(),
        };
        self.set_trace(frames);
    }

    /// The original's `format_trace()`: one `  File "<file>", line <n>, in <function>` line
    /// per frame, followed by the indented source when known; empty without a trace.
    pub fn format_trace(&self) -> String {
        match self.details.get("trace") {
            Some(Value::Array(frames)) => format_frames(frames),
            _ => String::new(),
        }
    }
}

fn single(key: &str, value: Value) -> Details {
    let mut map = Details::new();
    map.insert(key.to_owned(), value);
    map
}

fn single_typed(type_name: &str, message: String) -> Details {
    let mut map = single("message", Value::String(message));
    map.insert("type".to_owned(), Value::String(type_name.to_owned()));
    map
}

fn is_falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

impl fmt::Display for AveException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind() == Kind::RunError {
            let cmd = self.details.get("cmd").map_or_else(String::new, python_repr);
            let out = match self.details.get("out") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            return write!(f, "{cmd}:\n{}:\n{out}", self.message());
        }
        f.write_str(&self.message())?;
        if self.has_trace() {
            write!(f, "\nServer side traceback:\n{}", self.format_trace())?;
        }
        Ok(())
    }
}

impl fmt::Debug for AveException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AveException").field("details", &self.details).finish()
    }
}

impl PartialEq for AveException {
    /// Two exceptions are equal when their details are; where they were raised is not
    /// compared.
    fn eq(&self, other: &AveException) -> bool {
        self.details == other.details
    }
}

impl std::error::Error for AveException {}

impl Serialize for AveException {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.details.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for AveException {
    /// Deserializes strict details (an object with a `message`); use
    /// [`AveException::from_wire`] for the lenient client-side rebuilding.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<AveException, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let mut e = AveException::from_details_value(value).map_err(serde::de::Error::custom)?;
        e.location = None;
        e.stop = false;
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Details {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn type_is_filled_from_the_class_unless_given() {
        let e = AveException::from_details(obj(json!({"message": "m"}))).unwrap();
        assert_eq!(e.type_name(), "AveException");
        let e = AveException::from_details_as(Kind::Timeout, obj(json!({"message": "m"}))).unwrap();
        assert_eq!(e.kind(), Kind::Timeout);
        let e = AveException::from_details_as(
            Kind::Timeout,
            obj(json!({"message": "m", "type": "Busy"})),
        )
        .unwrap();
        assert_eq!(e.type_name(), "Busy");
        assert_eq!(e.kind(), Kind::Other);
    }

    #[test]
    fn details_are_validated() {
        assert_eq!(
            AveException::from_details(obj(json!({"type": "X"}))),
            Err(DetailsError::MissingMessage)
        );
        assert_eq!(AveException::from_details_value(json!([1])), Err(DetailsError::NotAnObject));
        assert_eq!(
            DetailsError::MissingMessage.to_string(),
            "AveException details must have message field"
        );
    }

    #[test]
    fn display_with_and_without_trace() {
        let e = AveException::from_details(obj(json!({
            "message": "message1",
            "trace": [["module1", 0, "method1", "line code"]]
        })))
        .unwrap();
        assert_eq!(
            e.to_string(),
            "message1\nServer side traceback:\n  File \"module1\", line 0, in method1\n    line code\n"
        );
        let e = AveException::from_details(obj(json!({"message": "message1"}))).unwrap();
        assert_eq!(e.to_string(), "message1");
        let e = AveException::from_details(obj(json!({"message": "m", "trace": null}))).unwrap();
        assert!(!e.has_trace());
        assert_eq!(e.to_string(), "m");
    }

    #[test]
    fn run_error_fields_and_text() {
        let e = AveException::run_error(["no_such_exe"], "out text", "exec failed");
        assert_eq!(
            e.to_wire(),
            json!({"cmd": ["no_such_exe"], "message": "exec failed", "out": "out text",
                   "ptyout": "out text", "type": "RunError"})
        );
        assert_eq!(e.to_string(), "['no_such_exe']:\nexec failed:\nout text");
        let empty = AveException::run_error(Vec::<String>::new(), "", "m");
        assert_eq!(empty.cmd(), Some(&json!("")));
        assert_eq!(empty.out(), Some(""));
    }

    #[test]
    fn ensure_trace_uses_the_construction_site_once() {
        let mut e = AveException::timeout("t");
        let line = line!() - 1;
        e.ensure_trace("rpc_method");
        let trace = e.trace().unwrap();
        assert_eq!(trace.len(), 1);
        assert_eq!(trace[0].function, "rpc_method");
        assert_eq!(trace[0].line, i64::from(line));
        assert!(trace[0].file.ends_with("exception.rs"));
        e.ensure_trace("other");
        assert_eq!(e.trace().unwrap()[0].function, "rpc_method");

        let mut relayed = AveException::from_wire(&json!({"message": "m", "type": "X"}));
        relayed.ensure_trace("f");
        assert_eq!(relayed.trace(), Some(vec![]));
    }

    #[test]
    fn factory_cases() {
        let e = AveException::from_wire(&json!("no such RPC: x"));
        assert_eq!(e.to_wire(), json!({"message": "no such RPC: x", "type": "Exception"}));
        let e = AveException::from_wire(&json!({"message": "m"}));
        assert_eq!(e.type_name(), "Exception");
        let e = AveException::from_wire(&json!({
            "message": "boom", "type": "RunError", "cmd": ["a"], "out": "o", "ptyout": "o",
            "trace": [["f", 1, "g", null]], "extra": 1
        }));
        assert_eq!(
            e.to_wire(),
            json!({"cmd": ["a"], "message": "boom", "out": "o", "ptyout": "o", "type": "RunError"})
        );
        let e =
            AveException::from_wire(&json!({"message": "big", "type": "OverflowError", "x": 1}));
        assert_eq!(e.to_wire(), json!({"message": "big", "type": "OverflowError"}));
        let e = AveException::from_wire(&json!({"type": "Busy", "extra": [1]}));
        assert_eq!(e.type_name(), "Exception");
        assert!(e.message().contains("\"extra\":[1]"), "{}", e.message());
        let e = AveException::from_wire(&json!(42));
        assert_eq!(e.message(), "42");
    }

    #[test]
    fn only_exits_made_by_code_stop_a_service() {
        assert!(AveException::exit("bye").stops_service());
        assert!(AveException::new(Kind::Exit, "bye").stops_service());
        assert!(AveException::exit("bye").clone().stops_service());
        // Forged from client data: an ordinary exception of type Exit.
        let forged = json!({"type": "Exit", "message": "x"});
        let from_details = AveException::from_details_value(forged.clone()).unwrap();
        assert_eq!(from_details.kind(), Kind::Exit);
        assert!(!from_details.stops_service());
        assert!(!AveException::from_wire(&forged).stops_service());
        assert!(!serde_json::from_value::<AveException>(forged).unwrap().stops_service());
        assert!(!AveException::custom("Exit", "x").stops_service());
        assert!(!AveException::generic("x").with_field("type", json!("Exit")).stops_service());
        // A stop request that is retyped no longer stops anything.
        assert!(!AveException::exit("x").with_field("type", json!("Busy")).stops_service());
        // Service code may decide to stop with details of its own.
        let own = AveException::from_details_value(json!({"type": "Exit", "message": "m"}))
            .unwrap()
            .into_stop_request();
        assert!(own.stops_service());
        assert!(!AveException::timeout("t").into_stop_request().stops_service());
        // Equality is about the details only.
        assert_eq!(AveException::exit("m"), AveException::custom("Exit", "m"));
    }

    #[test]
    fn serde_is_the_details_object() {
        let e = AveException::offline("gone").with_field("serial", json!("X"));
        let text = serde_json::to_string(&e).unwrap();
        let back: AveException = serde_json::from_str(&text).unwrap();
        assert_eq!(back, e);
        assert!(serde_json::from_str::<AveException>("{\"type\": \"X\"}").is_err());
    }
}
