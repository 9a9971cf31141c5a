//! Addresses and sockets: [`Address`], [`bind`], [`find_free_port`], and the socket
//! options every connection gets (keepalive, no Nagle delay).

use std::{
    fmt, io,
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, ToSocketAddrs},
    ops::RangeInclusive,
    os::fd::{AsFd, OwnedFd},
    str::FromStr,
};

use socket2::{Domain, SockRef, Socket, TcpKeepalive, Type};

use crate::{
    Error,
    connection::{KEEPALIVE_COUNT, KEEPALIVE_IDLE, KEEPALIVE_INTERVAL},
};

/// Where a service listens: a host name or address and a port.
///
/// An empty host means the local host, as in the original (`('', port)`). Parse one from
/// `host:port` (`[::1]:4000` for IPv6).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// The host name or address; empty for the local host.
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

impl Address {
    /// An address from its parts.
    pub fn new(host: impl Into<String>, port: u16) -> Address {
        Address { host: host.into(), port }
    }

    /// The host to connect to: the given one, or `127.0.0.1` for an empty host.
    pub fn connect_host(&self) -> &str {
        if self.host.is_empty() { "127.0.0.1" } else { &self.host }
    }

    /// Resolves the address (a blocking lookup for host names).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the name cannot be resolved.
    pub fn resolve(&self) -> Result<SocketAddr, Error> {
        let host = self.connect_host();
        let resolve_err = |e| Error::io(format!("resolve {host}"), e);
        (host, self.port)
            .to_socket_addrs()
            .map_err(resolve_err)?
            .next()
            .ok_or_else(|| resolve_err(io::Error::from(io::ErrorKind::NotFound)))
    }

    pub(crate) async fn resolve_async(&self) -> Result<SocketAddr, Error> {
        let host = self.connect_host();
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, self.port));
        }
        let resolve_err = |e| Error::io(format!("resolve {host}"), e);
        tokio::net::lookup_host((host, self.port))
            .await
            .map_err(resolve_err)?
            .next()
            .ok_or_else(|| resolve_err(io::Error::from(io::ErrorKind::NotFound)))
    }

    /// The address as the original sends it in JSON: `[host, port]`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!([self.host, self.port])
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Address {
        Address { host: addr.ip().to_string(), port: addr.port() }
    }
}

impl From<(&str, u16)> for Address {
    fn from((host, port): (&str, u16)) -> Address {
        Address::new(host, port)
    }
}

impl FromStr for Address {
    type Err = Error;

    fn from_str(s: &str) -> Result<Address, Error> {
        let bad = || Error::BadAddress { text: s.to_owned() };
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let host = match host.strip_prefix('[') {
            Some(inner) => inner.strip_suffix(']').ok_or_else(bad)?,
            None if host.contains(':') => return Err(bad()),
            None => host,
        };
        let port = port.parse().map_err(|_| bad())?;
        Ok(Address::new(host, port))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Turns on keepalive as the original sets it ([`KEEPALIVE_IDLE`]) and `TCP_NODELAY` (every
/// frame is written whole, so nothing is gained by delaying small segments).
///
/// # Errors
///
/// The `setsockopt` error.
pub fn configure_socket(socket: &impl AsFd) -> io::Result<()> {
    let sock = SockRef::from(socket);
    sock.set_tcp_keepalive(
        &TcpKeepalive::new()
            .with_time(KEEPALIVE_IDLE)
            .with_interval(KEEPALIVE_INTERVAL)
            .with_retries(KEEPALIVE_COUNT),
    )?;
    sock.set_tcp_nodelay(true)
}

/// Sets a socket's receive and send buffer sizes and returns the sizes the kernel chose
/// (Linux doubles the request and applies a minimum).
///
/// # Errors
///
/// The `setsockopt` or `getsockopt` error.
pub fn set_buffer_sizes(
    socket: &impl AsFd,
    recv: usize,
    send: usize,
) -> io::Result<(usize, usize)> {
    let sock = SockRef::from(socket);
    sock.set_recv_buffer_size(recv)?;
    sock.set_send_buffer_size(send)?;
    Ok((sock.recv_buffer_size()?, sock.send_buffer_size()?))
}

/// A listening socket on `addr` with `SO_REUSEADDR` and the largest backlog the kernel
/// allows.
///
/// # Errors
///
/// [`Error::Io`] if the socket cannot be bound or put in listening state.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    let context = || format!("listen on {addr}");
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)
        .map_err(|e| Error::io(context(), e))?;
    socket.set_reuse_address(true).map_err(|e| Error::io(context(), e))?;
    socket.bind(&addr.into()).map_err(|e| Error::io(context(), e))?;
    socket.listen(4096).map_err(|e| Error::io(context(), e))?;
    Ok(socket.into())
}

/// A socket bound to a free port found by [`find_free_port`].
#[derive(Debug)]
pub struct FreePort {
    socket: Socket,
    port: u16,
    listening: bool,
}

impl FreePort {
    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the socket is listening.
    pub fn is_listening(&self) -> bool {
        self.listening
    }

