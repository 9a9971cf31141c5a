//! The standard kinds behave as the original's subclasses (spec section 10).

use std::collections::{HashMap, HashSet};

use ave_profile::{Error, Profile, ProfileKind, Registry};
use serde_json::{Value, json};

fn p(v: Value) -> Profile {
    Profile::from_value(v).unwrap()
}

fn handset() -> Profile {
    Registry::standard()
        .create(json!({
            "type": "handset", "serial": "S1", "sysfs_path": "/sys/x", "pretty": "phone",
            "power_state": "boot_completed", "product.model": "M", "workstation": "ws",
            "platform": "android", "usb.vid": "0fce", "secret": "no"
        }))
        .unwrap()
}

#[test]
fn the_factory_dispatches_on_type() {
    let registry = Registry::standard();
    let names: Vec<&str> = registry.type_names().collect();
    assert_eq!(
        names,
        [
            "beryllium",
            "board",
            "broker",
            "handset",
            "powermeter",
            "relay",
            "testdrive",
            "wlan",
            "workspace"
        ]
    );
    assert_eq!(
        registry.create(json!({"type": "toaster"})).unwrap_err().to_string(),
        "type toaster not supported in profiles"
    );
    assert_eq!(registry.create(json!({"serial": "x"})), Err(Error::MissingType));
    assert!(matches!(registry.create(json!("handset")), Err(Error::NotAnObject(_))));
    // A subclass constructor forces its type.
    let forced = registry.create_as("wlan", json!({"uid": "w", "type": "other"})).unwrap();
    assert_eq!(forced.type_name(), Some("wlan"));
}

#[test]
fn handset_minimize_keeps_mandatory_keys_and_overlays_the_request() {
    let own = handset();
    let minimal = own
        .minimize(Some(&p(json!({"type": "handset", "power_state": "offline", "extra": 1}))))
        .unwrap();
    assert_eq!(
        minimal,
        p(json!({
            "type": "handset", "serial": "S1", "sysfs_path": "/sys/x", "pretty": "phone",
            "power_state": "offline", "product.model": "M", "workstation": "ws",
            "platform": "android", "usb.vid": "0fce", "extra": 1
        }))
    );
    // Optional mandatory keys only when present; required ones must be there.
    let mut bare = own.clone();
    bare.remove("platform");
    bare.remove("usb.vid");
    assert!(!bare.minimize(None).unwrap().contains_key("platform"));
    bare.remove("workstation");
    assert_eq!(
        bare.minimize(None),
        Err(Error::MissingKey { kind: "handset".into(), key: "workstation".into() })
    );
}

#[test]
fn handset_identity_is_the_serial() {
    let own = handset();
    let other_state = own.clone().with("power_state", json!("offline"));
    assert_ne!(own, other_state, "profiles differ as maps");
    assert_eq!(own.identity(), other_state.identity(), "but are the same handset");
    let mut no_serial = own.clone();
    no_serial.remove("serial");
    assert_eq!(no_serial.identity(), None, "no serial, no identity: never equal");
    let set: HashSet<_> = [own.identity().unwrap(), other_state.identity().unwrap()].into();
    assert_eq!(set.len(), 1);
}

#[test]
fn relay_match_and_minimize() {
    let relay = Registry::standard()
        .create(json!({"type": "relay", "uid": "r1", "circuits": {"usb.pc.vcc": 1, "battery": 2}, "port": "/dev/x"}))
        .unwrap();
    assert!(relay.matches(&p(json!({"type": "relay"}))));
    assert!(relay.matches(&p(json!({"type": "relay", "uid": "r1", "circuits": ["battery"]}))));
    assert!(relay.matches(&p(json!({"type": "relay", "circuits": {"usb.pc.vcc": 9}}))));
    assert!(!relay.matches(&p(json!({"type": "relay", "uid": "r2"}))));
    assert!(!relay.matches(&p(json!({"type": "relay", "circuits": ["nope"]}))));
    assert!(!relay.matches(&p(json!({"uid": "r1"}))), "the request's type must be relay");

    let minimal = relay
        .minimize(Some(&p(json!({"type": "relay", "circuits": ["battery"], "port": null}))))
        .unwrap();
    assert_eq!(
        minimal,
        p(json!({"type": "relay", "uid": "r1", "circuits": {"battery": 2}, "port": "/dev/x"}))
    );
    assert_eq!(
        relay.minimize(None).unwrap(),
        p(json!({"type": "relay", "uid": "r1", "circuits": {}}))
    );
    assert!(matches!(
        relay.minimize(Some(&p(json!({"type": "relay", "colour": "red"})))),
        Err(Error::MissingKey { .. })
    ));
}

