//! The challenge handshake that opens every `Control` connection.
//!
//! The server speaks first: one frame holding `#CHALLENGE#` and 20 random bytes (the
//! salt). The client answers with one frame holding HMAC-MD5(authkey, everything after
//! the prefix), 16 bytes. The server compares it with the digest of each key it knows and
//! answers `{"authenticated": true}` or `{"authenticated": false}`; a failed
//! authentication keeps the connection, with no identity.
//!
//! Beyond the original, a server may offer HMAC-SHA256: it appends
//! [`SHA256_MARKER`] to the salt. Old clients hash whatever follows the prefix, marker
//! included, and answer with 16 bytes of MD5; new clients see the marker and answer with
//! 32 bytes of SHA-256 over the same bytes. The server tells the two apart by length and
//! may refuse MD5 altogether ([`DigestPolicy::Sha256`]).

use std::{fmt, str::FromStr};

use hmac::{Hmac, Mac};

use crate::Error;

/// The prefix of the challenge frame.
pub const CHALLENGE_PREFIX: &[u8] = b"#CHALLENGE#";

/// The number of random bytes after the prefix.
pub const SALT_LEN: usize = 20;

/// Appended to the salt by a server that offers HMAC-SHA256.
pub const SHA256_MARKER: &[u8] = b"#HMAC-SHA256#";

/// The length of an HMAC-MD5 digest.
pub const MD5_LEN: usize = 16;

/// The length of an HMAC-SHA256 digest.
pub const SHA256_LEN: usize = 32;

/// Which digests a server offers and accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DigestPolicy {
    /// HMAC-MD5 only: the original's handshake, byte for byte (a 31-byte challenge).
    #[default]
    Md5,
    /// Offer HMAC-SHA256 and accept either digest.
    Any,
    /// Offer HMAC-SHA256 and accept nothing else: an MD5 answer authenticates no one.
    Sha256,
}

impl DigestPolicy {
    /// Whether the challenge carries [`SHA256_MARKER`].
    pub fn offers_sha256(self) -> bool {
        self != DigestPolicy::Md5
    }

    /// Whether an answer computed with `algorithm` may authenticate.
    pub fn accepts(self, algorithm: Algorithm) -> bool {
        match self {
            DigestPolicy::Md5 => algorithm == Algorithm::Md5,
            DigestPolicy::Any => true,
            DigestPolicy::Sha256 => algorithm == Algorithm::Sha256,
        }
    }
}

impl FromStr for DigestPolicy {
    type Err = Error;

    fn from_str(s: &str) -> Result<DigestPolicy, Error> {
        match s {
            "md5" => Ok(DigestPolicy::Md5),
            "any" => Ok(DigestPolicy::Any),
            "sha256" => Ok(DigestPolicy::Sha256),
            other => Err(Error::BadArgument {
                what: "digest policy",
                value: other.to_owned(),
                expected: "md5, sha256 or any",
            }),
        }
    }
}

impl fmt::Display for DigestPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DigestPolicy::Md5 => "md5",
            DigestPolicy::Any => "any",
            DigestPolicy::Sha256 => "sha256",
        })
    }
}

/// A digest algorithm of the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-MD5, 16 bytes: the original's.
    Md5,
    /// HMAC-SHA256, 32 bytes: offered by servers with [`SHA256_MARKER`].
    Sha256,
}

/// A fresh challenge payload: the prefix, 20 bytes from the operating system's
/// cryptographic generator, and the marker if the policy offers SHA-256.
///
/// # Errors
///
/// [`Error::Io`] if the random generator fails.
pub fn new_challenge(policy: DigestPolicy) -> Result<Vec<u8>, Error> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt)
        .map_err(|e| Error::io("read random bytes", std::io::Error::other(e.to_string())))?;
    Ok(challenge_with_salt(&salt, policy))
}

/// The challenge payload for a given salt.
pub fn challenge_with_salt(salt: &[u8; SALT_LEN], policy: DigestPolicy) -> Vec<u8> {
    let mut out = Vec::with_capacity(CHALLENGE_PREFIX.len() + SALT_LEN + SHA256_MARKER.len());
    out.extend_from_slice(CHALLENGE_PREFIX);
    out.extend_from_slice(salt);
    if policy.offers_sha256() {
        out.extend_from_slice(SHA256_MARKER);
    }
    out
}

