//! Property tests: equality and hashing agree; minimization keeps what was asked for.

use std::{
    collections::hash_map::DefaultHasher,
    hash::{Hash, Hasher},
};

use ave_profile::{Profile, Registry};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn hash(p: &Profile) -> u64 {
    let mut h = DefaultHasher::new();
    p.hash(&mut h);
    h.finish()
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-1000i64..1000).prop_map(Value::from),
        "[a-z]{0,6}".prop_map(Value::String),
    ]
}

fn profile() -> impl Strategy<Value = Profile> {
    prop::collection::btree_map("[a-z.]{1,8}", scalar(), 0..6)
        .prop_map(|m| m.into_iter().collect::<Map<String, Value>>().into())
}

/// The same profile with every integer written as a float, which Python considers equal.
fn floated(p: &Profile) -> Profile {
    p.iter()
        .map(|(k, v)| {
            let v = match v {
                Value::Number(n) if n.is_i64() => Value::from(n.as_i64().unwrap() as f64),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

proptest! {
    #[test]
    fn equal_profiles_hash_equal(p in profile()) {
        let q = floated(&p);
        prop_assert_eq!(&p, &q);
        prop_assert_eq!(hash(&p), hash(&q));
        let text = serde_json::to_string(&p).unwrap();
        let back: Profile = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(hash(&back), hash(&p));
    }

    #[test]
    fn a_profile_matches_any_of_its_own_subsets(p in profile(), mask in any::<u64>()) {
        let subset: Profile = p.iter().enumerate()
            .filter(|(i, _)| mask & (1 << (i % 64)) != 0)
            .map(|(_, (k, v))| (k.clone(), v.clone()))
            .collect();
        prop_assert!(p.matches_keys(&subset));
    }

    #[test]
    fn overlay_kinds_minimize_to_something_matching_the_request(
        uid in "[a-z0-9]{1,8}", extra in profile(), request in profile(),
        kind in prop::sample::select(vec!["beryllium", "wlan", "testdrive"]),
    ) {
        let mut own = extra.clone();
        own.insert("uid", Value::String(uid));
        own.insert("type", Value::String(kind.to_owned()));
        let own = Registry::standard().create(own.to_value()).unwrap();
        let mut request = request;
        request.insert("type", Value::String(kind.to_owned()));
        let minimal = own.minimize(Some(&request)).unwrap();
        prop_assert!(minimal.matches_keys(&request));
        if request.get("uid").is_none() {
            prop_assert_eq!(minimal.identity(), own.identity());
        }
    }
}
