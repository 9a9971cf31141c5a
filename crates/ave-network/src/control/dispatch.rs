//! Request validation, in the original's order and with its fixed texts.
//!
//! Each check that fails gives a bare-string exception (`{"exception": "<text>"}`), except
//! the argument checks that the original only hits when it calls the method, which give
//! a `TypeError` object with an empty trace.

use std::{borrow::Cow, fmt};

use ave_exceptions::{AveException, python2_repr};
use serde::{
    Deserialize, Deserializer,
    de::{self, IgnoredAny, MapAccess, Visitor},
};
use serde_json::{Map, Value};

use crate::{
    control::service::{Method, RawArgs, Service, type_error},
    wire::{handshake::Keys, json},
};

/// A validated request, or what to answer instead.
pub(crate) enum Prepared<'s> {
    /// Answer with this exception value (a bare string or an object), unless the request
    /// was one-way.
    Refuse(Value),
    /// Call the method.
    Invoke { method: &'s Method, args: RawArgs, resource: Value },
}

/// A request frame, validated.
pub(crate) struct Request<'s> {
    /// `"async": true`: no answer is sent, except for `Exit`.
    pub(crate) one_way: bool,
    pub(crate) prepared: Prepared<'s>,
}

fn refuse(text: impl Into<String>) -> Prepared<'static> {
    Prepared::Refuse(Value::String(text.into()))
}

/// Python 2's name for the type of a decoded JSON value.
fn python_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "unicode",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Python's `key in value` for the values the original tests membership on; `Err` with
/// Python's text when the value is not iterable.
fn contains(value: &Value, key: &str) -> Result<bool, String> {
    match value {
        Value::Object(map) => Ok(map.contains_key(key)),
        Value::Array(items) => Ok(items.iter().any(|v| v.as_str() == Some(key))),
        Value::String(s) => Ok(s.contains(key)),
        other => Err(format!("argument of type '{}' is not iterable", python_type(other))),
    }
}

/// Validates one request frame from a connection whose identity is `identity`. Texts
/// that echo what the client sent keep at most `max_echo` bytes of it (see [`capped`]).
pub(crate) fn prepare<'s>(
    payload: &[u8],
    service: &'s Service,
    keys: &Keys,
    identity: Option<&str>,
    max_echo: usize,
) -> Request<'s> {
    prepare_well_formed(payload, service, keys, identity)
        .unwrap_or_else(|| prepare_tree(payload, service, keys, identity, max_echo))
}

/// The general path: the whole request as a tree, checked step by step in the original's
/// order.
fn prepare_tree<'s>(
    payload: &[u8],
    service: &'s Service,
    keys: &Keys,
    identity: Option<&str>,
    max_echo: usize,
) -> Request<'s> {
    let Ok(request) = json::parse(payload) else {
        let shown = &payload[..payload.len().min(max_echo)];
        let mut text = format!("malformed JSON: {}", json::lossy(shown));
        if shown.len() < payload.len() {
            text.push_str(&format!("... ({} bytes)", payload.len()));
        }
        return Request { one_way: false, prepared: refuse(text) };
    };
    let one_way = matches!(request.get("async"), Some(Value::Bool(true)));
    let prepared = match validate(request, service, keys, identity) {
        Prepared::Refuse(Value::String(text)) => {
            Prepared::Refuse(Value::String(capped(text, max_echo)))
        }
        other => other,
    };
    Request { one_way, prepared }
}

/// The small service the fuzz target and the unit tests validate requests against: a
/// method with one parameter, an `auth` one, a `preauth` one and a hidden name.
fn sample_service(name: &str) -> Service {
    use crate::control::service::{Params, params};

    Service::builder(name)
        .rpc("upper", params(["s"]), |_, (s,): (String,)| async move { Ok(s.to_uppercase()) })
        .rpc("secret", Params::none(), |_, ()| async { Ok("s") })
        .auth()
        .rpc("admin", Params::none(), |_, ()| async { Ok("a") })
        .preauth(["admin"])
        .hidden("not_rpc")
        .build()
}

/// Validates one request payload against a small service (a method with parameters, one
/// that needs a key, one for an account), as an unauthenticated connection, and returns the
/// reply text of a refusal (empty when the request is accepted). For the fuzz target of
/// request validation; not a stable API.
#[doc(hidden)]
pub fn fuzz_prepare(payload: &[u8], max_echo: usize) -> String {
    use std::sync::OnceLock;

    static SERVICE: OnceLock<Service> = OnceLock::new();
    let service = SERVICE.get_or_init(|| sample_service("fuzz"));
    let keys = Keys::new(Some("k")).with_account("admin", Some("a"));
    match prepare(payload, service, &keys, None, max_echo).prepared {
        Prepared::Refuse(Value::String(text)) => text,
        Prepared::Refuse(other) => other.to_string(),
        Prepared::Invoke { .. } => String::new(),
    }
}

