//! Addresses on the command line: `HOST:PORT` with host names or IP addresses, and one
//! message for a port that is not a port, whichever flag or argument it came from.

use std::net::{SocketAddr, ToSocketAddrs};

use ave::network::Address;

/// Parses a TCP port (`0` to `65535`). Usable as a clap `value_parser`.
///
/// # Errors
///
/// `port 70000 is out of range (0-65535)` or `port "x" is not a number`, the same text
/// for `ave serve --port` and the port of any `HOST:PORT`.
pub(crate) fn parse_port(text: &str) -> Result<u16, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port {text:?} is not a number from 0 to 65535"));
    }
    text.parse().map_err(|_| format!("port {text} is out of range (0-65535)"))
}

/// Parses `HOST:PORT`, `[IPV6]:PORT` or `:PORT` (the local host). The host may be a name
/// (`localhost:4000`); it is resolved when connecting. Usable as a clap `value_parser`.
///
/// # Errors
///
/// A one-line reason: no port, a bad port (as [`parse_port`]), or an unbracketed IPv6
/// address.
pub(crate) fn parse_address(text: &str) -> Result<Address, String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} has no port (expected HOST:PORT)"))?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner
            .strip_suffix(']')
            .ok_or_else(|| format!("{text:?} has an unclosed '[' (expected [IPV6]:PORT)"))?,
        None if host.contains(':') => {
            return Err(format!("put an IPv6 address in brackets: [{host}]:{port}"));
        }
        None => host,
    };
    Ok(Address::new(host, parse_port(port)?))
}

/// Resolves the host of `--bind` (an address or a name such as `localhost`) with `port`;
/// the first address the resolver gives is the one bound.
///
/// # Errors
///
/// A one-line reason if the name does not resolve.
pub(crate) fn resolve_bind(host: &str, port: u16) -> Result<SocketAddr, String> {
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let mut found = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("--bind {host}: cannot resolve: {e}"))?;
    found.next().ok_or_else(|| format!("--bind {host}: the name has no address"))
}

#[cfg(test)]
mod tests;
