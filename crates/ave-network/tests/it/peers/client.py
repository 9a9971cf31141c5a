#!/usr/bin/env python3
"""An AVE client written from the specification (spec/ave-common.md, sections 0 to 4):
raw sockets, struct framing, hmac digests, json. Standard library only.

It runs one scenario against a server and checks every reply itself, printing
`ok: <check>` for each check that holds and exiting non-zero, with the reason on stderr,
at the first that does not.

Usage: client.py PORT SCENARIO [KEY]
Scenarios: main (a server with primary key KEY and an `admin` account), sha256 (answer
with HMAC-SHA256 when the challenge offers it), md5 (an old client: always HMAC-MD5),
exit (raise_exit, then the server must be gone).
"""

import hashlib
import hmac
import json
import socket
import struct
import sys
import time

PREFIX = b'#CHALLENGE#'
MARKER = b'#HMAC-SHA256#'


def check(name, condition, detail=''):
    if not condition:
        sys.stderr.write('FAILED: %s %s\n' % (name, detail))
        sys.exit(1)
    print('ok: %s' % name, flush=True)


class Client(object):
    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=timeout)
        self.buf = b''

    def recv_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError('connection closed')
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def get(self, timeout=5.0):
        self.sock.settimeout(timeout)
        (size,) = struct.unpack('>L', self.recv_exact(4))
        return self.recv_exact(size)

    def put(self, payload):
        self.sock.sendall(struct.pack('>L', len(payload)) + payload)

    def handshake(self, key, use_sha256=False):
        challenge = self.get()
        if not challenge.startswith(PREFIX):
            raise ValueError('wrong challenge: %r' % challenge)
        message = challenge[len(PREFIX):]
        digestmod = 'sha256' if (use_sha256 and message.endswith(MARKER)) else 'md5'
        self.put(hmac.new((key or '').encode('utf-8'), message, digestmod).digest())
        self.challenge = challenge
        return self.get()

    def request(self, method, vargs=(), kwargs=None, is_async=False, resource=None):
        body = {'params': {'vargs': list(vargs), 'kwargs': kwargs or {}},
                'resource': resource, 'method': method, 'async': is_async}
        self.put(json.dumps(body).encode('ascii'))

    def call(self, method, *vargs, **kwargs):
        self.request(method, vargs, kwargs)
        return self.reply()

    def reply(self, timeout=5.0):
        raw = self.get(timeout)
        self.last_raw = raw
        return json.loads(raw.decode('ascii'))

    def nothing_within(self, seconds):
        try:
            self.get(seconds)
        except socket.timeout:
            return True
        return False