/// A validation text cut after `max_echo` bytes of what follows its fixed part (`no such
/// RPC: `, `not an RPC: `, ...), at a character boundary, with the full length said: a
/// short prefix is enough to diagnose, and the reply stays small whatever was sent.
pub(crate) fn capped(text: String, max_echo: usize) -> String {
    let fixed = text.find(": ").map_or(0, |at| at + 2);
    let limit = fixed.saturating_add(max_echo);
    if text.len() <= limit {
        return text;
    }
    let mut cut = limit;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}... ({} bytes)", &text[..cut], text.len() - fixed)
}

/// The fast path: a request that is one standard JSON object with a string `method`,
/// `params` holding an array `vargs` and an object `kwargs`, a boolean `async` if any, and
/// no key twice, naming a method of the service. Such a request passes checks 1 to 4 and
/// 9 of the original's order, so only the access checks remain, and they are made here
/// exactly as [`validate`] makes them. The envelope is read without building a tree: the
/// method name is borrowed from the payload, and only the arguments and the `resource`
/// become values.
///
/// `None` for anything else, which [`validate`] then answers with the original's texts.
fn prepare_well_formed<'s>(
    payload: &[u8],
    service: &'s Service,
    keys: &Keys,
    identity: Option<&str>,
) -> Option<Request<'s>> {
    let envelope: Envelope<'_> = serde_json::from_slice(payload).ok()?;
    let method = service.method(&envelope.method)?;
    let one_way = envelope.one_way;
    if method.auth && identity.is_none_or(str::is_empty) {
        return Some(Request { one_way, prepared: refuse("not authenticated to make this call") });
    }
    if let Some(accounts) = &method.preauth {
        if !keys.preauth_allows(accounts, identity) {
            return Some(Request { one_way, prepared: refuse("not authorized to make this call") });
        }
    }
    let args = RawArgs { vargs: envelope.vargs, kwargs: envelope.kwargs };
    Some(Request {
        one_way,
        prepared: Prepared::Invoke { method, args, resource: envelope.resource },
    })
}

/// A well-formed request's envelope (see [`prepare_well_formed`]).
struct Envelope<'a> {
    method: Cow<'a, str>,
    vargs: Vec<Value>,
    kwargs: Map<String, Value>,
    one_way: bool,
    resource: Value,
}

/// A string, borrowed from the payload when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }

            fn visit_string<E: de::Error>(self, s: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// Stores a field's value, refusing a key seen twice (the original takes the last one,
/// which only the tree of [`validate`] knows how to do).
fn once<T, E: de::Error>(slot: &mut Option<T>, value: T) -> Result<(), E> {
    if slot.replace(value).is_some() {
        return Err(E::custom("duplicate key"));
    }
    Ok(())
}

impl<'de> Deserialize<'de> for Envelope<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EnvelopeVisitor;
        impl<'de> Visitor<'de> for EnvelopeVisitor {
            type Value = Envelope<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a request object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope<'de>, A::Error> {
                let (mut method, mut params, mut one_way, mut resource) = (None, None, None, None);
                while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                    match &*key {
                        "method" => once(&mut method, map.next_value::<Text<'de>>()?.0)?,
                        "params" => once(&mut params, map.next_value::<EnvelopeParams>()?)?,
                        "async" => once(&mut one_way, map.next_value::<bool>()?)?,
                        "resource" => once(&mut resource, map.next_value::<Value>()?)?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let method = method.ok_or_else(|| de::Error::missing_field("method"))?;
                let params = params.ok_or_else(|| de::Error::missing_field("params"))?;
                Ok(Envelope {
                    method,
                    vargs: params.vargs,
                    kwargs: params.kwargs,
                    one_way: one_way.unwrap_or(false),
                    resource: resource.unwrap_or(Value::Null),
                })
            }
        }
        // A map only: serde_json would also read a struct from an array.
        deserializer.deserialize_map(EnvelopeVisitor)
    }
}

/// `params` with both `vargs` (an array) and `kwargs` (an object).
struct EnvelopeParams {
    vargs: Vec<Value>,
    kwargs: Map<String, Value>,
}

