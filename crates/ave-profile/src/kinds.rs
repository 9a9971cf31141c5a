//! The original's profile subclasses, as [`ProfileKind`]s.
//!
//! Keys such as `product.model` and `usb.vid` are flat keys with a dot in their name, as in
//! the original.

use serde_json::{Map, Value};

use crate::{Error, Profile, ProfileKind, value::py_eq};

/// Copies `key` from `own` into `out`, failing if `own` lacks it.
fn copy_required(kind: &str, own: &Profile, out: &mut Profile, key: &str) -> Result<(), Error> {
    let value = own
        .get(key)
        .ok_or_else(|| Error::MissingKey { kind: kind.to_owned(), key: key.to_owned() })?;
    out.insert(key, value.clone());
    Ok(())
}

/// Copies `key` from `own` into `out` if `own` has it.
fn copy_if_present(own: &Profile, out: &mut Profile, key: &str) {
    if let Some(value) = own.get(key) {
        out.insert(key, value.clone());
    }
}

/// A profile with the kind's type and the required keys copied from `own`, then every key
/// of `request` laid over it with the request's values.
fn overlay_minimize(
    kind: &str,
    own: &Profile,
    request: Option<&Profile>,
    required: &[&str],
    optional: &[&str],
) -> Result<Profile, Error> {
    let mut out = Profile::new().with("type", Value::String(kind.to_owned()));
    for key in required {
        copy_required(kind, own, &mut out, key)?;
    }
    for key in optional {
        copy_if_present(own, &mut out, key);
    }
    if let Some(request) = request {
        for (key, value) in request.iter() {
            out.insert(key.clone(), value.clone());
        }
    }
    Ok(out)
}

