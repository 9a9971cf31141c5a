"""ave.exceptions (spec/ave-tests.md, exception t5-t6, and the client factory)."""

import pytest

from ave.exceptions import (AuthError, AveException, Exit, RunError, Timeout,
                            exception_factory)
import ave.network.exceptions as netexc


def test_t5_str_with_trace():
    e = AveException({'message': 'message1', 'trace': [['module1', 0, 'method1', 'line code']]})
    assert str(e) == ('message1\nServer side traceback:\n'
                      '  File "module1", line 0, in method1\n    line code\n')


def test_t6_str_without_trace():
    assert str(AveException({'message': 'message1'})) == 'message1'


def test_details_validation_and_type():
    with pytest.raises(Exception, match='must be a dictionary'):
        AveException('x')
    with pytest.raises(Exception, match='must have message field'):
        AveException({})
    assert Timeout('late').details == {'message': 'late', 'type': 'Timeout'}
    e = RunError(['ls'], 'out', 'failed')
    assert e.details['cmd'] == ['ls'] and e.details['ptyout'] == 'out'
    assert e.message == 'failed'


def test_factory_rebuilds_classes():
    assert isinstance(exception_factory({'type': 'Timeout', 'message': 'm'}), Timeout)
    assert isinstance(exception_factory({'type': 'Exit', 'message': 'm'}), Exit)
    assert isinstance(exception_factory({'type': 'AuthError', 'message': 'm'}), AuthError)
    run = exception_factory({'type': 'RunError', 'message': 'm', 'cmd': ['x'], 'out': 'o'})
    assert isinstance(run, RunError) and run.details['out'] == 'o'
    assert isinstance(exception_factory({'type': 'OverflowError', 'message': 'm'}),
                      OverflowError)
    other = exception_factory({'type': 'Busy', 'message': 'm', 'extra': 1})
    assert type(other) is AveException and other.details['extra'] == 1
    bare = exception_factory('no such RPC: x')
    assert bare.details == {'message': 'no such RPC: x', 'type': 'Exception'}


def test_network_exceptions_default_messages():
    assert str(netexc.ConnectionClosed()) == 'connection closed'
    assert str(netexc.ConnectionTimeout()) == 'timed out'
    assert str(netexc.ConnectionRefused()) == 'connection refused'
    assert netexc.AveException is AveException
