"""Control subclasses served by Rust, and RemoteControl (spec/ave-tests.md,
control_sync, control_async, async_rpc, exception t1-t4)."""

import os
import signal
import threading
import time

import pytest

from ave.exceptions import AveException, Exit, RunError, Timeout
from ave.network.connection import BlockingConnection, find_free_port
from ave.network.control import Control, RemoteControl
from ave.network.exceptions import ConnectionRefused, ConnectionTimeout
from ave.network.process import ForkRefused

from services import MockControl


def test_t01_sync_ping_and_identity(server):
    s = server()
    c = s.client()
    assert c.sync_ping() == 'pong'
    assert c.sync_ping(alt='x') == 'x'
    assert c.whoami() == 'password'
    assert s.events(1) == [['new_connection', 'password']]


def test_t02_async_ping(server):
    s = server()
    c = s.client()
    assert c.async_ping() is None
    assert s.events(2)[1] == 'pong'
    assert c.async_ping(__async__=True) is None
    assert s.pipe.get(5) == 'pong'


def test_t03_async_stop_then_join(server):
    s = server()
    s.client().stop(__async__=True)
    assert s.control.join(5) == 0
    s.wait_for('shutdown')


def test_wrong_key_is_served_without_identity(server):
    s = server(alt_keys={'admin': 'adminkey'})
    stranger = s.client(authkey='wrong')
    assert stranger.whoami() is None
    with pytest.raises(AveException, match='not authenticated to make this call'):
        stranger.stop()
    with pytest.raises(AveException, match='not authorized to make this call'):
        stranger.whoami_preauth()
    assert s.client(authkey='adminkey').whoami_preauth() == 'adminkey'


def test_t06_exit_reaches_the_client_and_stops_the_server(server):
    s = server()
    with pytest.raises(Exit) as info:
        s.client().raise_exit()
    assert info.value.details == {'message': 'passed to client', 'type': 'Exit'}
    assert s.control.join(5) == 0
    with pytest.raises(ConnectionRefused):
        RemoteControl(('', s.port), None, 1).sync_ping()


def test_t14_validation_errors(server):
    c = server().client()
    with pytest.raises(AveException) as info:
        c.bla_bla_bla()
    assert str(info.value) == 'no such RPC: bla_bla_bla'
    with pytest.raises(AveException, match='not an RPC'):
        c.not_an_rpc()
    with pytest.raises(AveException, match='not an RPC'):
        c.join_later()
    with pytest.raises(AveException) as info:
        c.upper()
    assert info.value.details['type'] == 'TypeError'


def test_exception_traces(server):
    c = server().client()
    with pytest.raises(AveException) as info:
        c.raise_plain_exception('Lorem ipsum')
    assert info.value.details['type'] == 'Exception'
    assert info.value.details['trace'][0][2] == 'raise_plain_exception'
    with pytest.raises(AveException) as info:
        c.raise_ave_exception({'message': 'deep', 'extra': 7}, 3)
    names = [frame[2] for frame in info.value.details['trace']]
    assert names.count('raise_ave_exception') == 4
    assert info.value.details['extra'] == 7
    assert info.value.format_trace().count('self.raise_ave_exception') == 3


def test_timeout_run_error_and_results(server):
    c = server().client()
    with pytest.raises(Timeout):
        c.raise_timeout()
    with pytest.raises(RunError) as info:
        c.raise_run_error()
    assert 'No such file or directory' in info.value.details['message']
    assert c.run_external('echo hi') == [0, 'hi\r\n', '']
    garbage = c.make_garbage()
    assert garbage['bytes'][:3] == '\x00\x01\x02' and garbage['bytes'][200] == '\ufffd'
    with pytest.raises(AveException, match='NOT JSON COMPATIBLE'):
        c.return_object()


def test_t04_proxy_keeps_the_origin_trace(server):
    origin = server(authkey=None)
    proxy = server()
    c = proxy.client()
    assert c.connect_proxee(origin.port, None) == 'pong'
    with pytest.raises(AveException) as info:
        c.raise_ave_exception({'message': 'cow'})
    assert info.value.details['message'].startswith('proxied: ')
    assert info.value.details['trace'][0][2] == 'raise_ave_exception'


def test_slow_method_does_not_block_other_connections_reads(server):
    s = server()
    slow = s.client()
    t = threading.Thread(target=slow.sleep, args=(1.0,))
    t.start()
    # The call queued behind the sleep is answered once the sleep is over.
    started = time.monotonic()
    assert s.client().sync_ping() == 'pong'
    t.join()
    assert time.monotonic() - started < 5


def test_t29_stop_listening_keeps_connections(server):
    s = server()
    c = s.client()
    assert c.sync_ping() == 'pong'
    c.stop_listening()
    assert c.sync_ping() == 'pong'
    with pytest.raises(ConnectionRefused):
        RemoteControl(('', s.port), 'password', 1).sync_ping()


def test_t10_sigterm_runs_shutdown(server):
    s = server()
    assert s.client().sync_ping() == 'pong'
    os.kill(s.control.pid, signal.SIGTERM)
    s.control.join(5)
    s.wait_for('shutdown')


def test_lost_connection_and_idle(server):
    s = server(interval=0.1)
    c = s.client()
    assert c.sync_ping() == 'pong'
    c.close()
    seen = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(
            isinstance(e, list) and e[0] == 'lost_connection' for e in seen):
        seen.append(s.pipe.get(5))
    assert any(isinstance(e, list) and e[0] == 'lost_connection' for e in seen)
    assert 'idle' in seen + [s.pipe.get(5)]


def test_t34_timeout_zero_means_none(server):
    s = server()
    assert RemoteControl(('', s.port), 'password', 0).sleep(0.2) == 0.2


def test_call_timeout(server):
    s = server()
    with pytest.raises(ConnectionTimeout):
        RemoteControl(('', s.port), 'password', 0.3).sleep(2)


class InProcess(Control):
    @Control.rpc
    def upper(self, message):
        return message.upper()

    @Control.rpc
    def stop(self):
        Control.stop(self)


def test_run_in_process_then_fork_is_refused_while_serving():
    sock, port = find_free_port()
    control = InProcess(None, None, sock)
    errors = []

    def client():
        try:
            rc = RemoteControl(('', port), None, 5, optimist=True)
            assert rc.upper('abc') == 'ABC'
            # While the server runs, this process has threads: start() refuses to fork.
            with pytest.raises(ForkRefused, match='other thread'):
                InProcess(None, None, find_free_port()[0]).start()
            rc.stop(__async__=True)
        except BaseException as e:  # reported to the main thread
            errors.append(e)
    t = threading.Thread(target=client)
    t.start()
    control.run()
    t.join()
    assert errors == []


def test_join_later_reaps_in_the_loop_and_calls_joined_process(server):
    s = server()
    pid = s.client().defer(['sh', '-c', 'exit 3'])
    s.wait_for(['joined', pid, 3 << 8])