/// The HMAC of `message` under `key`.
pub fn digest(algorithm: Algorithm, key: &[u8], message: &[u8]) -> Vec<u8> {
    match algorithm {
        Algorithm::Md5 => {
            let mut mac = Hmac::<md5::Md5>::new_from_slice(key).expect("HMAC takes any key");
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        Algorithm::Sha256 => {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key");
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
    }
}

/// The client's answer to a challenge: HMAC-SHA256 if the server offers it, HMAC-MD5
/// otherwise, over everything after the prefix. A client without a key uses the empty
/// key.
///
/// # Errors
///
/// [`Error::Protocol`] (`wrong challenge: ...`) if the payload lacks the prefix.
pub fn respond(challenge: &[u8], authkey: Option<&str>) -> Result<Vec<u8>, Error> {
    let message = challenge
        .strip_prefix(CHALLENGE_PREFIX)
        .ok_or_else(|| Error::Protocol(format!("wrong challenge: {}", challenge.escape_ascii())))?;
    let algorithm =
        if message.ends_with(SHA256_MARKER) { Algorithm::Sha256 } else { Algorithm::Md5 };
    Ok(digest(algorithm, authkey.unwrap_or("").as_bytes(), message))
}

/// The keys a server knows: a primary key and named accounts, each of which may be unset.
///
/// The identity of an authenticated connection is the *key string* that matched (not the
/// account name), as in the original; [`Keys::preauth_allows`] applies the original's
/// account rule to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    primary: Option<String>,
    accounts: Vec<(String, Option<String>)>,
}

impl Keys {
    /// A table with a primary key (or none).
    pub fn new(primary: Option<&str>) -> Keys {
        Keys { primary: primary.map(str::to_owned), accounts: Vec::new() }
    }

    /// Adds an account (or replaces its key), builder style. A `None` key names an
    /// account that exists without a key: see [`Keys::preauth_allows`].
    #[must_use]
    pub fn with_account(mut self, name: &str, key: Option<&str>) -> Keys {
        self.set_account(name, key);
        self
    }

    /// Adds an account or replaces its key.
    pub fn set_account(&mut self, name: &str, key: Option<&str>) {
        let key = key.map(str::to_owned);
        match self.accounts.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = key,
            None => self.accounts.push((name.to_owned(), key)),
        }
    }

    /// The primary key.
    pub fn primary(&self) -> Option<&str> {
        self.primary.as_deref()
    }

    /// The accounts and their keys, in the order they were added.
    pub fn accounts(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.accounts.iter().map(|(n, k)| (n.as_str(), k.as_deref()))
    }

    /// An account's key: `None` if there is no such account, `Some(None)` if it has no key.
    pub fn account(&self, name: &str) -> Option<Option<&str>> {
        self.accounts.iter().find(|(n, _)| n == name).map(|(_, k)| k.as_deref())
    }

    /// Every key that is set, the primary first: the candidates of a handshake.
    pub fn candidates(&self) -> impl Iterator<Item = &str> {
        self.primary
            .as_deref()
            .into_iter()
            .chain(self.accounts.iter().filter_map(|(_, k)| k.as_deref()))
    }

    /// Checks a client's answer to `challenge` (the payload the server sent) and returns
    /// the first key it was computed with, if any. Every candidate is checked, each with a
    /// constant-time comparison. An answer of another length, or of an algorithm the
    /// policy refuses, matches nothing.
    pub fn verify(&self, challenge: &[u8], answer: &[u8], policy: DigestPolicy) -> Option<String> {
        let message = challenge.strip_prefix(CHALLENGE_PREFIX)?;
        let algorithm = match answer.len() {
            MD5_LEN => Algorithm::Md5,
            SHA256_LEN if message.ends_with(SHA256_MARKER) => Algorithm::Sha256,
            _ => return None,
        };
        if !policy.accepts(algorithm) {
            return None;
        }
        let mut matched = None;
        for key in self.candidates() {
            let ok = match algorithm {
                Algorithm::Md5 => {
                    let mut mac = Hmac::<md5::Md5>::new_from_slice(key.as_bytes())
                        .expect("HMAC takes any key");
                    mac.update(message);
                    mac.verify_slice(answer).is_ok()
                }
                Algorithm::Sha256 => {
                    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes())
                        .expect("HMAC takes any key");
                    mac.update(message);
                    mac.verify_slice(answer).is_ok()
                }
            };
            if ok && matched.is_none() {
                matched = Some(key.to_owned());
            }
        }
        matched
    }

    /// The original's `@preauth(accounts...)` rule for a connection whose identity is
    /// `credential`:
    ///
    /// - the call is *anonymous* (open to everyone) unless one of the named accounts
    ///   exists with a key;
    /// - otherwise it is allowed when the credential equals the key of one of the named
    ///   accounts, where an account without a key equals a connection without an identity.
    ///
    /// So accounts that are all unknown or all keyless leave the call open, a mix of a
    /// keyless and a keyed account still lets unauthenticated clients in, and the primary
    /// key does not pass unless it equals a named account's key.
    pub fn preauth_allows<S: AsRef<str>>(&self, accounts: &[S], credential: Option<&str>) -> bool {
        let mut anonymous = true;
        let mut ok = false;
        for name in accounts {
            if let Some(key) = self.account(name.as_ref()) {
                if key.is_some() {
                    anonymous = false;
                }
                if key == credential {
                    ok = true;
                }
            }
        }
        anonymous || ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_layout() {
        let c = challenge_with_salt(&[7; SALT_LEN], DigestPolicy::Md5);
        assert_eq!(c.len(), 31);
        assert!(c.starts_with(CHALLENGE_PREFIX));
        let c = challenge_with_salt(&[7; SALT_LEN], DigestPolicy::Any);
        assert_eq!(c.len(), 31 + SHA256_MARKER.len());
        let a = new_challenge(DigestPolicy::Md5).unwrap();
        let b = new_challenge(DigestPolicy::Md5).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn client_answers_match_the_server() {
        for policy in [DigestPolicy::Md5, DigestPolicy::Any, DigestPolicy::Sha256] {
            let keys = Keys::new(Some("key1")).with_account("admin", Some("key2"));
            let c = new_challenge(policy).unwrap();
            let answer = respond(&c, Some("key2")).unwrap();
            let expected = if policy.offers_sha256() { SHA256_LEN } else { MD5_LEN };
            assert_eq!(answer.len(), expected);
            assert_eq!(keys.verify(&c, &answer, policy).as_deref(), Some("key2"));
            assert_eq!(keys.verify(&c, &respond(&c, Some("nope")).unwrap(), policy), None);
        }
    }

    #[test]
    fn old_clients_hash_the_marker_too() {
        let c = challenge_with_salt(&[1; SALT_LEN], DigestPolicy::Any);
        let old = digest(Algorithm::Md5, b"k", &c[CHALLENGE_PREFIX.len()..]);
        let keys = Keys::new(Some("k"));
        assert_eq!(keys.verify(&c, &old, DigestPolicy::Any).as_deref(), Some("k"));
        assert_eq!(keys.verify(&c, &old, DigestPolicy::Sha256), None);
    }

    #[test]
    fn odd_answers_match_nothing() {
        let keys = Keys::new(Some(""));
        let c = new_challenge(DigestPolicy::Any).unwrap();
        assert_eq!(keys.verify(&c, b"", DigestPolicy::Any), None);
        assert_eq!(keys.verify(&c, &[0; 20], DigestPolicy::Any), None);
        // A 32-byte answer to a challenge without the marker is not SHA-256.
        let plain = new_challenge(DigestPolicy::Md5).unwrap();
        let sha = digest(Algorithm::Sha256, b"", &plain[CHALLENGE_PREFIX.len()..]);
        assert_eq!(keys.verify(&plain, &sha, DigestPolicy::Any), None);
        assert!(
            matches!(respond(b"#CHALLENGE", None), Err(Error::Protocol(m)) if m.starts_with("wrong challenge: "))
        );
    }

    #[test]
    fn the_first_matching_key_wins_and_empty_keys_match() {
        let keys = Keys::new(None).with_account("a", Some("same")).with_account("b", Some("same"));
        let c = new_challenge(DigestPolicy::Md5).unwrap();
        assert_eq!(
            keys.verify(&c, &respond(&c, Some("same")).unwrap(), DigestPolicy::Md5).as_deref(),
            Some("same")
        );
        let empty = Keys::new(Some(""));
        assert_eq!(
            empty.verify(&c, &respond(&c, None).unwrap(), DigestPolicy::Md5).as_deref(),
            Some("")
        );
        assert_eq!(
            Keys::new(None).verify(&c, &respond(&c, None).unwrap(), DigestPolicy::Md5),
            None
        );
    }

    #[test]
    fn preauth_rule() {
        let keys = Keys::new(Some("key1"))
            .with_account("admin", Some("key2"))
            .with_account("root", Some("key3"))
            .with_account("nobody", Some("key4"));
        let allowed = ["admin", "root"];
        assert!(keys.preauth_allows(&allowed, Some("key2")));
        assert!(keys.preauth_allows(&allowed, Some("key3")));
        assert!(!keys.preauth_allows(&allowed, Some("key4")));
        assert!(!keys.preauth_allows(&allowed, Some("key1")));
        assert!(!keys.preauth_allows(&allowed, None));
        let open = Keys::new(None).with_account("admin", None).with_account("root", None);
        assert!(open.preauth_allows(&allowed, None));
        assert!(open.preauth_allows(&allowed, Some("x")));
        assert!(Keys::new(Some("k")).preauth_allows(&["unknown"], None));
        let mixed = Keys::new(None).with_account("admin", None).with_account("root", Some("r"));
        assert!(mixed.preauth_allows(&allowed, None));
        assert!(!mixed.preauth_allows(&allowed, Some("other")));
        assert!(mixed.preauth_allows(&allowed, Some("r")));
    }

    #[test]
    fn policy_parsing() {
        assert_eq!("any".parse::<DigestPolicy>().unwrap(), DigestPolicy::Any);
        assert_eq!(DigestPolicy::Sha256.to_string(), "sha256");
        let err = "sha1".parse::<DigestPolicy>().unwrap_err();
        assert!(
            matches!(&err, Error::BadArgument { what: "digest policy", value, .. } if value == "sha1"),
            "{err:?}"
        );
    }
}
