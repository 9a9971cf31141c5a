"""Framed JSON over an ``os.pipe()`` pair (``ave.network.pipe``), on the Rust ``Pipe``:
each message is a 4-byte big-endian length and the JSON text."""

from ave import _native

__all__ = ['Pipe']


class Pipe(object):
    """A pipe carrying JSON values between processes. ``r`` and ``w`` are the
    descriptors of its ends (a ``Process`` that uses the pipe keeps them open by
    appending them to its ``close_fds`` exclude list)."""

    def __init__(self):
        self._pipe = _native.Pipe()

    @property
    def r(self):
        """The read end's descriptor."""
        return self._pipe.r

    @property
    def w(self):
        """The write end's descriptor."""
        return self._pipe.w

    def put(self, obj):
        """Write *obj* (anything JSON can hold) as one message."""
        self._pipe.put(obj)

    def get(self, timeout=None):
        """Read one message.

        :arg timeout: Seconds (*None*: wait forever, 0: only what is there).
        :raises: *ConnectionTimeout* if nothing arrives in time, *ConnectionClosed* if the
            write end is closed.
        """
        return self._pipe.get(timeout)

    def empty(self):
        """Whether no message is waiting."""
        return self._pipe.empty()

    def close(self):
        """Close both ends."""
        self._pipe.close()
