//! AVE's configuration switchboard: the default files under `<home>/.ave/config`,
//! `authkeys.json`, and `/etc/ave/user`.
//!
//! Most users reach this crate through the facade, as `ave::config`.
//!
//! **Not implemented yet.** This crate will hold `create_default`, `load`,
//! `load_authkeys`, `create_etc` and `load_etc` with the original's file set, contents and
//! error texts (see the config issue).
