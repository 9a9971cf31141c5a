//! Property tests: details survive the wire round trip, through JSON text too.

use ave_exceptions::{AveException, Details, Kind, TraceFrame};
use proptest::prelude::*;
use serde_json::Value;

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn type_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(Kind::KNOWN.iter().filter_map(|k| k.type_name()).collect::<Vec<_>>())
            .prop_map(str::to_owned),
        "[A-Z][A-Za-z]{0,10}",
    ]
}

fn trace_frame() -> impl Strategy<Value = TraceFrame> {
    (".{0,10}", any::<i32>(), "[a-z_]{1,10}", proptest::option::of(".{0,20}")).prop_map(
        |(file, line, function, source)| TraceFrame::new(file, i64::from(line), function, source),
    )
}

prop_compose! {
    fn details()(
        message in ".{0,30}",
        type_name in type_name(),
        extras in prop::collection::btree_map("x_[a-z]{1,6}", json_value(), 0..4),
        trace in proptest::option::of(prop::collection::vec(trace_frame(), 0..4)),
    ) -> Details {
        let mut d = Details::new();
        d.insert("message".into(), Value::String(message));
        d.insert("type".into(), Value::String(type_name));
        for (k, v) in extras {
            d.insert(k, v);
        }
        if let Some(trace) = trace {
            d.insert("trace".into(), Value::Array(trace.iter().map(TraceFrame::to_wire).collect()));
        }
        d
    }
}

proptest! {
    #[test]
    fn details_round_trip_through_json_text(details in details()) {
        let e = AveException::from_details(details.clone()).unwrap();
        let text = serde_json::to_string(&e).unwrap();
        let back: AveException = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back.details(), &details);
        prop_assert_eq!(back.to_string(), e.to_string());
    }

    #[test]
    fn the_factory_keeps_every_field_but_where_the_original_drops_them(details in details()) {
        let wire = Value::Object(details.clone());
        let rebuilt = AveException::from_wire(&wire);
        match rebuilt.kind() {
            // RunError without cmd/out is kept as is; with them it is rebuilt (not
            // generated here, since extras never use those names).
            Kind::OverflowError => {
                prop_assert_eq!(rebuilt.details().len(), 2);
                prop_assert_eq!(rebuilt.message(), details["message"].as_str().unwrap());
            }
            _ => prop_assert_eq!(rebuilt.to_wire(), wire),
        }
    }

    #[test]
    fn trace_frames_round_trip(frames in prop::collection::vec(trace_frame(), 0..5)) {
        let e = AveException::generic("m").with_trace(frames.clone());
        prop_assert_eq!(e.trace(), Some(frames.clone()));
        let printed = e.format_trace();
        prop_assert_eq!(printed.matches("  File \"").count(), frames.len());
    }

    #[test]
    fn run_error_round_trips(cmd in prop::collection::vec("[a-z0-9-]{1,8}", 1..4), out in ".{1,40}", message in ".{0,20}") {
        let e = AveException::run_error(cmd.clone(), out.clone(), message.clone())
            .with_trace(vec![TraceFrame::new("f", 1, "g", None)]);
        let rebuilt = AveException::from_wire(&e.to_wire());
        prop_assert_eq!(rebuilt.kind(), Kind::RunError);
        prop_assert!(!rebuilt.has_trace(), "the original client drops RunError traces");
        prop_assert_eq!(rebuilt.out(), Some(out.as_str()));
        prop_assert_eq!(rebuilt.field("ptyout"), Some(&Value::String(out)));
        prop_assert_eq!(rebuilt.message(), message.as_str());
        prop_assert_eq!(rebuilt.cmd(), Some(&Value::from(cmd)));
    }
}