impl<'de> Deserialize<'de> for EnvelopeParams {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ParamsVisitor;
        impl<'de> Visitor<'de> for ParamsVisitor {
            type Value = EnvelopeParams;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a params object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EnvelopeParams, A::Error> {
                let (mut vargs, mut kwargs) = (None, None);
                while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                    match &*key {
                        "vargs" => once(&mut vargs, map.next_value::<Vec<Value>>()?)?,
                        "kwargs" => once(&mut kwargs, map.next_value::<Map<String, Value>>()?)?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(EnvelopeParams {
                    vargs: vargs.ok_or_else(|| de::Error::missing_field("vargs"))?,
                    kwargs: kwargs.ok_or_else(|| de::Error::missing_field("kwargs"))?,
                })
            }
        }
        deserializer.deserialize_map(ParamsVisitor)
    }
}

fn validate<'s>(
    request: Value,
    service: &'s Service,
    keys: &Keys,
    identity: Option<&str>,
) -> Prepared<'s> {
    for key in ["method", "params"] {
        match contains(&request, key) {
            Ok(true) => {}
            Ok(false) => return refuse(format!("the \"{key}\" attribute is missing")),
            Err(text) => return refuse(text),
        }
    }
    let Value::Object(mut map) = request else {
        // A list or a string that happens to contain both words: the original then fails
        // on `request.get('async')`.
        return refuse(format!("'{}' object has no attribute 'get'", python_type(&request)));
    };
    if map.get("async").is_some_and(|a| !a.is_boolean()) {
        return refuse(format!(
            "RPC async flag is not a boolean: {}",
            python2_repr(&Value::Object(map))
        ));
    }
    let name = match &map["method"] {
        Value::String(s) => s.clone(),
        other => return refuse(format!("no such RPC: {}", python2_repr(other))),
    };
    let Some(method) = service.method(&name) else {
        if service.is_hidden(&name) {
            return refuse(format!("not an RPC: {}", python2_repr(&Value::Object(map))));
        }
        return refuse(format!("no such RPC: {name}"));
    };
    if method.auth && identity.is_none_or(str::is_empty) {
        return refuse("not authenticated to make this call");
    }
    if let Some(accounts) = &method.preauth {
        if !keys.preauth_allows(accounts, identity) {
            return refuse("not authorized to make this call");
        }
    }
    let params = map.remove("params").unwrap_or(Value::Null);
    for key in ["vargs", "kwargs"] {
        match contains(&params, key) {
            Ok(true) => {}
            Ok(false) => return refuse(format!("malformed arguments: {}", python2_repr(&params))),
            Err(text) => return refuse(text),
        }
    }
    let Value::Object(mut params) = params else {
        return Prepared::Refuse(
            type_error(format!("{}() got arguments it cannot unpack", method.name)).to_wire(),
        );
    };
    let vargs = match params.remove("vargs").unwrap_or(Value::Null) {
        Value::Array(items) => items,
        Value::String(s) => s.chars().map(|c| Value::String(c.to_string())).collect(),
        Value::Object(m) => m.into_iter().map(|(k, _)| Value::String(k)).collect(),
        other => {
            return Prepared::Refuse(exception_value(type_error(format!(
                "{}() argument after * must be a sequence, not {}",
                method.name,
                python_type(&other)
            ))));
        }
    };
    let kwargs: Map<String, Value> = match params.remove("kwargs").unwrap_or(Value::Null) {
        Value::Object(m) => m,
        other => {
            return Prepared::Refuse(exception_value(type_error(format!(
                "{}() argument after ** must be a mapping, not {}",
                method.name,
                python_type(&other)
            ))));
        }
    };
    let resource = map.remove("resource").unwrap_or(Value::Null);
    Prepared::Invoke { method, args: RawArgs { vargs, kwargs }, resource }
}

