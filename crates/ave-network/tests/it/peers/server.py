#!/usr/bin/env python3
"""An AVE Control server written from the specification (spec/ave-common.md, sections
1 to 3), structured like the original: one thread, one poll loop, one event handled per
connection and step, the connection states of section 3.7 (accepting, authenticating,
established), the partial-message state machine of section 1.3 (exactly the missing
header bytes, then exactly the missing payload bytes, per read; header and payload
written separately), one pending response per connection with the socket registered for
POLLOUT only while it is pending, and every RPC run inside the loop (a slow RPC delays
every client, as in the original).

It is the independent peer of the Rust client in the interoperability tests and the
baseline of the throughput benchmark. Standard library only.

One deliberate difference: accepted sockets get TCP_NODELAY (with --nodelay, the
default in the benchmark). The original writes a frame's header and payload with two
`send` calls and leaves Nagle's algorithm on, so on Linux the payload can wait for the
delayed ACK of the header (up to 40 ms); without the option this server keeps that
behaviour.

Usage: server.py [--nodelay] [--authkey KEY] [--account NAME=KEY]...
Prints the port on stdout once it listens; serves until an RPC raises Exit, `stop` is
called, or SIGTERM.
"""

import argparse
import hmac
import json
import os
import select
import signal
import socket
import struct
import sys
import time

CHALLENGE = b'#CHALLENGE#'
IN = select.POLLIN | select.POLLPRI
OUT = select.POLLOUT
ERR = select.POLLERR | select.POLLHUP | select.POLLNVAL


class Exit(Exception):
    pass


class AveException(Exception):
    def __init__(self, details):
        Exception.__init__(self, details.get('message'))
        details.setdefault('type', 'AveException')
        self.details = details


class ConnectionClosed(Exception):
    pass


class Connection(object):
    """The non-blocking connection of section 1.2/1.3, partial state included."""

    def __init__(self, sock, address):
        self.sock = sock
        self.address = address
        self.in_header = b''
        self.in_payload = b''
        self.out_header = None
        self.out_payload = b''

    def fileno(self):
        return self.sock.fileno()

    def read(self, size):
        try:
            data = self.sock.recv(size)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as e:
            raise ConnectionClosed(str(e))
        if not data:
            raise ConnectionClosed()
        return data

    def write(self, data):
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as e:
            raise ConnectionClosed(str(e))
        if sent == 0:
            raise ConnectionClosed()
        return sent

    def get(self):
        if len(self.in_header) < 4:
            data = self.read(4 - len(self.in_header))
            if data is None:
                return None
            self.in_header += data
            if len(self.in_header) < 4:
                return None
        (size,) = struct.unpack('>L', self.in_header)
        if len(self.in_payload) < size:
            data = self.read(size - len(self.in_payload))
            if data is None:
                return None
            self.in_payload += data
            if len(self.in_payload) < size:
                return None
        payload = self.in_payload
        self.in_header = b''
        self.in_payload = b''
        return payload

    def put(self, payload):
        if self.out_header is None:
            self.out_header = struct.pack('>L', len(payload))
            self.out_payload = payload
        if self.out_header:
            sent = self.write(self.out_header)
            self.out_header = self.out_header[sent:]
            if self.out_header:
                return None
        if self.out_payload:
            sent = self.write(self.out_payload)
            self.out_payload = self.out_payload[sent:]
            if self.out_payload:
                return None
        self.out_header = None
        return payload

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def rpc(function):
    function.ave_rpc = True
    return function


def auth(function):
    function.ave_auth = True
    return function


def enforce_unicode(value):
    """The original's result conversion (section 3.4)."""
    if not value:
        return value
    if isinstance(value, (int, float, str, bool)):
        return value
    if isinstance(value, bytes):
        return value.decode('ascii', 'replace')
    if isinstance(value, (list, tuple)):
        return [enforce_unicode(v) for v in value]
    if isinstance(value, dict):
        return dict((enforce_unicode(k), enforce_unicode(v)) for k, v in value.items())
    raise Exception('INTERNAL ERROR: OBJECT IS NOT JSON COMPATIBLE: %s' % (value,))


def dumps(obj):
    # Python 2's json.dumps defaults: ASCII only, ", " and ": " separators.
    return json.dumps(obj, ensure_ascii=True, separators=(', ', ': ')).encode('ascii')


