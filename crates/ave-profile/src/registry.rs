//! Profile kinds and the registry that finds them by `type`.

use std::{
    collections::BTreeMap,
    fmt,
    hash::{Hash, Hasher},
    sync::{Arc, OnceLock},
};

use serde_json::Value;

use crate::{
    Error, Profile,
    kinds::{Beryllium, Board, Broker, Handset, Powermeter, Relay, TestDrive, Wlan, Workspace},
    value::{py_eq, py_hash},
};

/// A kind of equipment profile: one of the original's `Profile` subclasses.
///
/// Only [`type_name`](ProfileKind::type_name) is required. The defaults are the original
/// base class's behaviour: plain key matching, no identity, and no `minimize`.
pub trait ProfileKind: fmt::Debug + Send + Sync {
    /// The `type` value of this kind's profiles (`handset`, `relay`, ...).
    fn type_name(&self) -> &str;

    /// The key whose value makes two profiles the same equipment (`serial` for handsets,
    /// `uid` for relays), or `None` when equipment is only equal to itself.
    fn identity_key(&self) -> Option<&str> {
        None
    }

    /// Adjusts a profile when it is created as this kind (the subclass constructor): by
    /// default, sets `type` to this kind.
    ///
    /// # Errors
    ///
    /// A kind may refuse a profile, e.g. one whose `type` names another kind.
    fn normalize(&self, profile: &mut Profile) -> Result<(), Error> {
        profile.insert("type", Value::String(self.type_name().to_owned()));
        Ok(())
    }

    /// Whether `own` satisfies `request`; by default every requested key is present with
    /// an equal value.
    fn matches(&self, own: &Profile, request: &Profile) -> bool {
        own.matches_keys(request)
    }

    /// A new profile with this kind's mandatory keys of `own` plus the keys named in
    /// `request`.
    ///
    /// # Errors
    ///
    /// [`Error::NoMinimize`] by default; [`Error::MissingKey`] when `own` lacks a key the
    /// kind needs.
    fn minimize(&self, own: &Profile, request: Option<&Profile>) -> Result<Profile, Error> {
        let _ = (own, request);
        Err(Error::NoMinimize(self.type_name().to_owned()))
    }
}

/// What makes a profile a particular piece of equipment: its kind, the identity key and
/// that key's value. Hashable; equal for two profiles of the same handset (same serial) or
/// relay (same uid) even when their other keys differ.
#[derive(Debug, Clone)]
pub struct Identity {
    type_name: String,
    key: String,
    value: Value,
}

impl Identity {
    /// The kind (`type`).
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// The identity key (`serial`, `uid`, ...).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The identity key's value.
    pub fn value(&self) -> &Value {
        &self.value
    }
}

impl PartialEq for Identity {
    fn eq(&self, other: &Identity) -> bool {
        self.type_name == other.type_name
            && self.key == other.key
            && py_eq(&self.value, &other.value)
    }
}

impl Eq for Identity {}

impl Hash for Identity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.type_name.hash(state);
        self.key.hash(state);
        py_hash(&self.value, state);
    }
}

/// Profile kinds by `type` name.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<String, Arc<dyn ProfileKind>>,
}

impl Registry {
    /// A registry with no kinds.
    pub fn empty() -> Registry {
        Registry::default()
    }

