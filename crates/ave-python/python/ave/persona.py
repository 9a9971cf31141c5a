"""Dropping privileges (``ave.persona``), on the Rust ``ave-persona`` crate."""

from ave import _native

__all__ = ['become_user']


def become_user(name):
    """Change the current process' user and group IDs (real, effective and saved, and the
    supplementary groups) to those of the given user name. Only root may change them;
    if the process already runs as that user, nothing changes.

    :arg name: An OS user name.
    :returns: The user's home directory.
    """
    return _native.persona_become_user(name)