#[test]
fn workspace_match_and_minimize() {
    let ws = Registry::standard()
        .create(json!({"type": "workspace", "uid": "w1", "root": "~/.ave", "pretty": "lab",
                       "wifi-capable": true, "tools": {"adb": "/usr/bin/adb", "git": "/usr/bin/git"},
                       "jenkins": "j"}))
        .unwrap();
    assert!(ws.matches(&p(json!({"type": "workspace", "tools": ["adb"], "wifi-capable": true}))));
    assert!(ws.matches(&p(json!({"type": "workspace", "env": ["ignored"]}))));
    assert!(!ws.matches(&p(json!({"type": "workspace", "tools": ["fastboot"]}))));
    assert!(!ws.matches(&p(json!({"type": "workspace", "pretty": "other"}))));
    let minimal = ws
        .minimize(Some(&p(
            json!({"type": "workspace", "tools": ["git"], "jenkins": null, "absent": 1}),
        )))
        .unwrap();
    assert_eq!(
        minimal,
        p(
            json!({"type": "workspace", "uid": "w1", "root": "~/.ave", "tools": {"git": "/usr/bin/git"}, "jenkins": "j"})
        )
    );
}

#[test]
fn simple_kinds_overlay_the_request() {
    let registry = Registry::standard();
    let td = registry
        .create(json!({"type": "testdrive", "uid": "t", "vendor": "x", "ip": "1"}))
        .unwrap();
    assert_eq!(
        td.minimize(None).unwrap(),
        p(json!({"type": "testdrive", "uid": "t", "vendor": "spirent"}))
    );
    for kind in ["beryllium", "wlan"] {
        let own = registry.create(json!({"type": kind, "uid": "u", "other": 1})).unwrap();
        let minimal = own.minimize(Some(&p(json!({"type": kind, "wanted": 2})))).unwrap();
        assert_eq!(minimal, p(json!({"type": kind, "uid": "u", "wanted": 2})));
    }
}

#[test]
fn powermeter_must_say_so() {
    let registry = Registry::standard();
    assert_eq!(
        registry.create_as("powermeter", json!({"type": "relay", "uid": "p"})),
        Err(Error::WrongType { expected: "powermeter".into(), found: "relay".into() })
    );
    let pm = registry
        .create(json!({"type": "powermeter", "uid": "p", "product": "x", "device_node": "/dev/pm", "n": 1}))
        .unwrap();
    assert_eq!(
        pm.minimize(None).unwrap(),
        p(json!({"type": "powermeter", "uid": "p", "product": "x", "device_node": "/dev/pm"}))
    );
}

#[test]
fn board_and_broker_have_no_minimize() {
    let registry = Registry::standard();
    let board = registry.create(json!({"type": "board", "serial": "b", "x": 1})).unwrap();
    assert!(board.matches(&p(json!({"type": "board", "x": 1}))));
    assert!(!board.matches(&p(json!({"x": 1}))));
    assert_eq!(board.minimize(None), Err(Error::NoMinimize("board".into())));

    let broker = registry
        .create(json!({"type": "broker", "host": "h", "authkeys": {"admin": "k"}, "remote": {"host": "m", "authkey": "s"}}))
        .unwrap();
    assert_eq!(broker, p(json!({"type": "broker", "host": "h", "remote": {"host": "m"}})));
    assert_eq!(broker.identity(), None);
}

#[test]
fn unknown_kinds_use_plain_matching_and_cannot_minimize() {
    let own = p(json!({"type": "toaster", "slots": 2}));
    assert!(own.matches(&p(json!({"slots": 2.0}))));
    assert_eq!(own.minimize(None), Err(Error::UnsupportedType("toaster".into())));
    assert_eq!(p(json!({})).minimize(None), Err(Error::MissingType));
}

#[derive(Debug)]
struct Toaster;

impl ProfileKind for Toaster {
    fn type_name(&self) -> &str {
        "toaster"
    }

    fn identity_key(&self) -> Option<&str> {
        Some("serial")
    }

    fn minimize(&self, own: &Profile, _request: Option<&Profile>) -> Result<Profile, Error> {
        Ok(Profile::new().with("type", json!("toaster")).with("serial", own["serial"].clone()))
    }
}

#[test]
fn custom_kinds_can_be_registered() {
    let mut registry = Registry::with_standard_kinds();
    assert!(registry.register(Toaster).is_none());
    let toaster = registry.create(json!({"type": "toaster", "serial": 7, "slots": 2})).unwrap();
    assert_eq!(
        registry.minimize(&toaster, None).unwrap(),
        p(json!({"type": "toaster", "serial": 7}))
    );
    let mut by_identity = HashMap::new();
    by_identity.insert(registry.identity(&toaster).unwrap(), "kitchen");
    let same = p(json!({"type": "toaster", "serial": 7.0}));
    assert_eq!(by_identity.get(&registry.identity(&same).unwrap()), Some(&"kitchen"));
}