    /// The socket as a listener, put in listening state if it is not yet. Give it to a
    /// `Control` to serve on the port without a window in which another process could
    /// take it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if `listen` fails.
    pub fn into_listener(self) -> Result<TcpListener, Error> {
        if !self.listening {
            self.socket
                .listen(4096)
                .map_err(|e| Error::io(format!("listen on port {}", self.port), e))?;
        }
        Ok(self.socket.into())
    }

    /// The socket's descriptor, bound (and listening if it was asked for).
    pub fn into_fd(self) -> OwnedFd {
        self.socket.into()
    }
}

/// The original's `find_free_port`: binds a socket with `SO_REUSEADDR` to a random port
/// of 49152..=65535 on `ip` (trying up to 20,000 ports), and listens on it if `listen`.
///
/// # Errors
///
/// [`Error::Io`] (`no free port available`) when every attempt failed.
pub fn find_free_port(ip: IpAddr, listen: bool) -> Result<FreePort, Error> {
    find_free_port_in(ip, 49152..=65535, listen)
}

/// [`find_free_port`] on a range of ports.
///
/// # Errors
///
/// [`Error::BadArgument`] for an empty range; [`Error::Io`] (`no free port available`)
/// when every attempt failed.
pub fn find_free_port_in(
    ip: IpAddr,
    range: RangeInclusive<u16>,
    listen: bool,
) -> Result<FreePort, Error> {
    let (low, high) = (u32::from(*range.start()), u32::from(*range.end()));
    if low > high {
        return Err(Error::BadArgument {
            what: "port range",
            value: format!("{low}..={high}"),
            expected: "LOW..=HIGH with LOW <= HIGH",
        });
    }
    let mut last = io::Error::from(io::ErrorKind::AddrInUse);
    for _ in 0..20_000 {
        let mut random = [0u8; 4];
        getrandom::fill(&mut random)
            .map_err(|e| Error::io("read random bytes", io::Error::other(e.to_string())))?;
        let port = (low + u32::from_ne_bytes(random) % (high - low + 1)) as u16;
        let attempt = (|| {
            let addr = SocketAddr::new(ip, port);
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
            socket.set_reuse_address(true)?;
            socket.bind(&addr.into())?;
            if listen {
                socket.listen(4096)?;
            }
            Ok::<_, io::Error>(socket)
        })();
        match attempt {
            Ok(socket) => return Ok(FreePort { socket, port, listening: listen }),
            Err(e) => last = e,
        }
    }
    Err(Error::io("no free port available", last))
}

/// The loopback address, for tests and local services.
pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[cfg(test)]
mod tests {
    use std::net::TcpStream;

    use super::*;

    #[test]
    fn addresses_parse_and_print() {
        let a: Address = "example.org:4000".parse().unwrap();
        assert_eq!(a, Address::new("example.org", 4000));
        assert_eq!(a.to_string(), "example.org:4000");
        let v6: Address = "[::1]:80".parse().unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.to_string(), "[::1]:80");
        let empty: Address = ":5".parse().unwrap();
        assert_eq!(empty.connect_host(), "127.0.0.1");
        assert_eq!(empty.to_json(), serde_json::json!(["", 5]));
        for bad in ["nohost", "a:b", "::1:80", "[::1:80", "h:70000"] {
            let err = bad.parse::<Address>().unwrap_err();
            assert!(matches!(&err, Error::BadAddress { text } if text == bad), "{err:?}");
        }
        assert_eq!(
            "a:b".parse::<Address>().unwrap_err().to_string(),
            "invalid address \"a:b\" (expected HOST:PORT)"
        );
    }

    #[test]
    fn free_ports_are_bound() {
        let free = find_free_port(LOCALHOST, false).unwrap();
        assert!(free.port() >= 49152);
        assert!(!free.is_listening());
        let listener = free.into_listener().unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(TcpStream::connect((LOCALHOST, port)).is_ok());
        let taken = find_free_port_in(LOCALHOST, port..=port, true);
        assert!(
            matches!(taken, Err(Error::Io { ref context, .. }) if context == "no free port available")
        );
        #[expect(clippy::reversed_empty_ranges, reason = "the empty range is the case tested")]
        let empty = find_free_port_in(LOCALHOST, 5..=4, false).unwrap_err();
        assert!(matches!(&empty, Error::BadArgument { what: "port range", .. }), "{empty:?}");
    }
}
