"""Processes (``ave.network.process``): a target run in a forked child, optionally
daemonized and synchronized, on the Rust ``Process``.

``fork`` is only sound in a single-threaded process, so :meth:`Process.start` refuses,
with :class:`ForkRefused`, to fork a process that runs other threads (Python threads, or
the thread of a ``Control`` serving in this process). Start processes first.
"""

import os
import signal
import sys
import time
import traceback

from ave import _native

__all__ = ['Process', 'ForkRefused']


class ForkRefused(RuntimeError):
    """:meth:`Process.start` was called while this process runs other threads."""


class Process(object):
    """The base class for all AVE processes.

    :arg target: A callable. If not set it defaults to ``self.run`` which must then be
        implemented on a subclass.
    :arg args: A tuple of arguments to be passed to *target*. Defaults to ``()``.
    :arg logging: Print activities of the new process to ``stderr``.
    :arg proc_name: The process name shown by ``ps`` (the kernel keeps 15 bytes).
        Defaults to ``ave-<ClassName>``.
    """

    def __init__(self, target=None, args=None, logging=False, proc_name=None):
        if target is not None and not callable(target):
            raise Exception('target is not a callable: %s' % (target,))
        if not isinstance(logging, bool):
            raise Exception('logging is not a boolean: %s' % (logging,))
        if proc_name is not None and not isinstance(proc_name, str):
            raise Exception('proc_name is not a string: %s' % (proc_name,))
        self.target = target
        self.args = tuple(args) if args else ()
        self.logging = logging
        self.proc_name = proc_name or 'ave-%s' % type(self).__name__
        self._pid = -1
        self._child = None

    @property
    def pid(self):
        """The child's pid in the parent, ``os.getpid()`` in the child."""
        if self._pid == 0:
            return os.getpid()
        if self._pid < 0:
            raise Exception('process PID is not known')
        return self._pid

    def start(self, daemonize=False, synchronize=False):
        """Called by the parent process to start the new process.

        :arg daemonize: Perform two forks instead of one to get the new process
            re-parented to ``init``.
        :arg synchronize: Do not return until the new process has completed
            ``redirect()`` and ``initialize()``.
        :raises ForkRefused: if this process runs other threads.
        """
        self._child = _native.Child(self, self.proc_name, self.logging)
        try:
            pid = self._child.start(bool(daemonize), bool(synchronize))
        except RuntimeError as e:
            if 'other thread' in str(e):
                raise ForkRefused(str(e)) from None
            raise
        self._pid = pid if pid > 0 else -1

    # --- the child's steps (called by the Rust side in the child) ---

    def _ave_child_keep_fds(self):
        exclude = []
        self.close_fds(exclude)
        return [fd for fd in exclude if isinstance(fd, int)]

    def _ave_child_run(self):
        self._pid = 0
        target = self.target if self.target is not None else self.run
        try:
            target(*self.args)
            return 0
        except SystemExit as e:
            code = e.code
            return code if isinstance(code, int) else (0 if code is None else 1)
        except BaseException:
            text = traceback.format_exc()
            if self.logging:
                self.log('Exception in target():\n%s' % text)
            else:
                sys.stderr.write(text)
            return 1

    def close_fds(self, exclude):
        """Append descriptors that should remain open in the new process to *exclude*
        before passing it to ``close_fds()`` on the superclass. Every other descriptor
        except 0, 1 and 2 is closed in the child.

        :arg exclude: List of integers (file descriptors).
        """
        if not isinstance(exclude, list):
            raise Exception('exclude is not a list: %s' % (exclude,))
        for fd in exclude:
            if not isinstance(fd, int):
                raise Exception('exclude is not a list of int: %s' % (exclude,))

    def redirect(self):
        """Subclasses may redirect inherited descriptors here (e.g. ``stderr`` to a log
        file). Called after :meth:`close_fds`. Does nothing by default."""

    def initialize(self):
        """Installs the signal handlers (and the parent-death signal) and sets the process
        name. Runs in the child before the target."""
        self.set_signal_handlers()
        self.set_process_name(self.proc_name)

    def set_signal_handlers(self):
        """SIGTERM -> :meth:`handle_SIGTERM`, SIGUSR1 -> :meth:`handle_SIGUSR1`, then
        ``perform_prctl(SIGTERM)``."""
        signal.signal(signal.SIGTERM, self.handle_SIGTERM)
        signal.signal(signal.SIGUSR1, self.handle_SIGUSR1)
        self.perform_prctl(signal.SIGTERM)

    def perform_prctl(self, death_signal=0):
        """Set OS specific process controls: the signal received when the parent dies
        (0 for none)."""
        _native.set_death_signal(int(death_signal))

    def set_process_name(self, name):
        """Sets the kernel name of the process (15 bytes are kept)."""
        _native.set_process_name(name)

    def handle_SIGTERM(self, signum, frame):
        """Exit the process immediately (code 15), without Python exit handlers."""
        self.log('SIGTERM exit PID=%d' % os.getpid())
        os._exit(15)

    def handle_SIGUSR1(self, signum, frame):
        """Log the stack of the process and keep running."""
        self.log('SIGUSR1 trace PID=%d:\n%s' % (os.getpid(),
                                               ''.join(traceback.format_stack(frame))))

    def log(self, message):
        """Print a time stamped message to ``stderr`` if the process was created with
        *logging=True*."""
        if self.logging:
            sys.stderr.write('%s %s %d -- %s\n' % (time.ctime(), self.proc_name,
                                                  os.getpid(), message))
            sys.stderr.flush()

    # --- the parent's side ---

    def _started(self):
        if self._child is None:
            from ave.network.exceptions import Unstarted
            raise Unstarted()
        return self._child

    def join(self, timeout=None):
        """Wait for the process to terminate. May only be called by its parent.

        :arg timeout: Seconds; raise ``Timeout`` if the process does not terminate in
            time. A falsy value waits forever.
        :returns: The raw wait status (0 for a clean exit, ``code << 8``, or the signal
            number), as the original.
        """
        status = self._started().join(timeout or None)
        self.log('join by PID=%d' % os.getpid())
        return status

    def join_nohang(self):
        """Reap the process if it ended: ``(pid, status)``, ``(0, 0)`` while it runs."""
        return self._started().join_nohang()

    def is_alive(self):
        """Check if the child process is still running.

        :returns: Boolean.
        """
        return self._started().is_alive()

    def kill(self, sig):
        """Send *sig* to the process."""
        if self._pid == 0:
            os.kill(os.getpid(), sig)
            return
        if self._child is None:
            raise Exception('cannot terminate unstarted process')
        self._child.kill(int(sig))

    def terminate(self):
        """Send SIGTERM to the process."""
        self.log('terminate by PID=%d' % os.getpid())
        self.kill(signal.SIGTERM)
