//! Binding a call's arguments to a method's parameters as Python binds them: [`Params`],
//! [`RawArgs`], and the `TypeError` a call that does not fit the signature gets.

use ave_exceptions::AveException;
use serde_json::{Map, Value};

/// The parameters of a method, by name: the required ones, then the optional ones.
///
/// Arguments are bound as Python binds them: positional arguments (`vargs`) fill the
/// parameters in order, keyword arguments (`kwargs`) by name; a missing required argument,
/// an unknown keyword or a duplicate is a `TypeError` with an empty trace, as the
/// original's binding errors are. A missing optional argument is `null`, so its type is
/// usually an `Option`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    names: Vec<String>,
    required: usize,
}

/// Required parameters, in order: `params(["message"])`; add optional ones with
/// [`Params::optional`].
pub fn params<I, S>(names: I) -> Params
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let names: Vec<String> = names.into_iter().map(Into::into).collect();
    Params { required: names.len(), names }
}

impl Params {
    /// No parameters.
    pub fn none() -> Params {
        Params::default()
    }

    /// Adds optional parameters after the others.
    #[must_use]
    pub fn optional<I, S>(mut self, names: I) -> Params
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.names.extend(names.into_iter().map(Into::into));
        self
    }

    /// The parameter names, required first.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// How many parameters are required.
    pub fn required(&self) -> usize {
        self.required
    }

    /// Binds call arguments to the parameters: one value per parameter, `null` for
    /// missing optional ones.
    ///
    /// # Errors
    ///
    /// A `TypeError` exception with Python's wording and an empty trace.
    pub fn bind(&self, method: &str, args: RawArgs) -> Result<Vec<Value>, AveException> {
        let total = self.names.len();
        if args.vargs.len() > total {
            let takes = if self.required == total {
                format!("{total}")
            } else {
                format!("from {} to {total}", self.required)
            };
            let plural = if total == 1 && self.required == total { "" } else { "s" };
            let given = args.vargs.len();
            let verb = if given == 1 { "was" } else { "were" };
            return Err(type_error(format!(
                "{method}() takes {takes} positional argument{plural} but {given} {verb} given"
            )));
        }
        let mut slots: Vec<Option<Value>> = vec![None; total];
        for (slot, value) in slots.iter_mut().zip(args.vargs) {
            *slot = Some(value);
        }
        for (key, value) in args.kwargs {
            let Some(index) = self.names.iter().position(|n| *n == key) else {
                return Err(type_error(format!(
                    "{method}() got an unexpected keyword argument '{key}'"
                )));
            };
            if slots[index].is_some() {
                return Err(type_error(format!(
                    "{method}() got multiple values for argument '{key}'"
                )));
            }
            slots[index] = Some(value);
        }
        let missing: Vec<&str> = self.names[..self.required]
            .iter()
            .zip(&slots)
            .filter(|(_, s)| s.is_none())
            .map(|(n, _)| n.as_str())
            .collect();
        if !missing.is_empty() {
            let quoted: Vec<String> = missing.iter().map(|n| format!("'{n}'")).collect();
            let list = match quoted.as_slice() {
                [one] => one.clone(),
                [init @ .., last] => format!("{} and {last}", init.join(", ")),
                [] => String::new(),
            };
            let plural = if missing.len() == 1 { "" } else { "s" };
            return Err(type_error(format!(
                "{method}() missing {} required positional argument{plural}: {list}",
                missing.len()
            )));
        }
        Ok(slots.into_iter().map(|s| s.unwrap_or(Value::Null)).collect())
    }
}

/// A `TypeError` with an empty trace: how the original reports a call that does not fit
/// the method's signature.
pub fn type_error(message: impl Into<String>) -> AveException {
    AveException::custom("TypeError", message).with_trace(Vec::new())
}

/// The arguments of a call as they arrived: positional `vargs` and keyword `kwargs`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawArgs {
    /// Positional arguments.
    pub vargs: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn args(vargs: Value, kwargs: Value) -> RawArgs {
        RawArgs {
            vargs: vargs.as_array().unwrap().clone(),
            kwargs: kwargs.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn binding_like_python() {
        let p = params(["details"]).optional(["depth"]);
        assert_eq!(p.bind("f", args(json!([1]), json!({}))).unwrap(), vec![json!(1), Value::Null]);
        assert_eq!(
            p.bind("f", args(json!([]), json!({"depth": 3, "details": 1}))).unwrap(),
            vec![json!(1), json!(3)]
        );
        let message = |r: Result<Vec<Value>, AveException>| {
            let e = r.unwrap_err();
            assert_eq!(e.type_name(), "TypeError");
            assert_eq!(e.trace(), Some(vec![]));
            e.message().into_owned()
        };
        assert_eq!(
            message(p.bind("f", args(json!([1, 2, 3]), json!({})))),
            "f() takes from 1 to 2 positional arguments but 3 were given"
        );
        assert_eq!(
            message(params(["m"]).bind("upper", args(json!([]), json!({})))),
            "upper() missing 1 required positional argument: 'm'"
        );
        assert_eq!(
            message(params(["a", "b", "c"]).bind("g", args(json!([]), json!({})))),
            "g() missing 3 required positional arguments: 'a', 'b' and 'c'"
        );
        assert_eq!(
            message(params(["m"]).bind("h", args(json!(["x", "y"]), json!({})))),
            "h() takes 1 positional argument but 2 were given"
        );
        assert_eq!(
            message(params(["m"]).bind("h", args(json!([]), json!({"n": 1})))),
            "h() got an unexpected keyword argument 'n'"
        );
        assert_eq!(
            message(params(["m"]).bind("h", args(json!([1]), json!({"m": 1})))),
            "h() got multiple values for argument 'm'"
        );
        assert!(Params::none().bind("z", RawArgs::default()).unwrap().is_empty());
    }
}
