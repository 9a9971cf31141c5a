"""Framed TCP connections (``ave.network.connection``): every message is a 4-byte
big-endian length followed by that many bytes. Implemented by the Rust ``ave-network``
crate; blocking calls release the GIL."""

import select
import socket as _socket

from ave import _native

__all__ = ['find_free_port', 'BlockingConnection']


def find_free_port(start=49152, stop=65536, listen=True):
    """Find a free IP port by random picking in the selected range. If successful, a
    bound socket is returned (on every interface, with ``SO_REUSEADDR``).

    :arg start: Start value for the search range.
    :arg stop: Stop value for the search range.
    :arg listen: Creates a listening socket.
    :returns: A (socket, port) tuple.
    :raises: *Exception* if no free port is found in 20000 attempts.
    """
    fd, port = _native.find_free_port(start, stop, listen)
    return _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM, 0, fd), port


class BlockingConnection(object):
    """A blocking TCP/IP socket based message queue.

    :arg address: A (host,port) tuple. Represents the remote peer on outgoing
        connections. Represents the current host on listening connections.
    :arg socket: A pre-allocated socket (connected, or listening). If not set, one is
        created by :meth:`connect` or :meth:`listen`.
    """

    def __init__(self, address, socket=None):
        self.address = address
        self.socket = socket
        self._framed = None

    @property
    def port(self):
        """The port of :attr:`address`."""
        return self.address[1]

    def __repr__(self):
        return 'BlockingConnection(address=%r)' % (self.address,)

    def _conn(self):
        if self._framed is None:
            if self.socket is None:
                from ave.network.exceptions import ConnectionClosed
                raise ConnectionClosed()
            self._framed = _native.Framed.from_fd(self.socket.fileno())
        return self._framed

    def fileno(self):
        """:returns: The file descriptor of the underlying socket, if any."""
        if self._framed is not None:
            return self._framed.fileno()
        return self.socket.fileno() if self.socket is not None else -1

    def listen(self):
        """Sets the underlying socket to a new one that is listening on the port of
        :attr:`address`, on every interface."""
        sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        sock.bind(('', self.address[1]))
        sock.listen(_socket.SOMAXCONN)
        self.socket = sock
        return self

    def poll(self, mask, timeout):
        """Blocks until the underlying socket satisfies a condition or the wait times out.

        :arg mask: See ``poll()`` semantics for POSIX.
        :arg timeout: Seconds. An integer or floating point value.
        :returns: A list of (fd, event) tuples. An empty list if no event was seen before
            the timeout.
        """
        poller = select.poll()
        poller.register(self.fileno(), mask)
        return poller.poll(-1 if timeout is None else int(timeout * 1000))

    def connect(self, timeout=None, optimist=False):
        """Connects the underlying socket to a remote peer.

        :arg timeout: Maximum time in seconds to spend on the attempt. *None* waits
            forever.
        :arg optimist: Retry while the connection is refused (the peer may not listen
            yet); the client eventually gets a timeout instead of an immediate failure.
        :raises: *ConnectionTimeout* if the connection could not be established before the
            timeout.
        :raises: *ConnectionRefused* if the attempt is refused and not made
            optimistically.
        """
        host, port = self.address
        self._framed = _native.Framed.connect(host or '', port, timeout, optimist)
        return self

    def accept(self, timeout=None):
        """Accept an incoming connection attempt.

        :arg timeout: Maximum time in seconds to spend on the attempt. *None* waits
            forever.
        :raises: *ConnectionTimeout* if no connection arrives before the timeout.
        :raises: *ConnectionClosed* if an error condition is seen during the attempt.
        :returns: A new *BlockingConnection* object.
        """
        framed = _native.Framed.accept(self.socket.fileno(), timeout)
        conn = BlockingConnection(self.address)
        conn._framed = framed
        return conn

    def write(self, obj, timeout=None):
        """Write bytes on the underlying socket.

        :raises: *ConnectionClosed* if the connection is no longer open.
        :raises: *ConnectionTimeout* if the attempt could not be completed in time.
        """
        return self._conn().write(_bytes(obj), timeout)

    def read(self, size, timeout=None):
        """Read exactly *size* bytes from the underlying socket.

        :raises: *ConnectionClosed* if the connection is no longer open.
        :raises: *ConnectionTimeout* if the attempt could not be completed in time.
        :returns: Bytes.
        """
        return self._conn().read(size, timeout)

    def put(self, payload, timeout=None):
        """Write a payload to the network, prefixed by a 32 bit network order integer that
        carries the byte size of *payload*.

        :raises: *ConnectionClosed* if the connection is no longer open.
        :raises: *ConnectionTimeout* if the attempt could not be completed in time.
        """
        return self._conn().put(_bytes(payload), timeout)

    def get(self, timeout=None):
        """Read a message from the network: a 32 bit network order integer header
        followed by a payload whose size is encoded in the header. A partially read
        message is kept until it can be completed, so a timeout never desynchronizes the
        stream.

        :raises: *ConnectionClosed* if the connection is no longer open.
        :raises: *ConnectionTimeout* if the attempt could not be completed in time.
        :returns: The payload bytes.
        """
        return self._conn().get(timeout)

    def close(self):
        """Shuts down and closes the underlying socket."""
        if self._framed is not None:
            self._framed.close()
        if self.socket is not None:
            try:
                self.socket.close()
            except OSError:
                pass


def _bytes(obj):
    if isinstance(obj, str):
        return obj.encode('utf-8')
    return bytes(obj)