    /// The shared registry of the original's profile classes: `handset`, `relay`,
    /// `board`, `workspace`, `testdrive`, `beryllium`, `wlan`, `powermeter` and `broker`.
    pub fn standard() -> &'static Registry {
        static STANDARD: OnceLock<Registry> = OnceLock::new();
        STANDARD.get_or_init(Registry::with_standard_kinds)
    }

    /// A new registry holding the standard kinds, to extend with [`Registry::register`].
    pub fn with_standard_kinds() -> Registry {
        let mut registry = Registry::empty();
        registry.register(Handset);
        registry.register(Relay);
        registry.register(Board);
        registry.register(Workspace);
        registry.register(TestDrive);
        registry.register(Beryllium);
        registry.register(Wlan);
        registry.register(Powermeter);
        registry.register(Broker);
        registry
    }

    /// Adds a kind, replacing and returning any kind of the same name.
    pub fn register(&mut self, kind: impl ProfileKind + 'static) -> Option<Arc<dyn ProfileKind>> {
        self.kinds.insert(kind.type_name().to_owned(), Arc::new(kind))
    }

    /// The kind of a `type` name.
    pub fn kind(&self, type_name: &str) -> Option<&dyn ProfileKind> {
        self.kinds.get(type_name).map(|k| k.as_ref())
    }

    /// The registered `type` names, sorted.
    pub fn type_names(&self) -> impl Iterator<Item = &str> {
        self.kinds.keys().map(String::as_str)
    }

    /// The original's profile `factory`: builds a profile of the kind its `type` names.
    ///
    /// # Errors
    ///
    /// [`Error::NotAnObject`] for a non-object, [`Error::MissingType`] without `type`,
    /// [`Error::UnsupportedType`] for an unregistered type (`type <t> not supported in
    /// profiles`), or the kind's own refusal.
    pub fn create(&self, value: Value) -> Result<Profile, Error> {
        let mut profile = Profile::from_value(value)?;
        let type_name = profile.type_name().ok_or(Error::MissingType)?.to_owned();
        let kind = self.kind(&type_name).ok_or(Error::UnsupportedType(type_name))?;
        kind.normalize(&mut profile)?;
        Ok(profile)
    }

    /// Builds a profile as the named kind (the subclass constructor), whatever its `type`.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedType`] for an unregistered kind, or the kind's own refusal.
    pub fn create_as(&self, type_name: &str, value: Value) -> Result<Profile, Error> {
        let kind =
            self.kind(type_name).ok_or_else(|| Error::UnsupportedType(type_name.to_owned()))?;
        let mut profile = Profile::from_value(value)?;
        kind.normalize(&mut profile)?;
        Ok(profile)
    }

    /// Whether `own` satisfies `request`, by the rules of `own`'s kind; plain key matching
    /// when the kind is unknown.
    pub fn matches(&self, own: &Profile, request: &Profile) -> bool {
        match own.type_name().and_then(|t| self.kind(t)) {
            Some(kind) => kind.matches(own, request),
            None => own.matches_keys(request),
        }
    }

    /// `own`'s mandatory keys plus the keys named in `request`, by the rules of `own`'s
    /// kind.
    ///
    /// # Errors
    ///
    /// [`Error::MissingType`] or [`Error::UnsupportedType`] when the kind is unknown,
    /// [`Error::NoMinimize`] when the kind has no `minimize`, [`Error::MissingKey`] when a
    /// key the kind needs is missing.
    pub fn minimize(&self, own: &Profile, request: Option<&Profile>) -> Result<Profile, Error> {
        let type_name = own.type_name().ok_or(Error::MissingType)?;
        let kind =
            self.kind(type_name).ok_or_else(|| Error::UnsupportedType(type_name.to_owned()))?;
        kind.minimize(own, request)
    }

    /// The identity of a profile by its kind's identity key; `None` for unknown kinds,
    /// kinds without one, and profiles lacking the key.
    pub fn identity(&self, profile: &Profile) -> Option<Identity> {
        let type_name = profile.type_name()?;
        let key = self.kind(type_name)?.identity_key()?;
        let value = profile.get(key)?.clone();
        Some(Identity { type_name: type_name.to_owned(), key: key.to_owned(), value })
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").field("kinds", &self.kinds.keys().collect::<Vec<_>>()).finish()
    }
}

/// The conveniences of [`Profile`] that go through the [standard registry](Registry::standard).
/// They live here, beside the registry, so that `profile.rs` does not import it.
impl Profile {
    /// Whether this profile satisfies `request`, by the rules of this profile's kind in the
    /// standard registry (plain key matching for kinds it does not know).
    pub fn matches(&self, request: &Profile) -> bool {
        Registry::standard().matches(self, request)
    }

    /// A copy with the mandatory keys of this profile's kind plus the keys named in
    /// `request`, by the rules of the standard registry.
    ///
    /// # Errors
    ///
    /// See [`Registry::minimize`].
    pub fn minimize(&self, request: Option<&Profile>) -> Result<Profile, Error> {
        Registry::standard().minimize(self, request)
    }

    /// What makes two profiles of this kind the same equipment (a handset's serial, a
    /// relay's uid), by the standard registry; `None` when the kind has no such key or the
    /// profile lacks it.
    pub fn identity(&self) -> Option<crate::Identity> {
        Registry::standard().identity(self)
    }
}