fn exception_value(e: AveException) -> Value {
    e.to_wire()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn service() -> Service {
        sample_service("t")
    }

    fn refused(payload: &str, identity: Option<&str>) -> Value {
        let service = service();
        let keys = Keys::new(Some("k")).with_account("admin", Some("a"));
        match prepare(payload.as_bytes(), &service, &keys, identity, 256).prepared {
            Prepared::Refuse(v) => v,
            Prepared::Invoke { .. } => panic!("{payload} was accepted"),
        }
    }

    #[test]
    fn validation_texts_in_order() {
        assert_eq!(refused("{not json", None), json!("malformed JSON: {not json"));
        assert_eq!(refused("", None), json!("malformed JSON: "));
        assert_eq!(
            refused(r#"{"params": {}}"#, None),
            json!("the \"method\" attribute is missing")
        );
        assert_eq!(
            refused(r#"{"method": "upper"}"#, None),
            json!("the \"params\" attribute is missing")
        );
        assert_eq!(
            refused(
                r#"{"async": "yes", "params": {"vargs": [], "kwargs": {}}, "method": "upper"}"#,
                None
            ),
            json!(
                "RPC async flag is not a boolean: {u'async': u'yes', u'method': u'upper', u'params': {u'kwargs': {}, u'vargs': []}}"
            )
        );
        assert_eq!(
            refused(r#"{"method": "nope", "params": {}}"#, None),
            json!("no such RPC: nope")
        );
        assert_eq!(refused(r#"{"method": "åäö", "params": {}}"#, None), json!("no such RPC: åäö"));
        assert_eq!(refused(r#"{"method": 5, "params": {}}"#, None), json!("no such RPC: 5"));
        let not_rpc = refused(r#"{"method": "not_rpc", "params": {}}"#, None);
        assert!(
            not_rpc.as_str().unwrap().starts_with("not an RPC: {u'method': u'not_rpc'"),
            "{not_rpc}"
        );
        assert!(
            refused(r#"{"method": "shutdown", "params": {}}"#, None)
                .as_str()
                .unwrap()
                .starts_with("not an RPC: ")
        );
        assert_eq!(
            refused(r#"{"method": "secret", "params": {}}"#, None),
            json!("not authenticated to make this call")
        );
        assert_eq!(
            refused(r#"{"method": "secret", "params": {}}"#, Some("")),
            json!("not authenticated to make this call")
        );
        assert_eq!(
            refused(r#"{"method": "admin", "params": {}}"#, Some("k")),
            json!("not authorized to make this call")
        );
        assert_eq!(
            refused(r#"{"method": "upper", "params": {"vargs": []}}"#, None),
            json!("malformed arguments: {u'vargs': []}")
        );
        assert_eq!(
            refused(r#"{"method": "upper", "params": 5}"#, None),
            json!("argument of type 'int' is not iterable")
        );
    }

    #[test]
    fn echoes_are_capped() {
        let big = "x".repeat(10_000);
        let text = refused(&format!("{{{big}"), None);
        assert_eq!(text, json!(format!("malformed JSON: {{{}... (10001 bytes)", &big[..255])));
        let method = "\u{e5}".repeat(1000);
        let text = refused(&format!(r#"{{"method": "{method}", "params": {{}}}}"#), None);
        let text = text.as_str().unwrap();
        assert!(text.starts_with("no such RPC: \u{e5}\u{e5}"), "{text}");
        assert!(text.ends_with("... (2000 bytes)"), "{text}");
        assert!(text.len() <= "no such RPC: ".len() + 256 + 20, "{}", text.len());
        assert_eq!(capped("no such RPC: short".to_owned(), 256), "no such RPC: short");
    }

    #[test]
    fn odd_request_shapes() {
        assert_eq!(refused("[1, 2]", None), json!("the \"method\" attribute is missing"));
        assert_eq!(refused("5", None), json!("argument of type 'int' is not iterable"));
        assert_eq!(refused("null", None), json!("argument of type 'NoneType' is not iterable"));
        assert_eq!(
            refused(r#""method params""#, None),
            json!("'unicode' object has no attribute 'get'")
        );
        let e = refused(r#"{"method": "upper", "params": {"vargs": 5, "kwargs": {}}}"#, None);
        assert_eq!(e["type"], "TypeError");
        assert_eq!(e["trace"], json!([]));
        let e = refused(r#"{"method": "upper", "params": {"vargs": [], "kwargs": []}}"#, None);
        assert_eq!(e["type"], "TypeError");
    }

    #[test]
    fn accepted_requests() {
        let service = service();
        let keys = Keys::new(Some("k")).with_account("admin", Some("a"));
        let req = prepare(
            br#"{"params": {"vargs": "ab", "kwargs": {}}, "resource": {"x": 1}, "method": "upper", "async": true}"#,
            &service,
            &keys,
            None,
            256,
        );
        assert!(req.one_way);
        match req.prepared {
            Prepared::Invoke { method, args, resource } => {
                assert_eq!(&*method.name, "upper");
                assert_eq!(args.vargs, vec![json!("a"), json!("b")]);
                assert_eq!(resource, json!({"x": 1}));
            }
            Prepared::Refuse(v) => panic!("{v}"),
        }
        let req = prepare(
            br#"{"method": "admin", "params": {"vargs": [], "kwargs": {}}}"#,
            &service,
            &keys,
            Some("a"),
            256,
        );
        assert!(matches!(req.prepared, Prepared::Invoke { .. }));
        assert!(!req.one_way);
    }

    /// What a prepared request amounts to, comparable.
    fn outcome(request: Request<'_>) -> (bool, Result<(String, RawArgs, Value), Value>) {
        let prepared = match request.prepared {
            Prepared::Refuse(v) => Err(v),
            Prepared::Invoke { method, args, resource } => {
                Ok((method.name.to_string(), args, resource))
            }
        };
        (request.one_way, prepared)
    }

    /// The fast path takes exactly the well-formed requests, and answers them as the
    /// general path does; everything else falls through to the general path.
    #[test]
    fn the_fast_path_agrees_with_the_tree() {
        let service = service();
        let keys = Keys::new(Some("k")).with_account("admin", Some("a"));
        let fast = [
            r#"{"method": "upper", "params": {"vargs": ["x"], "kwargs": {}}}"#,
            r#"{"async": false, "method": "upper", "params": {"kwargs": {}, "vargs": []}, "resource": null}"#,
            r#"{"method": "upper", "params": {"vargs": [], "kwargs": {"s": "å"}}, "async": true}"#,
            r#"{"method": "upper", "params": {"vargs": [1.5, [2], {"a": null}], "kwargs": {"b": 2}, "extra": 3}, "resource": {"x": 1}, "other": [1]}"#,
            r#"  {"resource": [1, 2], "params": {"vargs": [18446744073709551616], "kwargs": {}}, "method": "upper"}  "#,
            r#"{"method": "secret", "params": {"vargs": [], "kwargs": {}}}"#,
            r#"{"method": "admin", "params": {"vargs": [], "kwargs": {}}, "async": true}"#,
            r#"{"method": "upper", "params": {"vargs": [], "kwargs": {"s": 1, "s": 2}}}"#,
        ];
        let general = [
            "{not json",
            "",
            "[1, 2]",
            r#"["upper", {"vargs": [], "kwargs": {}}]"#,
            r#"{"method": "upper", "params": [[], {}]}"#,
            r#"{"method": "upper", "params": {"vargs": [], "kwargs": {}}, "method": "upper"}"#,
            r#"{"method": "upper", "params": {"vargs": [], "vargs": [], "kwargs": {}}}"#,
            r#"{"method": "upper", "params": {"vargs": "ab", "kwargs": {}}}"#,
            r#"{"method": "upper", "params": {"vargs": {"a": 1}, "kwargs": {}}}"#,
            r#"{"method": "upper", "params": {"vargs": [], "kwargs": []}}"#,
            r#"{"method": "upper", "params": {"vargs": []}}"#,
            r#"{"method": "upper", "params": {"vargs": [], "kwargs": {}}, "async": null}"#,
            r#"{"method": "upper", "params": {"vargs": [], "kwargs": {}}, "async": 1}"#,
            r#"{"method": 5, "params": {"vargs": [], "kwargs": {}}}"#,
            r#"{"method": "nope", "params": {"vargs": [], "kwargs": {}}}"#,
            r#"{"method": "not_rpc", "params": {"vargs": [], "kwargs": {}}}"#,
            r#"{"method": "upper", "params": {"vargs": [NaN], "kwargs": {}}}"#,
            r#"{"method": "upper", "params": {"vargs": ["\ud800"], "kwargs": {}}}"#,
            r#"{"method": "upper", "params": {"vargs": [], "kwargs": {}}} x"#,
        ];
        for (payload, takes_fast_path) in
            fast.iter().map(|p| (p, true)).chain(general.iter().map(|p| (p, false)))
        {
            for identity in [None, Some(""), Some("k"), Some("a")] {
                let quick = prepare_well_formed(payload.as_bytes(), &service, &keys, identity);
                assert_eq!(quick.is_some(), takes_fast_path, "{payload}");
                let tree =
                    outcome(prepare_tree(payload.as_bytes(), &service, &keys, identity, 256));
                if let Some(quick) = quick {
                    assert_eq!(outcome(quick), tree, "{payload} as {identity:?}");
                }
                let both = outcome(prepare(payload.as_bytes(), &service, &keys, identity, 256));
                assert_eq!(both, tree, "{payload} as {identity:?}");
            }
        }
    }
}
