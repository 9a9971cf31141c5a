"""The RPC server ``Control`` and its client ``RemoteControl``
(``ave.network.control``).

A service is a subclass of :class:`Control` whose methods marked ``@Control.rpc`` can be
called over the network. The Rust ``ave-network`` server does the network work: it
accepts connections, runs the handshakes, reads and validates requests and writes the
replies, concurrently and without the GIL. The Python methods and hooks run one at a
time, in the order the requests arrived, on the thread that called :meth:`Control.run`
(which, after :meth:`Control.start`, is the child's main thread), so service code needs
no locks, as in the original. A slow method delays the calls queued behind it, but never
stops other connections' requests from being read and queued; the thread runs Python
signal handlers at least every 100 ms.
"""

import os
import signal
import traceback

from ave import _native
from ave.exceptions import AveException, Exit
from ave.network.process import Process

__all__ = ['Control', 'RemoteControl']

_RPC = 'ave.control.rpc'
_AUTH = 'ave.control.auth'
_PREAUTH = 'ave.control.preauth'


def _trace(tb):
    return [[f.filename, f.lineno, f.name, f.line or None]
            for f in traceback.extract_tb(tb)]


def _exception_details(exc, tb=None):
    """The wire form of an exception raised by an RPC method: an ``AveException``'s
    details (with the trace added if it has none, so a relayed exception keeps the
    deepest trace), otherwise ``type``, ``message`` and ``trace``."""
    if isinstance(exc, AveException):
        details = dict(exc.details)
        if details.get('trace') is None and not isinstance(exc, Exit):
            details['trace'] = _trace(tb or exc.__traceback__)
        return details
    return {'type': type(exc).__name__, 'message': '%s' % (exc,),
            'trace': _trace(tb or exc.__traceback__)}


def _text(key):
    if key is None:
        return None
    if isinstance(key, bytes):
        return key.decode('utf-8')
    return key


