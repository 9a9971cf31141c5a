"""ave.cmd (spec/ave-tests.md, cmd t1-t8)."""

import os
import select
import signal
import time

import pytest

import ave.cmd
from ave.exceptions import RunError, Timeout


def test_t1_timeout():
    started = time.monotonic()
    with pytest.raises(Timeout) as info:
        ave.cmd.run('sleep 10', timeout=1)
    assert str(info.value).endswith(' timed out')
    assert time.monotonic() - started < 5


def test_t2_string_is_split_on_whitespace():
    with pytest.raises(Timeout) as info:
        ave.cmd.run('sleep    10', timeout=0.5)
    assert info.value.details['cmd'] == ['sleep', '10']
    assert info.value.details['message'] == 'command timed out'


def test_t3_debug_traces_on_stderr(capfd):
    ave.cmd.run('echo -n hello', debug=True)
    err = capfd.readouterr().err
    assert 'echo -n hello' in err and 'hello' in err
    ave.cmd.run('echo -n hello', debug=False)
    assert capfd.readouterr().err == ''


def test_t4_run_bg():
    pid, fd = ave.cmd.run_bg('echo hello')
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        assert poller.poll(5000)
        assert os.read(fd, 100).decode().startswith('hello')
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        os.waitpid(pid, 0)
        os.close(fd)


def test_t5_status_codes_and_output_is_str():
    status, output, err = ave.cmd.run('ls')
    assert status == 0 and isinstance(output, str) and err == ''
    assert ave.cmd.run('ls thisdoesnotexist', debug=True)[0] == 2
    assert ave.cmd.run(['sh', '-c', 'exit 255'])[0] == -1


def test_t6_no_pty_leak():
    before = len(os.listdir('/proc/self/fd'))
    for _ in range(200):
        assert ave.cmd.run('echo hello')[1] == 'hello\r\n'
    assert len(os.listdir('/proc/self/fd')) == before


def test_t7_tail_of_output_is_not_lost(tmp_path):
    lines = ['in the beginning, there was zero.']
    for i in range(500):
        lines += ['so you have %d' % i, 'if you add one to that', 'you get %d' % (i + 1)]
    path = tmp_path / 'text'
    path.write_text('\n'.join(lines) + '\n')
    for _ in range(10):
        _, out, _ = ave.cmd.run(['sh', '-c', 'cat %s | while read line; do echo $line; done'
                                 % path])
        assert out.strip().splitlines()[-1].strip() == 'you get 500'


def test_t8_cwd(tmp_path):
    status, out, _ = ave.cmd.run('pwd', cwd=str(tmp_path))
    assert status == 0 and out.strip() == str(tmp_path)


def test_exec_failure_is_a_run_error_in_the_caller():
    with pytest.raises(RunError) as info:
        ave.cmd.run(['no_such_exe'])
    assert 'No such file or directory' in str(info.value)


def test_output_file_receives_the_output(tmp_path):
    path = tmp_path / 'out'
    with open(path, 'w') as f:
        ave.cmd.run('echo hello', output_file=f)
    assert path.read_bytes() == b'hello\r\n'
    with open(path, 'wb') as f:
        ave.cmd.run('echo again', output_file=f)
    assert path.read_bytes() == b'again\r\n'
    with pytest.raises(Exception, match='must be type file'):
        ave.cmd.run('true', output_file=3)


def test_run_docstring_reads_like_the_original():
    assert 'Run a command in a separate process' in ave.cmd.run.__doc__
