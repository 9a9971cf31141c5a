"""Exceptions for conditions detected on connections and processes
(``ave.network.exceptions``). They are never sent over the network. Everything of
:mod:`ave.exceptions` is re-exported here."""

from ave.exceptions import *  # noqa: F401,F403 -- the original re-exported them
from ave.exceptions import AuthError, Exit, RunError, Timeout


class _Network(Exception):
    default = ''

    def __init__(self, msg=None):
        self.msg = self.default if msg is None else msg
        Exception.__init__(self, self.msg)

    def __str__(self):
        return self.msg


class ConnectionClosed(_Network):
    """The connection was closed."""
    default = 'connection closed'


class ConnectionTimeout(_Network):
    """No traffic could be read from, or written to, the connection in time."""
    default = 'timed out'


class ConnectionRefused(_Network):
    """A connection could not be established because the other end refused it."""
    default = 'connection refused'


class ConnectionInProgress(_Network):
    """A non-blocking connection attempt is in progress."""
    default = 'connection in progress'


class ConnectionAgain(_Network):
    """A non-blocking read or write could not complete and must be continued later."""
    default = 'connection again'


class ConnectionReset(_Network):
    """The connection was reset."""
    default = 'connection reset'


class Unstarted(_Network):
    """The process was never started."""
    default = 'cannot join unstarted process'


class Unwaitable(_Network):
    """The process is not a child of the caller."""
    default = 'target process is not a child'


class Unjoinable(_Network):
    """A process cannot join itself."""
    default = 'a process cannot join itself'


class Unknown(_Network):
    """No such process."""
    default = 'cannot join unknown process'


# Deprecated aliases of the original.
RemoteTimeout = Timeout
RemoteExit = Exit
RemoteAuthError = AuthError
RemoteRunError = RunError
