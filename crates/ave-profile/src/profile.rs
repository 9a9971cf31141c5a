//! `Profile`: a JSON object describing a resource.

use std::{
    fmt,
    hash::{Hash, Hasher},
    ops::Index,
};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::{
    Error,
    value::{py_eq, py_eq_map, py_hash_map},
};

/// A resource profile: a JSON object with string keys, such as
/// `{"type": "handset", "serial": "CB5A1234", "power_state": "boot_completed"}`.
///
/// Profiles describe equipment (handsets, relays, workspaces, ...) and requests for it.
/// Equality is Python's `==` on the decoded object (so `1`, `1.0` and `true` are equal,
/// as they are to the original), and [`Hash`] agrees with it, so a profile can key a hash
/// map. The kind-specific notion of *the same equipment* (same handset serial, same relay
/// uid) is [`Profile::identity`].
///
/// [`Profile::matches`] and [`Profile::minimize`] dispatch on the `type` field through the
/// [standard registry](crate::Registry::standard) of the original's profile classes; use a
/// [`Registry`](crate::Registry) of your own for other kinds (those three methods live in
/// `registry.rs`, so this module stays a leaf).
#[derive(Clone, Default)]
pub struct Profile {
    map: Map<String, Value>,
}

impl Profile {
    /// An empty profile (which every profile matches).
    pub fn new() -> Profile {
        Profile::default()
    }

    /// A profile from a JSON value, which must be an object.
    ///
    /// # Errors
    ///
    /// [`Error::NotAnObject`] for any other value.
    pub fn from_value(value: Value) -> Result<Profile, Error> {
        match value {
            Value::Object(map) => Ok(Profile { map }),
            other => Err(Error::NotAnObject(other.to_string())),
        }
    }

    /// The profile as a JSON object value.
    pub fn to_value(&self) -> Value {
        Value::Object(self.map.clone())
    }

    /// The profile's map.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.map
    }

    /// The profile's map, taken out.
    pub fn into_map(self) -> Map<String, Value> {
        self.map
    }

    /// The value of a key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key)
    }

    /// The value of a key, if it is a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.map.get(key).and_then(Value::as_str)
    }

    /// Whether the profile has a key.
    pub fn contains_key(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// Sets a key, returning the previous value.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) -> Option<Value> {
        self.map.insert(key.into(), value)
    }

    /// Sets a key, builder style.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: Value) -> Profile {
        self.map.insert(key.into(), value);
        self
    }

    /// Removes a key, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key)
    }

    /// The keys and values.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.map.iter()
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the profile has no keys.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The `type` field, which names the profile's kind (`handset`, `relay`, ...).
    pub fn type_name(&self) -> Option<&str> {
        self.get_str("type")
    }

    /// The original base class's `match`: every key of `request` exists in this profile
    /// with an equal value (Python `==`). An empty request matches everything.
    pub fn matches_keys(&self, request: &Profile) -> bool {
        request.map.iter().all(|(k, v)| self.map.get(k).is_some_and(|own| py_eq(own, v)))
    }
}

impl PartialEq for Profile {
    fn eq(&self, other: &Profile) -> bool {
        py_eq_map(&self.map, &other.map)
    }
}

impl Eq for Profile {}

impl Hash for Profile {
    fn hash<H: Hasher>(&self, state: &mut H) {
        py_hash_map(&self.map, state);
    }
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Profile").field(&self.map).finish()
    }
}

impl fmt::Display for Profile {
    /// The profile as compact JSON.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Value::Object(self.map.clone()))
    }
}

impl Index<&str> for Profile {
    type Output = Value;

    /// The value of a key, or `null` when absent (like `serde_json::Value`).
    fn index(&self, key: &str) -> &Value {
        self.map.get(key).unwrap_or(&Value::Null)
    }
}

impl From<Map<String, Value>> for Profile {
    fn from(map: Map<String, Value>) -> Profile {
        Profile { map }
    }
}

impl From<Profile> for Value {
    fn from(profile: Profile) -> Value {
        Value::Object(profile.map)
    }
}

impl TryFrom<Value> for Profile {
    type Error = Error;

    fn try_from(value: Value) -> Result<Profile, Error> {
        Profile::from_value(value)
    }
}

impl<K: Into<String>> FromIterator<(K, Value)> for Profile {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Profile {
        Profile { map: iter.into_iter().map(|(k, v)| (k.into(), v)).collect() }
    }
}

impl Serialize for Profile {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.map.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Profile {
    /// Deserializes a plain JSON object.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Profile, D::Error> {
        Map::deserialize(deserializer).map(|map| Profile { map })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    fn p(v: Value) -> Profile {
        Profile::from_value(v).unwrap()
    }

    #[test]
    fn base_match_is_key_subset_with_python_equality() {
        let own = p(json!({"type": "handset", "serial": "X", "n": 1, "tags": ["a"]}));
        assert!(own.matches_keys(&Profile::new()));
        assert!(own.matches_keys(&p(json!({"serial": "X"}))));
        assert!(own.matches_keys(&p(json!({"n": 1.0}))));
        assert!(own.matches_keys(&p(json!({"n": true}))));
        assert!(!own.matches_keys(&p(json!({"serial": "Y"}))));
        assert!(!own.matches_keys(&p(json!({"missing": null}))));
        // Lists must be equal, not contained.
        assert!(!own.matches_keys(&p(json!({"tags": []}))));
    }

    #[test]
    fn profiles_key_hash_maps() {
        let mut seen = HashMap::new();
        seen.insert(p(json!({"type": "relay", "uid": 1})), "first");
        assert_eq!(seen.get(&p(json!({"uid": 1.0, "type": "relay"}))), Some(&"first"));
        assert_eq!(seen.get(&p(json!({"uid": 2, "type": "relay"}))), None);
    }

    #[test]
    fn serde_is_a_plain_object() {
        let profile = p(json!({"type": "wlan", "uid": "w1"}));
        let text = serde_json::to_string(&profile).unwrap();
        assert_eq!(serde_json::from_str::<Profile>(&text).unwrap(), profile);
        assert!(serde_json::from_str::<Profile>("[1]").is_err());
        assert_eq!(
            Profile::from_value(json!([1])).unwrap_err().to_string(),
            "profile is not a JSON object: [1]"
        );
    }

    #[test]
    fn accessors() {
        let mut profile: Profile =
            [("type", json!("board")), ("serial", json!("s"))].into_iter().collect();
        assert_eq!(profile.type_name(), Some("board"));
        assert_eq!(profile["serial"], json!("s"));
        assert_eq!(profile["nope"], Value::Null);
        assert_eq!(profile.insert("x", json!(1)), None);
        assert_eq!(profile.remove("x"), Some(json!(1)));
        assert_eq!(profile.len(), 2);
        let text = profile.to_string();
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"serial": "s", "type": "board"})
        );
    }
}