class Control(Process):
    """The base class for all RPC capable AVE services.

    :arg port: The port number to listen on (on every interface); may be *None* with a
        *socket*.
    :arg authkey: If set, clients who authenticate with the same key are authenticated
        (others are still served, without an identity, as the original).
    :arg socket: A socket that is listening on *port* (e.g. from ``find_free_port()``).
    :arg alt_keys: A dictionary of alternative authentication keys (account -> key or
        *None*). Accounts may be named with ``@Control.preauth()``.
    :arg interval: The interval in seconds at which :meth:`idle` is called when the
        server is quiet (*None*: never).
    :arg home: The directory under which hickup dumps are written.
    :arg proc_name: The process name (default ``ave-<ClassName>``).
    :arg logging: Log the process's activities to ``stderr``.

    Inside an RPC method, ``self.current_connection`` is the caller's connection and
    ``self.established[self.current_connection]`` the key it authenticated with (or
    *None*).
    """

    def __init__(self, port, authkey=None, socket=None, alt_keys=None, interval=None,
                 home=None, proc_name=None, logging=False):
        if socket is None and (not isinstance(port, int) or port < 1):
            raise Exception('client port must be integer >= 1')
        if authkey and not isinstance(authkey, (str, bytes)):
            raise Exception('authkey must be a regular string')
        if authkey is not None and not isinstance(authkey, (str, bytes)):
            raise Exception('authkey must be a regular string or None')
        if alt_keys and not isinstance(alt_keys, dict):
            raise Exception('alt_keys must be a dictionary')
        for value in (alt_keys or {}).values():
            if value is not None and not isinstance(value, (str, bytes)):
                raise Exception('alt keys must be regular strings or None')
        if interval is not None and (isinstance(interval, bool)
                                     or not isinstance(interval, (int, float))):
            raise Exception(
                'the interval (seconds) must be expressed as in integer, a float, or None')
        Process.__init__(self, None, None, logging, proc_name)
        self.port = port
        self.socket = socket
        self.keys = {0: authkey}
        self.keys.update(alt_keys or {})
        self.interval = interval
        self.home = home
        self.established = {}
        self.current_connection = None
        self._ave_server = None
        self._ave_deferred = {}

    # --- decorators ---

    @staticmethod
    def rpc(fn):
        """Use this decorator on a subclass method to make it callable over the network.
        Clients can only call functions that have been marked this way."""
        setattr(fn, _RPC, True)
        return fn

    @staticmethod
    def auth(fn):
        """Only clients that authenticated (with any key) may call the method."""
        setattr(fn, _AUTH, True)
        return fn

    @staticmethod
    def preauth(*accounts):
        """Only clients that authenticated with the key of one of *accounts* may call the
        method (an account without a key opens it to everyone, as the original)."""
        def mark(fn):
            setattr(fn, _PREAUTH, tuple(accounts))
            return fn
        return mark

    # --- serving ---

    def _ave_method_table(self):
        methods, hidden = [], []
        for name in dir(self):
            try:
                attr = getattr(type(self), name)
            except AttributeError:
                attr = None
            fn = getattr(attr, '__func__', attr)
            if fn is not None and getattr(fn, _RPC, False):
                preauth = getattr(fn, _PREAUTH, None)
                methods.append((name, bool(getattr(fn, _AUTH, False)),
                                list(preauth) if preauth is not None else None))
            else:
                hidden.append(name)
        return methods, hidden

    def run(self):
        """Serve until the server stops (``stop()``, ``shutdown()``, an ``Exit`` raised by
        a method, SIGTERM in a started process). Blocks; the GIL is released while the
        server waits."""
        methods, hidden = self._ave_method_table()
        # The server owns the listening socket from now on: when it stops listening, no
        # copy may keep the port open.
        fd = self.socket.detach() if self.socket is not None else None
        settings = {
            'name': self.proc_name,
            'methods': methods,
            'hidden': hidden,
            'fd': fd,
            'port': None if fd is not None else self.port,
            'authkey': _text(self.keys.get(0)),
            'alt_keys': [(k, _text(v)) for k, v in self.keys.items() if k != 0],
            'interval': self.interval,
            'home': self.home,
        }
        self.established = {}
        reason = _native.serve(self, settings)
        if reason in ('stop', 'exit'):
            # The original ran shutdown() at the end of every main loop.
            self.shutdown()

    def initialize(self):
        Process.initialize(self)

    def close_fds(self, exclude):
        if self.socket is not None:
            exclude.append(self.socket.fileno())
        Process.close_fds(self, exclude)

    def start(self, daemonize=False, synchronize=False):
        Process.start(self, daemonize, synchronize)
        # The child serves the socket; the parent's copy would keep the port open.
        if self.socket is not None:
            self.socket.close()

    def handle_SIGTERM(self, signum, frame):
        """Shut down (the original's Control handler)."""
        self.shutdown()

    # --- lifecycle ---

    def stop(self):
        """Stop the server: the main loop ends, then :meth:`shutdown` runs. Not an RPC by
        itself: subclasses expose it."""
        if self._ave_server is not None:
            self._ave_server.stop()

    def shutdown(self, details=None):
        """Exit the main loop and write a last exit message (*details*, serialized as an
        ``Exit`` exception) on all connections before closing them."""
        if self._ave_server is None:
            return
        if details is None:
            payload = None
        elif isinstance(details, AveException):
            payload = details.details
        else:
            payload = {'type': 'Exit', 'message': '%s' % (details,)}
        self._ave_server.shutdown(payload)

    def stop_listening(self):
        """Stop accepting new clients. Close the listening socket."""
        if self._ave_server is not None:
            self._ave_server.stop_listening()

    # --- hooks ---

    def new_connection(self, connection, authkey):
        """Called whenever a new connection is accepted (after its handshake)."""

    def lost_connection(self, connection, authkey):
        """Called whenever an established connection is lost."""

    def idle(self):
        """Called periodically as long as there is no other activity."""

    def joined_process(self, pid, exit):
        """Called when a process deferred with :meth:`join_later` has terminated, with its
        raw wait status."""

    # --- helpers ---

    def _server(self):
        if self._ave_server is None:
            raise Exception('the Control is not serving')
        return self._ave_server

    def join_later(self, proc):
        """Defer joining of the process to the main loop; :meth:`joined_process` is called
        when it terminates. *proc* is a started ``Process``, or any object with the ``pid``
        of a child (e.g. a ``subprocess.Popen``).

        .. note:: While the server runs, this process has a second thread (the server's),
            so ``Process.start()`` refuses to fork here (``ForkRefused``): start processes
            before :meth:`run`, or spawn programs (``subprocess``, ``ave.cmd.run_bg``).
        """
        if not isinstance(proc, Process) and not isinstance(getattr(proc, 'pid', None), int):
            raise Exception('not a Process or subclass: %s' % (proc,))
        if proc is self:
            raise Exception('cannot defer join of self')
        self._server().join_later(proc.pid)
        # Kept until joined: a dropped subprocess.Popen would reap the child itself.
        self._ave_deferred.setdefault(proc.pid, []).append(proc)

    def _ave_joined(self, pid, status):
        self._ave_deferred.pop(pid, None)
        self.joined_process(pid, status)

    def add_connection(self, connection, authkey):
        """Serve an open connection (e.g. a ``BlockingConnection``) as established, with
        *authkey* as its identity; :meth:`lost_connection` is called when it ends. The
        server reads it from now on: do not use it for calls any more."""
        host, port = getattr(connection, 'address', ('', 0))
        return self._server().add_connection(connection.fileno(), host or '', port,
                                             _text(authkey))

    def remove_connection(self, connection):
        """Stop serving a connection (the server closes its copy)."""
        self._server().remove_connection(connection.id)

    def set_connection_authkey(self, connection, authkey):
        """Give a connection without an identity the key *authkey*."""
        self._server().set_connection_authkey(connection.id, _text(authkey))
        self.established[connection] = _text(authkey)

    def get_connection_authkey(self, connection):
        """The identity of a connection."""
        return self._server().get_connection_authkey(connection.id)

    def get_authkeys(self):
        """All keys that are not *None*."""
        return [k for k in self.keys.values() if k is not None]

    def disable_death_signalling(self):
        """Stop the process from receiving SIGTERM when its parent dies."""
        _native.set_death_signal(0)


