"""Interoperability both ways: a Python 3 service on the bindings called by the Rust
``ave call`` binary and by an independent stdlib-only client written from the protocol;
the Python ``RemoteControl`` calling the Rust ``ave serve``."""

import hashlib
import hmac
import json
import os
import signal
import socket
import struct
import subprocess
import time

import pytest

from ave.exceptions import AveException, Exit
from ave.network.control import RemoteControl

AVE_BIN = os.environ.get('AVE_BIN')
needs_ave = pytest.mark.skipif(
    not AVE_BIN or not os.path.exists(AVE_BIN),
    reason='AVE_BIN names no ave binary (cargo xtask python sets it)')


def ave(*args, timeout=30):
    return subprocess.run([AVE_BIN] + list(args), capture_output=True, text=True,
                          timeout=timeout)


@needs_ave
def test_ave_call_calls_a_python_service(server):
    s = server()
    address = '127.0.0.1:%d' % s.port
    done = ave('call', '--authkey', 'password', address, 'upper', 'abc')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == 'ABC'
    done = ave('call', '--authkey', 'password', address, 'whoami')
    assert json.loads(done.stdout) == 'password'
    done = ave('call', '--authkey', 'password', address, 'raise_ave_exception',
               '{"message": "cow", "extra": 1}')
    assert done.returncode == 1
    raised = json.loads(done.stderr[done.stderr.index('{'):])
    assert raised['message'] == 'cow' and raised['extra'] == 1
    assert raised['trace'][0][2] == 'raise_ave_exception'
    done = ave('call', address, 'stop')
    assert done.returncode == 1 and 'not authenticated to make this call' in done.stderr


def _frame(sock, payload):
    sock.sendall(struct.pack('>L', len(payload)) + payload)


def _read(sock, n):
    data = b''
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError('connection closed')
        data += chunk
    return data


def _get(sock):
    size, = struct.unpack('>L', _read(sock, 4))
    return _read(sock, size)


class StdlibClient(object):
    """A client written from the protocol with the standard library only: 4-byte
    big-endian framing, the #CHALLENGE# handshake answered with HMAC-MD5, JSON requests."""

    def __init__(self, port, key):
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=10)
        challenge = _get(self.sock)
        assert challenge.startswith(b'#CHALLENGE#')
        digest = hmac.new(key.encode(), challenge[len(b'#CHALLENGE#'):], hashlib.md5)
        _frame(self.sock, digest.digest())
        self.verdict = json.loads(_get(self.sock))

    def call(self, method, *vargs, **kwargs):
        request = {'method': method, 'params': {'vargs': list(vargs), 'kwargs': kwargs},
                   'async': False, 'resource': None}
        _frame(self.sock, json.dumps(request).encode())
        return json.loads(_get(self.sock))


def test_stdlib_client_calls_a_python_service(server):
    s = server()
    client = StdlibClient(s.port, 'password')
    assert client.verdict == {'authenticated': True}
    assert client.call('upper', 'abc') == {'result': 'ABC'}
    assert client.call('sync_ping', alt='x') == {'result': 'x'}
    assert client.call('nosuch') == {'exception': 'no such RPC: nosuch'}
    raised = client.call('raise_plain_exception', 'boom')['exception']
    assert raised['type'] == 'Exception' and raised['message'] == 'boom'
    assert raised['trace'][0][2] == 'raise_plain_exception'
    stranger = StdlibClient(s.port, 'guess')
    assert stranger.verdict == {'authenticated': False}
    assert stranger.call('whoami') == {'result': None}
    assert client.call('raise_exit') == {
        'exception': {'message': 'passed to client', 'type': 'Exit'}}


@needs_ave
def test_remote_control_calls_ave_serve(tmp_path):
    port_file = tmp_path / 'port'
    proc = subprocess.Popen([AVE_BIN, 'serve', '--port-file', str(port_file),
                             '--authkey', 'secret', '--home', str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, 'ave serve did not start'
            time.sleep(0.05)
        port = int(port_file.read_text())
        rc = RemoteControl(('127.0.0.1', port), 'secret', 10)
        assert rc.sync_ping() == 'pong'
        assert rc.upper('abc') == 'ABC'
        assert rc.whoami() == 'secret'
        with pytest.raises(AveException) as info:
            rc.raise_ave_exception({'message': 'deep', 'extra': 2}, 2)
        assert info.value.details['extra'] == 2
        assert rc.async_ping(__async__=True) is None
        with pytest.raises(Exit):
            rc.raise_exit()
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        proc.stderr.close()
