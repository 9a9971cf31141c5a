"""Shared fixtures: a temporary home and the test service started in a child process."""

import os
import signal

import pytest

from ave.network.connection import find_free_port
from ave.network.control import RemoteControl
from ave.network.pipe import Pipe

from services import MockControl


class Started(object):
    """A MockControl started in a forked child, its port, pipe and a client."""

    def __init__(self, authkey='password', alt_keys=None, interval=None, cls=MockControl):
        self.sock, self.port = find_free_port()
        self.pipe = Pipe()
        self.control = cls(None, authkey, self.sock, alt_keys or {}, self.pipe, interval)
        self.control.start(synchronize=True)
        self.authkey = authkey

    def client(self, authkey=None, timeout=5):
        return RemoteControl(('', self.port), authkey or self.authkey, timeout)

    def events(self, count, timeout=5):
        return [self.pipe.get(timeout) for _ in range(count)]

    def wait_for(self, event, timeout=5):
        """Reads events until `event` arrives; returns those read before it."""
        seen = []
        while True:
            got = self.pipe.get(timeout)
            if got == event:
                return seen
            seen.append(got)

    def stop(self):
        try:
            os.kill(self.control.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            self.control.join(5)
        except Exception:
            pass
        self.pipe.close()


@pytest.fixture
def server():
    started = []

    def make(**kwargs):
        s = Started(**kwargs)
        started.append(s)
        return s
    yield make
    for s in started:
        s.stop()
