"""BlockingConnection, find_free_port, Pipe, Process (spec/ave-tests.md, connection,
pipe and process tests)."""

import os
import select
import signal
import time

import pytest

from ave.network.connection import BlockingConnection, find_free_port
from ave.network.exceptions import (ConnectionClosed, ConnectionRefused,
                                    ConnectionTimeout, Unwaitable)
from ave.network.pipe import Pipe
from ave.network.process import Process


def test_t01_refused():
    sock, port = find_free_port(listen=False)
    with pytest.raises(ConnectionRefused):
        BlockingConnection(('', port)).connect()
    sock.close()


def test_t02_optimist_times_out():
    sock, port = find_free_port(listen=False)
    started = time.monotonic()
    with pytest.raises(ConnectionTimeout):
        BlockingConnection(('', port)).connect(timeout=0.5, optimist=True)
    assert time.monotonic() - started >= 0.4
    sock.close()


def test_t05_nothing_to_accept():
    sock, port = find_free_port()
    with pytest.raises(ConnectionTimeout):
        BlockingConnection(('', port), sock).accept(timeout=0.3)


def test_frames_and_reads():
    sock, port = find_free_port()
    listener = BlockingConnection(('', port), sock)
    client = BlockingConnection(('', port)).connect(timeout=5)
    peer = listener.accept(timeout=5)
    client.put(b'test the connection')
    assert peer.get(timeout=5) == b'test the connection'
    peer.write(b'x' * 100)
    with pytest.raises(ConnectionTimeout):
        client.read(101, timeout=0.3)
    peer.close()
    # The 100 bytes that arrived stay buffered; the close ends the stream.
    with pytest.raises(ConnectionClosed):
        client.read(101, timeout=1)


def test_pipe_t01():
    pipe = Pipe()
    pipe.put('hello')
    assert pipe.get(timeout=0) == 'hello'
    with pytest.raises(ConnectionTimeout):
        pipe.get(timeout=0)


def _forever():
    while True:
        time.sleep(1)


def test_process_t1_t7_terminate_and_join():
    p = Process(target=_forever)
    # Synchronized: the child's SIGTERM handler (exit 15) is in place when start returns.
    p.start(synchronize=True)
    assert p.pid > 0 and p.is_alive()
    p.terminate()
    assert p.join(5) == 15 << 8
    assert not p.is_alive()


def test_process_exit_codes_and_name():
    pipe = Pipe()

    class Named(Process):
        def close_fds(self, exclude):
            exclude.append(pipe.w)
            Process.close_fds(self, exclude)

        def run(self):
            with open('/proc/self/comm') as f:
                pipe.put(f.read().strip())
            raise SystemExit(3)
    p = Named(proc_name='proc_t3')
    p.start(synchronize=True)
    assert pipe.get(5) == 'proc_t3'
    assert p.join(5) == 3 << 8


def test_process_t2_daemon_is_not_our_child():
    p = Process(target=_forever)
    p.start(daemonize=True, synchronize=True)
    try:
        assert p.pid > 0
        with pytest.raises(Unwaitable):
            p.join()
    finally:
        os.kill(p.pid, signal.SIGKILL)


def test_fdtx_passes_descriptors(tmp_path):
    from ave.network.fdtx import FdTx
    from ave.network.process import Process
    server = FdTx()
    path = server.listen(str(tmp_path), 'fdtx.sock')
    target = tmp_path / 'file'

    def connecter():
        client = FdTx()
        client.connect(path, 5)
        message, fds = client.get(7, 1)
        assert message == 'foo bar' and len(fds) == 1
        os.write(fds[0], b'star cream')
        os.fsync(fds[0])

    class Peer(Process):
        def close_fds(self, exclude):
            # The child keeps nothing of the parent's but the path it connects to.
            Process.close_fds(self, exclude)
    peer = Peer(target=connecter)
    peer.start()
    server.accept(5)
    fd = os.open(str(target), os.O_WRONLY | os.O_CREAT, 0o600)
    server.put('foo bar', fd)
    os.close(fd)
    assert peer.join(5) == 0
    server.close()
    assert target.read_bytes() == b'star cream'


def test_fdtx_accept_times_out(tmp_path):
    from ave.exceptions import Timeout
    from ave.network.fdtx import FdTx
    server = FdTx()
    server.listen(str(tmp_path))
    with pytest.raises(Timeout):
        server.accept(0.3)
    server.close()


def test_non_blocking_connection_against_a_python_service(server):
    import hashlib
    import hmac
    import json
    from ave.network.connection import Connection
    from ave.network.exceptions import ConnectionInProgress
    s = server()
    conn = Connection(('127.0.0.1', s.port))
    try:
        conn.connect()
    except ConnectionInProgress:
        pass
    def until(fn):
        deadline = time.monotonic() + 5
        while True:
            got = fn()
            if got is not None:
                return got
            assert time.monotonic() < deadline
            select.select([conn.socket], [conn.socket], [], 1)
    challenge = until(conn.get)
    digest = hmac.new(b'password', challenge[11:], hashlib.md5).digest()
    until(lambda: conn.put(digest))
    assert json.loads(until(conn.get)) == {'authenticated': True}
    request = json.dumps({'method': 'upper', 'params': {'vargs': ['abc'], 'kwargs': {}}})
    until(lambda: conn.put(request.encode()))
    assert json.loads(until(conn.get)) == {'result': 'ABC'}
    conn.close()


def test_parent_objects_dropped_in_the_child_close_placeholders():
    # A Rust-owned descriptor of the parent that the child does not keep: the child's
    # close_fds closes its number, and dropping the object in the child must neither
    # abort (EBADF on an owned descriptor) nor close a descriptor opened since.
    holder = [Pipe()]
    result = Pipe()

    class Child(Process):
        def close_fds(self, exclude):
            exclude.append(result.w)
            Process.close_fds(self, exclude)

        def run(self):
            import gc
            holder.clear()
            gc.collect()
            result.put('alive')
    p = Child()
    p.start()
    assert result.get(10) == 'alive'
    assert p.join(10) == 0