class Control(object):
    def __init__(self, authkey, accounts, nodelay=False):
        self.nodelay = nodelay
        self.keys = {0: authkey}
        self.keys.update(accounts)
        self.pongs = 0
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(('127.0.0.1', 0))
        self.listener.listen(socket.SOMAXCONN)
        self.listener.setblocking(False)
        self.pollset = select.poll()
        self.pollset.register(self.listener.fileno(), IN | ERR)
        self.fds = {}
        self.accepting = set()
        self.authenticating = {}
        self.established = {}
        self.outgoing = {}
        self.alive = True
        self.current_connection = None

    @property
    def port(self):
        return self.listener.getsockname()[1]

    # RPC methods ---------------------------------------------------------------------

    @rpc
    def sync_ping(self, alt=None):
        return alt if alt is not None else 'pong'

    @rpc
    def async_ping(self):
        self.pongs += 1

    @rpc
    def get_pongs(self):
        return self.pongs

    @rpc
    def upper(self, message):
        return message.upper()

    @rpc
    def whoami(self):
        return self.established[self.current_connection]

    @rpc
    @auth
    def auth_only(self):
        return 'secret'

    @rpc
    def sleep(self, seconds):
        time.sleep(seconds)

    @rpc
    def get_pid(self):
        return os.getpid()

    @rpc
    def raise_plain_exception(self, message):
        raise Exception(message)

    @rpc
    def raise_ave_exception(self, details, depth=0):
        if depth > 0:
            return self.raise_ave_exception(details, depth - 1)
        raise AveException(dict(details))

    @rpc
    def raise_exit(self, msg='passed to client'):
        raise Exit(msg)

    @rpc
    def stop(self):
        self.alive = False

    # The protocol -------------------------------------------------------------------

    def register(self, conn, mask):
        self.pollset.modify(conn.fileno(), mask)

    def drop(self, conn):
        for table in (self.authenticating, self.established, self.outgoing):
            table.pop(conn, None)
        self.accepting.discard(conn)
        self.fds.pop(conn.fileno(), None)
        try:
            self.pollset.unregister(conn.fileno())
        except (KeyError, ValueError):
            pass
        conn.close()

    def validate_digest(self, salt, digest):
        for key in self.keys.values():
            if key is None:
                continue
            if hmac.new(key.encode('utf-8'), salt, 'md5').digest() == digest:
                return key
        return None

    def validate_rpc(self, payload):
        try:
            request = json.loads(payload.decode('utf-8'))
        except ValueError:
            raise Exception('malformed JSON: %s' % payload.decode('utf-8', 'replace'))
        if 'method' not in request:
            raise Exception('the "method" attribute is missing')
        if 'params' not in request:
            raise Exception('the "params" attribute is missing')
        if 'async' in request and not isinstance(request['async'], bool):
            raise Exception('RPC async flag is not a boolean: %r' % (request,))
        try:
            function = getattr(self, request['method'])
        except (AttributeError, TypeError):
            raise Exception('no such RPC: %s' % (request['method'],))
        if not getattr(function, 'ave_rpc', False):
            raise Exception('not an RPC: %r' % (request,))
        if getattr(function, 'ave_auth', False) and not self.established[self.current_connection]:
            raise Exception('not authenticated to make this call')
        params = request['params']
        if 'vargs' not in params or 'kwargs' not in params:
            raise Exception('malformed arguments: %r' % (params,))
        return function, params['vargs'], params['kwargs'], request.get('async', False)

    def perform_rpc(self, conn, payload):
        try:
            function, vargs, kwargs, is_async = self.validate_rpc(payload)
        except Exception as e:
            # The original answers validation errors even for async calls.
            self.outgoing[conn] = dumps({'exception': str(e)})
            self.register(conn, OUT)
            return
        try:
            result = enforce_unicode(function(*vargs, **kwargs))
            response = {'result': result}
        except Exit as e:
            conn.put(dumps({'exception': {'type': 'Exit', 'message': str(e)}}))
            self.alive = False
            return
        except AveException as e:
            details = e.details
            details.setdefault('trace', [['server.py', 0, function.__name__, None]])
            response = {'exception': details}
        except Exception as e:
            response = {'exception': {'type': type(e).__name__, 'message': str(e),
                                      'trace': [['server.py', 0, function.__name__, None]]}}
        if not is_async:
            self.outgoing[conn] = dumps(response)
            self.register(conn, OUT)

    def step(self):
        try:
            events = self.pollset.poll()
        except InterruptedError:
            return
        for fd, event in events:
            if fd == self.listener.fileno():
                try:
                    sock, address = self.listener.accept()
                except BlockingIOError:
                    continue
                sock.setblocking(False)
                if self.nodelay:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn = Connection(sock, address)
                self.fds[sock.fileno()] = conn
                self.accepting.add(conn)
                self.pollset.register(sock.fileno(), OUT | ERR)
                continue
            conn = self.fds.get(fd)
            if conn is None:
                continue
            self.current_connection = conn
            try:
                if conn in self.accepting:
                    if event & ERR:
                        self.drop(conn)
                    elif event & OUT:
                        conn.salt = os.urandom(20)
                        conn.put(CHALLENGE + conn.salt)
                        self.accepting.discard(conn)
                        self.authenticating[conn] = None
                        self.register(conn, IN | ERR)
                elif conn in self.authenticating:
                    if event & ERR:
                        self.drop(conn)
                    elif event & IN:
                        digest = conn.get()
                        if digest is not None:
                            self.authenticating[conn] = self.validate_digest(conn.salt, digest)
                            self.register(conn, OUT | ERR)
                    elif event & OUT:
                        key = self.authenticating.pop(conn)
                        conn.put(dumps({'authenticated': key is not None}))
                        self.established[conn] = key
                        self.register(conn, IN | ERR)
                elif conn in self.established:
                    if event & ERR:
                        self.drop(conn)
                    elif event & IN:
                        payload = conn.get()
                        if payload is not None:
                            self.perform_rpc(conn, payload)
                    elif event & OUT:
                        pending = self.outgoing.get(conn)
                        if pending is None or conn.put(pending) is not None:
                            self.outgoing.pop(conn, None)
                            self.register(conn, IN | ERR)
            except ConnectionClosed:
                self.drop(conn)
            if not self.alive:
                return

    def run(self):
        while self.alive:
            self.step()
        for conn in list(self.fds.values()):
            self.drop(conn)
        self.listener.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--nodelay', action='store_true')
    parser.add_argument('--authkey')
    parser.add_argument('--account', action='append', default=[])
    args = parser.parse_args()
    accounts = {}
    for spec in args.account:
        name, _, key = spec.partition('=')
        accounts[name] = key or None
    control = Control(args.authkey, accounts, nodelay=args.nodelay)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(control.port, flush=True)
    control.run()


if __name__ == '__main__':
    main()
