"""The package's surface: every public name of the original API document that the
package provides exists, has a docstring and a stub; `help(ave.cmd.run)` reads like the
original document."""

import importlib
import os
import pydoc

import pytest

PROVIDED = {
    'ave.cmd': ['run', 'run_bg'],
    'ave.config': ['create_default', 'load_authkeys', 'create_etc', 'load_etc'],
    'ave.persona': ['become_user'],
    'ave.profile': ['Profile'],
    'ave.exceptions': ['AveException', 'Timeout', 'Exit', 'AuthError', 'RunError',
                       'Restarting', 'Terminated', 'Offline',
                       'CompositionServerResponseNot200Exception',
                       'CompositionServerResponseHttpRetryCode',
                       'CompositionServerResponseOrderFailed',
                       'CompositionDownloadImagesFailed'],
    'ave.network.process': ['Process'],
    'ave.network.control': ['Control', 'RemoteControl'],
    'ave.network.connection': ['find_free_port', 'Connection', 'BlockingConnection'],
    'ave.network.exceptions': ['ConnectionClosed', 'ConnectionTimeout', 'ConnectionRefused',
                               'ConnectionInProgress', 'ConnectionAgain', 'ConnectionReset'],
    'ave.network.fdtx': ['FdTx'],
    'ave.network.pipe': ['Pipe'],
}

METHODS = {
    ('ave.network.process', 'Process'): [
        'start', 'close_fds', 'terminate', 'join', 'is_alive', 'log', 'redirect',
        'perform_prctl', 'handle_SIGTERM', 'handle_SIGUSR1'],
    ('ave.network.control', 'Control'): [
        'shutdown', 'join_later', 'joined_process', 'add_connection', 'remove_connection',
        'new_connection', 'lost_connection', 'idle', 'stop_listening', 'rpc', 'auth',
        'preauth'],
    ('ave.network.connection', 'BlockingConnection'): [
        'poll', 'connect', 'accept', 'write', 'read', 'put', 'get', 'fileno', 'listen',
        'close'],
    ('ave.network.connection', 'Connection'): [
        'fileno', 'listen', 'accept', 'connect', 'close', 'write', 'read', 'put', 'get'],
    ('ave.network.fdtx', 'FdTx'): ['listen', 'accept', 'connect', 'close', 'put', 'get'],
    ('ave.profile', 'Profile'): ['match', 'minimize'],
    ('ave.exceptions', 'AveException'): ['format_trace'],
}


@pytest.mark.parametrize('module', sorted(PROVIDED))
def test_names_exist_with_docs_and_stubs(module):
    mod = importlib.import_module(module)
    assert mod.__doc__
    stub = os.path.splitext(mod.__file__)[0] + '.pyi'
    stub_text = open(stub).read()
    for name in PROVIDED[module]:
        obj = getattr(mod, name)
        assert obj.__doc__, '%s.%s has no docstring' % (module, name)
        assert (' %s(' % name) in stub_text or ('class %s' % name) in stub_text, \
            '%s.%s is not in %s' % (module, name, stub)


@pytest.mark.parametrize('key', sorted(METHODS))
def test_methods_exist_with_docs(key):
    cls = getattr(importlib.import_module(key[0]), key[1])
    for name in METHODS[key]:
        assert getattr(cls, name).__doc__, '%s.%s has no docstring' % (key[1], name)


def test_help_of_cmd_run_reads_like_the_original():
    text = pydoc.render_doc('ave.cmd.run', renderer=pydoc.plaintext)
    assert 'Run a command in a separate process.' in text
    assert ':raises RunError:' in text
    assert pydoc.render_doc('ave.cmd', renderer=pydoc.plaintext)
