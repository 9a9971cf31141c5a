"""The exceptions that AVE services raise and clients receive (``ave.exceptions``).

An :class:`AveException` carries a ``details`` dict with at least ``message`` and
``type``, and optionally ``trace`` (the server side stack) and any other fields. Over RPC
the whole dict is sent; the client rebuilds the matching class with
:func:`exception_factory`.
"""

import sys

__all__ = [
    'AveException', 'Timeout', 'Exit', 'AuthError', 'RunError', 'Restarting',
    'Terminated', 'Offline', 'CompositionServerResponseNot200Exception',
    'CompositionServerResponseHttpRetryCode', 'CompositionServerResponseOrderFailed',
    'CompositionDownloadImagesFailed', 'exception_factory', 'amend_excepthook',
]


class AveException(Exception):
    """Base class for all other AVE exception classes.

    :arg details: A *dict* where all keys are strings. One key must be the ``"message"``
        key. A ``"type"`` key will be automatically set from the name of the exception
        class, unless provided in the *details* object.
    """

    def __init__(self, details):
        if not isinstance(details, dict):
            raise Exception('AveException details must be a dictionary')
        for key in details:
            if not isinstance(key, str):
                raise Exception('AveException detail keys must be strings')
        if 'message' not in details:
            raise Exception('AveException details must have message field')
        if 'type' not in details:
            details['type'] = type(self).__name__
        self.__dict__['details'] = details
        Exception.__init__(self, details['message'])

    def __getattr__(self, attr):
        # The original fell back to the details for unknown attributes.
        details = self.__dict__.get('details', {})
        if attr in details:
            return details[attr]
        raise AttributeError(attr)

    def __reduce__(self):
        return (type(self)._rebuild, (self.details,))

    @classmethod
    def _rebuild(cls, details):
        exc = Exception.__new__(cls)
        exc.__dict__['details'] = details
        Exception.__init__(exc, details.get('message'))
        return exc

    @property
    def message(self):
        """The ``message`` field of the details."""
        return self.details['message']

    def json(self):
        """The details dict, as it travels over RPC."""
        return self.details

    def has_trace(self):
        """Whether the details carry a server side trace."""
        return self.details.get('trace') is not None

    def format_trace(self):
        """A pretty printed version of the trace information included in the exception.

        :returns: A string; empty if no trace is available.
        """
        out = ''
        for entry in self.details.get('trace') or []:
            filename, line, function, text = (list(entry) + [None] * 4)[:4]
            out += '  File "%s", line %s, in %s\n' % (filename, line, function)
            if text:
                out += '    %s\n' % str(text).strip()
        return out

    def print_trace(self):
        """Writes :meth:`format_trace` to ``stderr``."""
        sys.stderr.write(self.format_trace())

    def __str__(self):
        message = '%s' % self.details.get('message')
        if self.has_trace():
            return '%s\nServer side traceback:\n%s' % (message, self.format_trace())
        return message

    def __repr__(self):
        return '%s(%r)' % (type(self).__name__, self.details)


def _details(details):
    if isinstance(details, dict):
        return details
    return {'message': '%s' % (details,)}


class Timeout(AveException):
    """Indicates that an operation timed out.

    :arg details: A free form text message or a dictionary containing at least a
        ``"message"`` key.
    """

    def __init__(self, details):
        AveException.__init__(self, _details(details))


class Exit(AveException):
    """Indicates that an operation could not be performed because the hosting service
    (e.g the broker) has terminated in a controlled manner.

    Raised by an RPC method, it is sent to the caller and shuts the server down.

    :arg details: A free form text message or a dictionary containing at least a
        ``"message"`` key.
    """

    def __init__(self, details):
        AveException.__init__(self, _details(details))


class AuthError(AveException):
    """Used in the ``Control`` based handshakes when authentication fails.

    :arg details: A free form text message or a dictionary containing at least a
        ``"message"`` key.
    """

    def __init__(self, details):
        AveException.__init__(self, _details(details))


class RunError(AveException):
    """Indicates that an externally called tool has failed.

    :arg cmd: The command that was passed to ``ave.cmd.run()``.
    :arg out: The output that was produced by the call.
    :arg message: A free form text message.
    """

    def __init__(self, cmd, out, message=''):
        AveException.__init__(self, {
            'cmd': cmd or '', 'out': out or '', 'ptyout': out or '',
            'message': message or '', 'type': 'RunError',
        })

    def __str__(self):
        return '%s:\n%s:\n%s' % (self.details['cmd'], self.details['message'],
                                 self.details['out'])


class Restarting(AveException):
    """Indicates that the hosting service has restarted and no longer accepts new calls
    to the old instance.

    :arg details: A free form text message or a dictionary with a ``"message"`` key.
    """

    def __init__(self, details):
        AveException.__init__(self, _details(details))


class Terminated(AveException):
    """Indicates that a background activity has terminated.

    :arg details: A free form text message or a dictionary with a ``"message"`` key.
    """

    def __init__(self, details):
        AveException.__init__(self, _details(details))


class Offline(AveException):
    """Indicates that a handset is offline.

    :arg details: A free form text message or a dictionary with a ``"message"`` key.
    """

    def __init__(self, details):
        AveException.__init__(self, _details(details))


class CompositionServerResponseNot200Exception(AveException):
    """Indicates that the response code of composition server was not 200."""

    def __init__(self, details):
        AveException.__init__(self, _details(details))


class CompositionServerResponseHttpRetryCode(AveException):
    """Indicates that the request failed because of a composition server issue (HTTP
    502, 503 or 504); the request should be tried again."""

    def __init__(self, details):
        AveException.__init__(self, _details(details))


class CompositionServerResponseOrderFailed(AveException):
    """Indicates that the order composition failed."""

    def __init__(self, details):
        AveException.__init__(self, _details(details))


class CompositionDownloadImagesFailed(AveException):
    """Indicates that the composition failed when downloading images."""

    def __init__(self, details):
        AveException.__init__(self, _details(details))


def exception_factory(details):
    """Rebuilds the exception a service raised from its wire form, as the original
    client does: ``Timeout``, ``Exit``, ``AuthError``, ``RunError``, ``Restarting``,
    ``Terminated``, ``Offline`` and the builtin ``OverflowError`` by their ``type``;
    anything else (``Exception``, ``TypeError``, ...) as an :class:`AveException` that
    keeps every field. A bare string (a request validation error) becomes an
    :class:`AveException` of type ``Exception``.
    """
    if not isinstance(details, dict):
        details = {'message': details}
    if 'type' not in details:
        details['type'] = 'Exception'
    kind = details['type']
    if kind == 'Timeout':
        return Timeout(details)
    if kind == 'Exit':
        return Exit(details)
    if kind == 'AuthError':
        return AuthError(details)
    if kind == 'RunError':
        return RunError(details.get('cmd'), details.get('out'), details.get('message'))
    if kind == 'Restarting':
        return Restarting(details)
    if kind == 'Terminated':
        return Terminated(details)
    if kind == 'OverflowError':
        return OverflowError(details.get('message'))
    if kind == 'Offline':
        return Offline(details)
    return AveException(details)


def amend_excepthook(hook):
    """Returns an ``excepthook`` that runs *hook*, then writes the server side trace of an
    :class:`AveException` to ``stderr``."""
    def amended(kind, value, tb):
        hook(kind, value, tb)
        if isinstance(value, AveException) and value.has_trace():
            sys.stderr.write('\nAVE server side exception trace:\n')
            sys.stderr.write(value.format_trace())
    return amended
