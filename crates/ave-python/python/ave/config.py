"""System wide configuration (``ave.config``): default configuration files, the
administrative authentication keys and ``/etc/ave/user``. Implemented by the Rust
``ave-config`` crate."""

import os
import sys

from ave import _native

__all__ = ['create_default', 'load', 'load_authkeys', 'create_etc', 'load_etc']

ETC_USER_PATH = '/etc/ave/user'


def create_default(home):
    """Create default configuration files under ``<home>/.ave/config``. Will also create
    the directories if they do not exist. Configuration files that already exist will not
    be touched (authkeys.json is written with mode 0600).

    :arg home: A string containing a path to a directory.
    :returns: A tuple of two lists. The first contains the paths of the created files.
        The second contains skipped files.
    """
    return _native.config_create_default(os.fspath(home))


def load(path):
    """Load a configuration file, which must hold a JSON object, and return it as a
    dict."""
    return _native.config_load(os.fspath(path))


def load_authkeys(home):
    """Load and return the administrative authentication keys from
    ``<home>/.ave/config/authkeys.json``. The object can be passed as the ``alt_keys``
    parameter when creating ``Control`` instances.

    :arg home: The base directory to search for AVE configuration files.
    :returns: A dictionary containing account/password pairs in plain text.
    """
    return _native.config_load_authkeys(os.fspath(home))


def create_etc(path=ETC_USER_PATH, user=None):
    """Creates ``/etc/ave/user`` -- a JSON encoded dictionary with the account name,
    home directory and uid of *user*. With no *user*, the name is read from ``stdin``
    (the function then blocks until a line or EOF arrives).

    :returns: The user name.
    """
    if user is None:
        sys.stdout.write('Type a valid user name and press return: ')
        sys.stdout.flush()
        user = sys.stdin.readline().strip()
    return _native.config_create_etc(os.fspath(path), user)


def load_etc():
    """Loads the contents of ``/etc/ave/user`` and returns it as a dictionary with the
    entries *name* (the account that runs AVE), *home* (under which ``.ave/config`` is
    found) and *uid*."""
    return _native.config_load_etc()
