"""File descriptor transfer between processes over a Unix domain socket
(``ave.network.fdtx``), on the Rust ``fdtx`` module (no C library is loaded)."""

import os

from ave import _native
from ave.exceptions import Timeout
from ave.network.exceptions import ConnectionTimeout

__all__ = ['FdTx']


class FdTx(object):
    """Passes open file descriptors, with a free form text message, to another process.

    :arg so_path: Ignored (the original loaded a C library from this path); kept so that
        callers written for the original work unchanged.
    """

    def __init__(self, so_path=None):
        self._fdtx = _native.FdTx()

    def listen(self, dirname, filename=None):
        """Create a Unix domain socket in *dirname* (named *filename*, random if not set)
        and listen on it.

        :returns: The full socket path.
        """
        return self._fdtx.listen(os.fspath(dirname), filename)

    def accept(self, timeout=None):
        """Accept the one connection. Raises *Timeout* if none arrives in time."""
        try:
            self._fdtx.accept(timeout)
        except ConnectionTimeout as e:
            raise Timeout(str(e)) from None

    def connect(self, path, timeout):
        """Connect to an accepting peer, retrying until *timeout* seconds have passed.
        Raises *Timeout* if that expires."""
        try:
            self._fdtx.connect(os.fspath(path), float(timeout))
        except ConnectionTimeout as e:
            raise Timeout(str(e)) from None

    def close(self):
        """Close the underlying domain socket."""
        self._fdtx.close()

    def put(self, message, *fds):
        """Send a message containing a free form text message and file descriptors."""
        if isinstance(message, str):
            message = message.encode('utf-8')
        self._fdtx.put(bytes(message), [int(fd) for fd in fds])

    def get(self, max_msg_len, max_fds):
        """Receive a message containing a free form text message and descriptors.

        :returns: A tuple containing the message (text) and a list of file descriptors,
            which the caller owns.
        """
        message, fds = self._fdtx.get(int(max_msg_len), int(max_fds))
        return message.decode('utf-8', 'replace'), fds