def scenario_main(port, key):
    c = Client(port)
    challenge = c.sock.recv(4 + 31, socket.MSG_PEEK | socket.MSG_WAITALL)
    check('challenge frame', challenge[:4] == b'\x00\x00\x00\x1f' and challenge[4:15] == PREFIX,
          repr(challenge))
    verdict = c.handshake(key)
    check('right key', verdict == b'{"authenticated": true}', repr(verdict))
    check('whoami', c.call('whoami') == {'result': key})
    check('kwargs', c.call('sync_ping', alt='zz') == {'result': 'zz'})
    check('vargs', c.call('upper', 'abc') == {'result': 'ABC'})

    other = Client(port)
    salt_a = c.challenge
    verdict = other.handshake('wrong')
    check('salts differ', other.challenge != salt_a)
    check('wrong key', verdict == b'{"authenticated": false}', repr(verdict))
    check('wrong key keeps the connection', other.call('sync_ping') == {'result': 'pong'})
    check('no identity', other.call('whoami') == {'result': None})
    check('auth refused', other.call('auth_only') ==
          {'exception': 'not authenticated to make this call'})

    bare = [
        (lambda: c.call('bla_bla_bla'), 'no such RPC: bla_bla_bla'),
        (lambda: c.call(u'\u00e5\u00e4\u00f6'), u'no such RPC: \u00e5\u00e4\u00f6'),
    ]
    for call, text in bare:
        reply = call()
        check('validation: %s' % text.encode('ascii', 'replace').decode(), reply == {'exception': text},
              repr(reply))
    for payload, text in [
            (b'not json', 'malformed JSON: not json'),
            (b'{"params": {}}', 'the "method" attribute is missing'),
            (b'{"method": "sync_ping"}', 'the "params" attribute is missing'),
    ]:
        c.put(payload)
        reply = c.reply()
        check('validation: %s' % text, reply == {'exception': text}, repr(reply))
    c.put(b'{"method": "sync_ping", "params": {}, "async": 1}')
    reply = c.reply()
    check('async flag', reply['exception'].startswith('RPC async flag is not a boolean: '), repr(reply))
    c.put(b'{"method": "sync_ping", "params": {}}')
    check('malformed arguments', c.reply() == {'exception': 'malformed arguments: {}'})
    reply = c.call('upper', 'a', 'b')
    check('arity error', reply['exception']['type'] == 'TypeError' and reply['exception']['trace'] == [],
          repr(reply))
    check('still usable', c.call('sync_ping') == {'result': 'pong'})

    reply = c.call('raise_plain_exception', 'Lorem ipsum')
    e = reply['exception']
    check('plain exception', e['type'] == 'Exception' and e['message'] == 'Lorem ipsum'
          and e['trace'][0][2] == 'raise_plain_exception' and len(e['trace'][0]) == 4, repr(reply))
    reply = c.call('raise_plain_exception', u'\u00e5\u00e4\u00f6')
    check('non-ascii message', reply['exception']['message'] == u'\u00e5\u00e4\u00f6', repr(reply))
    reply = c.call('raise_ave_exception', {'message': 'cow', 'extras': 'cat'})
    e = reply['exception']
    check('ave exception', e['type'] == 'AveException' and e['extras'] == 'cat'
          and e['trace'][0][2] == 'raise_ave_exception', repr(reply))
    reply = c.call('raise_ave_exception', {'message': 'deep'}, 3)
    check('depth', [f[2] for f in reply['exception']['trace']] == ['raise_ave_exception'] * 4, repr(reply))

    c.request('async_ping', is_async=True)
    check('async call unanswered', c.nothing_within(0.5))
    c.request('no_such_method', is_async=True)
    check('async error unanswered', c.nothing_within(0.3))
    check('next call answered in step', c.call('sync_ping', alt='after') == {'result': 'after'})

    c.put(b'{"params": {"vargs": [], "kwargs": {"alt": NaN}}, "resource": [Infinity, -Infinity], '
          b'"method": "sync_ping"}')
    reply = c.reply()
    check('non-finite tokens accepted', reply == {'result': 'pong'}, repr(reply))
    reply = c.call('sync_ping', alt=2 ** 70)
    check('big integer accepted', reply['result'] == float(2 ** 70), repr(reply))
    reply = c.call('sync_ping', alt=u'\ud800x')
    check('lone surrogate accepted', reply == {'result': u'\ufffdx'}, repr(reply))
    reply = c.call('upper', u'\u00e5\u00e4\u00f6 \U0001d11e')
    check('ascii output', all(b < 0x80 for b in c.last_raw) and
          reply == {'result': u'\u00c5\u00c4\u00d6 \U0001d11e'}, repr(c.last_raw))

    slow = Client(port)
    slow.handshake(key)
    slow.request('sleep', [1.0])
    started = time.time()
    check('served while another connection sleeps', c.call('sync_ping') == {'result': 'pong'}
          and time.time() - started < 0.5)
    check('slow call answered', slow.reply() == {'result': None})

    bad = Client(port)
    bad.handshake(key)
    bad.sock.sendall(struct.pack('>L', 0x80000000) + b'x' * 16)
    reply = json.loads(bad.get().decode('ascii'))
    check('oversized header', reply == {'exception': {
        'message': 'got invalid RPC from client, signed integer is greater than maximum. disconnect',
        'type': 'OverflowError'}}, repr(reply))
    try:
        bad.get(2.0)
        closed = False
    except EOFError:
        closed = True
    check('disconnected after invalid RPC', closed)
    check('others still served', c.call('get_pid')['result'] > 0)


def scenario_digest(port, key, use_sha256, expect):
    c = Client(port)
    verdict = c.handshake(key, use_sha256=use_sha256)
    offered = c.challenge[len(PREFIX):].endswith(MARKER)
    check('challenge offers sha256', offered)
    check('verdict', verdict == expect, repr(verdict))
    identity = c.call('whoami')['result']
    check('identity', identity == (key if expect == b'{"authenticated": true}' else None), repr(identity))


def scenario_exit(port, key):
    c = Client(port)
    c.handshake(key)
    watcher = Client(port)
    watcher.handshake(key)
    reply = c.call('raise_exit')
    check('exit answered', c.last_raw == b'{"exception": {"message": "passed to client", "type": "Exit"}}',
          repr(c.last_raw))
    message = json.loads(watcher.get().decode('ascii'))
    check('exit message to the others', message == reply, repr(message))
    try:
        watcher.get(2.0)
        closed = False
    except EOFError:
        closed = True
    check('others closed after the exit message', closed)
    try:
        socket.create_connection(('127.0.0.1', port), timeout=1.0)
        refused = False
    except ConnectionRefusedError:
        refused = True
    check('connect refused after exit', refused)


def main():
    port = int(sys.argv[1])
    scenario = sys.argv[2]
    key = sys.argv[3] if len(sys.argv) > 3 else None
    if scenario == 'main':
        scenario_main(port, key)
    elif scenario == 'sha256':
        scenario_digest(port, key, True, b'{"authenticated": true}')
    elif scenario == 'md5':
        scenario_digest(port, key, False, b'{"authenticated": true}')
    elif scenario == 'md5-refused':
        scenario_digest(port, key, False, b'{"authenticated": false}')
    elif scenario == 'exit':
        scenario_exit(port, key)
    else:
        sys.exit('unknown scenario %s' % scenario)


if __name__ == '__main__':
    main()