/// The names in a `circuits` or `tools` value: an object's keys, or an array's string
/// elements.
fn names(value: &Value) -> Vec<String> {
    match value {
        Value::Object(map) => map.keys().cloned().collect(),
        Value::Array(items) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Value::String(s) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// Whether every name requested is a key of `own[key]`.
fn names_subset(own: &Profile, request: &Profile, key: &str) -> bool {
    let Some(requested) = request.get(key) else { return true };
    let own_map = own.get(key).and_then(Value::as_object);
    names(requested).iter().all(|n| own_map.is_some_and(|m| m.contains_key(n)))
}

/// `{name: own[key][name]}` for the names requested under `key`.
fn pick_names(kind: &str, own: &Profile, request: &Profile, key: &str) -> Result<Value, Error> {
    let mut picked = Map::new();
    let Some(requested) = request.get(key) else { return Ok(Value::Object(picked)) };
    let own_map = own.get(key).and_then(Value::as_object);
    for name in names(requested) {
        let value = own_map.and_then(|m| m.get(&name)).ok_or_else(|| Error::MissingKey {
            kind: kind.to_owned(),
            key: format!("{key}.{name}"),
        })?;
        picked.insert(name, value.clone());
    }
    Ok(Value::Object(picked))
}

/// Whether `request` names this kind (`type` equal to it).
fn request_is(request: &Profile, kind: &str) -> bool {
    request.type_name() == Some(kind)
}

/// `handset`: identified by `serial`; `minimize` keeps `type`, `serial`, `sysfs_path`,
/// `pretty`, `power_state`, `product.model`, `workstation` (and `platform`, `usb.vid` if
/// present) and lays the request's values over them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Handset;

impl ProfileKind for Handset {
    fn type_name(&self) -> &str {
        "handset"
    }

    fn identity_key(&self) -> Option<&str> {
        Some("serial")
    }

    fn minimize(&self, own: &Profile, request: Option<&Profile>) -> Result<Profile, Error> {
        overlay_minimize(
            self.type_name(),
            own,
            request,
            &["serial", "sysfs_path", "pretty", "power_state", "product.model", "workstation"],
            &["platform", "usb.vid"],
        )
    }
}

/// `relay`: identified by `uid`. A request matches when its `type` is `relay`, its `uid`
/// (if given) is equal and its `circuits` are among the relay's. `minimize` keeps `type`,
/// `uid` and the requested circuits, and copies other requested keys from the relay.
#[derive(Debug, Clone, Copy, Default)]
pub struct Relay;

impl ProfileKind for Relay {
    fn type_name(&self) -> &str {
        "relay"
    }

    fn identity_key(&self) -> Option<&str> {
        Some("uid")
    }

    fn matches(&self, own: &Profile, request: &Profile) -> bool {
        request_is(request, "relay")
            && request.get("uid").is_none_or(|uid| own.get("uid").is_some_and(|o| py_eq(o, uid)))
            && names_subset(own, request, "circuits")
    }

    fn minimize(&self, own: &Profile, request: Option<&Profile>) -> Result<Profile, Error> {
        let kind = self.type_name();
        let mut out = Profile::new().with("type", Value::String(kind.to_owned()));
        copy_required(kind, own, &mut out, "uid")?;
        out.insert("circuits", Value::Object(Map::new()));
        if let Some(request) = request {
            out.insert("circuits", pick_names(kind, own, request, "circuits")?);
            for key in request.iter().map(|(k, _)| k) {
                if !matches!(key.as_str(), "type" | "uid" | "circuits") {
                    copy_required(kind, own, &mut out, key)?;
                }
            }
        }
        Ok(out)
    }
}

/// `board` (a relay board): identified by `serial`; a request matches when its `type` is
/// `board` and every requested key is equal. No `minimize`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Board;

impl ProfileKind for Board {
    fn type_name(&self) -> &str {
        "board"
    }

    fn identity_key(&self) -> Option<&str> {
        Some("serial")
    }

    fn matches(&self, own: &Profile, request: &Profile) -> bool {
        request_is(request, "board") && own.matches_keys(request)
    }
}

/// `workspace`: identified by `uid`. A request matches on the keys `type`, `uid`, `pretty`
/// and `wifi-capable` (equal) and `tools` (among the workspace's); other requested keys do
/// not take part. `minimize` keeps `type`, `root`, the requested tools and `uid` (if
/// present), and copies other requested keys from the workspace when it has them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Workspace;

impl ProfileKind for Workspace {
    fn type_name(&self) -> &str {
        "workspace"
    }

    fn identity_key(&self) -> Option<&str> {
        Some("uid")
    }

    fn matches(&self, own: &Profile, request: &Profile) -> bool {
        ["type", "uid", "pretty", "wifi-capable"].iter().all(|key| match request.get(key) {
            None => true,
            Some(wanted) => own.get(key).is_some_and(|o| py_eq(o, wanted)),
        }) && names_subset(own, request, "tools")
    }

    fn minimize(&self, own: &Profile, request: Option<&Profile>) -> Result<Profile, Error> {
        let kind = self.type_name();
        let mut out = Profile::new().with("type", Value::String(kind.to_owned()));
        copy_required(kind, own, &mut out, "root")?;
        out.insert("tools", Value::Object(Map::new()));
        copy_if_present(own, &mut out, "uid");
        if let Some(request) = request {
            out.insert("tools", pick_names(kind, own, request, "tools")?);
            for key in request.iter().map(|(k, _)| k) {
                if !matches!(key.as_str(), "type" | "tools") {
                    copy_if_present(own, &mut out, key);
                }
            }
        }
        Ok(out)
    }
}

/// `testdrive`: identified by `uid`; `minimize` keeps `type`, `uid`, `vendor` =
/// `"spirent"` and lays the request over them.
#[derive(Debug, Clone, Copy, Default)]
pub struct TestDrive;

impl ProfileKind for TestDrive {
    fn type_name(&self) -> &str {
        "testdrive"
    }

    fn identity_key(&self) -> Option<&str> {
        Some("uid")
    }

    fn minimize(&self, own: &Profile, request: Option<&Profile>) -> Result<Profile, Error> {
        let mut out = overlay_minimize(self.type_name(), own, None, &["uid"], &[])?;
        out.insert("vendor", Value::String("spirent".to_owned()));
        if let Some(request) = request {
            for (key, value) in request.iter() {
                out.insert(key.clone(), value.clone());
            }
        }
        Ok(out)
    }
}

/// `beryllium`: identified by `uid`; `minimize` keeps `type` and `uid` and lays the
/// request over them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Beryllium;

impl ProfileKind for Beryllium {
    fn type_name(&self) -> &str {
        "beryllium"
    }

    fn identity_key(&self) -> Option<&str> {
        Some("uid")
    }

    fn minimize(&self, own: &Profile, request: Option<&Profile>) -> Result<Profile, Error> {
        overlay_minimize(self.type_name(), own, request, &["uid"], &[])
    }
}

/// `wlan`: identified by `uid`; `minimize` keeps `type` and `uid` and lays the request
/// over them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wlan;

impl ProfileKind for Wlan {
    fn type_name(&self) -> &str {
        "wlan"
    }

    fn identity_key(&self) -> Option<&str> {
        Some("uid")
    }

    fn minimize(&self, own: &Profile, request: Option<&Profile>) -> Result<Profile, Error> {
        overlay_minimize(self.type_name(), own, request, &["uid"], &[])
    }
}

/// `powermeter`: identified by `uid`; a profile must already say `type: powermeter` to be
/// one. `minimize` keeps `type`, `uid`, `product` and `device_node` and lays the request
/// over them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Powermeter;

impl ProfileKind for Powermeter {
    fn type_name(&self) -> &str {
        "powermeter"
    }

    fn identity_key(&self) -> Option<&str> {
        Some("uid")
    }

    fn normalize(&self, profile: &mut Profile) -> Result<(), Error> {
        match profile.type_name() {
            Some("powermeter") => Ok(()),
            other => Err(Error::WrongType {
                expected: "powermeter".to_owned(),
                found: other.unwrap_or("").to_owned(),
            }),
        }
    }

    fn minimize(&self, own: &Profile, request: Option<&Profile>) -> Result<Profile, Error> {
        overlay_minimize(self.type_name(), own, request, &["uid", "product", "device_node"], &[])
    }
}

/// `broker`: a broker is only equal to itself (no identity key). Creating one removes the
/// secrets the original strips: `authkeys` and `remote.authkey`. No `minimize`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Broker;

impl ProfileKind for Broker {
    fn type_name(&self) -> &str {
        "broker"
    }

    fn normalize(&self, profile: &mut Profile) -> Result<(), Error> {
        profile.insert("type", Value::String("broker".to_owned()));
        profile.remove("authkeys");
        if let Some(Value::Object(remote)) = profile.get("remote") {
            let mut remote = remote.clone();
            remote.remove("authkey");
            profile.insert("remote", Value::Object(remote));
        }
        Ok(())
    }
}
