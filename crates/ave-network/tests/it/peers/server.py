#!/usr/bin/env python3
"""An AVE Control server written from the specification (spec/ave-common.md, sections
1 to 3), in the style of the original: one thread, one poll loop, non-blocking sockets,
a partial input and a pending output per connection, and every RPC run inside the loop
(so a slow RPC delays every client, as the original does).

It is the independent peer of the Rust client in the interoperability tests and the
baseline of the throughput benchmark. Standard library only.

Usage: server.py [--authkey KEY] [--account NAME=KEY]...
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
MAX_FRAME = 64 * 1024 * 1024


class Exit(Exception):
    pass


class RpcError(Exception):
    def __init__(self, details):
        Exception.__init__(self, details.get('message'))
        self.details = details


def frame(payload):
    return struct.pack('>L', len(payload)) + payload


def dumps(obj):
    # Python 2's json.dumps defaults: ASCII only, ", " and ": " separators.
    return json.dumps(obj, ensure_ascii=True, separators=(', ', ': ')).encode('ascii')


class Conn(object):
    def __init__(self, sock, addr):
        self.sock = sock
        self.addr = addr
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.state = 'authenticating'
        self.salt = os.urandom(20)
        self.identity = None


class Server(object):
    def __init__(self, authkey, accounts):
        self.keys = {0: authkey}
        self.keys.update(accounts)
        self.pongs = 0
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(('127.0.0.1', 0))
        self.listener.listen(socket.SOMAXCONN)
        self.listener.setblocking(False)
        self.poll = select.poll()
        self.poll.register(self.listener.fileno(), select.POLLIN)
        self.conns = {}
        self.alive = True
        self.rpcs = {
            'sync_ping': self.sync_ping, 'async_ping': self.async_ping,
            'get_pongs': self.get_pongs, 'upper': self.upper, 'whoami': self.whoami,
            'auth_only': self.auth_only, 'sleep': self.sleep, 'get_pid': self.get_pid,
            'raise_plain_exception': self.raise_plain_exception,
            'raise_ave_exception': self.raise_ave_exception,
            'raise_exit': self.raise_exit, 'stop': self.stop,
        }
        self.auth_rpcs = {'auth_only'}

    @property
    def port(self):
        return self.listener.getsockname()[1]

    # RPC methods ---------------------------------------------------------------------

    def sync_ping(self, alt=None):
        return alt if alt is not None else 'pong'

    def async_ping(self):
        self.pongs += 1

    def get_pongs(self):
        return self.pongs

    def upper(self, message):
        return message.upper()

    def whoami(self):
        return self.current.identity

    def auth_only(self):
        return 'secret'

    def sleep(self, seconds):
        time.sleep(seconds)

    def get_pid(self):
        return os.getpid()

    def raise_plain_exception(self, message):
        raise Exception(message)

    def raise_ave_exception(self, details, depth=0):
        if depth > 0:
            return self.raise_ave_exception(details, depth - 1)
        details = dict(details)
        details.setdefault('type', 'AveException')
        raise RpcError(details)

    def raise_exit(self, msg='passed to client'):
        raise Exit(msg)

    def stop(self):
        self.alive = False

    # The protocol -------------------------------------------------------------------

    def accept(self):
        try:
            sock, addr = self.listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        conn = Conn(sock, addr)
        conn.outbuf += frame(CHALLENGE + conn.salt)
        self.conns[sock.fileno()] = conn
        self.poll.register(sock.fileno(), select.POLLIN | select.POLLOUT)

    def close(self, conn):
        try:
            self.poll.unregister(conn.sock.fileno())
        except (KeyError, ValueError):
            pass
        self.conns.pop(conn.sock.fileno(), None)
        conn.sock.close()

    def queue(self, conn, obj):
        conn.outbuf += frame(dumps(obj))
        self.poll.modify(conn.sock.fileno(), select.POLLIN | select.POLLOUT)

    def authenticate(self, conn, digest):
        conn.identity = None
        for key in self.keys.values():
            if key is None:
                continue
            expected = hmac.new(key.encode('utf-8'), conn.salt, 'md5').digest()
            if hmac.compare_digest(expected, digest):
                conn.identity = key
                break
        conn.state = 'established'
        self.queue(conn, {'authenticated': conn.identity is not None})

    def validate(self, conn, payload):
        try:
            request = json.loads(payload.decode('utf-8'))
        except ValueError:
            return None, 'malformed JSON: %s' % payload.decode('utf-8', 'replace')
        if not isinstance(request, dict):
            return None, 'the "method" attribute is missing'
        if 'method' not in request:
            return request, 'the "method" attribute is missing'
        if 'params' not in request:
            return request, 'the "params" attribute is missing'
        if not isinstance(request.get('async', False), bool):
            return request, 'RPC async flag is not a boolean: %r' % (request,)
        method = request['method']
        if method not in self.rpcs:
            return request, 'no such RPC: %s' % (method,)
        if method in self.auth_rpcs and not conn.identity:
            return request, 'not authenticated to make this call'
        params = request['params']
        if 'vargs' not in params or 'kwargs' not in params:
            return request, 'malformed arguments: %r' % (params,)
        return request, None

    def perform(self, conn, payload):
        request, error = self.validate(conn, payload)
        is_async = isinstance(request, dict) and request.get('async') is True
        if error is not None:
            self.queue(conn, {'exception': error})
            return
        self.current = conn
        params = request['params']
        try:
            result = self.rpcs[request['method']](*params['vargs'], **params['kwargs'])
        except Exit as e:
            self.queue(conn, {'exception': {'type': 'Exit', 'message': str(e)}})
            self.flush(conn, blocking=True)
            self.alive = False
            return
        except RpcError as e:
            details = e.details
            details.setdefault('trace', [['server.py', 0, request['method'], None]])
            if not is_async:
                self.queue(conn, {'exception': details})
            return
        except Exception as e:
            if not is_async:
                self.queue(conn, {'exception': {
                    'type': type(e).__name__, 'message': str(e),
                    'trace': [['server.py', 0, request['method'], None]]}})
            return
        if not is_async:
            self.queue(conn, {'result': result})

    def readable(self, conn):
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close(conn)
            return
        if not data:
            self.close(conn)
            return
        conn.inbuf += data
        while len(conn.inbuf) >= 4 and conn.sock.fileno() in self.conns:
            (size,) = struct.unpack('>L', bytes(conn.inbuf[:4]))
            if size > MAX_FRAME:
                self.queue(conn, {'exception': {
                    'type': 'OverflowError',
                    'message': 'got invalid RPC from client, frame too large. disconnect'}})
                self.flush(conn, blocking=True)
                self.close(conn)
                return
            if len(conn.inbuf) < 4 + size:
                return
            payload = bytes(conn.inbuf[4:4 + size])
            del conn.inbuf[:4 + size]
            if conn.state == 'authenticating':
                self.authenticate(conn, payload)
            else:
                self.perform(conn, payload)
            if not self.alive:
                return

    def flush(self, conn, blocking=False):
        if blocking:
            conn.sock.setblocking(True)
        try:
            while conn.outbuf:
                sent = conn.sock.send(conn.outbuf)
                del conn.outbuf[:sent]
                if not blocking:
                    break
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self.close(conn)
            return
        finally:
            if blocking and conn.sock.fileno() in self.conns:
                conn.sock.setblocking(False)
        if not conn.outbuf and conn.sock.fileno() in self.conns:
            self.poll.modify(conn.sock.fileno(), select.POLLIN)

    def serve(self):
        while self.alive:
            try:
                events = self.poll.poll()
            except InterruptedError:
                continue
            for fd, ev in events:
                if fd == self.listener.fileno():
                    self.accept()
                    continue
                conn = self.conns.get(fd)
                if conn is None:
                    continue
                if ev & (select.POLLERR | select.POLLNVAL):
                    self.close(conn)
                    continue
                if ev & select.POLLIN:
                    self.readable(conn)
                elif ev & select.POLLHUP:
                    self.close(conn)
                    continue
                if fd in self.conns and ev & select.POLLOUT:
                    self.flush(conn)
                if not self.alive:
                    break
        for conn in list(self.conns.values()):
            self.close(conn)
        self.listener.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--authkey')
    parser.add_argument('--account', action='append', default=[])
    args = parser.parse_args()
    accounts = {}
    for spec in args.account:
        name, _, key = spec.partition('=')
        accounts[name] = key or None
    server = Server(args.authkey, accounts)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(server.port, flush=True)
    server.serve()


if __name__ == '__main__':
    main()
