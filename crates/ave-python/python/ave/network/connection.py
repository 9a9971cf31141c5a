"""Framed TCP connections (``ave.network.connection``): every message is a 4-byte
big-endian length followed by that many bytes. Implemented by the Rust ``ave-network``
crate; blocking calls release the GIL."""

import errno
import select
import socket as _socket
import struct

from ave import _native

__all__ = ['find_free_port', 'Connection', 'BlockingConnection']


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


def _network_error(name, msg=None):
    from ave.network import exceptions
    return getattr(exceptions, name)(msg)


class Connection(object):
    """A non-blocking TCP/IP socket based message queue, for programs that run their own
    ``poll()`` loop. (A ``Control`` does not use it: the Rust server does its own I/O.)
    This class is plain Python over the socket module.

    :arg address: A (host,port) tuple. Represents the remote peer on outgoing
        connections. Represents the current host on listening connections.
    :arg socket: A pre-allocated socket. If not set, one will be created.
    """

    def __init__(self, address, socket=None):
        if socket is None and not (isinstance(address, tuple) and len(address) == 2
                                   and isinstance(address[0], str)
                                   and isinstance(address[1], int) and address[1] > 0):
            raise Exception('address must be a (string, integer > 0) tuple')
        self.address = address
        self.socket = socket
        self._in_head, self._in_body = b'', b''
        self._out = None

    @property
    def port(self):
        """The port of :attr:`address`."""
        return self.address[1]

    def __repr__(self):
        return 'Connection(address=%r)' % (self.address,)

    def fileno(self):
        """:returns: The file descriptor of the underlying socket, if any."""
        return self.socket.fileno()

    def listen(self):
        """Sets the underlying socket to a new one that is listening (non-blocking) on the
        port of :attr:`address`, on every interface."""
        sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        sock.bind(('', self.address[1]))
        sock.listen(_socket.SOMAXCONN)
        sock.setblocking(False)
        self.socket = sock
        return self

    def accept(self):
        """Accepts a connection attempt on the underlying socket and returns a new
        connection object.

        :raises: *ConnectionAgain* if no connection attempt is waiting.
        """
        self.socket.setblocking(False)
        try:
            sock, address = self.socket.accept()
        except BlockingIOError as e:
            raise _network_error('ConnectionAgain', str(e))
        sock.setblocking(False)
        return Connection(address, sock)

    def connect(self):
        """Connect to the host/port provided in the constructor.

        :raises: *ConnectionInProgress* if the attempt could not complete immediately.
            The caller should poll the underlying socket for writing to determine when
            the connection has been established.
        """
        self.socket = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        self.socket.setblocking(False)
        try:
            self.socket.connect((self.address[0] or '127.0.0.1', self.address[1]))
        except BlockingIOError as e:
            raise _network_error('ConnectionInProgress', str(e))
        return self

    def close(self):
        """Shuts down and closes the underlying socket."""
        try:
            self.socket.shutdown(_socket.SHUT_RDWR)
        except OSError:
            pass
        self.socket.close()

    def write(self, obj):
        """Write bytes on the underlying socket (one ``send``).

        :returns: The number of bytes written.
        :raises: *ConnectionAgain* if the write could not complete immediately.
        :raises: *ConnectionClosed* if the connection is no longer open.
        """
        try:
            sent = self.socket.send(obj)
        except BlockingIOError as e:
            raise _network_error('ConnectionAgain', str(e))
        except (BrokenPipeError, ConnectionResetError) as e:
            raise _network_error('ConnectionClosed', str(e))
        if sent == 0 and obj:
            raise _network_error('ConnectionClosed')
        return sent

    def read(self, size):
        """Read at most *size* bytes from the underlying socket (one ``recv``).

        :raises: *ConnectionAgain* if nothing can be read immediately.
        :raises: *ConnectionClosed* if the connection is no longer open.
        """
        try:
            data = self.socket.recv(size)
        except BlockingIOError as e:
            raise _network_error('ConnectionAgain', str(e))
        except (ConnectionResetError, OSError) as e:
            if isinstance(e, OSError) and e.errno not in (errno.EBADF, errno.ECONNRESET):
                raise
            raise _network_error('ConnectionClosed', str(e))
        if not data:
            raise _network_error('ConnectionClosed')
        return data

    def put(self, payload):
        """Write a payload prefixed by a 32 bit network order integer that carries its
        size. What cannot be written at once is kept: call ``put`` again (with the same
        payload) when the socket is writable.

        :returns: The payload once it is all written, *None* while some is pending.
        :raises: *ConnectionAgain* if nothing could be written.
        :raises: *ConnectionClosed* if the connection is no longer open.
        """
        if self._out is None:
            self._out = struct.pack('>L', len(payload)) + bytes(payload)
        self._out = self._out[self.write(self._out):]
        if self._out:
            return None
        self._out = None
        return payload

    def get(self):
        """Read a message: a 32 bit network order integer header followed by a payload
        whose size is encoded in the header. Partially read messages are kept internally
        until they can be completed (a zero-length message is returned as ``b''``).

        :returns: The payload bytes, or *None* if the attempt should be tried again later.
        :raises: *ConnectionClosed* if the connection is no longer open.
        """
        try:
            if len(self._in_head) < 4:
                self._in_head += self.read(4 - len(self._in_head))
                if len(self._in_head) < 4:
                    return None
            size = struct.unpack('>L', self._in_head)[0]
            if len(self._in_body) < size:
                self._in_body += self.read(size - len(self._in_body))
                if len(self._in_body) < size:
                    return None
        except Exception as e:
            if type(e).__name__ == 'ConnectionAgain':
                return None
            raise
        payload, self._in_head, self._in_body = self._in_body, b'', b''
        return payload


class BlockingConnection(object):
    """A blocking TCP/IP socket based message queue, on the Rust ``BlockingConnection``
    (the GIL is released while it waits).

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
