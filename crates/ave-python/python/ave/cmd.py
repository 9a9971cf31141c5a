"""Run external commands through a pseudoterminal (``ave.cmd``).

Each command runs in a new session whose controlling terminal is a new pty:

* output written to ``stdout`` and ``stderr`` is mixed into a single stream, in the
  order it was written, with the terminal's line endings (``\\r\\n``);
* the whole session is ended when the command times out, so no descendant is left
  behind (the original killed only the direct child);
* there is no buffering of the program's output.

The runner is the Rust ``ave-cmd`` crate; the GIL is released while it waits.
"""

import io
import os

from ave import _native

__all__ = ['run', 'run_bg']


def _argv(cmd):
    if isinstance(cmd, (bytes, str)):
        if isinstance(cmd, bytes):
            cmd = cmd.decode('utf-8', 'replace')
        return cmd.split()
    return ['%s' % (c,) if not isinstance(c, bytes) else c.decode('utf-8', 'replace')
            for c in cmd]


def _writer(output_file):
    if output_file is None:
        return None
    if not hasattr(output_file, 'write'):
        raise Exception('Parameter "output_file" must be type file')
    binary = isinstance(output_file, (io.RawIOBase, io.BufferedIOBase)) \
        or 'b' in getattr(output_file, 'mode', '')
    if binary:
        return output_file.write
    return lambda data: output_file.write(data.decode('utf-8', 'replace'))


def run(cmd, timeout=0, debug=False, cwd='', output_file=None):
    """Run a command in a separate process.

    :arg cmd: A string or a list of strings where ``index=0`` is the executable to run.
        If *cmd* is a string, then it will be split on whitespace before being passed to
        the sub-process (no shell quoting).
    :type cmd: [string, ...] or string
    :arg timeout: Seconds; 0 means no timeout.
    :arg debug: Trace the command line, poll events and reads on ``stderr``.
    :arg cwd: The directory to run in ('' for the current one).
    :arg output_file: A file object which is ready to be written to; every chunk of
        output is written to it as it arrives.
    :type output_file: file

    :returns: An *(integer, string, string)* tuple: the exit code from the process (the
        exit byte read as a signed 8-bit value, 0 for a death by signal, as the
        original), all its output (``stdout`` and ``stderr`` mixed in the order they were
        written, like in a terminal) and an empty string.

    :raises Timeout: If the command ran longer than *timeout*; its details hold ``cmd``
        and ``out``.
    :raises RunError: If the sub-process could not be created or executed (the message
        holds the system's error text).
    """
    code, output = _native.run(_argv(cmd), float(timeout or 0), bool(debug), cwd or '',
                               _writer(output_file))
    return code, output.decode('utf-8', 'replace'), ''


def run_bg(cmd, debug=False, cwd=''):
    """Works the same as :func:`run`, except that it is non-blocking.

    :returns: A *(PID, file descriptor)* tuple. The file descriptor is attached to the
        new process' pseudoterminal and will carry all messages written to ``stdout`` and
        ``stderr``.

    .. note:: The caller *must* eventually use ``os.wait()`` or one of its variations on
        the PID and ``os.close()`` on the file descriptor.
    """
    pid, fd = _native.run_bg(_argv(cmd), bool(debug), cwd or '')
    os.set_blocking(fd, True)
    return pid, fd