class RemoteControl(object):
    """Class used to connect to ``Control`` objects.

    :arg address: A (host, port) tuple. The host may be the empty string '' which is
        interpreted as ``localhost``.
    :arg authkey: The authentication key, if any, to use.
    :arg timeout: Maximum amount of time in seconds for connecting and for each call
        (0 or *None*: no limit). One-way calls have a fixed budget of 1 second.
    :arg optimist: Set to ``True`` to keep retrying a connection attempt until it
        succeeds or the timeout expires.
    :arg sock: An open socket object that has already been connected (and
        authenticated) to the port and host given in the *address* parameter.

    Any attribute is a remote method: ``rc.upper('abc')``. The keyword argument
    ``__async__=True`` makes a one-way call that returns ``None`` at once. Exceptions
    raised by the service are rebuilt as :mod:`ave.exceptions` classes; connection
    failures raise :mod:`ave.network.exceptions` classes. The GIL is released while a
    call waits.
    """

    def __init__(self, address, authkey, timeout, optimist=False, sock=None,
                 profile=None, home=None):
        host, port = address
        fd = os.dup(sock.fileno()) if sock is not None else None
        self.__dict__['address'] = (host, port)
        self.__dict__['timeout'] = timeout or None
        self.__dict__['profile'] = profile
        self.__dict__['_native'] = _native.Remote(host or '', int(port), _text(authkey),
                                                  timeout or None, bool(optimist), fd,
                                                  profile)

    def connect(self, timeout=None):
        """Connect and run the handshake now (otherwise the first call does)."""
        self._native.connect(timeout)

    def close(self):
        """Close the connection; the next call connects again."""
        self._native.close()

    def __getattr__(self, name):
        if name.startswith('__') and name.endswith('__'):
            raise AttributeError(name)
        native = self._native

        def call(*args, **kwargs):
            one_way = bool(kwargs.pop('__async__', False))
            return native.call(name, args, kwargs, one_way)
        call.__name__ = name
        return call
