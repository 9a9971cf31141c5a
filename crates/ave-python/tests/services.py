"""The test service: the original test suite's MockControl, written for Python 3 against
the original API (spec/ave-tests.md, setup fixture)."""

import os
import signal
import time

import ave.cmd
from ave.exceptions import AveException, Exit
from ave.network.control import Control, RemoteControl


class MockControl(Control):
    def __init__(self, port, authkey, socket, alt_keys=None, pipe=None, interval=None,
                 proxee=None, home=None):
        Control.__init__(self, port, authkey, socket, alt_keys or {}, interval, home)
        self.pipe = pipe
        self.proxee = proxee

    def close_fds(self, exclude):
        if self.pipe is not None:
            exclude.append(self.pipe.w)
        Control.close_fds(self, exclude)

    def write(self, what):
        if self.pipe is not None:
            self.pipe.put(what)

    def new_connection(self, connection, authkey):
        self.write(['new_connection', authkey])

    def lost_connection(self, connection, authkey):
        self.write(['lost_connection', list(connection.address)])

    def idle(self):
        self.write('idle')

    def shutdown(self, details=None):
        self.write('shutdown')
        Control.shutdown(self, details)

    @Control.rpc
    def sync_ping(self, alt=None):
        return alt or 'pong'

    @Control.rpc
    def async_ping(self):
        self.write('pong')

    @Control.rpc
    def upper(self, message):
        return message.upper()

    @Control.rpc
    def sleep(self, seconds):
        time.sleep(seconds)
        return seconds

    @Control.rpc
    def get_pid(self):
        return os.getpid()

    @Control.rpc
    @Control.auth
    def stop(self):
        Control.stop(self)

    @Control.rpc
    def stop_listening(self):
        Control.stop_listening(self)

    @Control.rpc
    def raise_plain_exception(self, message):
        raise Exception(message)

    @Control.rpc
    def raise_ave_exception(self, details, depth=0):
        if depth > 0:
            return self.raise_ave_exception(details, depth - 1)
        if self.proxee is not None:
            details = dict(details)
            try:
                return self.proxee.raise_ave_exception(details)
            except AveException as e:
                e.details['message'] = 'proxied: ' + e.details['message']
                raise e
        raise AveException(details)

    @Control.rpc
    @Control.auth
    def raise_exit(self, msg='passed to client'):
        raise Exit(msg)

    @Control.rpc
    def raise_timeout(self):
        ave.cmd.run('sleep 10', timeout=1)

    @Control.rpc
    def raise_run_error(self):
        ave.cmd.run(['no_such_exe'])

    @Control.rpc
    def run_external(self, cmd):
        return ave.cmd.run(cmd)

    @Control.rpc
    def whoami(self):
        return self.established[self.current_connection]

    @Control.rpc
    @Control.preauth('admin', 'root')
    def whoami_preauth(self):
        return self.established[self.current_connection]

    @Control.rpc
    def kill(self, sig=signal.SIGKILL):
        os.kill(os.getpid(), sig)

    @Control.rpc
    def make_garbage(self):
        return {'bytes': bytes(range(256)), 'text': ''.join(chr(i) for i in range(256))}

    @Control.rpc
    def return_object(self):
        return object()

    @Control.rpc
    def connect_proxee(self, port, authkey):
        self.proxee = RemoteControl(('', port), authkey, 5)
        return self.proxee.sync_ping()

    def joined_process(self, pid, exit):
        self.write(['joined', pid, exit])

    @Control.rpc
    def defer(self, argv):
        import subprocess
        child = subprocess.Popen(argv)
        self.join_later(child)
        return child.pid

    def not_an_rpc(self):
        return 'hidden'
